"""What stops a page and what does not (browser_pages.py says how these tests run): refused tokens
stop after the configured number of attempts, a server that never lets the page in gets a bounded
number of tokens, a refusal followed by a restart still reconnects, a rate-limited credentials_url
is asked again, and a logout while a reconnect waits for credentials does nothing more."""
import threading
import time

from browser import Browser
from browser_pages import (COMBOS, QUIET, REASONS, RECONNECT_BOUND, logins, page,
    restart, served, tag, use_token, wait_for)
from harness import stays


def test_refused_tokens_stop_after_the_configured_number_of_attempts(server, app):
    """The web app hands out forged tokens, tokens used elsewhere already (each a different one),
    tokens minted by a clock an hour behind, or tokens minted with another otp_seed: each page tries
    exactly `refusals` of them, shows why it stopped (the clock and the seed told apart), and asks
    for nothing more. A web app that hands out the same token again (a cached credentials_url) is
    caught by the page before any connection: it is not sent a second time (one combination: the
    transport and mechanism play no part in it). Both clocks are pinned to the start, so that a
    token used at set-up is still refused as replayed (not expired) however long seventeen tabs
    take to open on a busy machine."""
    now = int(time.time())
    app.fixed_now = now
    server.pin_token_clock(now)
    try:
        _refused_tokens(server, app, now)
    finally:
        server.pin_token_clock(None)


def _refused_tokens(server, app, now):
    refusals = 2
    tabs = {}
    prefix = {"bad": "bd", "replay": "rp", "expired": "ex", "seed": "sd", "reused": "ru"}
    for scenario in (*REASONS, "reused"):
        for transport, mech in COMBOS if scenario != "reused" else COMBOS[1:2]:
            user = prefix[scenario] + tag(transport, mech)
            tabs[user] = (scenario, transport, mech)
            if scenario == "replay":
                app.used[user] = [server.mint("%s@%s" % (user, server.host), now=now) for _ in range(refusals)]
                for token in app.used[user]:
                    use_token(server, user, token)
            if scenario == "reused":
                use_token(server, user, app.scenario_credentials(user, "good")["password"])
    assert len(tabs) == len(REASONS) * len(COMBOS) + 1  # a tab per scenario and combination, none overwritten
    with Browser() as b:
        mark = server.log_mark()
        for user, (scenario, transport, mech) in tabs.items():
            b.open(user, page(app, user, transport, mech, scenario=scenario, refusals=refusals))
        for user, (scenario, transport, mech) in tabs.items():
            st = b.wait(user, "login-error", 30)
            assert st["reached"], (user, st)
            if scenario == "reused":
                assert "handed out a sign-in that was already used" in st["alert"], (user, st)
            elif scenario == "expired":  # the server said credentials-expired (PLAIN too: mod_sasl_hmac's)
                assert "disagree on the time" in st["alert"], (user, st)
            elif scenario == "seed":  # not-authorized with otp-mismatch's text, which names otp_seed
                assert "different OTP seeds" in st["alert"] and "disagree on the time" not in st["alert"], (user, st)
            else:  # not-authorized
                assert "refused the sign-in from this web site" in st["alert"], (user, st)
            b.screenshot(user, "refused-%s-%s-%s" % (scenario, transport, mech))

        def counts(user, scenario, mech):
            line = "Failed %s token login for %s@%s from 127.0.0.1: %s" % (
                mech, user, server.host, REASONS.get(scenario, "replayed"))
            log = server.log_since(mark)
            return len(served(app, user)), log.count(line), log.count("token login for %s@" % user)

        expected = {}
        for user, (scenario, transport, mech) in tabs.items():
            # reused: the first copy is refused by Prosody (replayed), the second never sent
            expected[user] = (2, 1, 1) if scenario == "reused" else (refusals, refusals, refusals)
            assert counts(user, scenario, mech) == expected[user], (user, counts(user, scenario, mech))
        # and then nothing more: no credentials requests, no logins
        stays(lambda: all(counts(u, sc, m) == expected[u] for u, (sc, _, m) in tabs.items()), QUIET,
              "a stopped page fetched or sent another token")
        for user in tabs:
            assert b.state(user)["alert"], user


def test_a_server_that_never_lets_the_page_in_gets_a_bounded_number_of_tokens(app):
    """An impostor that cannot prove the secret gets one try; one that answers every <auth/> with
    temporary-auth-failure, or drops the session when the token arrives, gets
    token_reconnect_max_attempts (3 here) tokens, then the page stops and asks for no more. One
    Chromium, a tab for each impostor."""
    attempts = 3
    tabs = {"im" + impostor.split("-")[1]: impostor for impostor in ("impostor-bosh", "impostor-tempfail-bosh",
                                                                     "impostor-drop-bosh")}
    expected = {user: 1 if impostor == "impostor-bosh" else attempts for user, impostor in tabs.items()}
    app.impostor_sessions.clear()
    with Browser() as b:
        for user, impostor in tabs.items():
            b.open(user, page(app, user, "bosh", "SASL-HMAC", bosh="/" + impostor, attempts=attempts))
        for user, impostor in tabs.items():
            st = b.wait(user, "login-error", 30)
            assert st["reached"], (user, st)
            b.screenshot(user, "bounded-%s" % impostor)
            assert len(served(app, user)) == expected[user], user
            if impostor == "impostor-bosh":
                assert "could not prove" in st["alert"], st
            else:
                assert "%d sign-ins in a row got no answer" % attempts in st["alert"], st
        stays(lambda: all(len(served(app, u)) == expected[u] for u in tabs), QUIET,
              "a page fetched another token after it stopped")
        for user, impostor in tabs.items():
            assert app.impostor_sessions["/" + impostor] == expected[user], (impostor, app.impostor_sessions)


def test_a_refusal_then_a_server_restart_still_reconnects(server, app):
    """One refused token, then Prosody goes away and comes back: the page does not take the
    connection failures for refusals (converse keeps the AUTHFAIL cause) and logs in. The server
    stays away until the page has announced a drop (its retry after the refusal, 1.5-3 s later,
    found no server), not a set time."""
    user = "badonce"
    with Browser() as b:
        mark = server.log_mark()
        b.open(user, page(app, user, "websocket", "SASL-HMAC", scenario="badonce", delay=3000, maxdelay=3000))
        server.wait_log(mark, "Failed SASL-HMAC token login for %s@" % user)
        server.stop()

        def said(text):
            return [c for c in b.state(user)["console"] if "token-reconnect: " + text in c]
        wait_for(lambda: said("The connection to the chat server was lost; reconnecting"), RECONNECT_BOUND,
                 "the page to take the failed connection for a drop")
        server.start()
        st = b.wait(user, "roster", RECONNECT_BOUND)
        assert st["reached"], st
        b.screenshot(user, "refusal-then-restart")
        assert logins(server.log_since(mark), user, "SASL-HMAC") == 1
        assert len(said("the server refused a fresh token")) == 1, b.state(user)["console"]


def test_a_rate_limited_credentials_url_is_asked_again(server, app):
    """The web app's per-user rate limit (HTTP 429) is not a lost web session: token-reconnect waits,
    asks again with back-off, and logs in once the limit allows (any other 4xx stops it)."""
    user = "limited"
    app.rate_limit = 0
    with Browser() as b:
        b.open(user, page(app, user))
        wait_for(lambda: len(served(app, user, "rate-limited")) >= 2, 20, "a second request after a 429")
        assert b.state(user)["jid"] is None
        app.rate_limit = 20
        st = b.wait(user, "roster")
        assert st["reached"], st
    assert len(served(app, user)) == 1


def test_logout_while_a_reconnect_waits_for_credentials(server, app):
    """The user logs out while the page's credentials request (after a restart) is still open; the
    token then arrives, and the page does nothing with it. The web app holds the request until the
    test has logged out, not for a set time."""
    user = "leaver"
    with Browser() as b:
        b.open(user, page(app, user, "websocket", "SASL-HMAC"))
        assert b.wait(user, "roster")["reached"]
        app.hold = threading.Event()
        try:
            restart(server)
            wait_for(lambda: app.answering[user] >= 1 and b.state(user)["jid"] is None, RECONNECT_BOUND,
                     "the page to notice the restart and ask for credentials")
            mark = server.log_mark()
            b.cmd("logout", tab=user)
            app.hold.set()  # the token arrives after the logout; then the page must do nothing with it
            wait_for(lambda: app.answering[user] == 0, 10, "the held credentials request to be answered")
            stays(lambda: "token login for %s@" % user not in server.log_since(mark)
                  and "Authenticated as %s@" % user not in server.log_since(mark), QUIET,
                  "the page logged in after the user logged out")
        finally:
            app.hold.set()
            app.hold = None
        assert b.state(user)["jid"] is None
        assert logins(server.log_since(mark), user, "SASL-HMAC") == 0
        b.screenshot(user, "logout-while-reconnecting")
