#!/usr/bin/python3
"""Minting in the web app's process (clients/python) against one hmac-token process per request
(what examples/webapp did before), in the same run. Prints tokens per second for each and the
ratio; a figure, not a test.

    /usr/bin/python3 benches/mint_bench.py [IN_PROCESS_COUNT] [CLI_COUNT]
"""
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "clients" / "python" / "src"))
import prosody_hmac_token  # noqa: E402

CLI = REPO / "target" / "release" / "hmac-token"


def rate(n, mint):
    started = time.perf_counter()
    for _ in range(n):
        mint()
    return n / (time.perf_counter() - started)


def main():
    in_process_n = int(sys.argv[1]) if len(sys.argv) > 1 else 20000
    cli_n = int(sys.argv[2]) if len(sys.argv) > 2 else 300
    keys = subprocess.run([str(CLI), "keygen", "--json"], check=True, capture_output=True, text=True).stdout
    import json
    keys = json.loads(keys)
    secret, seed = keys["token_secret"], keys["otp_seed"]
    env = dict(os.environ, TOKEN_SECRET=secret, OTP_SEED=seed)
    jid = "alice@example.org"

    def library():
        prosody_hmac_token.credentials(jid, secret, seed)

    def cli():
        subprocess.run([str(CLI), "mint", "--jid", jid, "--json"], env=env, check=True, capture_output=True)

    # the two alternate in three rounds, so that a slow spell of the machine hits both
    lib_rates, cli_rates = [], []
    for _ in range(3):
        lib_rates.append(rate(in_process_n, library))
        cli_rates.append(rate(cli_n, cli))
    lib, proc = statistics.median(lib_rates), statistics.median(cli_rates)
    print("in process (clients/python credentials()): %8.0f tokens/s  (rounds: %s)"
          % (lib, ", ".join("%.0f" % r for r in lib_rates)))
    print("one hmac-token process per request:        %8.0f tokens/s  (rounds: %s)"
          % (proc, ", ".join("%.0f" % r for r in cli_rates)))
    print("ratio: %.0fx" % (lib / proc))


if __name__ == "__main__":
    main()
