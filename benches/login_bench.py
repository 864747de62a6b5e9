#!/usr/bin/python3
"""Login cost, side by side in one run: authentication = "hmac" with PLAIN-token, X-TOKEN and
SASL-HMAC, against Prosody's internal_plain and internal_hashed (PLAIN with a password), and
internal_hashed with SCRAM-SHA-1 (how converse.js logs in to it: no PBKDF2 on the server per login).

Every mode runs the same Prosody settings (printed below), pinned to CPU 0; the load generator
(tools/loadgen, async Rust, raw sockets) is pinned to CPU 1. Each login: TCP connect, stream open,
SASL, stream restart, bind, close. Server CPU per login comes from /proc/<pid>/stat.
Modes are interleaved, ROUNDS times; medians and spreads are reported, then the ratios: one per
round (paired runs), with their median and range.

    /usr/bin/python3 benches/login_bench.py [LOGINS_PER_RUN] [ROUNDS] [CONCURRENCY]

Server CPU time on a shared 2-vCPU virtual machine varies by ±10-25 % between runs, more than the
margins of the targets. So the same logins can also be counted in instructions, which vary by a few
per cent: with --instructions every Prosody runs under valgrind's callgrind (instrumentation
switched on after a warm-up, counters zeroed before and dumped after each run), and the figure is
instructions executed by the server per login (Prosody, Lua, the plugin, libc; not the kernel).

    /usr/bin/python3 benches/login_bench.py --instructions [LOGINS_PER_RUN] [ROUNDS] [CONCURRENCY]
"""
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LOADGEN = REPO / "tools" / "loadgen" / "target" / "release" / "loadgen"
HMAC_TOKEN = REPO / "target" / "release" / "hmac-token"
HOST = "example.test"
PASSWORD = "benchmark-password"
USERS = 20

CONFIG = """-- benchmark configuration ({mode})
run_as_root = true
daemonize = false
pidfile = "{dir}/prosody.pid"
data_path = "{dir}/data"
plugin_paths = {{ "{repo}/lua" }}
auth_hmac_library = "{repo}/build/lua5.4/prosody_auth_hmac.so"
log = {{ {{ levels = {{ min = "warn" }}, to = "file", filename = "{dir}/prosody.log" }} }}
interfaces = {{ "127.0.0.1" }}
c2s_ports = {{ {port} }}
modules_enabled = {{ "saslauth" }}   -- no mod_limits, no roster, no TLS: authentication is what is measured
modules_disabled = {{ "s2s" }}
c2s_require_encryption = false      -- the benchmark has no TLS ...
allow_unencrypted_plain_auth = true -- ... so authentication is allowed without it
-- GC: Prosody's default for Lua 5.4 (incremental); c2s_timeout: default
authentication = "{auth}"
token_secret = "{secret}"
otp_seed = "{seed}"
token_replay_cache_size = 1000000
token_replay_user_quota = 1000000 -- 20 users log in thousands of times in seconds
VirtualHost "{host}"
"""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(mode, auth, keys, valgrind=False):
    d = Path(tempfile.mkdtemp(prefix="bench-%s-" % mode))
    (d / "data").mkdir()
    port = free_port()
    cfg = d / "prosody.cfg.lua"
    cfg.write_text(CONFIG.format(mode=mode, dir=d, repo=REPO, port=port, auth=auth, secret=keys["token_secret"],
                                 seed=keys["otp_seed"], host=HOST))
    if auth.startswith("internal"):
        for i in range(USERS):
            subprocess.run(["prosodyctl", "--config", str(cfg), "register", "user%d" % i, HOST, PASSWORD],
                           check=True, capture_output=True)
    cmd = ["prosody", "--config", str(cfg), "-F"]
    if valgrind:  # the launcher is a Lua script: run its interpreter under callgrind
        cmd = ["valgrind", "--tool=callgrind", "--instr-atstart=no", "--callgrind-out-file=%s/cg.out" % d,
               "lua5.4", shutil.which("prosody")] + cmd[1:]
    proc = subprocess.Popen(["taskset", "-c", "0"] + cmd, cwd=d, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(1200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.05)
    return {"dir": d, "port": port, "proc": proc, "cfg": cfg}


def stop(server):
    server["proc"].send_signal(signal.SIGTERM)
    server["proc"].wait(60)
    shutil.rmtree(server["dir"], ignore_errors=True)


def run(server, mech, logins, concurrency, keys):
    args = ["taskset", "-c", "1", str(LOADGEN), "--port", str(server["port"]), "--host", HOST, "--mech", mech,
            "--logins", str(logins), "--concurrency", str(concurrency), "--server-pid", str(server["proc"].pid),
            "--secret", keys["token_secret"], "--seed", keys["otp_seed"], "--password", PASSWORD,
            "--users", str(USERS)]
    out = subprocess.run(args, check=True, capture_output=True, text=True, timeout=600)
    return json.loads(out.stdout.strip().splitlines()[-1])


def callgrind(server, command):
    subprocess.run(["callgrind_control", command, str(server["proc"].pid)], check=True, capture_output=True)


def counted(server, mech, logins, concurrency, keys):
    """run() with the server's instructions for exactly these logins added to the result."""
    callgrind(server, "-z")
    result = run(server, mech, logins, concurrency, keys)
    before = set(server["dir"].glob("cg.out.*"))
    callgrind(server, "-d")
    for _ in range(100):
        new = set(server["dir"].glob("cg.out.*")) - before
        if new:
            break
        time.sleep(0.1)
    (dump,) = new
    summary = next(line for line in dump.read_text().splitlines() if line.startswith("summary:"))
    result["instructions_per_login"] = int(summary.split()[1]) / logins
    dump.unlink()
    return result


def main():
    instructions = "--instructions" in sys.argv
    argv = [a for a in sys.argv if a != "--instructions"]
    logins = int(argv[1]) if len(argv) > 1 else (300 if instructions else 3000)
    rounds = int(argv[2]) if len(argv) > 2 else 3
    concurrency = int(argv[3]) if len(argv) > 3 else 8
    keys = json.loads(subprocess.run([str(HMAC_TOKEN), "keygen", "--json"], check=True, capture_output=True,
                                     text=True).stdout)
    modes = [  # (label, authentication, loadgen mechanism)
        ("hmac PLAIN-token", "hmac", "PLAIN"),
        ("hmac X-TOKEN", "hmac", "X-TOKEN"),
        ("hmac SASL-HMAC", "hmac", "SASL-HMAC"),
        ("internal_plain PLAIN", "internal_plain", "PLAIN-PASSWORD"),
        ("internal_hashed PLAIN", "internal_hashed", "PLAIN-PASSWORD"),
        ("internal_hashed SCRAM-SHA-1", "internal_hashed", "SCRAM-SHA-1"),
    ]
    print("machine: %d CPUs (%s); Prosody %s; server pinned to CPU 0, load generator to CPU 1"
          % (os.cpu_count(), open("/proc/cpuinfo").read().split("model name")[1].split(":")[1].split("\n")[0].strip(),
             subprocess.run(["dpkg-query", "-W", "-f=${Version}", "prosody"], capture_output=True, text=True).stdout))
    print("%d logins per run, concurrency %d, %d interleaved rounds; settings:" % (logins, concurrency, rounds))
    shown = CONFIG.format(mode="<mode>", dir="<tmp>", repo="<repo>", port="<port>", auth="<hmac|internal_plain|internal_hashed>",
                          secret="<generated>", seed="<generated>", host=HOST)
    print("\n".join("    " + l for l in shown.splitlines()[9:19]))
    if instructions:
        # internal_hashed's PBKDF2 is a few instructions per byte on SHA extensions, while Prosody's
        # Lua takes many per operation: instruction counts do not compare those two, and it would
        # take ~1 s per login under callgrind. It is left to the CPU-time run.
        modes = [m for m in modes if m[1] != "internal_hashed"]
        print("    -- measured in instructions: each Prosody under valgrind --tool=callgrind")
    servers = {auth: start(auth, auth, keys, valgrind=instructions) for auth in sorted({m[1] for m in modes})}
    measure = counted if instructions else run
    metric = "instructions_per_login" if instructions else "server_cpu_ms_per_login"
    results = {label: [] for label, _, _ in modes}
    try:
        for label, auth, mech in modes:  # warm-up
            run(servers[auth], mech, max(200, logins // 10), concurrency, keys)
        if instructions:
            for server in servers.values():
                callgrind(server, "--instr=on")
            for label, auth, mech in modes:  # warm-up with instrumentation (code translated once)
                run(servers[auth], mech, 20, concurrency, keys)
        for _ in range(rounds):
            for label, auth, mech in modes:
                results[label].append(measure(servers[auth], mech, logins, concurrency, keys))
    finally:
        for s in servers.values():
            stop(s)
    print()
    if instructions:
        print("%-28s %24s" % ("mode", "instructions/login"))
    else:
        print("%-28s %16s %12s %10s %10s %10s" % ("mode", "server CPU/login", "logins/s", "p50 ms", "p90 ms", "p99 ms"))
    for label, _, _ in modes:
        rs = results[label]
        values = [r[metric] for r in rs]
        m = statistics.median(values)
        spread = 100 * (max(values) - min(values)) / 2 / m
        if instructions:
            print("%-28s %14.0f ±%4.1f%%" % (label, m, spread))
        else:
            print("%-28s %8.3f ms ±%4.0f%% %12.0f %10.2f %10.2f %10.2f" % (
                label, m, spread,
                statistics.median(r["logins_per_s"] for r in rs), statistics.median(r["p50_ms"] for r in rs),
                statistics.median(r["p90_ms"] for r in rs), statistics.median(r["p99_ms"] for r in rs)))
    print()
    # Ratios: one per round from that round's runs (the modes of a round run back to back, so slow
    # drifts of the machine cancel), then the median and the range over the rounds.
    def ratio(a, b, target):
        per_round = [ra[metric] / rb[metric]
                     for ra, rb in zip(results[a], results[b])]
        m = statistics.median(per_round)
        print("ratio %-22s / %-22s %.3f  (rounds %.3f - %.3f; target <= %.2f: %s)" % (
            a, b, m, min(per_round), max(per_round), target,
            "met" if max(per_round) <= target else ("median met" if m <= target else "NOT met")))
    ratio("hmac PLAIN-token", "internal_plain PLAIN", 1.03)
    ratio("hmac SASL-HMAC", "hmac PLAIN-token", 1.15)
    if not instructions:
        for label in ("hmac PLAIN-token", "hmac X-TOKEN", "hmac SASL-HMAC"):
            ratio(label, "internal_hashed PLAIN", 0.35)

if __name__ == "__main__":
    main()
