"""The replay cache at its cap, live (benches/cache_run.py --cap shows the same at full speed): new
token logins fail closed with temporary-auth-failure, one warning for many refusals, forgeries and
replays are still told apart, sessions already open carry on, and logins work again once the
entries expire. otp_step = 2 makes an entry live at most 2 × (2 × 1 + 1 + 2) = 10 s."""
import re
import sys
import time
from pathlib import Path

import pytest

from harness import Prosody
from test_live import connect, flip_mac, plain
from test_sasl_hmac import begin
import sasl_hmac as sh  # clients/slixmpp, put on the path by test_sasl_hmac's xmpp_clients

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "clients" / "python"))
from prosody_hmac_token import mint as mint_token  # noqa: E402

CAP = 4
STEP = 2
WARNING = "Replay cache full: refusing token logins"
FIRST_WARNING = []  # when the first test saw the warning (monotonic seconds)
LAST_ACCEPTED = [0.0]  # when the last token login was let in (monotonic seconds)
ENTRY_LIFE = STEP * (2 * 1 + 1 + 2)  # otp_step × (2 × otp_skew + 1 + the clock tolerance)


@pytest.fixture(scope="module")
def server():
    s = Prosody(replay_cache_size=CAP, extra_global="otp_step = %d" % STEP).start()
    yield s
    s.stop()


def token(server, user):
    return mint_token("%s@%s" % (user, server.host), server.token_secret, server.otp_seed, step=STEP)


def plain_login(server, user, tok, keep=False):
    s = connect(server, "c2s")
    r = s.auth("PLAIN", plain(user, tok))
    if r.status == "success":
        LAST_ACCEPTED[0] = time.monotonic()
    if keep and r.status == "success":
        s.bind()
        return r, s
    s.close()
    return r, None


def sasl_hmac_login(server, user, tok):
    s = connect(server, "c2s")
    try:
        cfm, secret_half, r = begin(s, user, tok)
        if r.status != "challenge":
            return r
        r = s.response(sh.client_proof(secret_half, cfm, r.data))
        if r.status == "success":
            LAST_ACCEPTED[0] = time.monotonic()
        return r
    finally:
        s.close()


def fill(server):
    """Waits until every entry has expired, then fills the cache: returns an open session and a
    used token."""
    time.sleep(max(0.0, LAST_ACCEPTED[0] + ENTRY_LIFE + 1 - time.monotonic()))
    r, s = plain_login(server, "opener", token(server, "opener"), keep=True)
    assert r.status == "success", r
    used = None
    for i in range(CAP - 1):
        used = token(server, "filler%d" % i)
        r, _ = plain_login(server, "filler%d" % i, used)
        assert r.status == "success", (i, r)
    return s, used


def test_at_the_cap_logins_fail_closed_and_one_warning_is_logged(server):
    mark = server.log_mark()
    session, used = fill(server)
    try:
        refusals = []
        for i in range(6):
            r, _ = plain_login(server, "late%d" % i, token(server, "late%d" % i))
            refusals.append((r.status, r.condition))
        r = sasl_hmac_login(server, "late-hmac", token(server, "late-hmac"))
        refusals.append((r.status, r.condition))
        assert refusals == [("failure", "temporary-auth-failure")] * 7
        # a forgery never reaches the cache: it is what it always is
        r, _ = plain_login(server, "forger", flip_mac(token(server, "forger")))
        assert (r.status, r.condition) == ("failure", "not-authorized"), r
        # a used token is still a replay, not "full"
        r, _ = plain_login(server, "filler%d" % (CAP - 2), used)
        assert (r.status, r.condition) == ("failure", "not-authorized"), r
        # someone else's fresh token is still refused as such (its signature is not over this name)
        r, _ = plain_login(server, "impostor", token(server, "victim"))
        assert (r.status, r.condition) == ("failure", "not-authorized"), r
        # an expired token is still expired (30 steps old)
        old = mint_token("late@" + server.host, server.token_secret, server.otp_seed, step=STEP,
                         now=int(time.time()) - 30 * STEP)
        r, _ = plain_login(server, "late", old)
        assert (r.status, r.condition) == ("failure", "credentials-expired"), r
        # the session from before carries on
        assert session.ping()
    finally:
        session.close()
    log = server.log_since(mark)
    assert log.count(WARNING) == 1, log
    FIRST_WARNING.append(time.monotonic())
    assert len(re.findall(r"Failed (PLAIN|SASL-HMAC) token login for late[-\w]*@\S+ from \S+: cache-full", log)) == 7, log
    for user, reason in (("forger", "bad-signature"), ("filler%d" % (CAP - 2), "replayed"), ("impostor", "bad-signature"),
                         ("late", "expired")):
        assert "Failed PLAIN token login for %s@%s from 127.0.0.1: %s" % (user, server.host, reason) in log, (user, log)


def test_logins_work_again_once_the_entries_expire(server):
    fill(server)
    filled_at = time.monotonic()
    r, _ = plain_login(server, "waiting", token(server, "waiting"))
    assert (r.status, r.condition) == ("failure", "temporary-auth-failure"), r
    while True:
        r, _ = plain_login(server, "waiting", token(server, "waiting"))
        if r.status == "success":
            break
        assert (r.status, r.condition) == ("failure", "temporary-auth-failure"), r
        assert time.monotonic() - filled_at < ENTRY_LIFE + 5, "still full: entries live at most %d s" % ENTRY_LIFE
        time.sleep(0.25)
    # once the fill's last entry has gone, only the waiting user's is live
    time.sleep(max(0.0, filled_at + ENTRY_LIFE + 1 - time.monotonic()))
    assert sasl_hmac_login(server, "again", token(server, "again")).status == "success"
    for i in range(CAP - 2):
        r, _ = plain_login(server, "again%d" % i, token(server, "again%d" % i))
        assert r.status == "success", (i, r)
    r, _ = plain_login(server, "over", token(server, "over"))
    assert (r.status, r.condition) == ("failure", "temporary-auth-failure"), r


def test_the_warning_repeats_at_most_once_a_minute(server):
    """A later fill warns again only when a minute has passed since the first warning."""
    mark = server.log_mark()
    fill(server)
    r, _ = plain_login(server, "x", token(server, "x"))
    assert r.condition == "temporary-auth-failure"
    log = server.log_since(mark)
    assert "Failed PLAIN token login for x@%s from 127.0.0.1: cache-full" % server.host in log
    since_first = time.monotonic() - FIRST_WARNING[0]
    if since_first < 59:
        assert log.count(WARNING) == 0, (since_first, log)
    elif since_first > 61:
        assert log.count(WARNING) == 1, (since_first, log)
