"""Open pages through what the server does to their sessions (browser_pages.py says how these tests
run): Prosody restarted under them, their sessions closed by the server, ten page loads within one
OTP step, two tabs of one user. Each page comes back without a reload, with one fresh token per login."""
import time

from browser import Browser
from browser_pages import (COMBOS, back_after, delivered, logins, open_all, page,
    restart, served, tag)


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
