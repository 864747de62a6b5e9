"""Prosody 13 fires authentication-attempt before any SASL mechanism runs (what mod_limit_auth
hooks to throttle); a refusal there stops our mechanisms too, before they see the token. 0.12 has
no such event: the same configuration logs in (asserted, so a change would show)."""
import pytest

import rawxmpp
from harness import Prosody, prosody_version
from logins import begin, plain


@pytest.fixture(scope="module")
def refusing():
    s = Prosody(extra_global="probe_refuse_attempts = true").start()
    yield s
    s.stop()


@pytest.mark.parametrize("mech", ["PLAIN", "X-TOKEN", "SASL-HMAC"])
def test_authentication_attempt_refusal_stops_our_mechanisms(refusing, mech):
    token = refusing.mint("hal@" + refusing.host)
    mark = refusing.log_mark()
    s = rawxmpp.C2S(refusing.c2s_port, refusing.host)
    try:
        r = begin(s, "hal", token)[2] if mech == "SASL-HMAC" else s.auth(mech, plain("hal", token))
    finally:
        s.close()
    log = refusing.log_since(mark)
    if prosody_version() >= (13,):
        assert (r.status, r.condition) == ("failure", "policy-violation"), r
        assert "probe: authentication-attempt refused" in log
        assert "token login" not in log and "Authenticated as" not in log
    else:
        assert r.status in ("success", "challenge"), r
