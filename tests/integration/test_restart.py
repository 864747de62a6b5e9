"""The replay cache across restarts of a live Prosody (docs/security.md, "Restarts"): a token used
just before a clean stop (SIGTERM, as systemd and prosodyctl stop do) is still refused after the
next start; after a crash (SIGKILL) none of the tokens used before logs in again (the startup
quarantine), fresh ones do within otp_step × (otp_skew + 1) s; an edited saved state is refused
and handled as a crash, never as a lock-out."""
import datetime
import os
import re
import signal
import time

import pytest

from harness import Prosody
from logins import begin, connect, plain
import sasl_hmac as sh  # clients/slixmpp, on the path by pytest.ini

from prosody_hmac_token import mint as mint_token  # clients/python/src, on the path by pytest.ini

QUARANTINE = re.compile(r"token logins are refused \(unclean-restart\) until (\d\d):(\d\d):(\d\d) UTC")


@pytest.fixture()
def server():
    s = Prosody(keep_dir=True, extra_modules=("auth_events_probe", "admin_shell"))  # the shell pins token_clock
    yield s
    s.keep_dir = False
    s.stop()


def login(server, user, token):
    s = connect(server, "c2s")
    try:
        return s.auth("PLAIN", plain(user, token))
    finally:
        s.close()


@pytest.fixture()
def slack():
    """A server whose tokens stay valid for 5 minutes (otp_skew = 10, the most allowed): the saved
    state is restored at the start by the system clock, which the admin shell cannot pin before it,
    so the token must still be valid by that clock however long the stop and the start take."""
    s = Prosody(keep_dir=True, extra_global="otp_skew = 10")
    yield s
    s.keep_dir = False
    s.stop()


def test_a_token_used_before_a_clean_restart_stays_used(slack):
    server = slack
    server.start()
    token = server.mint("rob@" + server.host)
    assert login(server, "rob", token).status == "success"
    server.stop()
    server.start()
    mark = server.log_mark()
    r = login(server, "rob", token)
    assert (r.status, r.condition) == ("failure", "not-authorized"), r
    line = "Failed PLAIN token login for rob@%s from 127.0.0.1: replayed" % server.host
    assert server.wait_log(mark, line).count(line) == 1
    assert login(server, "rob", server.mint("rob@" + server.host)).status == "success"


def sasl_hmac_login(server, user, token):
    s = connect(server, "c2s")
    try:
        cfm, secret_half, r = begin(s, user, token)
        if r.status != "challenge":
            return r
        return s.response(sh.client_proof(secret_half, cfm, r.data))
    finally:
        s.close()


def crash(server):
    os.kill(server.pid(), signal.SIGKILL)
    server.proc.wait(10)


def quarantine_end(log):
    """The end of the quarantine the start's warning states, as a unix time."""
    m = QUARANTINE.search(log)
    assert m, log
    now = datetime.datetime.now(datetime.timezone.utc)
    end = now.replace(hour=int(m[1]), minute=int(m[2]), second=int(m[3]), microsecond=0)
    if end < now - datetime.timedelta(hours=12):  # past midnight UTC
        end += datetime.timedelta(days=1)
    return end.timestamp()


N = 24


def test_after_a_crash_no_token_used_before_logs_in_again(server):
    """N logins (PLAIN and SASL-HMAC, half the tokens minted a step ahead, as a web app whose clock
    runs within otp_skew ahead does: those stay valid longest), kill -9, restart: every one of them
    is refused, as unclean-restart (temporary-auth-failure), while still inside its lifetime. The
    token clock is pinned to the minting time in both runs, so every token is still inside its
    lifetime however long the logins, the crash and the start take; the quarantine is the start's
    own, from the system clock."""
    server.start()
    used = []
    now = int(time.time())
    server.pin_token_clock(now)
    for i in range(N):
        user = "crash%d" % i
        ahead = i % 2 == 1
        token = server.mint("%s@%s" % (user, server.host), now=now + (30 if ahead else 0))
        how = sasl_hmac_login if i % 3 == 0 else login
        assert how(server, user, token).status == "success", i
        used.append((user, token, how, ahead))
    crash(server)
    mark = server.log_mark()
    server.start()
    server.pin_token_clock(now)
    accepted, conditions = [], set()
    for user, token, how, ahead in used:
        r = how(server, user, token)
        if r.status == "success":
            accepted.append(user)
        elif ahead:  # still valid for a step or more: refused only for the quarantine
            conditions.add(r.condition)
    assert accepted == []
    assert conditions == {"temporary-auth-failure"}
    assert "The last run did not stop cleanly" in server.log_since(mark)
    line = "token login for crash1@%s from 127.0.0.1: unclean-restart" % server.host
    assert line in server.wait_log(mark, line)


STEP = 3  # otp_step: a quarantine of at most STEP × (otp_skew + 1) = 6 s


@pytest.fixture()
def quick():
    s = Prosody(keep_dir=True, extra_global="otp_step = %d" % STEP)
    yield s
    s.keep_dir = False
    s.stop()


def test_fresh_tokens_log_in_again_within_the_stated_bound(quick):
    server = quick

    def token(user, now=None):
        return mint_token("%s@%s" % (user, server.host), server.token_secret, server.otp_seed, now=now, step=STEP)

    server.start()
    assert login(server, "fay", token("fay")).status == "success"
    crash(server)
    mark = server.log_mark()
    before = time.time()
    server.start()
    warning = server.wait_log(mark, "unclean-restart")
    after = time.time()
    end = quarantine_end(warning)
    # the stated end: at most otp_step × (otp_skew + 1) after the start, by Prosody's own clock when
    # it wrote the warning (the start itself can take seconds on a loaded machine) ...
    ahead = re.search(r"unclean-restart\) until [0-9:]+ UTC, (\d+) s from now", warning)
    assert ahead and int(ahead[1]) <= STEP * 2, warning
    # ... and that clock is this one: the end lies within the start's span (whole seconds in the log)
    assert before - 1 <= end <= after + STEP * 2 + 1, (before, after, end)
    # tokens minted before the end are refused, as unclean-restart; from the end on they log in
    tries = []
    deadline = end + 30
    while time.time() < deadline:
        minted = time.time()
        r = login(server, "fay", token("fay", now=int(minted)))
        tries.append((int(minted), r.status, r.condition))
        if r.status == "success":
            break
        time.sleep(0.2)
    assert tries[-1][1] == "success", tries
    assert all(t >= end for t, status, _ in tries if status == "success"), (end, tries)
    assert all(c == "temporary-auth-failure" for t, status, c in tries if status != "success"), tries
    assert all(t < end + STEP for t, status, _ in tries if status != "success"), (end, tries)


def test_an_edited_saved_state_is_refused_and_handled_as_a_crash(server):
    """Item 8: the saved state, edited in Prosody's storage to forget the used tokens, re-enables
    none of them; a high_water far ahead locks nobody out past the quarantine."""
    server.start()
    token = server.mint("gil@" + server.host, now=time.time() + 30)  # valid for over a minute
    assert login(server, "gil", token).status == "success"
    server.stop()
    [saved] = list((server.dir / "data").glob("example*/auth_hmac_replay/state.dat"))
    text = saved.read_text()
    edited = re.sub(r'\["entries"\] = \{[^}]*\}', '["entries"] = {}', text)
    edited = re.sub(r'\["high_water"\] = (\d+)', lambda m: '["high_water"] = %d' % (int(m[1]) + 10), edited)
    assert edited != text and '["entries"] = {}' in edited, text
    saved.write_text(edited)
    mark = server.log_mark()
    server.start()
    r = login(server, "gil", token)
    assert (r.status, r.condition) == ("failure", "temporary-auth-failure"), r
    log = server.wait_log(mark, "unclean-restart")
    assert "MAC does not verify" in log and "handled as unclean" in log, log
    end = quarantine_end(log)
    assert end <= time.time() + 60 + 1
