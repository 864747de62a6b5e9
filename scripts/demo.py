#!/usr/bin/python3
"""make demo: a local Prosody with the plugin, freshly generated secrets, and a real login.

Starts Debian's Prosody on 127.0.0.1 (ports chosen at random), mints a token the way a web app
would (with the hmac-token CLI), logs in with slixmpp over c2s + STARTTLS, shows that the same token
cannot be used twice, prints the log lines Prosody wrote, and stops Prosody.
"""
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "integration"))
from harness import HMAC_TOKEN, Prosody  # noqa: E402
import xmpp_clients  # noqa: E402


def step(text):
    print("\n==> " + text, flush=True)


def main():
    step("Generating secrets with `hmac-token keygen` and starting Prosody on 127.0.0.1")
    server = Prosody(extra_modules=())
    server.start()
    ok = True
    try:
        print("    config:    %s" % server.config)
        print("    c2s:       127.0.0.1:%d (STARTTLS, self-signed certificate)" % server.c2s_port)
        print("    BOSH:      %s" % server.bosh_url)
        print("    WebSocket: %s" % server.ws_url)
        jid = "alice@" + server.host

        step("The web app mints a token for %s (what its credentials_url returns)" % jid)
        env = dict(os.environ, TOKEN_SECRET=server.token_secret, OTP_SEED=server.otp_seed)
        body = subprocess.run([str(HMAC_TOKEN), "mint", "--jid", jid, "--json"], env=env, check=True,
                              capture_output=True, text=True).stdout
        token = json.loads(body)["password"]
        public, mac = token.split(" ")
        print('    {"jid": "%s", "password": "%s… %s…"}  (OTP ‖ nonce, space, base64 HMAC; shortened here)'
              % (jid, public[:12], mac[:8]))

        step("slixmpp logs in with the token (SASL PLAIN over STARTTLS)")
        status, detail = xmpp_clients.login(jid, token, server.c2s_port)
        print("    result: %s %s" % (status, detail))
        ok &= status == "bound"

        step("The same token again is refused (replay protection)")
        status, detail = xmpp_clients.login(jid, token, server.c2s_port)
        print("    result: %s %s" % (status, detail))
        ok &= (status, detail) == ("failed", "not-authorized")

        step("What Prosody logged")
        for line in server.log_path.read_text().splitlines():
            if "Authenticated as" in line or "token login" in line:
                print("    " + line)
    finally:
        step("Stopping Prosody (pid %d)" % server.pid())
        server.stop()
    print("\nDemo %s." % ("succeeded" if ok else "FAILED"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
