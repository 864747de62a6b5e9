"""Where the page's sign-in comes from (browser_pages.py says how these tests run): a credentials_url
that is down and then back, and prebind (the web app opens the BOSH session and converse attaches),
with refused tokens and impostor servers."""
import time

import pytest

from browser import Browser
from browser_pages import (COMBOS, FAST, QUIET, RECONNECT_BOUND, back_after, delivered, logins, open_all,
    page, restart, served, tag, use_token, wait_for)
from harness import stays


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
    SASL-HMAC (prosody_hmac_token.prebind) and converse attaches. A reload re-attaches to the session converse kept
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


@pytest.mark.parametrize("lang", ["node", "php"])
def test_prebind_by_the_node_and_php_libraries_attaches(server, app, lang):
    """The web app opens the session with the Node or the PHP library's prebind (in its own
    process, prebind_runners.py) and converse.js attaches to it and shows the roster; a reload
    re-attaches to the same session."""
    app.prebind_lang = lang
    user = "prebound" + lang
    with Browser() as b:
        mark = server.log_mark()
        b.open(user, page(app, user, "bosh", auth="prebind"))
        st = b.wait(user, "roster")
        assert st["reached"], st
        b.screenshot(user, "prebind-%s-attached" % lang)
        assert logins(server.log_since(mark), user, "SASL-HMAC") == 1 and len(served(app, user)) == 1
        assert [(lang_, s["jid"]) for lang_, s in app.prebound] == [(lang, st["jid"])], app.prebound
        b.reload(user)
        st = b.wait(user, "roster")
        assert st["reached"] and st["jid"] == app.prebound[0][1]["jid"], st
        assert len(app.prebound) == 1 and logins(server.log_since(mark), user, "SASL-HMAC") == 1


def test_prebind_refuses_servers_that_cannot_prove_the_secret(app):
    """The Python library's prebind against the fake web app's impostor endpoints: one that offers SASL-HMAC and
    answers with a made-up server proof, one that offers only PLAIN and legacy login. No session is
    handed out, and the PLAIN-only one is sent nothing of the token."""
    from prosody_hmac_token import PrebindError, prebind
    token = app.mint("imp")["password"]
    jid = "imp@" + app.domain
    with pytest.raises(PrebindError, match="could not prove") as info:
        prebind(app.url + "impostor-bosh", jid, token)
    assert info.value.kind == "unproven"
    assert app.impostor_log[-1] == "response"
    app.impostor_bodies.clear()
    token = app.mint("imp")["password"]
    with pytest.raises(PrebindError, match="does not offer SASL-HMAC") as info:
        prebind(app.url + "impostor-plain-bosh", jid, token)
    assert info.value.kind == "unproven"
    public, mac = token.split(" ")
    assert app.impostor_bodies and not any(public in b or mac in b for b in app.impostor_bodies)


@pytest.mark.parametrize("scenario", ["bad", "replay", "expired", "other-user"])
def test_prebind_with_a_refused_token_hands_out_no_session(server, app, scenario):
    from prosody_hmac_token import PrebindError, prebind
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
    with pytest.raises(PrebindError, match="refused the login") as info:
        prebind(server.bosh_url, jid, token)
    condition = "credentials-expired" if scenario == "expired" else "not-authorized"
    assert (info.value.kind, info.value.condition) == ("refused", condition)
    reason = {"bad": "bad-signature", "replay": "replayed", "expired": "expired", "other-user": "bad-signature"}[scenario]
    line = "Failed SASL-HMAC token login for %s from 127.0.0.1: %s" % (jid, reason)
    assert server.wait_log(mark, line).count(line) == 1
    assert "probe: authentication-success user=%s " % user not in server.log_since(mark)


def test_prebind_never_tries_a_token_twice(server, app):
    from prosody_hmac_token import TokenError, prebind
    token = app.mint("twice")["password"]
    jid = "twice@" + server.host
    assert prebind(server.bosh_url, jid, token)["jid"].startswith(jid + "/")
    with pytest.raises(TokenError, match="tried before") as info:
        prebind("http://127.0.0.1:1/http-bind", jid, token)  # refused before any connection
    assert info.value.kind == "token"


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
