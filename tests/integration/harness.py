"""Starts and stops a real Prosody (Debian's package) with the plugin, on 127.0.0.1 only.

Used by the integration tests and by `make demo`. Secrets are generated per run with the
project's own CLI (`hmac-token keygen`).
"""
import json
import os
import re
import shutil
import signal
import socket
import string
import subprocess
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
HMAC_TOKEN = Path(os.environ.get("HMAC_TOKEN_BIN", REPO / "target" / "release" / "hmac-token"))
NATIVE_LIB = Path(os.environ.get("AUTH_HMAC_LIBRARY", REPO / "build" / "lua5.4" / "prosody_auth_hmac.so"))
PROSODY = os.environ.get("PROSODY_BIN", "/usr/bin/prosody")


def prosody_modules_dir(module):
    """A module from the prosody-modules package matching the Prosody under test, unpacked by
    scripts/setup.sh into .prosody-modules/<0.12|13>/ (never installed)."""
    series = "13" if prosody_version() >= (13,) else "0.12"
    return REPO / ".prosody-modules" / series / "root/usr/lib/prosody/modules" / module


def prosody_lib():
    """<prefix>/lib/prosody of the Prosody under test: its code, modules and version file."""
    return Path(PROSODY).resolve().parents[1] / "lib" / "prosody"


def prosody_version():
    """(major, minor, patch) of the Prosody under test, from <prefix>/lib/prosody/prosody.version."""
    text = (prosody_lib() / "prosody.version").read_text().strip()
    return tuple(int(x) for x in text.split("."))


def prosody_module_source(name):
    """The text of one of the Prosody-under-test's own modules (mod_<name>.lua)."""
    return (prosody_lib() / "modules" / ("mod_%s.lua" % name)).read_text()


# Prosody's limit on a stanza before login, as prosody.cfg.lua.in states it
STANZA_SIZE_LIMIT = int(re.search(r"^c2s_stanza_size_limit = (\d+)",
                                  (REPO / "tests" / "integration" / "prosody.cfg.lua.in").read_text(), re.M).group(1))


def bosh_limits_stanzas_before_login():
    """Whether the Prosody under test refuses, over BOSH, a stanza larger than c2s_stanza_size_limit
    before login, as it does over c2s and WebSocket. Debian's 13.0.1-1+deb131u2 (trixie-security, with
    the patches for Prosody's advisory 2026_8112eaa9) does: its mod_bosh gives unauthenticated
    sessions that limit and its util.xmppstream counts the bytes while parsing, so it ends the BOSH
    session (condition bad-request, "Error parsing BOSH payload; stanza-too-large") and the stanza
    never reaches SASL. Prosody 0.12.3 and bookworm-backports' 13.0.1 check the size only after
    a BOSH body is parsed, so there such a stanza reaches the plugin."""
    return "unauthed_stanza_size_limit" in prosody_module_source("bosh")


def readable_prosody(d):
    """(prosody, prosodyctl) of the Prosody under test, for tests that run them as the prosody user
    (as root, as Debian's service unit does and prosodyctl switches to). Debian's own are in /usr.
    The Prosody 13 that setup.sh unpacks on bookworm is in the checkout (.prosody13/), which that
    user cannot read where the checkout is under /root (0700 on a stock Debian): as root, it is
    copied into `d` (once), its launchers pointed at the copy as setup.sh points them at .prosody13/."""
    usr = prosody_lib().parents[1]
    if os.geteuid() != 0 or usr == Path("/usr"):
        return Path(PROSODY), Path(PROSODY).with_name("prosodyctl")
    top = d / "prosody-under-test"
    copy = top / "usr"
    if not top.exists():
        shutil.copytree(usr / "lib" / "prosody", copy / "lib" / "prosody")
        (copy / "bin").mkdir()
        for name in ("prosody", "prosodyctl"):
            text = (usr / "bin" / name).read_text()
            patched = text.replace("='%s/" % usr, "='%s/" % copy)
            assert patched != text, "no path to %s in %s" % (usr, name)
            (copy / "bin" / name).write_text(patched)
            (copy / "bin" / name).chmod(0o755)
        for path in [top, *top.rglob("*")]:
            path.chmod(path.stat().st_mode | (0o555 if path.is_dir() else 0o444))
    return copy / "bin" / "prosody", copy / "bin" / "prosodyctl"


_handed_out = set()


def free_port():
    """A port on 127.0.0.1 nobody listens on now, never the same one twice in this process. Another
    process may still take it before the server binds it: Prosody.start() notices and moves."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _handed_out:
            _handed_out.add(port)
            return port


def keygen():
    out = subprocess.run([str(HMAC_TOKEN), "keygen", "--json"], check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def make_cert(directory, hosts):
    san = ",".join("DNS:%s" % h for h in hosts)
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-keyout", str(directory / "host.key"), "-out", str(directory / "host.crt"),
                    "-subj", "/CN=%s" % hosts[0], "-addext", "subjectAltName=%s" % san],
                   check=True, capture_output=True)


def listening(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def stays(predicate, seconds, what):
    """That something does not happen: `predicate` holds throughout `seconds` (polled), and the
    test fails as soon as it does not."""
    deadline = time.monotonic() + seconds
    while True:
        assert predicate(), "%s (%.1f s into %s s)" % (what, seconds - (deadline - time.monotonic()), seconds)
        if time.monotonic() >= deadline:
            return
        time.sleep(0.25)


def catches_sigterm(pid):
    """Whether the process handles SIGTERM yet: a handler (SigCgt, Prosody 0.12) or the signal
    blocked for a signalfd (SigBlk, Prosody 13)."""
    bit = 1 << (signal.SIGTERM - 1)
    try:
        for line in Path("/proc/%d/status" % pid).read_text().splitlines():
            if line.startswith(("SigCgt:", "SigBlk:")) and int(line.split()[1], 16) & bit:
                return True
    except (FileNotFoundError, ProcessLookupError):
        pass
    return False


def stop_process(proc, handler_timeout=0):
    """SIGTERM by PID, SIGKILL if it has not exited within 10 s. With handler_timeout, first waits
    (that long at most) for the process to catch SIGTERM: a Prosody still starting up has no
    handler yet, and SIGTERM would kill it like kill -9 (an unclean stop, to the plugin)."""
    if proc and proc.poll() is None:
        deadline = time.monotonic() + handler_timeout
        while proc.poll() is None and not catches_sigterm(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.02)
        if proc.poll() is not None:
            return
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(5)


class Prosody:
    host = "example.test"
    other_host = "other.test"

    # The suites log in from 127.0.0.1 only, and many count the failure lines of hundreds of
    # failures a minute: they run with a per-address budget that never binds (None: the module's
    # default, as test_adversarial.py runs it).
    def __init__(self, replay_cache_size=10000, extra_global="", library=NATIVE_LIB,
                 plugin_path=REPO / "lua", keep_dir=False, extra_modules=("auth_events_probe",),
                 extra_plugin_paths=(), max_failures_per_address=1000000):
        self.binary = PROSODY  # tests may swap in another launcher before start()
        self.dir = Path(tempfile.mkdtemp(prefix="prosody-hmac-"))
        (self.dir / "data").mkdir()
        self.keep_dir = keep_dir
        k1, k2, k3 = keygen(), keygen(), keygen()
        self.otp_seed = k1["otp_seed"]
        self.token_secret = k1["token_secret"]
        self.old_token_secret = k2["token_secret"]
        self.other_token_secret = k3["token_secret"]
        self.c2s_port = free_port()
        self.http_port = free_port()
        self.proc = None
        template = (REPO / "tests" / "integration" / "prosody.cfg.lua.in").read_text()
        config = string.Template(template).substitute(
            dir=self.dir,
            # plugin_path=None: no plugin_paths at all (a fresh Prosody, e.g. for prosodyctl install)
            plugin_paths_line=("plugin_paths = { %s }" % ", ".join(
                '"%s"' % p for p in (plugin_path, REPO / "tests" / "integration" / "plugins", *extra_plugin_paths)))
            if plugin_path else "",
            extra_modules=", ".join('"%s"' % m for m in extra_modules), c2s_port=self.c2s_port, http_port=self.http_port,
            library_line=('auth_hmac_library = "%s"' % library) if library else "",
            otp_seed=self.otp_seed, token_secret=self.token_secret,
            old_token_secret=self.old_token_secret, other_token_secret=self.other_token_secret,
            host=self.host, other_host=self.other_host, replay_cache_size=replay_cache_size,
            failures_per_address_line=("token_max_failures_per_address = %d" % max_failures_per_address
                                       if max_failures_per_address is not None else ""),
            extra_global=extra_global)
        self.config = self.dir / "prosody.cfg.lua"
        self.config.write_text(config)
        make_cert(self.dir, [self.host, self.other_host])

    @property
    def log_path(self):
        return self.dir / "prosody.log"

    @property
    def bosh_url(self):
        return "http://127.0.0.1:%d/http-bind" % self.http_port

    @property
    def ws_url(self):
        return "ws://127.0.0.1:%d/xmpp-websocket" % self.http_port

    started_once = False

    def start(self, timeout=30):
        """Starts Prosody and waits until it listens. If another process took one of its ports
        between free_port() and the bind, the first start moves to new ports (a restart keeps them:
        clients come back to the same ones)."""
        for _ in range(3):
            mark = self.log_mark()
            self.stdout = open(self.dir / "stdout.log", "wb")
            self.proc = subprocess.Popen([self.binary, "--config", str(self.config), "-F"],
                                         stdout=self.stdout, stderr=subprocess.STDOUT, cwd=self.dir)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError("Prosody exited with %s:\n%s" % (self.proc.returncode, self.tail()))
                taken = self.log_path.exists() and "Failed to open server port" in self.log_since(mark)
                if taken:
                    break
                if all(listening(p) for p in (self.c2s_port, self.http_port)):
                    # listening, and by this Prosody: it says so for each port (another process may
                    # hold one, and Prosody's "Failed to open server port" can come after the other
                    # port opened)
                    log = self.log_since(mark)
                    if "Failed to open server port" not in log and all(
                            "Activated service '%s' on [127.0.0.1]:%d" % (service, port) in log
                            for service, port in (("c2s", self.c2s_port), ("http", self.http_port))):
                        self.started_once = True
                        self._wait_for_hosts(mark)
                        return self
                time.sleep(0.1)
            else:
                self.stop()
                raise RuntimeError("Prosody did not listen within %ss:\n%s" % (timeout, self.tail()))
            self._halt()
            if self.started_once:
                raise RuntimeError("Prosody could not get its ports back on restart:\n%s" % self.tail())
            self._move_ports()
        raise RuntimeError("Prosody found its ports taken three times:\n%s" % self.tail())

    def _wait_for_hosts(self, mark, timeout=5):
        """The ports open before every host has loaded its modules: wait (a little) until each
        host's auth_hmac has said it is ready, idle, or failed, so that a test reading the log
        right after start() sees every host's lines."""
        def settled(text, host):
            return ("%s:auth_hmac\tdebug\tToken authentication ready" % host in text
                    or "Not active on %s:" % host in text
                    or "Error initializing module 'auth_hmac' on '%s'" % host in text)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.log_since(mark)
            if all(settled(text, h) for h in (self.host, self.other_host)):
                return
            time.sleep(0.05)

    def _move_ports(self):
        text = self.config.read_text()
        new_c2s, new_http = free_port(), free_port()
        for key, old, new in (("c2s_ports", self.c2s_port, new_c2s), ("http_ports", self.http_port, new_http)):
            line = "%s = { %d }" % (key, old)
            assert text.count(line) == 1, line
            text = text.replace(line, "%s = { %d }" % (key, new))
        self.config.write_text(text)
        self.c2s_port, self.http_port = new_c2s, new_http

    def _halt(self):
        stop_process(self.proc, handler_timeout=30)
        if getattr(self, "stdout", None):
            self.stdout.close()

    def stop(self):
        self._halt()
        if not self.keep_dir:
            shutil.rmtree(self.dir, ignore_errors=True)

    def pid(self):
        return self.proc.pid

    def rss_kib(self):
        for line in Path("/proc/%d/status" % self.proc.pid).read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        return 0

    def log_mark(self):
        return self.log_path.stat().st_size if self.log_path.exists() else 0

    def log_since(self, mark):
        with open(self.log_path, "rb") as f:
            f.seek(mark)
            return f.read().decode("utf-8", "replace")

    def wait_log(self, mark, needle, timeout=5):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.log_since(mark)
            if needle in text:
                return text
            time.sleep(0.05)
        return self.log_since(mark)

    def tail(self, n=40):
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()[-n:]
        except OSError:
            lines = []
        try:
            lines += (self.dir / "stdout.log").read_text(errors="replace").splitlines()[-n:]
        except OSError:
            pass
        return "\n".join(lines)

    def shell(self, *args):
        """`prosodyctl shell ARGS…` against this server (it needs "admin_shell"); a `>` line runs
        Lua inside Prosody. The finished process, its output as text."""
        return subprocess.run([str(Path(self.binary).with_name("prosodyctl")), "--config", str(self.config), "shell",
                               *args], capture_output=True, text=True, timeout=30, cwd=self.dir)

    def _pin_clock(self, name, value, hosts):
        """Makes mod_sasl_hmac's clock `name` return the Lua expression `value` on each host."""
        hosts = ", ".join("'%s'" % h for h in hosts or (self.host, self.other_host))
        r = self.shell(">for _, h in ipairs({ %s }) do "
                       "require'core.modulemanager'.get_module(h, 'sasl_hmac').%s = function() return %s; end; "
                       "end; return 'pinned'" % (hosts, name, value))
        assert r.returncode == 0 and "pinned" in r.stdout, (r.stdout, r.stderr)

    def pin_token_clock(self, now, hosts=None):
        """Sets the clock token logins are verified with (mod_sasl_hmac's token_clock: the OTP
        window, the replay cache's steps) on each host, through the admin shell: a whole number of
        seconds, or None for the system clock again. Tests that must not depend on how fast the
        machine is pin it instead of racing the real one. Move it forward only: the replay cache
        refuses tokens far behind the newest step it has seen."""
        self._pin_clock("token_clock", "nil" if now is None else str(int(now)), hosts)

    def pin_failure_clock(self, now, hosts=None):
        """Sets the clock of failure accounting (mod_sasl_hmac's failure_clock: the per-address
        budget and its summaries, the once-a-minute cache-full warning) on each host, as
        pin_token_clock does; None: os.time() again, the module's own."""
        self._pin_clock("failure_clock", "os.time()" if now is None else str(int(now)), hosts)

    def mint(self, jid, now=None, secret=None, seed=None):
        """A token from the project's CLI (for the web-app side of a login)."""
        if secret is None:
            secret = self.other_token_secret if jid.endswith("@" + self.other_host) else self.token_secret
        args = [str(HMAC_TOKEN), "mint", "--jid", jid]
        if now is not None:
            args += ["--now", str(int(now))]
        env = dict(os.environ, TOKEN_SECRET=secret, OTP_SEED=seed or self.otp_seed)
        return subprocess.run(args, check=True, capture_output=True, text=True, env=env).stdout.strip()

    def signout(self, jid, now=None, secret=None):
        """A sign-out request line from the project's CLI (`hmac-token signout`, the web app's side
        of docs/signout.md), signed with the JID's host's first secret unless `secret` is given."""
        if secret is None:
            secret = self.other_token_secret if jid.endswith("@" + self.other_host) else self.token_secret
        args = [str(HMAC_TOKEN), "signout", "--jid", jid]
        if now is not None:
            args += ["--now", str(int(now))]
        env = dict(os.environ, TOKEN_SECRET=secret)
        return subprocess.run(args, check=True, capture_output=True, text=True, env=env).stdout.strip()


def reseal_replay_state(text, token_secret, host, **fields):
    """A clean stop's saved replay state (Prosody's internal storage, a Lua table) with `fields`
    (otp_step, otp_skew, high_water, quarantine) changed and sealed again as the plugin seals it
    (src/replay_state.rs): key = HMAC-SHA256(token_secret, KEY_LABEL); MAC = HMAC-SHA256(key,
    MAC_LABEL ‖ 0x01 ‖ len(host) ‖ host ‖ step ‖ skew ‖ high_water ‖ quarantine ‖ n ‖ (key ‖ expiry)…),
    every number 8 bytes big-endian. What an admin whose clock was wrong when Prosody stopped leaves
    behind; a second implementation of the seal, so the format cannot drift unnoticed."""
    import hashlib
    import hmac
    import struct

    def number(name):
        m = re.search(r'\["%s"\] = (\d+);' % name, text)
        assert m, (name, text)
        return int(m.group(1))

    for name, value in fields.items():
        text, n = re.subn(r'\["%s"\] = \d+;' % name, '["%s"] = %d;' % (name, value), text)
        assert n == 1, (name, text)
    entries = re.findall(r'"([0-9a-f]{32}) (\d+)"', text)
    key = hmac.new(token_secret.encode(), b"\0prosody-auth-hmac replay-state key v1", hashlib.sha256).digest()
    message = b"prosody-auth-hmac replay-state v3\0" + b"\x01" + struct.pack(">Q", len(host)) + host.encode()
    for name in ("otp_step", "otp_skew", "high_water", "quarantine"):
        message += struct.pack(">Q", number(name))
    message += struct.pack(">Q", len(entries))
    for hexkey, expiry in entries:
        message += bytes.fromhex(hexkey) + struct.pack(">Q", int(expiry))
    mac = hmac.new(key, message, hashlib.sha256).hexdigest()
    text, n = re.subn(r'\["mac"\] = "[0-9a-f]+";', '["mac"] = "%s";' % mac, text)
    assert n == 1, text
    return text
