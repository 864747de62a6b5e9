"""converse.js 14 with the token-reconnect plugin (clients/converse/token-reconnect.js) in Debian's
headless Chromium, pages kept open while the tests act on the server: Prosody restarted, sessions
closed by the server, credentials_url down, refused tokens, many page loads, two tabs, prebind.
Over WebSocket and BOSH, with PLAIN (token as password) and SASL-HMAC. Counts come from the fake web
app's request log (fake_webapp.py) and Prosody's log; a screenshot of every outcome goes to test-artifacts/browser/.

Waits are shortened with the plugin's settings (FAST: the first reconnect after 0.25-0.5 s, at most
4 s apart), and refusals=2 (the default is 3) so a changed default would show. The plugin's rules
themselves (each back-off delay, every limit, what stops it, time crossing stable_after) are tested
in Node (clients/converse/test/, in milliseconds); here each family of scenarios runs once per
transport and mechanism where those take different paths through converse and Strophe."""
import time

import pytest

import rawxmpp
from browser import Browser
from fake_webapp import FakeWebApp
from harness import Prosody, free_port, stays
from logins import plain


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


@pytest.fixture(scope="module")
def server():
    s = Prosody(keep_dir=True, extra_modules=("auth_events_probe", "admin_shell")).start()
    yield s
    s.keep_dir = False
    s.stop()


@pytest.fixture
def app(server):
    a = FakeWebApp(free_port(), server.host, server.bosh_url, server.ws_url, server.token_secret, server.otp_seed).start()
    yield a
    a.stop()


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
        browser.screenshot(user, "%s-%s-%s" % (name, transport, mech))
    assert time.monotonic() - start < RECONNECT_BOUND
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


def test_prosody_restarted_under_open_pages(server, app):
    users = {c: "rs" + tag(*c) for c in COMBOS}
    with Browser() as b:
        before = open_all(b, app, users)
        mark = server.log_mark()
        issued = {u: len(served(app, u)) for u in users.values()}
        restart(server)
        back_after(server, b, users, mark, "restart")
        for user in users.values():
            assert b.state(user)["loaded"] == before[user]["loaded"]  # no page reload
            assert len(served(app, user)) > issued[user]  # a fresh token for the new login
        delivered(server, b, users.values())


def test_server_closes_the_session(server, app):
    users = {c: "cl" + tag(*c) for c in COMBOS}
    with Browser() as b:
        before = open_all(b, app, users)
        mark = server.log_mark()
        for user in users.values():
            r = server.shell("c2s:close('%s@%s')" % (user, server.host))
            assert r.returncode == 0 and "OK" in r.stdout, (r.stdout, r.stderr)
        back_after(server, b, users, mark, "server-closed")
        for user in users.values():
            assert b.state(user)["loaded"] == before[user]["loaded"]
            assert len(served(app, user)) == 2  # one token per login
        delivered(server, b, users.values())


def test_ten_page_loads_in_one_otp_step(server, app):
    """Every page load without a session fetches a fresh token and logs in; none is taken for a
    replay, though all ten share their OTP (the web app's clock is pinned inside one step). Over
    WebSocket a reload is such a load. Over BOSH converse keeps the session in sessionStorage and a
    reload re-attaches to it (no token, no login): there each load is a new tab, and a reload is
    checked to re-attach. Both clocks are pinned to one second, however long the forty loads take
    on a busy machine: three OTP steps ahead, past otp_skew, so that a pin not in effect refuses
    every login; ahead, not behind, as the replay cache refuses tokens far behind the newest step
    it has seen (the tests before logged in at the real time). The tests after are not refused for
    it: the cache refuses a token only three steps behind its newest (otp_skew + its tolerance of
    two), and the forty loads take more than one step of real time (a minute on this machine)."""
    app.fixed_now = int(time.time()) + 90
    server.pin_token_clock(app.fixed_now)
    users = {c: "pl" + tag(*c) for c in COMBOS}
    try:
        _ten_page_loads(server, app, users)
    finally:
        server.pin_token_clock(None)


def _ten_page_loads(server, app, users):
    with Browser() as b:
        mark = server.log_mark()
        open_all(b, app, users)
        for _ in range(9):
            for (transport, mech), user in users.items():
                if transport == "websocket":
                    b.reload(user)
                else:
                    b.cmd("close", tab=user)
                    b.open(user, page(app, user, transport, mech))
            for user in users.values():
                st = b.wait(user, "roster")
                assert st["reached"], (user, st)
        log = server.log_since(mark)
        for (transport, mech), user in users.items():
            tokens = app.issued_log[user]
            assert len(tokens) == 10 and len(set(tokens)) == 10, (user, tokens)
            assert len({t[:8] for t in tokens}) == 1  # one OTP: the same step
            assert logins(log, user, mech) == 10, user
            b.screenshot(user, "ten-loads-%s-%s" % (transport, mech))
        assert "replayed" not in log and "Failed" not in log
        for (transport, mech), user in users.items():
            if transport == "bosh":
                jid = b.state(user)["jid"]
                b.reload(user)
                st = b.wait(user, "roster")
                assert st["reached"] and st["jid"] == jid, (st, jid)
                assert len(app.issued_log[user]) == 10
        log = server.log_since(mark)
        for (transport, mech), user in users.items():
            assert logins(log, user, mech) == 10, user


def test_two_tabs_of_one_user(server, app):
    users = {c: "tt" + tag(*c) for c in COMBOS}
    with Browser() as b:
        mark = server.log_mark()
        for (transport, mech), user in users.items():
            for n in (1, 2):
                b.open("%s-%d" % (user, n), page(app, user, transport, mech))
        log = None
        for (transport, mech), user in users.items():
            jids = set()
            for n in (1, 2):
                st = b.wait("%s-%d" % (user, n), "roster")
                assert st["reached"], (user, n, st)
                jids.add(st["jid"])
                b.screenshot("%s-%d" % (user, n), "two-tabs-%s-%s-%d" % (transport, mech, n))
            assert len(jids) == 2 and all(j.startswith("%s@%s/" % (user, server.host)) for j in jids), jids
            assert len(served(app, user)) == 2 and len(set(app.issued_log[user])) == 2
            log = server.log_since(mark)
            assert logins(log, user, mech) == 2


REASONS = {"bad": "bad-signature", "replay": "replayed", "expired": "expired", "seed": "otp-mismatch"}


def use_token(server, user, token):
    s = rawxmpp.C2S(server.c2s_port, server.host)
    try:
        assert s.auth("PLAIN", plain(user, token)).status == "success"
    finally:
        s.close()


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


def test_credentials_url_down_then_back(server, app):
    """converse needs new tokens (Prosody restarted) while the web app answers 503, an HTML page, or
    drops the connection; the pages retry with back-off (the plugin says so, with the reason, for
    every failed request) and log in again, without a reload, once the web app is back. A page first
    loaded during the outage logs in too. The outage lasts until every page has failed twice (BOSH
    notices the restart 7-10 s after WebSocket), not a set time."""
    users = {c: "dn" + tag(*c) for c in COMBOS}
    params = {"maxdelay": 8000}
    why = {"503": "HTTP 503", "html": "not JSON", "dropped": "network error"}
    with Browser() as b:
        before = open_all(b, app, users, **params)
        mark = server.log_mark()
        app.down = True
        down_at = time.monotonic()
        restart(server)
        late = "dnlate"
        b.open(late, page(app, late, **params))
        pages = [*users.values(), late]

        def failures(user):
            return [r for r in app.requests if r[0] == user and r[3] != "ok"]
        wait_for(lambda: all(len(failures(u)) >= 2 for u in pages), 40, "every page to fail twice")
        app.down = False
        up_at = time.monotonic()
        back_after(server, b, users, mark, "credentials-down")
        st = b.wait(late, "roster", RECONNECT_BOUND)
        assert st["reached"], st
        b.screenshot(late, "credentials-down-first-load")
        assert logins(server.log_since(mark), late, "SASL-HMAC") == 1
        kinds = set()
        for user in pages:
            if user != late:
                assert b.state(user)["loaded"] == before[user]["loaded"]
            failed = failures(user)
            assert all(down_at <= r[2] <= up_at for r in failed), (user, failed)
            kinds.update(r[3] for r in failed)
            # converse alone asks every 2 s; the plugin waits 0.25-0.5 s, then twice as long each time
            for k, (a, z) in enumerate(zip(failed, failed[1:]), start=2):
                low = 0.5 * min(params["maxdelay"], FAST["delay"] * 2 ** (k - 2)) / 1000
                assert z[2] - a[2] >= low - 0.05, (user, k, z[2] - a[2], low)
            # each failure went through the plugin: one wait, announced with its reason, per request
            console = b.state(user)["console"]
            waits = [c for c in console if "token-reconnect: Could not get a chat sign-in from this web site (" in c]
            assert len(waits) == len(failed), (user, failed, console)
            for r, line in zip(failed, waits):
                assert "(%s); trying again in" % why[r[3]] in line, (user, r, line)
        assert kinds == {"503", "html", "dropped"}, kinds


def test_prebind_attach_reload_and_restart(server, app):
    """authentication: 'prebind': the web app opens and authenticates the BOSH session with
    SASL-HMAC (prebind.py) and converse attaches. A reload re-attaches to the session converse kept
    in sessionStorage; a page load without it (a new tab) calls prebind_url again; after a Prosody
    restart the open page calls prebind_url again and attaches to the new session."""
    user = "prebound"
    with Browser() as b:
        mark = server.log_mark()
        b.open(user, page(app, user, "bosh", auth="prebind"))
        st = b.wait(user, "roster")
        assert st["reached"], st
        b.screenshot(user, "prebind-attached")
        assert logins(server.log_since(mark), user, "SASL-HMAC") == 1 and len(served(app, user)) == 1
        jid = st["jid"]
        b.reload(user)
        st = b.wait(user, "roster")
        assert st["reached"] and st["jid"] == jid, (st, jid)  # the same session
        assert len(served(app, user)) == 1
        b.screenshot(user, "prebind-reloaded")
        b.cmd("close", tab=user)
        b.open(user, page(app, user, "bosh", auth="prebind"))
        st = b.wait(user, "roster")
        assert st["reached"] and st["jid"] != jid, (st, jid)
        assert len(served(app, user)) == 2 and logins(server.log_since(mark), user, "SASL-HMAC") == 2
        b.screenshot(user, "prebind-new-page")
        mark = server.log_mark()
        loaded = b.state(user)["loaded"]
        restart(server)
        wait_for(lambda: logins(server.log_since(mark), user, "SASL-HMAC") == 1, RECONNECT_BOUND, "a new prebind")
        st = b.wait(user, "roster", RECONNECT_BOUND)
        assert st["reached"], st
        assert b.state(user)["loaded"] == loaded and len(served(app, user)) == 3
        b.screenshot(user, "prebind-after-restart")
        delivered(server, b, [user])


def test_prebind_refuses_servers_that_cannot_prove_the_secret(app):
    """prebind.py against the fake web app's impostor endpoints: one that offers SASL-HMAC and
    answers with a made-up server proof, one that offers only PLAIN and legacy login. No session is
    handed out, and the PLAIN-only one is sent nothing of the token."""
    from prebind import PrebindError, prebind
    token = app.mint("imp")["password"]
    jid = "imp@" + app.domain
    with pytest.raises(PrebindError, match="could not prove"):
        prebind(app.url + "impostor-bosh", jid, token)
    assert app.impostor_log[-1] == "response"
    app.impostor_bodies.clear()
    token = app.mint("imp")["password"]
    with pytest.raises(PrebindError, match="does not offer SASL-HMAC"):
        prebind(app.url + "impostor-plain-bosh", jid, token)
    public, mac = token.split(" ")
    assert app.impostor_bodies and not any(public in b or mac in b for b in app.impostor_bodies)


@pytest.mark.parametrize("scenario", ["bad", "replay", "expired", "other-user"])
def test_prebind_with_a_refused_token_hands_out_no_session(server, app, scenario):
    from prebind import PrebindError, prebind
    user = "pb" + scenario.replace("-", "")
    jid = "%s@%s" % (user, server.host)
    token = app.mint(user, app.clock_offset if scenario == "expired" else 0)["password"]
    if scenario == "bad":
        public, mac = token.split(" ")
        token = public + " " + ("A" if mac[0] != "A" else "B") + mac[1:]
    if scenario == "replay":
        use_token(server, user, token)
    if scenario == "other-user":  # a token minted for someone else
        token = app.mint(user + "x")["password"]
    mark = server.log_mark()
    with pytest.raises(PrebindError, match="login refused"):
        prebind(server.bosh_url, jid, token)
    reason = {"bad": "bad-signature", "replay": "replayed", "expired": "expired", "other-user": "bad-signature"}[scenario]
    line = "Failed SASL-HMAC token login for %s from 127.0.0.1: %s" % (jid, reason)
    assert server.wait_log(mark, line).count(line) == 1
    assert "probe: authentication-success user=%s " % user not in server.log_since(mark)


def test_prebind_never_tries_a_token_twice(server, app):
    from prebind import PrebindError, prebind
    token = app.mint("twice")["password"]
    jid = "twice@" + server.host
    assert prebind(server.bosh_url, jid, token)["jid"].startswith(jid + "/")
    with pytest.raises(PrebindError, match="already tried"):
        prebind("http://127.0.0.1:1/http-bind", jid, token)  # refused before any connection


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
    user = "leaver"
    with Browser() as b:
        b.open(user, page(app, user, "websocket", "SASL-HMAC"))
        assert b.wait(user, "roster")["reached"]
        app.slow = 3
        try:
            restart(server)
            wait_for(lambda: len([r for r in app.requests if r[0] == user]) >= 1 and b.state(user)["jid"] is None,
                     10, "the page to notice the restart")
            wait_for(lambda: app.answering[user] >= 1, 10, "the page's credentials request")
            mark = server.log_mark()
            b.cmd("logout", tab=user)
            # the token arrives after the logout; then the page must do nothing with it
            wait_for(lambda: app.answering[user] == 0, 10, "the pending credentials request to be answered")
            stays(lambda: "token login for %s@" % user not in server.log_since(mark)
                  and "Authenticated as %s@" % user not in server.log_since(mark), QUIET,
                  "the page logged in after the user logged out")
        finally:
            app.slow = 0
        assert b.state(user)["jid"] is None
        assert logins(server.log_since(mark), user, "SASL-HMAC") == 0
        b.screenshot(user, "logout-while-reconnecting")


def test_prebind_with_refused_tokens_stops_after_max_attempts(server, app):
    attempts = 3
    user = "pbbad"
    with Browser() as b:
        mark = server.log_mark()
        b.open(user, page(app, user, "bosh", auth="prebind", scenario="bad", attempts=attempts))
        st = b.wait(user, "login-error", 30)
        assert st["reached"], st
        assert "could not open a chat session (%d attempts)" % attempts in st["alert"], st
        b.screenshot(user, "prebind-refused")

        def failed():
            return [r for r in app.requests if r[0] == user and r[3].startswith("prebind failed")]
        stays(lambda: len(failed()) == attempts, QUIET, "another prebind after the page stopped")
        line = "Failed SASL-HMAC token login for %s@%s from 127.0.0.1: bad-signature" % (user, server.host)
        assert server.log_since(mark).count(line) == attempts
