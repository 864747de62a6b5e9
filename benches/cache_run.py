#!/usr/bin/python3
"""The replay cache under a sustained storm at the highest rate Prosody reaches, longer than an
entry lives (150 s with the default otp_step and otp_skew).

    /usr/bin/python3 benches/cache_run.py [--seconds 200] [--users 20000] [--concurrency 200]
        default settings: the cache never fills (zero cache-full), and how many entries were live

    /usr/bin/python3 benches/cache_run.py --cap 20000 [--seconds 200]
        a deliberately small token_replay_cache_size: logins fail closed (temporary-auth-failure,
        cache-full) once it is full, one warning a minute, no more entries live than the cap, and
        logins work again once entries expire; a session logged in before the storm stays connected
        and answers pings throughout

One Prosody (authentication = "hmac", PLAIN with the token), pinned to CPU 0; the load generator on
CPU 1 keeps C logins in flight (so the server runs flat out) over U distinct users, each logging in
again every U / rate seconds (far under the per-account quota). A watcher session, logged in before
the storm, sends an XEP-0199 ping every 2 s.
"""
import argparse
import re
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "integration"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "clients" / "python" / "src"))
import storm_bench as sb  # noqa: E402
import rawxmpp  # noqa: E402
from prosody_hmac_token import mint  # noqa: E402


class Watcher(threading.Thread):
    """A session from before the storm: pings every 2 s, records each answer's round trip."""

    def __init__(self, server, keys):
        super().__init__(daemon=True)
        self.stream = rawxmpp.C2S(server.port, sb.HOST, tls=False, timeout=30)
        if server.auth == "hmac":
            r = self.stream.auth("PLAIN", b"\0watcher\0" + mint("watcher@" + sb.HOST, keys["token_secret"],
                                                                 keys["otp_seed"]).encode())
        else:  # the control: an account of the storm's, by password
            r = self.stream.auth("PLAIN", b"\0user0\0" + sb.PASSWORD.encode())
        assert r.status == "success", r
        self.stream.bind("watcher")
        self.rtts, self.lost, self.stop = [], 0, threading.Event()

    def run(self):
        while not self.stop.wait(2):
            t = time.monotonic()
            if self.stream.ping():
                self.rtts.append((time.monotonic() - t) * 1000)
            else:
                self.lost += 1
                return


# The longest a replay-cache entry lives with the default otp_step (30) and otp_skew (1):
# otp_step × (2 × otp_skew + 1 + the clock tolerance of 2 steps).
ENTRY_LIFE = 30 * (2 * 1 + 1 + 2)


def live_entries(data):
    """Live entries in the replay state Prosody kept at its stop."""
    (state,) = Path(data).glob("*/auth_hmac_replay/state.dat")
    return len(re.findall(r'"[0-9a-f]{32} \d+"', state.read_text()))


def buckets(per_second, width=10):
    """Means over `width` seconds (the last bucket over the seconds it has)."""
    return [sum(per_second[i:i + width]) / len(per_second[i:i + width]) for i in range(0, len(per_second), width)]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=200)
    ap.add_argument("--users", type=int, default=20000)
    ap.add_argument("--concurrency", type=int, default=200)
    ap.add_argument("--cap", type=int, default=0, help="token_replay_cache_size (default: the plugin's default)")
    ap.add_argument("--auth", default="hmac", choices=("hmac", "internal_plain"),
                    help="internal_plain: the same storm without the plugin (PLAIN with passwords), as a control")
    args = ap.parse_args()
    import json
    import subprocess
    keys = json.loads(subprocess.run([str(sb.HMAC_TOKEN), "keygen", "--json"], check=True, capture_output=True,
                                     text=True).stdout)
    data = sb.prepare(args.auth, keys, args.users)
    try:
        run(args, keys, data)
    finally:
        sb.shutil.rmtree(data, ignore_errors=True)


def run(args, keys, data):
    import subprocess
    mech = "PLAIN" if args.auth == "hmac" else "PLAIN-PASSWORD"
    extra = "token_replay_cache_size = %d" % args.cap if args.cap else ""
    # at the cap, each refusal's own info line names its reason (the client sees only the condition)
    server = sb.Server(args.auth, keys, data, extra=extra, level="info" if args.cap else "warn",
                       modules=("saslauth", "ping")).start()
    print("Prosody %s, authentication = \"%s\", %s; token_replay_cache_size = %s; "
          "%d users, %d logins in flight, %.0f s" % (
              subprocess.run(["dpkg-query", "-W", "-f=${Version}", "prosody"], capture_output=True, text=True).stdout,
              args.auth, "PLAIN with the token" if args.auth == "hmac" else "PLAIN with a password",
              args.cap or "default", args.users, args.concurrency, args.seconds))
    try:
        watcher = Watcher(server, keys)
        watcher.start()
        rss0 = sb.proc_status(server.proc.pid, "VmRSS")
        r = server.loadgen(mech, 10 ** 9, args.users, args.concurrency, seconds=args.seconds)
        storm_end = time.time()
        rss1, hwm = sb.proc_status(server.proc.pid, "VmRSS"), sb.proc_status(server.proc.pid, "VmHWM")
        log = server.log()  # the storm's lines; the recovery's come after
        recovered = after = None
        if args.cap:
            # as entries expire, logins are let in again: the first within seconds (the oldest
            # step's entries go), all of them once every entry of the storm has gone (an entry lives
            # at most 150 s with the default otp_step and otp_skew)
            while time.time() - storm_end < ENTRY_LIFE:
                one = server.loadgen("PLAIN", 1, args.users, 1)
                if one["logins"] == 1:
                    recovered = time.time() - storm_end
                    break
                time.sleep(2)
            time.sleep(max(0.0, storm_end + ENTRY_LIFE + 2 - time.time()))
            # a whole cap's worth again, and one more refused: every entry of the storm had gone
            after = server.loadgen("PLAIN", args.cap + 1, args.users, args.concurrency)
        watcher.stop.set()
        watcher.join(10)
        still_up = watcher.stream.ping()
    finally:
        server.stop(keep_replay_state=True)
    print()
    total_refused = sum(r["refusals"].values()) + sum(r["errors"].values())
    print("storm: %d logins bound, %d refused, %.1f s, %.0f logins/s on average" % (
        r["logins"], total_refused, r["seconds"], r["logins"] / r["seconds"]))
    print("refusals by reason: %s" % (sb.fmt_refusals(r)))
    print("bound per second, mean of each 10 s: %s" % " ".join("%.0f" % b for b in buckets(r["bound_per_second"])))
    if total_refused:
        print("refused per second, mean of each 10 s: %s" % " ".join(
            "%.0f" % b for b in buckets(r["refused_per_second"])))
    print("latency p50 %.1f ms, p99 %.1f ms, max %.1f ms; server CPU %.3f ms per attempt" % (
        r["p50_ms"], r["p99_ms"], r["max_ms"], r["server_cpu_s"] * 1000 / max(1, r["attempts"])))
    # no more accepted in any 90 s (the shortest an entry of a token used at once lives) than the cap
    bps = r["bound_per_second"]
    peak90 = max(sum(bps[i:i + 90]) for i in range(max(1, len(bps) - 89)))
    print("most logins bound in any 90 s: %d%s" % (peak90, " (cap %d)" % args.cap if args.cap else ""))
    print("Prosody RSS: %.1f MB before the storm, %.1f MB after, peak %.1f MB" % (rss0 / 1024, rss1 / 1024, hwm / 1024))
    if not args.cap and args.auth == "hmac":
        print("live replay-cache entries at the end (from the state kept at the stop): %d" % live_entries(data))
    if args.cap:
        reasons = {}
        for m in re.finditer(r"Failed PLAIN token login for \S+ from \S+: ([\w-]+)", log):
            reasons[m.group(1)] = reasons.get(m.group(1), 0) + 1
        print("server log, refused logins by reason: %s" % reasons)
    warns = [l for l in log.splitlines() if "\twarn\t" in l or "\terror\t" in l]
    full = [l for l in warns if "Replay cache full" in l]
    print("log: %d warnings about the full cache, %d other warnings or errors" % (len(full), len(warns) - len(full)))
    for l in warns[:20]:
        print("    " + l)
    stamps = [time.mktime(time.strptime(time.strftime("%Y ") + l[:15], "%Y %b %d %H:%M:%S")) for l in full]
    if len(stamps) > 1:
        gaps = [b - a for a, b in zip(stamps, stamps[1:])]
        print("seconds between those warnings: %s" % " ".join("%.0f" % g for g in gaps))
    if args.cap:
        print("recovery: the first login after the storm was let in %s; %d s after it (every entry of the "
              "storm expired) %d of %d logins bound (the cap's worth), refusals: %s" % (
                  "after %.0f s" % recovered if recovered is not None else "only when all had expired",
                  ENTRY_LIFE + 2, after["logins"], args.cap + 1, sb.fmt_refusals(after)))
    print("watcher session: %d pings answered (round trip median %.1f ms, max %.1f ms), %s" % (
        len(watcher.rtts), statistics.median(watcher.rtts) if watcher.rtts else 0, max(watcher.rtts or [0]),
        "still connected after the storm" if still_up and not watcher.lost else "LOST"))


if __name__ == "__main__":
    main()
