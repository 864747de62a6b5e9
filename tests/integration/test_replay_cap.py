"""The replay cache at its cap, live (benches/cache_run.py --cap shows the same at full speed): new
token logins fail closed with temporary-auth-failure, forgeries, replays, impostors and expired
tokens are still told apart, sessions already open carry on, logins work again once the entries
expire, and the warning comes at most once a minute.

Both of mod_sasl_hmac's clocks are pinned (through the admin shell) and moved by the test, never
waited for: the token clock (the OTP window and the replay cache's steps) and the failure clock
(the once-a-minute warning). The token clock starts three OTP steps ahead of the real one, past
otp_skew, so a pin that did not take would refuse every token, and only ever moves forward (the
replay cache refuses tokens far behind the newest step it has seen).

otp_step = 3 with the default otp_skew of 1: a token's entry expires otp_skew + 1 steps after the
token's own step and is dropped CLOCK_BACK_TOLERANCE (2) steps after that, so a token used in its
own step leaves the cache at the start of the fourth step after it, and none stays more than
ENTRY_LIFE."""
import time

import pytest

from harness import Prosody
from logins import begin, connect, flip_mac, plain
import sasl_hmac as sh  # clients/slixmpp, on the path by pytest.ini

from prosody_hmac_token import mint as mint_token  # clients/python/src, on the path by pytest.ini

CAP = 4
STEP = 3
SKEW = 1
TOLERANCE = 2  # src/replay.rs CLOCK_BACK_TOLERANCE
ENTRY_LIFE = STEP * (2 * SKEW + 1 + TOLERANCE)  # otp_step × (2 × otp_skew + 1 + the clock tolerance): 15 s
GONE_AFTER = STEP * (SKEW + 1 + TOLERANCE)  # a token used in its own step leaves this long after the step began
WARNING = "Replay cache full: refusing token logins"


class Cache:
    """One Prosody with a small cap, its pinned token clock, and the last step an entry was made in."""

    def __init__(self, cap):
        self.server = Prosody(replay_cache_size=cap, extra_global="otp_step = %d" % STEP,
                              extra_modules=("auth_events_probe", "admin_shell")).start()
        self.cap = cap
        self.now = None
        self.last_accepted = None
        self.at((int(time.time()) // STEP + 3) * STEP)

    def at(self, now):
        """Pins the token clock at `now` (the start of a step), never behind where it was."""
        assert now % STEP == 0 and (self.now is None or now >= self.now), (now, self.now)
        self.server.pin_token_clock(now)
        self.now = now

    def token(self, user, **kw):
        kw.setdefault("now", self.now)
        return mint_token("%s@%s" % (user, self.server.host), self.server.token_secret, self.server.otp_seed,
                          step=STEP, **kw)

    def plain(self, user, tok, keep=False):
        s = connect(self.server, "c2s")
        r = s.auth("PLAIN", plain(user, tok))
        if r.status == "success":
            self.last_accepted = self.now
            if keep:
                s.bind()
                return r, s
        s.close()
        return r, None

    def sasl_hmac(self, user, tok):
        s = connect(self.server, "c2s")
        try:
            cfm, secret_half, r = begin(s, user, tok)
            if r.status != "challenge":
                return r
            r = s.response(sh.client_proof(secret_half, cfm, r.data))
            if r.status == "success":
                self.last_accepted = self.now
            return r
        finally:
            s.close()

    def empty(self):
        """Moves the token clock to where every entry has left the cache: ENTRY_LIFE after the
        step of the last accepted token, which outlives any of them."""
        if self.last_accepted is not None:
            self.at(max(self.now, self.last_accepted + ENTRY_LIFE))

    def fill(self, keep_first=False):
        """From empty, fills the cache at one pinned time: (the first login's open session if kept,
        the first token, the last token)."""
        self.empty()
        first = self.token("opener")
        r, session = self.plain("opener", first, keep=keep_first)
        assert r.status == "success", r
        used = None
        for i in range(self.cap - 1):
            used = self.token("filler%d" % i)
            r, _ = self.plain("filler%d" % i, used)
            assert r.status == "success", (i, r)
        return session, first, used


@pytest.fixture(scope="module")
def cache():
    c = Cache(CAP)
    yield c
    c.server.stop()


def test_at_the_cap_logins_fail_closed_and_refusals_stay_what_they_are(cache):
    server = cache.server
    mark = server.log_mark()
    session, first, used = cache.fill(keep_first=True)
    try:
        refusals = []
        for i in range(3):
            r, _ = cache.plain("late%d" % i, cache.token("late%d" % i))
            refusals.append((r.status, r.condition))
        r = cache.sasl_hmac("late-hmac", cache.token("late-hmac"))
        refusals.append((r.status, r.condition))
        assert refusals == [("failure", "temporary-auth-failure")] * 4
        # a forgery never reaches the cache: it is what it always is
        r, _ = cache.plain("forger", flip_mac(cache.token("forger")))
        assert (r.status, r.condition) == ("failure", "not-authorized"), r
        # a used token is still a replay, not "full"
        r, _ = cache.plain("filler%d" % (CAP - 2), used)
        assert (r.status, r.condition) == ("failure", "not-authorized"), r
        # someone else's fresh token is refused as such (its signature is not over this name)
        r, _ = cache.plain("impostor", cache.token("victim"))
        assert (r.status, r.condition) == ("failure", "not-authorized"), r
        # an expired token is still expired (30 steps old)
        r, _ = cache.plain("stale", cache.token("stale", now=cache.now - 30 * STEP))
        assert (r.status, r.condition) == ("failure", "credentials-expired"), r
        # none of the fill's entries had expired yet (the oldest would go first): the refusals above
        # were all at the cap
        r, _ = cache.plain("opener", first)
        assert (r.status, r.condition) == ("failure", "not-authorized"), r
        # the session from before carries on
        assert session.ping()
    finally:
        session.close()
    log = server.log_since(mark)
    assert log.count(WARNING) == 1, log
    host = server.host
    for user in ("late0", "late1", "late2"):
        assert "Failed PLAIN token login for %s@%s from 127.0.0.1: cache-full" % (user, host) in log, (user, log)
    assert "Failed SASL-HMAC token login for late-hmac@%s from 127.0.0.1: cache-full" % host in log, log
    for user, reason in (("forger", "bad-signature"), ("filler%d" % (CAP - 2), "replayed"),
                         ("impostor", "bad-signature"), ("stale", "expired"), ("opener", "replayed")):
        assert "Failed PLAIN token login for %s@%s from 127.0.0.1: %s" % (user, host, reason) in log, (user, log)


def test_logins_work_again_once_the_entries_expire(cache):
    cache.empty()
    began = cache.now
    # the oldest entry one step before the rest
    r, _ = cache.plain("opener", cache.token("opener"))
    assert r.status == "success", r
    cache.at(began + STEP)
    for i in range(CAP - 1):
        r, _ = cache.plain("filler%d" % i, cache.token("filler%d" % i))
        assert r.status == "success", (i, r)
    r, _ = cache.plain("waiting", cache.token("waiting"))
    assert (r.status, r.condition) == ("failure", "temporary-auth-failure"), r
    # full until the oldest entry's step has gone, then each step's entries go at once
    for now in range(began + 2 * STEP, began + GONE_AFTER, STEP):
        cache.at(now)
        r, _ = cache.plain("waiting", cache.token("waiting"))
        assert (r.status, r.condition) == ("failure", "temporary-auth-failure"), (now - began, r)
    cache.at(began + GONE_AFTER)
    assert GONE_AFTER <= ENTRY_LIFE, "entries live at most %d s" % ENTRY_LIFE
    r, _ = cache.plain("waiting", cache.token("waiting"))
    assert r.status == "success", r  # the opener's place
    r, _ = cache.plain("waiting2", cache.token("waiting2"))
    assert (r.status, r.condition) == ("failure", "temporary-auth-failure"), r  # the fillers' step is still live
    cache.at(began + STEP + GONE_AFTER)
    r, _ = cache.plain("waiting2", cache.token("waiting2"))
    assert r.status == "success", r
    # once every entry has gone, a whole cap's worth is let in again, and not one more
    cache.empty()
    assert cache.sasl_hmac("again", cache.token("again")).status == "success"
    for i in range(CAP - 1):
        r, _ = cache.plain("again%d" % i, cache.token("again%d" % i))
        assert r.status == "success", (i, r)
    r, _ = cache.plain("over", cache.token("over"))
    assert (r.status, r.condition) == ("failure", "temporary-auth-failure"), r


def test_the_warning_comes_at_most_once_a_minute():
    c = Cache(1)  # its own Prosody: the minute starts with its first warning
    try:
        mark = c.server.log_mark()
        warned = int(time.time())
        c.server.pin_failure_clock(warned)
        c.fill()
        r, _ = c.plain("first", c.token("first"))
        assert r.condition == "temporary-auth-failure", r
        assert c.server.wait_log(mark, WARNING).count(WARNING) == 1
        # full again 59 s later: refused, logged, no second warning
        c.server.pin_failure_clock(warned + 59)
        c.fill()
        r, _ = c.plain("second", c.token("second"))
        assert r.condition == "temporary-auth-failure", r
        log = c.server.wait_log(mark, "token login for second@")
        assert "Failed PLAIN token login for second@%s from 127.0.0.1: cache-full" % c.server.host in log, log
        assert log.count(WARNING) == 1, log
        # a minute after the warning, full again: one more warning
        c.server.pin_failure_clock(warned + 60)
        c.fill()
        r, _ = c.plain("third", c.token("third"))
        assert r.condition == "temporary-auth-failure", r
        log = c.server.wait_log(mark, "token login for third@")
        assert log.count(WARNING) == 2, log
    finally:
        c.server.stop()
