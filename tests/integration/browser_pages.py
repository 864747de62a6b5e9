"""What the browser-session tests (pages/: test_browser_sessions.py, test_browser_refusals.py,
test_browser_credentials.py, test_browser_signout.py, whose fixtures are pages/conftest.py's)
share: converse.js 14 with the token-reconnect plugin (clients/converse/token-reconnect.js) in
Debian's headless Chromium, pages kept open while a test acts on the server. Over WebSocket and
BOSH, with PLAIN (token as password) and SASL-HMAC. Counts come from the fake web app's request log
(fake_webapp.py) and Prosody's log; a screenshot of every outcome goes to test-artifacts/browser/.

Waits are shortened with the plugin's settings (FAST: the first reconnect after 0.25-0.5 s, at most
4 s apart), and refusals=2 (the default is 3) so a changed default would show. The plugin's rules
themselves (each back-off delay, every limit, what stops it, time crossing stable_after) are tested
in Node (clients/converse/test/, in milliseconds); in the browser each family of scenarios runs
once per transport and mechanism where those take different paths through converse and Strophe.
The families are three modules, each with its own Prosody, so that they can run side by side."""
import time

import rawxmpp
from fake_webapp import FakeWebApp
from harness import Prosody, free_port
from logins import plain


def page_server(extra_global=""):
    """A module's Prosody for the pages (a fixture's body: yields it, stops it after), with
    `extra_global` added to its configuration's global section."""
    s = Prosody(keep_dir=True, extra_modules=("auth_events_probe", "admin_shell"), extra_global=extra_global).start()
    yield s
    s.keep_dir = False
    s.stop()


def page_app(server):
    """A fake web app for one test (a fixture's body), minting for `server`."""
    a = FakeWebApp(free_port(), server.host, server.bosh_url, server.ws_url, server.token_secret, server.otp_seed).start()
    yield a
    a.stop()


COMBOS = [("websocket", "PLAIN"), ("websocket", "SASL-HMAC"), ("bosh", "PLAIN"), ("bosh", "SASL-HMAC")]


FAST = {"delay": 500, "maxdelay": 4000}


# How long a page may take to show the roster again once Prosody is back: the schedule's fixed part
# (over BOSH Strophe retries the lost session's request at once, then after 8 s, and only then hears
# item-not-found; then FAST's longest wait, 4 s) plus room for the work itself, which is the
# machine's: a quiet 2-core machine took 0.4-3 s over WebSocket and 7.5-10 s over BOSH, and one with
# two other test runs beside it 15.3 s. The exact waits are the Node tests' (reconnect-rules); here
# the bound only tells "came back on its own" from "stuck".
RECONNECT_BOUND = 8 + 4 + 18


# How long a page that stopped is watched for another request: longer than the longest wait under
# FAST (4 s), converse's own reconnect (~3 s) and its credentials retry (~2 s). That a stopped
# page never does anything again is the Node tests' ("after a stop or a logout nothing happens").
QUIET = 5


REASONS = {"bad": "bad-signature", "replay": "replayed", "expired": "expired", "seed": "otp-mismatch"}


def tag(transport, mech):
    return transport[:2] + mech.replace("-", "").lower()


def page(app, user, transport="websocket", mech="SASL-HMAC", **params):
    query = dict(transport=transport, mech=mech, probe=1, **FAST)
    query.update(params)
    return app.page_url(user, **query)


def served(app, user, outcome="ok"):
    return [r for r in app.requests if r[0] == user and r[3] == outcome]


def logins(log, user, mech):
    return log.count("probe: authentication-success user=%s mechanism=%s\n" % (user, mech))


def restart(server):
    server.stop()
    server.start()


def wait_for(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError("timed out after %s s waiting for %s" % (timeout, what))


def open_all(browser, app, users, **params):
    """users: {(transport, mech): user}; every page must show its roster."""
    for (transport, mech), user in users.items():
        browser.open(user, page(app, user, transport, mech, **params))
    states = {}
    for user in users.values():
        st = browser.wait(user, "roster")
        assert st["reached"], (user, st)
        states[user] = st
    return states


def back_after(server, browser, users, mark, name):
    """Every page logs in again (one login each, seen in Prosody's log) without a page reload and
    shows its roster, within RECONNECT_BOUND."""
    start = time.monotonic()
    for (transport, mech), user in users.items():
        wait_for(lambda: logins(server.log_since(mark), user, mech) >= 1, RECONNECT_BOUND, "%s to log in again" % user)
        st = browser.wait(user, "roster", RECONNECT_BOUND)
        assert st["reached"], (user, st)
    # the screenshots after the clock stops: on a busy machine each takes seconds of its own
    assert time.monotonic() - start < RECONNECT_BOUND
    for (transport, mech), user in users.items():
        browser.screenshot(user, "%s-%s-%s" % (name, transport, mech))
    log = server.log_since(mark)
    for (transport, mech), user in users.items():
        assert logins(log, user, mech) == 1, (user, log[-3000:])
    assert "replayed" not in log


def receiver(server, user="rcv"):
    s = rawxmpp.C2S(server.c2s_port, server.host)
    assert s.auth("PLAIN", plain(user, server.mint("%s@%s" % (user, server.host)))).status == "success"
    return s, s.bind("probe")


def delivered(server, browser, users):
    """A message sent from every page now arrives at another user's client."""
    stream, full = receiver(server)
    try:
        for user in users:
            browser.send(user, full, "hello from %s" % user)
        got = {}
        deadline = time.monotonic() + 15
        while len(got) < len(users) and time.monotonic() < deadline:
            el = stream.recv()
            if el is None:
                break
            body = el.findtext("{jabber:client}body")
            if el.tag == "{jabber:client}message" and body:
                got[el.get("from").split("/")[0]] = body
        for user in users:
            assert got.get("%s@%s" % (user, server.host)) == "hello from %s" % user, got
    finally:
        stream.close()


def use_token(server, user, token):
    s = rawxmpp.C2S(server.c2s_port, server.host)
    try:
        assert s.auth("PLAIN", plain(user, token)).status == "success"
    finally:
        s.close()
