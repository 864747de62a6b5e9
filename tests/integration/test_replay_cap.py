"""The replay cache at its cap, live (benches/cache_run.py --cap shows the same at full speed): new
token logins fail closed with temporary-auth-failure, forgeries, replays, impostors and expired
tokens are still told apart, sessions already open carry on, logins work again once the entries
expire, and the warning comes at most once a minute.

otp_step = 3 with the default otp_skew of 1: a token used as soon as it is minted leaves the cache
9-12 s later (its entry goes at the start of the fourth step after its own), and none stays more
than ENTRY_LIFE."""
import sys
import time
from pathlib import Path

import pytest

from harness import Prosody
from logins import begin, connect, flip_mac, plain
import sasl_hmac as sh  # clients/slixmpp, on the path by conftest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "clients" / "python" / "src"))
from prosody_hmac_token import mint as mint_token  # noqa: E402

CAP = 4
STEP = 3
ENTRY_LIFE = STEP * (2 * 1 + 1 + 2)  # otp_step × (2 × otp_skew + 1 + the clock tolerance): 15 s
SHORTEST_LIFE = STEP * (1 + 2)  # a token used at the end of its own step: 9 s
WARNING = "Replay cache full: refusing token logins"


class Cache:
    """One Prosody with a small cap, and when its last entry was made."""

    def __init__(self, cap):
        self.server = Prosody(replay_cache_size=cap, extra_global="otp_step = %d" % STEP).start()
        self.cap = cap
        self.last_accepted = 0.0

    def token(self, user, **kw):
        return mint_token("%s@%s" % (user, self.server.host), self.server.token_secret, self.server.otp_seed,
                          step=STEP, **kw)

    def plain(self, user, tok, keep=False):
        s = connect(self.server, "c2s")
        r = s.auth("PLAIN", plain(user, tok))
        if r.status == "success":
            self.last_accepted = time.monotonic()
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
                self.last_accepted = time.monotonic()
            return r
        finally:
            s.close()

    def wait_until_empty(self):
        time.sleep(max(0.0, self.last_accepted + ENTRY_LIFE + 1 - time.monotonic()))

    def fill(self, keep_first=False):
        """From empty, fills the cache: (the first login's open session if kept, a used token,
        when the fill began)."""
        self.wait_until_empty()
        began = time.monotonic()
        r, session = self.plain("opener", self.token("opener"), keep=keep_first)
        assert r.status == "success", r
        used = None
        for i in range(self.cap - 1):
            used = self.token("filler%d" % i)
            r, _ = self.plain("filler%d" % i, used)
            assert r.status == "success", (i, r)
        return session, used, began


@pytest.fixture(scope="module")
def cache():
    c = Cache(CAP)
    yield c
    c.server.stop()


def test_at_the_cap_logins_fail_closed_and_refusals_stay_what_they_are(cache):
    server = cache.server
    mark = server.log_mark()
    session, used, began = cache.fill(keep_first=True)
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
        r, _ = cache.plain("stale", cache.token("stale", now=int(time.time()) - 30 * STEP))
        assert (r.status, r.condition) == ("failure", "credentials-expired"), r
        # none of the fill's entries had expired yet: the refusals above were all at the cap
        assert time.monotonic() - began < SHORTEST_LIFE, "too slow to show anything: %.1f s" % (time.monotonic() - began)
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
                         ("impostor", "bad-signature"), ("stale", "expired")):
        assert "Failed PLAIN token login for %s@%s from 127.0.0.1: %s" % (user, host, reason) in log, (user, log)


def test_logins_work_again_once_the_entries_expire(cache):
    _, _, began = cache.fill()
    r, _ = cache.plain("waiting", cache.token("waiting"))
    assert (r.status, r.condition) == ("failure", "temporary-auth-failure"), r
    # the oldest entries go first, each step's at once
    while True:
        r, _ = cache.plain("waiting", cache.token("waiting"))
        if r.status == "success":
            break
        assert (r.status, r.condition) == ("failure", "temporary-auth-failure"), r
        assert time.monotonic() - began < ENTRY_LIFE + 5, "still full: entries live at most %d s" % ENTRY_LIFE
        time.sleep(0.25)
    # once every entry has gone, a whole cap's worth is let in again, and not one more
    cache.wait_until_empty()
    began = time.monotonic()
    assert cache.sasl_hmac("again", cache.token("again")).status == "success"
    for i in range(CAP - 1):
        r, _ = cache.plain("again%d" % i, cache.token("again%d" % i))
        assert r.status == "success", (i, r)
    r, _ = cache.plain("over", cache.token("over"))
    assert (r.status, r.condition) == ("failure", "temporary-auth-failure"), r
    assert time.monotonic() - began < SHORTEST_LIFE, "too slow to show anything"


def test_the_warning_comes_at_most_once_a_minute():
    c = Cache(1)  # its own Prosody: the minute starts with its first warning
    try:
        mark = c.server.log_mark()
        c.fill()
        r, _ = c.plain("first", c.token("first"))
        assert r.condition == "temporary-auth-failure", r
        warned = time.monotonic()
        assert c.server.wait_log(mark, WARNING).count(WARNING) == 1
        # full again within the minute: refused, logged, no second warning
        c.fill()
        r, _ = c.plain("second", c.token("second"))
        assert r.condition == "temporary-auth-failure", r
        assert time.monotonic() - warned < 59, "too slow to show anything"
        log = c.server.wait_log(mark, "token login for second@")
        assert "Failed PLAIN token login for second@%s from 127.0.0.1: cache-full" % c.server.host in log, log
        assert log.count(WARNING) == 1, log
        # a minute after the warning, full again: one more warning
        time.sleep(max(0.0, warned + 61 - time.monotonic()))
        c.fill()
        r, _ = c.plain("third", c.token("third"))
        assert r.condition == "temporary-auth-failure", r
        log = c.server.wait_log(mark, "token login for third@")
        assert log.count(WARNING) == 2, log
    finally:
        c.server.stop()
