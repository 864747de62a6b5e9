#!/usr/bin/python3
"""make demo: a local Prosody with the plugin, freshly generated secrets, and real logins.

Starts Debian's Prosody on 127.0.0.1 (ports chosen at random), mints a token the way a web app
would (with the hmac-token CLI), logs in with slixmpp over c2s + STARTTLS, shows that the same token
cannot be used twice, then starts a tiny web app (a converse.js 14 page and a credentials_url) and
logs converse.js in from headless Chromium with SASL-HMAC over WebSocket. Prints what happened and
stops everything.

make serve (demo.py --serve) does the same, then keeps Prosody and the web app running so you can
open the page in a browser; Ctrl-C stops them.
"""
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "integration"))
from harness import HMAC_TOKEN, REPO, Prosody, free_port  # noqa: E402
import xmpp_clients  # noqa: E402

sys.path.insert(0, str(REPO / "examples" / "webapp"))
from app import WebApp  # noqa: E402


def step(text):
    print("\n==> " + text, flush=True)


def main():
    serve = "--serve" in sys.argv
    step("Generating secrets with `hmac-token keygen` and starting Prosody on 127.0.0.1")
    server = Prosody(extra_modules=())
    server.start()
    app = None
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

        step("A web app serves converse.js 14 and a credentials_url; headless Chromium logs in (SASL-HMAC, WebSocket)")
        app = WebApp(free_port(), server.host, server.bosh_url, server.ws_url, server.token_secret,
                     server.otp_seed, HMAC_TOKEN).start()
        shot = REPO / "test-artifacts" / "demo-converse.png"
        shot.parent.mkdir(parents=True, exist_ok=True)
        out = subprocess.run(["node", str(REPO / "web" / "converse-login.mjs"),
                              app.url + "?transport=websocket&mech=SASL-HMAC&user=bob", str(shot)],
                             cwd=REPO / "web", capture_output=True, text=True, timeout=120)
        result = json.loads(out.stdout.strip().splitlines()[-1]) if out.returncode == 0 else {"outcome": out.stderr[-300:]}
        print("    converse.js shows: %s" % result.get("outcome"))
        print("    screenshot: %s" % shot)
        ok &= result.get("outcome") == "roster"

        step("What Prosody logged")
        for line in server.log_path.read_text().splitlines():
            if "Authenticated as" in line or "token login" in line:
                print("    " + line)

        if serve:
            step("Serving until Ctrl-C")
            print("    open %s?transport=websocket&mech=SASL-HMAC&user=carol" % app.url)
            print("    (or &transport=bosh, &mech=PLAIN, &scenario=bad|replay to see the failures)")
            try:
                while True:
                    time.sleep(3600)
            except KeyboardInterrupt:
                pass
    finally:
        if app:
            app.stop()
        step("Stopping Prosody (pid %d)" % server.pid())
        server.stop()
    print("\nDemo %s." % ("succeeded" if ok else "FAILED"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
