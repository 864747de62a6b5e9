"""The Debian package (`make deb`, scripts/deb.sh), built from this checkout and installed with dpkg.

So that no test changes the machine, the package never goes into the system's dpkg database:
`dpkg --root` installs and removes it in a scratch root, and the Prosody under test (Debian's own,
unmodified launcher and modules) runs in a private mount namespace in which that root's
usr/lib/prosody/modules is laid over Prosody's own module directory (a read-only overlay). The
namespace ends with the process: a crash leaves nothing behind. The configuration has no
plugin_paths and no auth_hmac_library: the package's files alone must do, and the secrets are the
ones `hmac-token keygen --write` (the package's) wrote into the root's etc/prosody, as the README's
next step says. The package has no maintainer scripts (checked below): dpkg would run one chrooted
into the scratch root, which has no shell, so adding one means giving this test a root to run it."""
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

import rawxmpp
from harness import REPO, Prosody, prosody_lib

DEB_NAME = "prosody-auth-hmac"


@pytest.fixture(scope="module")
def deb():
    out = Path(tempfile.mkdtemp(prefix="deb-"))
    r = subprocess.run(["bash", str(REPO / "scripts" / "deb.sh")], capture_output=True, text=True,
                       env=dict(os.environ, DIST_DIR=str(out)))
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    (found,) = out.glob("%s_*_*.deb" % DEB_NAME)
    yield found, r.stdout + r.stderr
    shutil.rmtree(out, ignore_errors=True)


def cargo_version():
    return re.search(r'^version = "([^"]+)"$', (REPO / "Cargo.toml").read_text(), re.M).group(1)


def control(deb, field):
    return subprocess.run(["dpkg-deb", "-f", str(deb), field], check=True, capture_output=True, text=True).stdout.strip()


def dpkg_root(root, *args):
    # --force-depends: the scratch root's dpkg database knows no other package (Prosody, libc);
    # test_it_installs_here_with_nothing_more checks the Depends against this machine's
    return subprocess.run(["dpkg", "--root", str(root), "--force-depends", *args], capture_output=True, text=True)


def scratch_root():
    root = Path(tempfile.mkdtemp(prefix="deb-root-"))
    for d in ("info", "updates", "triggers"):
        (root / "var" / "lib" / "dpkg" / d).mkdir(parents=True)
    (root / "var" / "lib" / "dpkg" / "status").touch()
    return root


def snapshot(directory):
    """Every file under `directory`: its mode and a hash of its contents."""
    return {str(p.relative_to(directory)): (p.stat().st_mode, hashlib.sha256(p.read_bytes()).hexdigest())
            for p in sorted(directory.rglob("*")) if p.is_file()}


def test_the_package_is_named_versioned_and_checked(deb):
    path, output = deb
    version = control(path, "Version")
    assert version.rsplit("-", 1)[0] == cargo_version()
    assert path.name == "%s_%s_%s.deb" % (DEB_NAME, version, control(path, "Architecture"))
    # scripts/deb.sh fails on a lintian error or warning; the overridden tags are the justified ones
    assert not re.search(r"^[EW]: ", output, re.M), output
    depends = control(path, "Depends")
    assert re.search(r"(^|, )prosody \(>= 0\.12\)(,|$)", depends), depends
    assert re.search(r"(^|, )lua5\.4(,|$)", depends), depends
    assert re.search(r"(^|, )libc6 \(>= [\d.]+\)(,|$)", depends), depends
    # nothing of Prosody's configuration is the package's: removing it cannot change that
    listing = subprocess.run(["dpkg-deb", "-c", str(path)], check=True, capture_output=True, text=True).stdout
    assert "./etc/prosody" not in listing
    scripts = subprocess.run(["dpkg-deb", "-I", str(path)], check=True, capture_output=True, text=True).stdout
    assert not re.search(r"\b(preinst|postinst|prerm|postrm)\b", scripts), scripts


def test_it_installs_here_with_nothing_more(deb):
    """apt's own dependency check against this machine (Debian's Prosody and Lua 5.4): nothing else
    to install, nothing to remove. --simulate changes nothing."""
    path, _ = deb
    r = subprocess.run(["apt-get", "install", "--simulate", "--no-install-recommends", str(path)],
                       capture_output=True, text=True, env=dict(os.environ, LC_ALL="C"))
    assert r.returncode == 0, r.stdout + r.stderr
    actions = [line.split()[0:2] for line in r.stdout.splitlines() if re.match(r"^(Inst|Conf|Remv) ", line)]
    assert actions == [["Inst", DEB_NAME], ["Conf", DEB_NAME]], r.stdout


def test_the_manual_pages_come_from_the_cli(deb):
    path, _ = deb
    root = Path(tempfile.mkdtemp(prefix="deb-x-"))
    try:
        subprocess.run(["dpkg-deb", "-x", str(path), str(root)], check=True)
        man = root / "usr" / "share" / "man" / "man1"
        assert sorted(p.name for p in man.iterdir()) == [
            "hmac-token-jid.1.gz", "hmac-token-keygen.1.gz", "hmac-token-mint.1.gz", "hmac-token-signout.1.gz",
            "hmac-token-verify.1.gz", "hmac-token.1.gz"]
        page = subprocess.run(["man", "-l", str(man / "hmac-token-keygen.1.gz")], capture_output=True, text=True,
                              env=dict(os.environ, MANWIDTH="200", LC_ALL="C.UTF-8"))
        assert page.returncode == 0 and page.stderr == "", page.stderr
        help_text = subprocess.run([str(root / "usr" / "bin" / "hmac-token"), "keygen", "--help"], check=True,
                                   capture_output=True, text=True).stdout
        for flag in re.findall(r"--[a-z][a-z-]+", help_text):
            assert flag in page.stdout.replace("\u2010", "-"), flag
        version = subprocess.run([str(root / "usr" / "bin" / "hmac-token"), "--version"], check=True,
                                 capture_output=True, text=True).stdout.split()
        assert version == ["hmac-token", cargo_version()]
    finally:
        shutil.rmtree(root, ignore_errors=True)


def plugin_dir(launcher):
    """Prosody's own module directory, as its launcher has it compiled in (CFG_PLUGINDIR)."""
    found = re.search(r"^CFG_PLUGINDIR='([^';]+)';$", Path(launcher).read_text(), re.M)
    assert found, "no CFG_PLUGINDIR in %s" % launcher
    return Path(found.group(1))


def namespaced_launcher(directory, package_modules, prosody_modules, prosody):
    """A launcher for Debian's Prosody that first lays `package_modules` over its own module
    directory, in a mount namespace of its own; each step execs, so the PID the harness stops is
    Prosody's."""
    launcher = directory / "prosody-with-package"
    launcher.write_text(
        "#!/bin/sh\n"
        "exec unshare --mount --propagation private sh -c "
        "'mount -t overlay overlay -o \"lowerdir=$1:$2\" \"$2\" && shift 2 && exec \"$@\"' "
        "sh '%s' '%s' '%s' \"$@\"\n" % (package_modules, prosody_modules, prosody))
    launcher.chmod(0o755)
    return launcher


def test_installed_it_logs_in_and_removed_it_leaves_the_config_and_prosody_running(deb):
    if os.geteuid() != 0:
        pytest.skip("dpkg --root and a mount namespace need root")
    path, _ = deb
    root = scratch_root()
    etc = root / "etc" / "prosody"
    etc.mkdir(parents=True)
    # Debian's own prosody.cfg.lua for the Prosody under test (13's as setup.sh unpacked it)
    shutil.copy(prosody_lib().parents[2] / "etc" / "prosody" / "prosody.cfg.lua", etc / "prosody.cfg.lua")
    server = None
    try:
        r = dpkg_root(root, "-i", str(path))
        assert r.returncode == 0, r.stdout + r.stderr
        modules = root / "usr" / "lib" / "prosody" / "modules"
        assert sorted(p.name for p in modules.iterdir()) == ["mod_auth_hmac.lua", "mod_sasl_hmac.lua",
                                                            "prosody_auth_hmac.so"]
        cli = root / "usr" / "bin" / "hmac-token"
        # the README's next step, with the package's CLI
        lines = subprocess.run([str(cli), "keygen", "--write", str(etc)], check=True, capture_output=True,
                               text=True).stdout
        assert lines == 'token_secret_file = "%s/token_secret"\notp_seed_file = "%s/otp_seed"\n' % (etc, etc)
        before = snapshot(etc)

        server = Prosody(library=None, plugin_path=None, extra_modules=())
        config = server.config.read_text()
        assert "plugin_paths" not in config and "auth_hmac_library" not in config
        config, n = re.subn(r'^otp_seed = "[^"]*"$', lines.splitlines()[1], config, flags=re.M)
        assert n == 1
        config, n = re.subn(r'^(\s*)token_secret = \{[^}]*\}$', r"\1" + lines.splitlines()[0], config, flags=re.M)
        assert n == 1
        server.config.write_text(config)
        own_modules = plugin_dir(server.binary)
        assert not (own_modules / "mod_auth_hmac.lua").exists()  # the plugin is the package's or none
        server.binary = str(namespaced_launcher(server.dir, modules, own_modules, server.binary))
        server.start()

        def login(token):
            s = rawxmpp.C2S(server.c2s_port, server.host)
            try:
                return s.auth("PLAIN", b"\0alice\0" + token.encode())
            finally:
                s.close()

        keys = dict(os.environ, TOKEN_SECRET_FILE=str(etc / "token_secret"), OTP_SEED_FILE=str(etc / "otp_seed"))
        token = subprocess.run([str(cli), "mint", "--jid", "alice@" + server.host], check=True, capture_output=True,
                               text=True, env=keys).stdout.strip()
        r = login(token)
        assert r.status == "success", (r, server.tail())
        assert login(token).status == "failure"  # replayed
        log = server.log_path.read_text()
        assert re.search(r"Loaded native library %s/+prosody_auth_hmac\.so" % re.escape(str(own_modules).rstrip("/")),
                         log), server.tail()
        def mint(jid):
            return subprocess.run([str(cli), "mint", "--jid", jid], check=True, capture_output=True, text=True,
                                  env=keys).stdout.strip()
        fresh = mint("alice@" + server.host)
        i = len(fresh) - 10  # a character of the MAC's base64, well before its padding
        assert login(fresh[:i] + ("B" if fresh[i] == "A" else "A") + fresh[i + 1:]).status == "failure"  # forged
        assert login(mint("bob@" + server.host)).status == "failure"  # bob's token, alice's login
        assert login(fresh).status == "success", server.tail()

        r = dpkg_root(root, "-r", DEB_NAME)
        assert r.returncode == 0, r.stdout + r.stderr
        assert not cli.exists() and not modules.exists()  # here no other package owns the directory
        assert snapshot(etc) == before
        # Prosody keeps the modules it loaded: it runs on, and logs in
        assert server.proc.poll() is None
        r = login(server.mint("alice@" + server.host, secret=(etc / "token_secret").read_text().strip(),
                              seed=(etc / "otp_seed").read_text().strip()))
        assert r.status == "success", (r, server.tail())
        assert server.proc.poll() is None

        # restarted without the package, a host still set to authentication = "hmac" fails closed
        server._halt()
        modules.mkdir(parents=True)  # on a real system the directory is Prosody's and stays
        mark = server.log_mark()
        server.start()
        with pytest.raises(ConnectionError, match="expected stream features"):  # no mechanism: stream error
            login(server.mint("alice@" + server.host, secret=(etc / "token_secret").read_text().strip(),
                              seed=(etc / "otp_seed").read_text().strip()))
        log = server.log_since(mark)
        assert "Unable to load module 'auth_hmac'" in log and "No available SASL mechanisms" in log, server.tail()
    finally:
        if server:
            server.stop()
        shutil.rmtree(root, ignore_errors=True)
