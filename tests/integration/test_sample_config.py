"""prosody-config/prosody.cfg.lua.sample as an admin copies it: only the lines marked CHANGE are
given values (paths into a scratch directory, a certificate for example.org), and the ports and
directories Prosody writes to are pointed there. `prosodyctl check` is clean on it, Prosody starts
from it, and a token logs in over c2s (STARTTLS)."""
import os
import time
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

import rawxmpp
from harness import HMAC_TOKEN, NATIVE_LIB, REPO, free_port, listening, make_cert, readable_prosody, stop_process
from logins import plain

SAMPLE = REPO / "prosody-config" / "prosody.cfg.lua.sample"
HOST = "example.org"


def sub(text, old, new):
    assert text.count(old) == 1, "the sample changed: %r occurs %d times" % (old, text.count(old))
    return text.replace(old, new)


def install_tree(d):
    """The plugin as `luarocks --lua-version 5.4 make --tree T` installs it (T/share/lua/5.4/mod_*.lua,
    T/lib/lua/5.4/prosody_auth_hmac.so), with T in `d`: Prosody, run as the prosody user, cannot
    read the checkout where it is under /root (0700 on a stock Debian)."""
    tree = d / "prosody-auth-hmac"
    lua, lib = tree / "share" / "lua" / "5.4", tree / "lib" / "lua" / "5.4"
    lua.mkdir(parents=True)
    lib.mkdir(parents=True)
    for module in ("mod_auth_hmac.lua", "mod_sasl_hmac.lua"):
        shutil.copy(REPO / "lua" / module, lua / module)
    shutil.copy(NATIVE_LIB, lib / "prosody_auth_hmac.so")
    for path in [tree, *tree.rglob("*")]:
        path.chmod(0o755 if path.is_dir() or path.suffix == ".so" else 0o644)
    return tree


def admin_copy(d, extra=""):
    """The sample with its CHANGE lines filled in, and what a test run needs before the first
    VirtualHost. The plugin is the tree install_tree made, found as the sample says (T/share/lua/5.4
    in plugin_paths, the library in T/lib/lua/5.4): no auth_hmac_library."""
    text = SAMPLE.read_text()
    text = sub(text, '"/usr/local/lib/prosody-auth-hmac/share/lua/5.4"',
               '"%s"' % (d / "prosody-auth-hmac" / "share" / "lua" / "5.4"))
    text = sub(text, '"/etc/prosody/token_secret"', '"%s"' % (d / "token_secret"))
    text = sub(text, '"/etc/prosody/otp_seed"', '"%s"' % (d / "otp_seed"))
    text = sub(text, '"/etc/prosody/certs/example.org.crt"', '"%s"' % (d / "host.crt"))
    text = sub(text, '"/etc/prosody/certs/example.org.key"', '"%s"' % (d / "host.key"))
    text = sub(text, "http_ports = { 5280 }", "http_ports = { %d }" % free_port())
    run = "\n".join([
        # as root the test runs Prosody as the prosody user, as Debian's service unit does
        'pidfile = "%s/run/prosody.pid"' % d, 'data_path = "%s/data"' % d,
        'log = { { levels = { min = "info" }, to = "file", filename = "%s/prosody.log" } }' % d,
        'interfaces = { "127.0.0.1" }', "c2s_ports = { %d }" % free_port(), 'certificates = "%s"' % d,
        'modules_disabled = { "s2s" }', extra, ""])
    i = text.index('\nVirtualHost "example.org"')
    return text[:i] + "\n" + run + text[i:]


@pytest.fixture
def scratch():
    d = Path(tempfile.mkdtemp(prefix="sample-config-"))
    (d / "data").mkdir()
    subprocess.run([str(HMAC_TOKEN), "keygen", "--write", str(d)], check=True, capture_output=True)
    make_cert(d, [HOST])
    install_tree(d)
    if os.geteuid() == 0:
        # what Debian's package arranges for /var/lib/prosody, /run/prosody and /var/log/prosody; the
        # secret files stay root:prosody 0640, as keygen --write makes them
        d.chmod(0o755)
        for path in [d / "data", d / "host.key", d / "host.crt"]:
            shutil.chown(path, "prosody", "prosody")
        (d / "prosody.log").touch()
        shutil.chown(d / "prosody.log", "prosody", "prosody")
        (d / "run").mkdir()
        shutil.chown(d / "run", "prosody", "prosody")
    yield d
    shutil.rmtree(d, ignore_errors=True)


def check(config, what):
    return subprocess.run([str(readable_prosody(config.parent)[1]), "--config", str(config), "check", what], capture_output=True, text=True,
                          cwd=config.parent, timeout=120)


@pytest.mark.parametrize("what", ["config", "disabled", "certs"])
def test_prosodyctl_check_is_clean(scratch, what):
    """Prosody's own checks of the sample (options, hosts, certificates). They load no module, so
    they say nothing of the plugin's settings: the start below does."""
    config = scratch / "prosody.cfg.lua"
    config.write_text(admin_copy(scratch))
    r = check(config, what)
    assert r.returncode == 0 and "All checks passed" in r.stdout, r.stdout + r.stderr
    assert "mod_auth_hmac" not in r.stdout + r.stderr, r.stdout + r.stderr


def test_prosodyctl_check_would_see_an_obsolete_option(scratch):
    """The negative control: the options the sample used to set are flagged, so the check above can fail."""
    config = scratch / "prosody.cfg.lua"
    config.write_text(admin_copy(scratch, "cross_domain_bosh = true\ncross_domain_websocket = true"))
    r = check(config, "config")
    assert r.returncode != 0 and "cross_domain_bosh" in r.stdout, r.stdout + r.stderr


def start(scratch, text):
    """Prosody from `text`, as Debian's prosody.service runs it (User=prosody, prosody -F); waits
    until c2s listens or a module failed."""
    config = scratch / "prosody.cfg.lua"
    config.write_text(text)
    c2s = int(re.search(r"c2s_ports = \{ (\d+) \}", text).group(1))
    as_prosody = ["runuser", "-u", "prosody", "--"] if os.geteuid() == 0 else []
    proc = subprocess.Popen([*as_prosody, str(readable_prosody(scratch)[0]), "--config", str(config), "-F"], cwd=scratch,
                            stdout=open(scratch / "stdout.log", "wb"), stderr=subprocess.STDOUT)
    for _ in range(200):
        log = (scratch / "prosody.log").read_text()
        if proc.poll() is not None or "Error initializing" in log or listening(c2s):
            break
        time.sleep(0.1)
    return proc, c2s


def test_a_broken_plugin_setting_in_the_sample_shows_in_the_log(scratch):
    """The negative control for the start below: a secret file that is not there stops the module,
    and the log says which option."""
    proc, _ = start(scratch, sub(admin_copy(scratch), '"%s"' % (scratch / "token_secret"), '"/nonexistent/token_secret"'))
    try:
        for _ in range(100):  # hosts load their modules around the time the ports open
            log = (scratch / "prosody.log").read_text()
            if "Error initializing" in log:
                break
            time.sleep(0.1)
        assert "Error initializing module 'auth_hmac' on 'example.org'" in log, log
        assert "token_secret_file: cannot read /nonexistent/token_secret" in log, log
    finally:
        stop_process(proc)


def test_prosody_starts_from_the_sample_and_a_token_logs_in(scratch):
    proc, c2s = start(scratch, admin_copy(scratch))
    try:
        log = (scratch / "prosody.log").read_text()
        assert listening(c2s), log + (scratch / "stdout.log").read_text()
        env = dict(os.environ, TOKEN_SECRET=(scratch / "token_secret").read_text().strip(),
                   OTP_SEED=(scratch / "otp_seed").read_text().strip())
        token = subprocess.run([str(HMAC_TOKEN), "mint", "--jid", "alice@" + HOST], env=env, check=True,
                               capture_output=True, text=True).stdout.strip()
        stream = rawxmpp.C2S(c2s, HOST)
        assert {"PLAIN", "SASL-HMAC"} <= set(stream.mechanisms())
        assert stream.auth("PLAIN", plain("alice", token)).status == "success"
        log = (scratch / "prosody.log").read_text()
        if os.geteuid() == 0:  # otherwise Prosody runs as this user, whose group the secret files do not have
            assert "\twarn\t" not in log, log
        assert "\terror\t" not in log, log
    finally:
        stop_process(proc)
