"""The web site signs the user out (docs/signout.md) while converse.js pages are open
(browser_pages.py says how these tests run): Prosody ends each page's session with the sign-out's
stream error, the page shows "You were signed out of the chat." and fetches credentials once. A web
app that still mints for the user, once the OTP step has moved past the sign-out's, lets the page
back in with that one token; a token of the sign-out's own step is refused, once, and the page stays
out with the message; a credentials_url that answers 403 leaves it out without a login. Never a
loop. Over WebSocket and BOSH, with PLAIN and SASL-HMAC.

Both clocks are pinned (the fake web app's fixed_now, Prosody's token clock, which also judges the
sign-out request's time), never slept through; they only move forward, a step at a time, as the
replay cache refuses tokens far behind the newest step it has seen. The one wait the plugin makes
after a sign-out (token_signout_retry_delay, an OTP step and a second by default) is shortened by
the page's `signoutdelay`: which token logs in is the pinned clocks' doing, not the wait's."""
import threading
import time

import pytest

from browser import Browser
from browser_pages import COMBOS, QUIET, RECONNECT_BOUND, logins, open_all, page_server, served, tag, wait_for
from harness import stays

STEP = 30  # otp_step (the test configuration keeps the default)

# clients/converse/reconnect-rules.js, MESSAGES['signed-out']: what issue 26 asks the user be shown
SIGNED_OUT = "You were signed out of the chat."

# the page's token_signout_retry_delay, in ms
SIGNOUT_DELAY = 300


@pytest.fixture(scope="module")
def server():
    yield from page_server(extra_global="token_signout = true")


class Clocks:
    """The web app's and Prosody's clocks, pinned together at `now`."""

    def __init__(self, server):
        self.server = server
        self.now = int(time.time())

    def pin(self, app):
        app.fixed_now = self.now
        self.server.pin_token_clock(self.now)

    def next_step(self, app):
        """The first second of the next OTP step, plus one, on both clocks."""
        self.now = (self.now // STEP + 1) * STEP + 1
        self.pin(app)


@pytest.fixture(scope="module")
def clocks(server):
    c = Clocks(server)
    yield c
    # not unpinned: the module's last step may be ahead of the real clock, and the replay cache
    # refuses tokens far behind the newest step it has seen; the module's Prosody stops after this


@pytest.fixture
def pinned(clocks, app):
    """Both clocks at the start of a step no earlier test of the module used."""
    clocks.next_step(app)
    return clocks


def refused_logins(log, server, user):
    """Prosody's failed-login lines for `user`, and those whose reason is signed-out."""
    return (log.count("token login for %s@%s from " % (user, server.host)),
            log.count("token login for %s@%s from 127.0.0.1: signed-out\n" % (user, server.host)))


def said(browser, user, text):
    return [c for c in browser.state(user)["console"] if "token-reconnect: " + text in c]


def sign_out_all(server, app, users):
    """The web app signs every user out; Prosody says it ended each one's session."""
    mark = server.log_mark()
    for user in users:
        app.sign_out(user)
    for user in users:
        server.wait_log(mark, "Signed out %s@%s at the request of 127.0.0.1: 1 sessions ended" % (user, server.host))


def open_pages(b, app, users):
    return open_all(b, app, users, signoutdelay=SIGNOUT_DELAY)


def test_a_signed_out_page_shows_the_message_and_does_not_loop(server, app, pinned):
    """The web app signs the user out and still mints for them, within the sign-out's OTP step (the
    clocks stay put): the page shows the message, fetches one token, which Prosody refuses as
    signed-out, and stops there, with the message, asking for nothing more."""
    users = {c: "so" + tag(*c) for c in COMBOS}
    with Browser() as b:
        open_pages(b, app, users)
        issued = {u: len(app.issued_log[u]) for u in users.values()}
        mark = server.log_mark()
        sign_out_all(server, app, users.values())
        for (transport, mech), user in users.items():
            st = b.wait(user, "login-error", RECONNECT_BOUND)
            assert st["reached"], (user, st)
            assert st["alert"] == SIGNED_OUT, (user, st)
            assert st["jid"] is None, (user, st)
            b.screenshot(user, "signed-out-%s-%s" % (transport, mech))

        def counts(user, mech):
            log = server.log_since(mark)
            return len(app.issued_log[user]) - issued[user], refused_logins(log, server, user), logins(log, user, mech)

        # one token fetched after the sign-out, refused once as signed-out, no login
        for (transport, mech), user in users.items():
            assert counts(user, mech) == (1, (1, 1), 0), (user, counts(user, mech), b.state(user)["console"])
        stays(lambda: all(counts(u, m) == (1, (1, 1), 0) for (_, m), u in users.items()), QUIET,
              "a signed-out page fetched or sent another token")
        for user in users.values():
            assert b.state(user)["alert"] == SIGNED_OUT, user
            assert len(said(b, user, SIGNED_OUT)) >= 1, b.state(user)["console"]


def test_a_web_app_that_still_mints_lets_the_page_back_in_an_otp_step_later(server, app, pinned):
    """The page's one credentials request after the sign-out is held until the OTP step has moved
    on (both clocks); the token it then gets, of a later step than the sign-out, logs in, and the
    page shows its roster again without a reload. One token, one login, no refusal."""
    users = {c: "sb" + tag(*c) for c in COMBOS}
    with Browser() as b:
        before = open_pages(b, app, users)
        issued = {u: len(app.issued_log[u]) for u in users.values()}
        mark = server.log_mark()
        app.hold = threading.Event()
        try:
            sign_out_all(server, app, users.values())
            wait_for(lambda: all(app.answering[u] == 1 for u in users.values()), RECONNECT_BOUND,
                     "every page to ask for credentials once after the sign-out")
            for user in users.values():
                assert said(b, user, SIGNED_OUT), b.state(user)["console"]  # shown while it waits
                assert b.state(user)["jid"] is None, user
            pinned.next_step(app)
        finally:
            app.hold.set()
        for (transport, mech), user in users.items():
            st = b.wait(user, "roster", RECONNECT_BOUND)
            assert st["reached"], (user, st)
            assert st["loaded"] == before[user]["loaded"]  # no page reload
            b.screenshot(user, "signed-out-back-in-%s-%s" % (transport, mech))
        log = server.log_since(mark)
        for (transport, mech), user in users.items():
            assert len(app.issued_log[user]) - issued[user] == 1, user
            assert logins(log, user, mech) == 1, (user, log[-3000:])
            assert refused_logins(log, server, user) == (0, 0), user
        app.hold = None


def test_a_credentials_url_that_answers_403_leaves_the_page_out(server, app, pinned):
    """The site locks the account (credentials_url answers 403) and signs the user out: the page
    asks once, gets the 403, and stays out with the sign-out's message; no token, no login."""
    users = {c: "sl" + tag(*c) for c in COMBOS}
    with Browser() as b:
        open_pages(b, app, users)
        issued = {u: len(app.issued_log[u]) for u in users.values()}
        mark = server.log_mark()
        app.locked.update(users.values())
        sign_out_all(server, app, users.values())
        for (transport, mech), user in users.items():
            st = b.wait(user, "login-error", RECONNECT_BOUND)
            assert st["reached"], (user, st)
            assert st["alert"] == SIGNED_OUT, (user, st)
            b.screenshot(user, "signed-out-locked-%s-%s" % (transport, mech))

        def counts(user, mech):
            log = server.log_since(mark)
            return (len(served(app, user, "403")), len(app.issued_log[user]) - issued[user],
                    log.count("token login for %s@" % user), logins(log, user, mech))

        for (transport, mech), user in users.items():
            assert counts(user, mech) == (1, 0, 0, 0), (user, counts(user, mech), b.state(user)["console"])
        stays(lambda: all(counts(u, m) == (1, 0, 0, 0) for (_, m), u in users.items()), QUIET,
              "a page left out asked again")
        for user in users.values():
            assert b.state(user)["alert"] == SIGNED_OUT, user
