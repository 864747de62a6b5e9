#!/usr/bin/python3
"""make demo: a local Prosody with the plugin, freshly generated secrets, and real logins.

Starts Debian's Prosody on 127.0.0.1 (ports chosen at random), mints a token the way a web app
would (with the hmac-token CLI), logs in with slixmpp over c2s + STARTTLS, shows that the same token
cannot be used twice, then starts a tiny web app (a converse.js 14 page and a credentials_url) and
logs converse.js in from headless Chromium with SASL-HMAC over WebSocket. Prints what happened and
stops everything.

make serve (demo.py --serve) does the same, then keeps Prosody and the web app running so you can
open the page in a browser; Ctrl-C stops them.

--proxy nginx|apache (make demo PROXY=nginx, make serve PROXY=apache) puts Debian's nginx or apache2
in front, run from examples/nginx/ or examples/apache/ as shipped: the converse.js page, the
credentials_url and Prosody's BOSH and WebSocket under one HTTPS origin, https://localhost:PORT/
(a self-signed certificate), and Prosody set up as the sample config's "Behind a reverse proxy"
says (trusted_proxies, secure only through X-Forwarded-Proto).
"""
import argparse
import json
import os
import signal
import subprocess
import sys
import time

# the test harness and the slixmpp SASL-HMAC mechanism (pytest.ini puts the same on the tests' path)
sys.path[:0] = [os.path.join(os.path.dirname(__file__), "..", d) for d in ("tests/integration", "clients/slixmpp")]
from harness import HMAC_TOKEN, REPO, Prosody, free_port, make_cert  # noqa: E402
from proxies import make_proxy, spki_sha256  # noqa: E402
import xmpp_clients  # noqa: E402

sys.path.insert(0, str(REPO / "examples" / "webapp"))
from app import WebApp  # noqa: E402


def step(text):
    print("\n==> " + text, flush=True)


PROXY_NAME = "localhost"  # a name every browser maps to this machine, and a secure context


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--serve", action="store_true", help="keep everything running until Ctrl-C")
    parser.add_argument("--proxy", choices=["nginx", "apache"], help="put this reverse proxy in front (HTTPS)")
    args = parser.parse_args()
    serve = args.serve
    # Line by line into a pipe or a log too: `make serve | tee`, a supervisor, or a test waiting for
    # the "open https://…" line would otherwise see nothing while the demo serves (block buffering).
    sys.stdout.reconfigure(line_buffering=True)
    # SIGTERM (kill PID) stops everything as cleanly as Ctrl-C, at any point
    signal.signal(signal.SIGTERM, _interrupt)
    step("Generating secrets with `hmac-token keygen` and starting Prosody on 127.0.0.1")
    # behind a proxy: Prosody believes X-Forwarded-* from the proxy only, and considers a session
    # secure only when the proxy says it came over HTTPS (the test config's blanket
    # consider_*_secure, for direct connections, is turned off)
    server = Prosody(extra_modules=(), max_failures_per_address=None, extra_global="\n".join([
        "consider_bosh_secure = false", "consider_websocket_secure = false",
        'trusted_proxies = { "127.0.0.1", "::1" }']) if args.proxy else "")
    app = proxy = None
    ok = True
    interrupted = serving = False
    try:
        server.start()
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

        browser_env = dict(os.environ)
        if args.proxy:
            step("Starting %s in front (examples/%s/) with a self-signed certificate for %s"
                 % (args.proxy, args.proxy, PROXY_NAME))
            make_cert(server.dir, [PROXY_NAME])
            app_port = free_port()
            proxy = make_proxy(args.proxy, server.http_port, app_port, server.dir / "host.crt",
                               server.dir / "host.key", name=PROXY_NAME).start()
            base = proxy.origin + "/"
            app = WebApp(app_port, server.host, proxy.origin + "/http-bind",
                         "wss://%s:%d/xmpp-websocket" % (PROXY_NAME, proxy.https_port), server.token_secret,
                         server.otp_seed, prebind_bosh_url=server.bosh_url).start()
            print("    %s (pid %d): %s -> web app 127.0.0.1:%d, /http-bind and /xmpp-websocket -> Prosody 127.0.0.1:%d"
                  % (args.proxy, proxy.proc.pid, proxy.origin, app_port, server.http_port))
            spki = spki_sha256(server.dir / "host.crt")
            browser_env.update(HOST_RESOLVER_RULES="MAP %s 127.0.0.1" % PROXY_NAME, TRUST_SPKI=spki)
            where = "through %s over HTTPS" % args.proxy
        else:
            app = WebApp(free_port(), server.host, server.bosh_url, server.ws_url, server.token_secret,
                         server.otp_seed).start()
            base = app.url
            where = "directly"
        step("A web app serves converse.js 14 and a credentials_url; headless Chromium logs in %s "
             "(SASL-HMAC, WebSocket)" % where)
        shot = REPO / "test-artifacts" / ("demo-converse%s.png" % ("-" + args.proxy if args.proxy else ""))
        shot.parent.mkdir(parents=True, exist_ok=True)
        out = run_browser(["node", str(REPO / "tests" / "web" / "converse-login.mjs"),
                           app.page_url("bob", base, transport="websocket", mech="SASL-HMAC"), str(shot)], browser_env)
        result = json.loads(out.stdout.strip().splitlines()[-1]) if out.returncode == 0 else {"outcome": out.stderr[-300:]}
        print("    converse.js shows: %s" % result.get("outcome"))
        print("    screenshot: %s" % shot)
        ok &= result.get("outcome") == "roster"

        step("What Prosody logged")
        for line in server.log_path.read_text().splitlines():
            if "Authenticated as" in line or "token login" in line:
                print("    " + line)
        if proxy:
            requests = [line for line in proxy.access_log.splitlines() if "/xmpp-websocket" in line]
            print("    %s's access log: %d request(s) to /xmpp-websocket" % (args.proxy, len(requests)))
            ok &= bool(requests)

        if serve:
            serving = True  # from here on Ctrl-C or SIGTERM is how it ends
            step("Serving until Ctrl-C")
            print("    open %s" % app.page_url("carol", base, transport="websocket", mech="SASL-HMAC"))
            print("    (it logs the browser in to the web app as carol; in the page's address, &transport=bosh,")
            print("    &mech=PLAIN and &auth=prebind choose how the page connects)")
            if proxy:
                print("    the certificate is self-signed: accept the browser's warning once, or start Chromium with")
                print("    --ignore-certificate-errors-spki-list=%s" % spki)
            try:
                while True:
                    time.sleep(3600)
            except KeyboardInterrupt:
                pass
    except KeyboardInterrupt:
        interrupted = not serving
    finally:
        # a second Ctrl-C or SIGTERM must not cut the clean-up short
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        for what, stop in (("the web app", app and app.stop),
                           ("%s (pid %d)" % (args.proxy, proxy.proc.pid) if proxy else "", proxy and proxy.stop),
                           ("Prosody (pid %s)" % (server.proc.pid if server.proc else "-"), server.stop)):
            if not stop:
                continue
            step("Stopping %s" % what)
            try:
                stop()
            except Exception as e:  # the others must still be stopped
                print("    could not stop %s: %s" % (what, e))
    if interrupted:
        print("\nDemo interrupted.")
        return 130
    print("\nDemo %s." % ("succeeded" if ok else "FAILED"))
    return 0 if ok else 1


def _interrupt(*_):
    raise KeyboardInterrupt


def run_browser(cmd, env, timeout=120):
    """node and its Chromium in their own process group, killed as a group if interrupted."""
    proc = subprocess.Popen(cmd, cwd=REPO / "tests" / "web", env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except BaseException:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:  # node and its Chromium had already gone (the signal came as it ended)
            pass
        proc.wait()
        raise
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


if __name__ == "__main__":
    sys.exit(main())
