#!/usr/bin/python3
"""Login storms: N distinct users log in at once, as every open converse.js page does seconds after a
Prosody restart (its reconnect debounce is ~3 s, so they arrive nearly together).

Each storm starts a fresh Prosody (a restart) on a data directory that already holds the N accounts
(internal_plain, internal_hashed) or the N users' "seen" marks (hmac: they logged in before the
restart), pinned to CPU 0; the load generator (tools/loadgen) runs on CPU 1 with C logins in flight.
Each user logs in once (stream, SASL, stream restart, bind). In a storm N:held the sessions stay
open until the last user is bound, as the pages' do (their closing is not timed); in a storm N each
connection is dropped after binding, without a stream close (as a closed tab's is), and Prosody's
handling of that is part of the time. This machine allows 20 000 open files per process, so 20 000
held sessions do not fit in Prosody. With C in flight, a login's latency includes its wait behind the
others (about C / rate), and a storm of N >> C is a stream of arrivals at the server's pace.

    /usr/bin/python3 benches/storm_bench.py [--storms 2000:held,2000,20000] [--concurrency C]
                                            [--rounds R] [--modes a,b]

Per mode: time until all are bound, logins/s, latency (connect to bound) p50/p99/max, server CPU per
login, the server's peak RSS, refusals by condition and text, errors, and the kernel's listen-queue
overflows during the storm (a system-wide counter: nothing else should run). Ratios against internal_hashed with
SCRAM-SHA-1 (how converse.js logs in to it) and against internal_plain, taken per round.

    /usr/bin/python3 benches/storm_bench.py --profile LOGINS

runs one storm of LOGINS distinct users per mode with Prosody under valgrind's callgrind and shows
where the server's instructions go, by shared object: Lua's interpreter and collector, the XML
parser, libc, the plugin's native library.

Prosody runs with default settings for everything the plugin has (replay cache, quota), log level
warn, no TLS, mod_saslauth only.
"""
import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LOADGEN = REPO / "tools" / "loadgen" / "target" / "release" / "loadgen"
HMAC_TOKEN = REPO / "target" / "release" / "hmac-token"
# another build of the library and copy of the shims, to compare (e.g. an earlier commit's)
LIBRARY = os.environ.get("STORM_LIBRARY", str(REPO / "build" / "lua5.4" / "prosody_auth_hmac.so"))
PLUGINS = os.environ.get("STORM_PLUGINS", str(REPO / "lua"))
HOST = "example.test"
PASSWORD = "benchmark-password"

MODES = [  # (label, authentication, loadgen mechanism)
    ("hmac PLAIN-token", "hmac", "PLAIN"),
    ("hmac SASL-HMAC", "hmac", "SASL-HMAC"),
    ("internal_hashed SCRAM-SHA-1", "internal_hashed", "SCRAM-SHA-1"),
    ("internal_plain PLAIN", "internal_plain", "PLAIN-PASSWORD"),
]

SHORT = {"hmac PLAIN-token": "hmac PLAIN-token", "hmac SASL-HMAC": "hmac SASL-HMAC",
         "internal_hashed SCRAM-SHA-1": "hashed SCRAM-SHA-1", "internal_plain PLAIN": "internal_plain"}

CONFIG = """-- storm benchmark ({auth})
run_as_root = true
daemonize = false
pidfile = "{dir}/prosody.pid"
data_path = "{data}"
plugin_paths = {{ "{plugins}" }}
auth_hmac_library = "{library}"
log = {{ {{ levels = {{ min = "{level}" }}, to = "file", filename = "{dir}/prosody.log" }} }}
interfaces = {{ "127.0.0.1" }}
c2s_ports = {{ {port} }}
modules_enabled = {{ {modules} }}   -- no mod_limits, no roster, no TLS: authentication is what is measured
modules_disabled = {{ "s2s" }}
c2s_require_encryption = false      -- the benchmark has no TLS ...
allow_unencrypted_plain_auth = true -- ... so authentication is allowed without it
{network}
authentication = "{auth}"
token_secret = "{secret}"
otp_seed = "{seed}"
-- everything else the plugin has: its defaults (token_replay_cache_size, token_replay_user_quota, ...)
{extra}
VirtualHost "{host}"
"""


def network_settings(backlog):
    """A storm's connections arrive faster than Prosody accepts them: with its default listen
    backlog (128) the kernel drops SYNs and those clients retry after 1 s, 3 s, ... `backlog` 0
    keeps Prosody's default."""
    if not backlog:
        return "-- network_settings: Prosody's defaults (tcp_backlog = 128)"
    return "network_settings = { tcp_backlog = %d }" % backlog


def listen_overflows():
    """The kernel's count of connections dropped at a full listen queue (TcpExtListenOverflows)."""
    lines = Path("/proc/net/netstat").read_text().splitlines()
    for names, values in zip(lines[::2], lines[1::2]):
        if names.startswith("TcpExt:"):
            return int(dict(zip(names.split()[1:], values.split()[1:]))["ListenOverflows"])
    return 0


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def proc_status(pid, field):
    """A /proc/<pid>/status field in kB (VmRSS, VmHWM)."""
    for line in Path("/proc/%d/status" % pid).read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


class Server:
    """One Prosody on a data directory that outlives it (a restart keeps the accounts)."""

    def __init__(self, auth, keys, data, extra="", level="warn", valgrind=False, modules=("saslauth",), backlog=4096):
        self.auth, self.keys, self.data, self.extra, self.level, self.valgrind = auth, keys, data, extra, level, valgrind
        self.network = network_settings(backlog)
        self.modules = ", ".join('"%s"' % m for m in modules)
        self.proc = None

    def start(self):
        self.dir = Path(tempfile.mkdtemp(prefix="storm-%s-" % self.auth))
        (self.dir / "certs").mkdir()  # none are needed (no TLS); an empty directory keeps the log quiet
        self.port = free_port()
        self.cfg = self.dir / "prosody.cfg.lua"
        self.cfg.write_text(CONFIG.format(network=self.network, modules=self.modules, plugins=PLUGINS, auth=self.auth, dir=self.dir, data=self.data, repo=REPO, library=LIBRARY,
                                          level=self.level, port=self.port, secret=self.keys["token_secret"],
                                          seed=self.keys["otp_seed"], extra=self.extra, host=HOST))
        cmd = ["prosody", "--config", str(self.cfg), "-F"]
        if self.valgrind:  # the launcher is a Lua script: run its interpreter under callgrind
            cmd = ["valgrind", "--tool=callgrind", "--instr-atstart=no",
                   "--callgrind-out-file=%s/cg.out" % self.dir, "lua5.4", shutil.which("prosody")] + cmd[1:]
        self.proc = subprocess.Popen(["taskset", "-c", "0"] + cmd, cwd=self.dir, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        deadline = time.time() + (120 if self.valgrind else 30)
        while time.time() < deadline:
            if self.proc.poll() is not None:
                self.stop()
                raise SystemExit("Prosody (%s) exited at start:\n%s" % (self.auth, self.log()))
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return self
            except OSError:
                time.sleep(0.05)
        log = self.log()
        self.stop()
        raise SystemExit("Prosody (%s) did not open its port:\n%s" % (self.auth, log))

    def log(self):
        p = self.dir / "prosody.log"
        return p.read_text(errors="replace") if p.exists() else ""

    def stop(self, keep_replay_state=False):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(120)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        if not keep_replay_state:  # every storm starts with an empty replay cache
            for f in Path(self.data).glob("*/auth_hmac_replay/state.dat"):
                f.unlink()
        shutil.rmtree(self.dir, ignore_errors=True)

    def loadgen(self, mech, logins, users, concurrency, after_bind="drop", keep_going=True, seconds=None):
        args = ["taskset", "-c", "1", str(LOADGEN), "--port", str(self.port), "--host", HOST, "--mech", mech,
                "--logins", str(logins), "--users", str(users), "--concurrency", str(concurrency),
                "--server-pid", str(self.proc.pid), "--secret", self.keys["token_secret"], "--seed",
                self.keys["otp_seed"], "--password", PASSWORD, "--keep-going", "yes" if keep_going else "no",
                "--after-bind", after_bind] + (["--seconds", str(seconds)] if seconds else [])
        out = subprocess.run(args, capture_output=True, text=True, timeout=3600)
        if out.returncode != 0:
            raise SystemExit("loadgen failed (%s): %s\n%s" % (mech, out.stderr[-2000:], self.log()[-3000:]))
        return json.loads(out.stdout.strip().splitlines()[-1])


def prepare(auth, keys, users):
    """A data directory with `users` accounts (internal_*) or seen marks (hmac), all copies of one
    Prosody itself wrote, so the format is Prosody's own. The accounts share the template's salt,
    so the load generator derives SCRAM's PBKDF2 once (the server's work does not depend on it)."""
    data = Path(tempfile.mkdtemp(prefix="storm-data-%s-" % auth))
    server = Server(auth, keys, data)
    if auth == "hmac":
        server.start()
        server.loadgen("PLAIN", 1, 1, 1, keep_going=False)  # user0 logs in: its seen mark
        server.stop()
        store = "auth_hmac_seen"
    else:
        server.dir = Path(tempfile.mkdtemp(prefix="storm-reg-"))
        server.port = free_port()
        server.cfg = server.dir / "prosody.cfg.lua"
        server.cfg.write_text(CONFIG.format(network="", modules='"saslauth"', plugins=PLUGINS, auth=auth, dir=server.dir, data=data, repo=REPO, library=LIBRARY,
                                            level="warn", port=server.port, secret=keys["token_secret"],
                                            seed=keys["otp_seed"], extra="", host=HOST))
        subprocess.run(["prosodyctl", "--config", str(server.cfg), "register", "user0", HOST, PASSWORD], check=True,
                       capture_output=True)
        shutil.rmtree(server.dir, ignore_errors=True)
        store = "accounts"
    (template,) = data.glob("*/%s/user0.dat" % store)
    body = template.read_bytes()
    for i in range(1, users):
        (template.parent / ("user%d.dat" % i)).write_bytes(body)
    return data


def storm(label, auth, mech, keys, data, users, concurrency, hold, backlog=4096):
    server = Server(auth, keys, data, backlog=backlog).start()
    try:
        time.sleep(0.5)  # let the start settle: the storm hits a server that is up
        rss0 = proc_status(server.proc.pid, "VmRSS")
        overflows = listen_overflows()
        result = server.loadgen(mech, users, users, concurrency, after_bind="hold" if hold else "drop")
        result["listen_overflows"] = listen_overflows() - overflows
        result["rss_before_mb"] = rss0 / 1024
        result["peak_rss_mb"] = proc_status(server.proc.pid, "VmHWM") / 1024
        result["warnings"] = [l for l in server.log().splitlines() if "warn" in l or "error" in l]
    finally:
        server.stop()
    return result


def fmt_refusals(r):
    parts = ["%s ×%d" % (k, v) for k, v in sorted(r["refusals"].items())]
    parts += ["error %s ×%d" % (k, v) for k, v in sorted(r.get("errors", {}).items())]
    return ", ".join(parts) or "none"


def run_storms(args, keys):
    modes = [m for m in MODES if not args.modes or m[0] in args.modes]
    storms = [(int(spec.split(":")[0]), spec.endswith(":held")) for spec in args.storms.split(",")]
    datas = {}
    results = {}  # ((n, hold), label) -> [result per round]
    try:
        for auth in sorted({m[1] for m in modes}):
            datas[auth] = prepare(auth, keys, max(n for n, _ in storms))
        for n, hold in storms:
            for _ in range(args.rounds):
                for label, auth, mech in modes:
                    r = storm(label, auth, mech, keys, datas[auth], n, args.concurrency, hold, args.backlog)
                    results.setdefault(((n, hold), label), []).append(r)
                    print("  %-28s N=%-6d %7.2f s until all bound, %6.0f logins/s, p99 %6.0f ms, refusals: %s, "
                          "listen queue overflows: %d%s" % (
                              label, n, r["all_bound_s"], r["logins_per_s"], r["p99_ms"], fmt_refusals(r),
                              r["listen_overflows"], "" if r["logins"] == n else "; ONLY %d OF %d BOUND" % (r["logins"], n)),
                          flush=True)
    finally:
        for d in datas.values():
            shutil.rmtree(d, ignore_errors=True)
    print()
    for n, hold in storms:
        print("N = %d distinct users, %d in flight, sessions %s; median of %d rounds (each on a fresh Prosody); %s" % (
            n, args.concurrency, "held open until all are bound" if hold else "dropped after binding", args.rounds,
            network_settings(args.backlog).lstrip("- ")))
        print("%-28s %9s %9s %8s %8s %8s %10s %9s %9s  %s" % ("mode", "all bound", "logins/s", "p50 ms", "p99 ms",
                                                           "max ms", "CPU/login", "RSS MB", "peak MB", "refusals"))
        for label, _, _ in modes:
            rs = results[((n, hold), label)]
            med = lambda k: statistics.median(r[k] for r in rs)
            print("%-28s %7.2f s %9.0f %8.1f %8.1f %8.1f %7.3f ms %9.1f %9.1f  %s" % (
                label, med("all_bound_s"), med("logins_per_s"), med("p50_ms"), med("p99_ms"), med("max_ms"),
                med("server_cpu_ms_per_login"), med("rss_before_mb"), med("peak_rss_mb"),
                "; ".join(fmt_refusals(r) for r in rs)))
            for w in sorted({w.split("\t", 1)[-1] for r in rs for w in r["warnings"]}):
                print("    logged: %s" % w)
        labels = [m[0] for m in modes]

        def ratio(a, b, key, target=None, below=False):
            if a not in labels or b not in labels:
                return
            per = [ra[key] / rb[key] for ra, rb in zip(results[((n, hold), a)], results[((n, hold), b)])]
            m = statistics.median(per)
            verdict = ""
            if target is not None:
                ok_all = all((p < target) if below else (p <= target) for p in per)
                ok_med = (m < target) if below else (m <= target)
                verdict = "; target %s %.2f: %s" % ("<" if below else "<=", target,
                                                    "met" if ok_all else ("median met" if ok_med else "NOT met"))
            print("  %-28s / %-28s %-22s %.3f (rounds %s)%s" % (
                a, b, key, m, " ".join("%.3f" % p for p in per), verdict))
        print("ratios (per round, median):")
        for a in ("hmac PLAIN-token", "hmac SASL-HMAC"):
            ratio(a, "internal_plain PLAIN", "all_bound_s", 1.05)
            ratio(a, "internal_hashed SCRAM-SHA-1", "all_bound_s", 1.0, below=True)
            ratio(a, "internal_hashed SCRAM-SHA-1", "server_cpu_ms_per_login")
            ratio(a, "internal_plain PLAIN", "server_cpu_ms_per_login")
        print()


# --- profile -------------------------------------------------------------------------------------

def self_cost_by_object(path):
    """Self cost (Ir) per shared object from a callgrind output file (name compression, call
    lines' inclusive costs left out)."""
    names, current, totals, skip_next = {}, "?", {}, False
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith("cob="):  # a callee's object: may be where a name is first given
            m = re.match(r"cob=\((\d+)\) (.*)", line)
            if m:
                names[m.group(1)] = m.group(2)
            continue
        if line.startswith("ob="):
            m = re.match(r"ob=\((\d+)\)(?: (.*))?", line)
            if m:
                if m.group(2):
                    names[m.group(1)] = m.group(2)
                current = names.get(m.group(1), "?")
            else:
                current = line[3:]
            continue
        if line.startswith("calls="):
            skip_next = True
            continue
        if line and (line[0].isdigit() or line[0] in "+-*"):
            if skip_next:
                skip_next = False
                continue
            parts = line.split()
            if len(parts) >= 2:
                totals[current] = totals.get(current, 0) + int(parts[1])
    return totals


def short_object(name):
    base = os.path.basename(name)
    for key, label in (("prosody_auth_hmac", "the plugin's native library (Rust)"), ("liblua", "Lua (interpreter, GC)"),
                       ("lua5.4", "Lua (interpreter, GC)"), ("libexpat", "expat (XML parser)"),
                       ("lxp", "lxp (Lua-expat binding)"), ("libc.so", "libc"), ("libcrypto", "OpenSSL libcrypto"),
                       ("ld-linux", "dynamic loader"), ("encodings", "util.encodings (stringprep, base64)"),
                       ("libidn", "libidn (stringprep)"), ("hashes", "util.hashes"), ("socket", "LuaSocket"),
                       ("pposix", "util.pposix"), ("poll", "util.poll"), ("libm", "libm")):
        if key in base:
            return label
    return base or name


def run_profile(args, keys):
    modes = [m for m in MODES if not args.modes or m[0] in args.modes]
    logins = args.profile
    print("profile: %d distinct users per mode, %d in flight, Prosody under callgrind (instructions)" % (
        logins, args.concurrency))
    rows = {}
    for label, auth, mech in modes:
        data = prepare(auth, keys, logins + 20)
        server = Server(auth, keys, data, valgrind=True).start()
        try:
            server.loadgen(mech, 20, 20, 4)  # code paths translated once, outside the count
            subprocess.run(["callgrind_control", "--instr=on", str(server.proc.pid)], check=True, capture_output=True)
            subprocess.run(["callgrind_control", "-z", str(server.proc.pid)], check=True, capture_output=True)
            # the load generator starts again at user0: the 20 warm-up users log in a second time
            r = server.loadgen(mech, logins + 20, logins + 20, args.concurrency)
            before = set(server.dir.glob("cg.out.*"))
            subprocess.run(["callgrind_control", "-d", str(server.proc.pid)], check=True, capture_output=True)
            for _ in range(300):
                new = set(server.dir.glob("cg.out.*")) - before
                if new:
                    time.sleep(0.5)
                    break
                time.sleep(0.1)
            (dump,) = new
            by_object = {}
            for ob, ir in self_cost_by_object(dump).items():
                by_object[short_object(ob)] = by_object.get(short_object(ob), 0) + ir
            rows[label] = (by_object, r["logins"])
        finally:
            server.stop()
            shutil.rmtree(data, ignore_errors=True)
    objects = sorted({o for by, _ in rows.values() for o in by}, key=lambda o: -max(by.get(o, 0) / n for by, n in rows.values()))
    print("%-40s" % "instructions per login, by object" + "".join("%22s" % SHORT[l] for l in rows))
    for o in objects:
        vals = [by.get(o, 0) / n for by, n in rows.values()]
        if max(vals) < 2000:
            continue
        print("%-40s" % o[:40] + "".join("%13.0f (%4.1f%%)" % (v, 100 * v / (sum(by.values()) / n))
                                          for v, (by, n) in zip(vals, rows.values())))
    print("%-40s" % "total" + "".join("%22.0f" % (sum(by.values()) / n) for by, n in rows.values()))
    total = {label: sum(by.values()) / n for label, (by, n) in rows.items()}
    print("ratios of instructions per login (a storm drains at the server's CPU per login):")
    for a, b, target, below in (("hmac PLAIN-token", "internal_plain PLAIN", 1.05, False),
                                ("hmac SASL-HMAC", "internal_plain PLAIN", 1.05, False),
                                ("hmac PLAIN-token", "internal_hashed SCRAM-SHA-1", 1.0, True),
                                ("hmac SASL-HMAC", "internal_hashed SCRAM-SHA-1", 1.0, True)):
        if a in total and b in total:
            r = total[a] / total[b]
            ok = r < target if below else r <= target
            print("  %-20s / %-28s %.3f (target %s %.2f: %s)" % (a, b, r, "<" if below else "<=", target,
                                                                  "met" if ok else "NOT met"))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--storms", default="2000:held,2000,20000",
                    help="storms: N distinct users, N:held to keep their sessions open (comma-separated)")
    ap.add_argument("--concurrency", type=int, default=200, help="logins in flight")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--modes", type=lambda s: s.split(","), default=None)
    ap.add_argument("--backlog", type=int, default=4096, help="Prosody's tcp_backlog (0: its default, 128)")
    ap.add_argument("--profile", type=int, default=0, metavar="LOGINS")
    args = ap.parse_args()
    keys = json.loads(subprocess.run([str(HMAC_TOKEN), "keygen", "--json"], check=True, capture_output=True,
                                     text=True).stdout)
    cpu = open("/proc/cpuinfo").read().split("model name")[1].split(":")[1].split("\n")[0].strip()
    prosody = subprocess.run(["dpkg-query", "-W", "-f=${Version}", "prosody"], capture_output=True, text=True).stdout
    print("machine: %d CPUs (%s); Prosody %s; server pinned to CPU 0, load generator to CPU 1" % (
        os.cpu_count(), cpu, prosody))
    if args.profile:
        run_profile(args, keys)
    else:
        run_storms(args, keys)


if __name__ == "__main__":
    main()
