#!/usr/bin/python3
"""Login cost, side by side in one run: authentication = "hmac" with PLAIN-token, X-TOKEN and
SASL-HMAC, against Prosody's internal_plain and internal_hashed (PLAIN with a password).

Every mode runs the same Prosody settings (printed below), pinned to CPU 0; the load generator
(tools/loadgen, async Rust, raw sockets) is pinned to CPU 1. Each login: TCP connect, stream open,
SASL, stream restart, bind, close. Server CPU per login comes from /proc/<pid>/stat.
Modes are interleaved, ROUNDS times; medians and spreads are reported, then the ratios.

    /usr/bin/python3 benches/login_bench.py [LOGINS_PER_RUN] [ROUNDS] [CONCURRENCY]
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
VirtualHost "{host}"
"""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(mode, auth, keys):
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
    proc = subprocess.Popen(["taskset", "-c", "0", "prosody", "--config", str(cfg), "-F"], cwd=d,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.05)
    return {"dir": d, "port": port, "proc": proc, "cfg": cfg}


def stop(server):
    server["proc"].send_signal(signal.SIGTERM)
    server["proc"].wait(10)
    shutil.rmtree(server["dir"], ignore_errors=True)


def run(server, mech, logins, concurrency, keys):
    args = ["taskset", "-c", "1", str(LOADGEN), "--port", str(server["port"]), "--host", HOST, "--mech", mech,
            "--logins", str(logins), "--concurrency", str(concurrency), "--server-pid", str(server["proc"].pid),
            "--secret", keys["token_secret"], "--seed", keys["otp_seed"], "--password", PASSWORD,
            "--users", str(USERS)]
    out = subprocess.run(args, check=True, capture_output=True, text=True, timeout=600)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    logins = int(sys.argv[1]) if len(sys.argv) > 1 else 3000
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    concurrency = int(sys.argv[3]) if len(sys.argv) > 3 else 8
    keys = json.loads(subprocess.run([str(HMAC_TOKEN), "keygen", "--json"], check=True, capture_output=True,
                                     text=True).stdout)
    modes = [  # (label, authentication, loadgen mechanism)
        ("hmac PLAIN-token", "hmac", "PLAIN"),
        ("hmac X-TOKEN", "hmac", "X-TOKEN"),
        ("hmac SASL-HMAC", "hmac", "SASL-HMAC"),
        ("internal_plain PLAIN", "internal_plain", "PLAIN-PASSWORD"),
        ("internal_hashed PLAIN", "internal_hashed", "PLAIN-PASSWORD"),
    ]
    print("machine: %d CPUs (%s); Prosody %s; server pinned to CPU 0, load generator to CPU 1"
          % (os.cpu_count(), open("/proc/cpuinfo").read().split("model name")[1].split(":")[1].split("\n")[0].strip(),
             subprocess.run(["dpkg-query", "-W", "-f=${Version}", "prosody"], capture_output=True, text=True).stdout))
    print("%d logins per run, concurrency %d, %d interleaved rounds; settings:" % (logins, concurrency, rounds))
    shown = CONFIG.format(mode="<mode>", dir="<tmp>", repo="<repo>", port="<port>", auth="<hmac|internal_plain|internal_hashed>",
                          secret="<generated>", seed="<generated>", host=HOST)
    print("\n".join("    " + l for l in shown.splitlines()[9:19]))
    servers = {auth: start(auth, auth, keys) for auth in ("hmac", "internal_plain", "internal_hashed")}
    results = {label: [] for label, _, _ in modes}
    try:
        for label, auth, mech in modes:  # warm-up
            run(servers[auth], mech, max(200, logins // 10), concurrency, keys)
        for _ in range(rounds):
            for label, auth, mech in modes:
                results[label].append(run(servers[auth], mech, logins, concurrency, keys))
    finally:
        for s in servers.values():
            stop(s)
    print()
    print("%-24s %16s %12s %10s %10s %10s" % ("mode", "server CPU/login", "logins/s", "p50 ms", "p90 ms", "p99 ms"))
    med = {}
    for label, _, _ in modes:
        rs = results[label]
        cpu = [r["server_cpu_ms_per_login"] for r in rs]
        med[label] = statistics.median(cpu)
        print("%-24s %8.3f ms ±%4.0f%% %12.0f %10.2f %10.2f %10.2f" % (
            label, med[label], 100 * (max(cpu) - min(cpu)) / 2 / med[label],
            statistics.median(r["logins_per_s"] for r in rs), statistics.median(r["p50_ms"] for r in rs),
            statistics.median(r["p90_ms"] for r in rs), statistics.median(r["p99_ms"] for r in rs)))
    print()
    tok, plain, hashed = med["hmac PLAIN-token"], med["internal_plain PLAIN"], med["internal_hashed PLAIN"]
    print("ratio PLAIN-token / internal_plain:    %.3f  (target <= 1.03)" % (tok / plain))
    print("ratio SASL-HMAC / PLAIN-token:         %.3f  (target <= 1.15)" % (med["hmac SASL-HMAC"] / tok))
    for label in ("hmac PLAIN-token", "hmac X-TOKEN", "hmac SASL-HMAC"):
        print("ratio %-16s / internal_hashed: %.3f  (target <= 0.35)" % (label, med[label] / hashed))


if __name__ == "__main__":
    main()
