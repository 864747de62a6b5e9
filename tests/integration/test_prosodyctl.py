"""Prosody's own installer: `prosodyctl install <rock>` on a fresh Prosody whose configuration has no
plugin_paths (and no auth_hmac_library). prosodyctl runs luarocks into the installer tree, and Prosody
loads both modules and the native library from there with no other setting.

The installer tree defaults to <CFG_DATADIR>/custom_plugins, i.e. /var/lib/prosody/custom_plugins for
Debian's package, whatever data_path says. So that the tests use that default without writing to
the system's tree, they run copies of the package's own launchers (prosody and prosodyctl are Lua
scripts) with the compiled-in CFG_DATADIR pointing into the test's directory, as if Prosody had
been installed with another prefix; the configuration sets neither plugin_paths nor
installer_plugin_path.

The rocks come from scripts/rocks.sh (`make rocks`): the binary rock for Lua 5.4 and the source
rock, which luarocks builds with cargo. prosodyctl sets HOME to Prosody's data directory first, so
the source install finds rustup's cargo (under the admin's HOME) only when CARGO_HOME and
RUSTUP_HOME are passed, and without them fails with a message that says so; a cargo on the system
PATH (Debian's rustc-web/cargo-web, /usr/bin/cargo) it finds with nothing passed.

The rock's path is the README's: prosodyctl looks at it from Prosody's data directory, as the
prosody user when root starts it without run_as_root, so a relative path or one only root can reach
fails with "There is no 'plugin_server' option", and an absolute path the prosody user can read
installs."""
import os
import re
import shutil
import subprocess
import tempfile
import time
import zipfile
from pathlib import Path

import pytest

import no_rust
import rawxmpp
from harness import REPO, Prosody, prosody_version, readable_prosody

LUA = "5.4"


@pytest.fixture(scope="module")
def dist():
    out = Path(tempfile.mkdtemp(prefix="rocks-"))
    subprocess.run(["bash", str(REPO / "scripts" / "rocks.sh")], check=True, capture_output=True,
                   env=dict(os.environ, DIST_DIR=str(out), ROCK_TARGETS=LUA))
    yield out
    shutil.rmtree(out, ignore_errors=True)


def rock(dist, kind):
    if kind == "binary":
        (found,) = (dist / ("lua" + LUA)).glob("prosody-auth-hmac-*-*.linux-*.rock")
    else:
        (found,) = dist.glob("prosody-auth-hmac-*-*.src.rock")
    return found


def rust_homes():
    home = Path(os.environ.get("HOME", "/root"))
    return {"CARGO_HOME": os.environ.get("CARGO_HOME", str(home / ".cargo")),
            "RUSTUP_HOME": os.environ.get("RUSTUP_HOME", str(home / ".rustup"))}


ADMIN_PATH = "/usr/local/bin:/usr/bin:/bin"  # as an admin's shell has it: no ~/.cargo/bin
SYSTEM_CARGO = shutil.which("cargo", path=ADMIN_PATH)  # e.g. Debian's; None where only rustup's
RUSTUP_CARGO = Path(rust_homes()["CARGO_HOME"]) / "bin" / "cargo"


# A bound for a hung install, not a timing margin: a source install with Debian's cargo fetches the
# crates and makes a cold release build (link-time optimisation, one codegen unit), which took over
# 10 minutes on a 2-core machine running other test suites beside it.
INSTALL_TIMEOUT = 1800


def prosodyctl(server, *args, env=None):
    base = {k: v for k, v in os.environ.items() if k not in ("CARGO_HOME", "RUSTUP_HOME")}
    base["PATH"] = ADMIN_PATH
    return subprocess.run([str(server.ctl), "--config", str(server.config), *args], cwd=server.dir,
                          capture_output=True, text=True, env=dict(base, **(env or {})), timeout=INSTALL_TIMEOUT)


def relocated(launcher, datadir):
    """A copy of one of Prosody's launchers whose compiled-in data directory is `datadir`."""
    text = Path(launcher).read_text()
    patched = re.sub(r"^CFG_DATADIR='[^']*';$", "CFG_DATADIR='%s';" % datadir, text, count=1, flags=re.M)
    assert patched != text, "no CFG_DATADIR line in %s" % launcher
    out = datadir.parent / Path(launcher).name
    out.write_text(patched)
    out.chmod(0o755)
    return out


def fresh_prosody():
    # no plugin_paths, no installer_plugin_path, no auth_hmac_library: only what prosodyctl installs
    server = Prosody(library=None, plugin_path=None, extra_modules=())
    datadir = server.dir / "prefix" / "var-lib-prosody"
    datadir.mkdir(parents=True)
    prosody, ctl = readable_prosody(server.dir)  # some tests run prosodyctl as the prosody user
    server.binary = relocated(prosody, datadir)
    server.ctl = relocated(ctl, datadir)
    server.installer_tree = datadir / "custom_plugins"
    return server


def logs_in(server):
    for mech, message in (("PLAIN", b"\0alice\0"), ("X-TOKEN", b"\0alice\0")):
        s = rawxmpp.C2S(server.c2s_port, server.host)
        r = s.auth(mech, message + server.mint("alice@" + server.host).encode())
        assert r.status == "success", (mech, r, server.tail())
        assert s.bind() == "alice@%s/test" % server.host
        s.close()


def installed_and_loaded(server, r, rock_path):
    """prosodyctl installed the rock into the installer tree, lists it, and Prosody, started with no
    other setting, loads both modules and the library from there and logs a token in."""
    assert r.returncode == 0, r.stdout + r.stderr
    tree = server.installer_tree
    assert "Installing %s in %s" % (rock_path, tree) in r.stdout + r.stderr
    for f in ("lib/lua/%s/prosody_auth_hmac.so" % LUA, "share/lua/%s/mod_auth_hmac.lua" % LUA,
              "share/lua/%s/mod_sasl_hmac.lua" % LUA):
        assert (tree / f).is_file(), f
    listed = prosodyctl(server, "list")
    assert "prosody-auth-hmac" in listed.stdout, listed.stdout + listed.stderr

    server.start()
    logs_in(server)
    log = server.log_path.read_text()
    assert "Loaded native library %s/lib/lua/%s/prosody_auth_hmac.so" % (tree, LUA) in log


@pytest.mark.parametrize("kind", ["binary", "source"])
def test_prosodyctl_install_then_prosody_loads_both_modules(dist, kind):
    """The source rock here with rustup's homes passed, as the README says for rustup's cargo."""
    if kind == "source" and not RUSTUP_CARGO.exists():
        pytest.skip("no rustup cargo in %s: the source rock installs with the system's cargo and no homes "
                    "in test_source_install_without_rust_homes" % RUSTUP_CARGO.parent)
    server = fresh_prosody()
    try:
        config = server.config.read_text()
        assert "plugin_paths" not in config and "installer_plugin_path" not in config
        env = None
        if kind == "source":
            # and a target directory that outlives the run (the Makefile's ROCK_TARGET_DIR): the
            # dependencies are compiled once, not in every pass; the crate itself is built from the
            # rock's sources each time, which luarocks unpacks to a new directory
            env = dict(rust_homes(), ROCK_TARGET_DIR=str(REPO / "target" / "prosodyctl-source"))
        r = prosodyctl(server, "install", str(rock(dist, kind)), env=env)
        installed_and_loaded(server, r, rock(dist, kind))
    finally:
        server.stop()


def test_prosodyctl_installs_the_binary_rock_where_no_rust_can_be_found(dist):
    """As on a server with no Rust toolchain: prosodyctl, and the luarocks it runs, see a PATH, HOME,
    CARGO_HOME and RUSTUP_HOME in which no cargo or rustc can be found. The binary rock installs
    as packed (nothing built: no target/ anywhere under the server's directory or the scratch
    home) and Prosody logs a token in with it; the source rock, the control, fails there for want
    of cargo."""
    server = fresh_prosody()
    scratch = Path(tempfile.mkdtemp(prefix="norust-"))
    try:
        env = no_rust.env(scratch)
        source = rock(dist, "source")
        r = prosodyctl(server, "install", str(source), env=env)
        out = r.stdout + r.stderr
        assert "cargo not found" in out, out
        assert not (server.installer_tree / "lib" / "lua" / LUA / "prosody_auth_hmac.so").exists(), out
        shutil.rmtree(server.installer_tree, ignore_errors=True)

        binary = rock(dist, "binary")
        started = time.monotonic()
        r = prosodyctl(server, "install", str(binary), env=env)
        seconds = time.monotonic() - started
        out = r.stdout + r.stderr
        assert "cargo" not in out.lower(), out
        assert no_rust.build_dirs(server.dir, scratch / "home", scratch / "tmp") == [], out
        assert seconds < 60, seconds  # an unzip; a build from nothing takes minutes
        with zipfile.ZipFile(binary) as z:
            packed = z.read("lib/prosody_auth_hmac.so")
        assert (server.installer_tree / "lib" / "lua" / LUA / "prosody_auth_hmac.so").read_bytes() == packed
        installed_and_loaded(server, r, binary)
    finally:
        server.stop()
        shutil.rmtree(scratch, ignore_errors=True)


NOT_FOUND = "There is no 'plugin_server' option in the configuration file"


def test_a_relative_rock_path_is_not_found(dist):
    """prosodyctl changes to Prosody's data directory before it looks at the file, so the rock's bare
    name, given from the rock's own directory, is not found: the README names this message."""
    server = fresh_prosody()
    try:
        local = server.dir / rock(dist, "binary").name
        shutil.copy(rock(dist, "binary"), local)
        r = prosodyctl(server, "install", local.name)  # cwd: server.dir, which holds the rock
        out = r.stdout + r.stderr
        assert r.returncode == 1 and NOT_FOUND in out, out
        assert not server.installer_tree.exists(), out
    finally:
        server.stop()


def as_the_prosody_user(server):
    """The server's prosodyctl, started by root, runs as the prosody user, as on a stock Debian:
    no run_as_root, and the prosody user owns what Debian's package gives it (its data directory,
    its log, its config). Returns the config's text before, to put back."""
    config = server.config.read_text()
    assert config.count("run_as_root = true") == 1
    server.config.write_text(config.replace("run_as_root = true", ""))
    subprocess.run(["chown", "-R", "prosody:prosody", str(server.dir)], check=True)
    return config


@pytest.mark.skipif(os.geteuid() != 0, reason="prosodyctl switches to the prosody user only when started as root")
def test_as_root_the_rock_must_be_readable_by_the_prosody_user(dist):
    """As on a stock Debian: prosodyctl started by root without run_as_root runs as the prosody user,
    so a rock in a directory only root may enter (as /root is) is not found, and the README's route
    (install -m 0644 into a directory everyone may read, then that absolute path) installs."""
    server = fresh_prosody()
    private = Path(tempfile.mkdtemp(prefix="root-only-"))  # 0700, like /root
    public = Path(tempfile.mkdtemp(prefix="usr-local-src-"))
    try:
        as_the_prosody_user(server)
        shutil.copy(rock(dist, "binary"), private)
        r = prosodyctl(server, "install", str(private / rock(dist, "binary").name))
        out = r.stdout + r.stderr
        assert r.returncode == 1 and NOT_FOUND in out, out
        assert not server.installer_tree.exists(), out

        public.chmod(0o755)
        subprocess.run(["install", "-m", "0644", str(rock(dist, "binary")), str(public) + "/"], check=True)
        r = prosodyctl(server, "install", str(public / rock(dist, "binary").name))
        out = r.stdout + r.stderr
        assert r.returncode == 0 and NOT_FOUND not in out, out
        library = server.installer_tree / "lib" / "lua" / LUA / "prosody_auth_hmac.so"
        assert library.is_file(), out
        assert library.owner() == "prosody", library.owner()  # installed by the prosody user
    finally:
        shutil.rmtree(private, ignore_errors=True)
        shutil.rmtree(public, ignore_errors=True)
        server.stop()


def test_source_install_without_rust_homes(dist):
    """`prosodyctl install` of the source rock with nothing passed, as an admin types it (and, when
    the tests run as root, as the prosody user with HOME at Prosody's data directory, the rock in
    a directory that user can read). With a cargo on the system PATH (Debian's rustc-web/cargo-web)
    it builds there, fetching the crates into that HOME, and Prosody loads it. With only rustup's
    cargo under the admin's HOME, the build stops with a message naming CARGO_HOME and RUSTUP_HOME."""
    server = fresh_prosody()
    public = Path(tempfile.mkdtemp(prefix="usr-local-src-"))
    try:
        config = as_the_prosody_user(server) if os.geteuid() == 0 else None
        public.chmod(0o755)
        subprocess.run(["install", "-m", "0644", str(rock(dist, "source")), str(public) + "/"], check=True)
        source_rock = public / rock(dist, "source").name
        r = prosodyctl(server, "install", str(source_rock))
        out = r.stdout + r.stderr
        if SYSTEM_CARGO:
            assert "cargo not found" not in out, out
            assert (server.dir / "data" / ".cargo" / "registry").is_dir(), out  # HOME: the data_path
            if config is not None:
                library = server.installer_tree / "lib" / "lua" / LUA / "prosody_auth_hmac.so"
                assert library.is_file() and library.owner() == "prosody", out  # built by the prosody user
                server.config.write_text(config)  # Prosody itself runs as the harness runs it
            installed_and_loaded(server, r, source_rock)
            return
        if prosody_version() < (13,):
            assert r.returncode != 0, out
        # else: Prosody 13.0.1's prosodyctl exits 0 even when luarocks fails (its call_luarocks
        # returns `ok and code`, nil on failure, and os.exit(nil) is success); the output and the
        # missing files are what tell.
        assert "Error: Build error" in out, out
        assert "cargo not found" in out and "CARGO_HOME" in out and "RUSTUP_HOME" in out, out
        assert not (server.installer_tree / "lib" / "lua" / LUA / "prosody_auth_hmac.so").exists()
    finally:
        shutil.rmtree(public, ignore_errors=True)
        server.stop()
