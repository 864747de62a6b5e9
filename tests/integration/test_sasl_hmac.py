"""SASL-HMAC against a live Prosody: slixmpp with the shipped mechanism, and raw clients for every
way an exchange can go wrong."""
import os
import time

import pytest

import xmpp_clients
from impostor import Impostor
from logins import TRANSPORTS, begin, connect, mint

import sasl_hmac as sh  # clients/slixmpp, put on the path by xmpp_clients


def test_slixmpp_logs_in_with_sasl_hmac(prosody):
    jid = "alice@" + prosody.host
    status, bound = xmpp_clients.login(jid, mint(prosody, jid), prosody.c2s_port, "SASL-HMAC")
    assert status == "bound", bound


@pytest.mark.parametrize("mode", ["wrong-proof", "early-empty-success", "early-random-success"])
def test_slixmpp_refuses_a_server_that_cannot_prove_the_secret(prosody, mode):
    """A <success/> that does not carry (or follow) a valid server proof fails the login: slixmpp
    disconnects without treating the session as authenticated or restarting the stream."""
    fake = Impostor(mode)
    try:
        jid = "alice@" + prosody.host
        token = mint(prosody, jid)
        status, detail = xmpp_clients.login(jid, token, fake.port, "SASL-HMAC", timeout=10, starttls=False)
        assert status == "disconnected", (status, detail)
        assert detail is None, "slixmpp must not treat the exchange as successful"
        fake.thread.join(5)
        assert not fake.restarted, "the client restarted the stream for an unproven server"
        assert token.split(" ")[1].encode() not in fake.received
    finally:
        fake.close()


def test_slixmpp_pinned_to_sasl_hmac_sends_a_plain_only_server_nothing(prosody):
    fake = Impostor("plain-only")
    try:
        jid = "alice@" + prosody.host
        token = mint(prosody, jid)
        status, _ = xmpp_clients.login(jid, token, fake.port, "SASL-HMAC", timeout=10, starttls=False)
        assert status == "failed"
        fake.thread.join(5)
        assert b"<auth" not in fake.received, fake.received
        assert token.split(" ")[1].encode() not in fake.received
    finally:
        fake.close()


def test_slixmpp_tries_a_token_once(prosody):
    """After any attempt (here one against an impostor) the token is not sent again, not even to
    the genuine server: a recorded server proof could answer a second attempt."""
    jid = "alice@" + prosody.host
    token = mint(prosody, jid)
    fake = Impostor("wrong-proof")
    try:
        assert xmpp_clients.login(jid, token, fake.port, "SASL-HMAC", timeout=10, starttls=False)[0] == "disconnected"
    finally:
        fake.close()
    mark = prosody.log_mark()
    assert xmpp_clients.login(jid, token, prosody.c2s_port, "SASL-HMAC") == ("failed", "no-mechanism")
    log = prosody.log_since(mark)
    assert "<auth" not in log and "token login" not in log, log
    assert xmpp_clients.login(jid, mint(prosody, jid), prosody.c2s_port, "SASL-HMAC")[0] == "bound"


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_good_exchange_proves_both_sides_and_binds(prosody, transport):
    s = connect(prosody, transport)
    try:
        assert "SASL-HMAC" in s.mechanisms()
        cfm, secret_half, r = begin(s, "bob", mint(prosody, "bob@" + prosody.host))
        assert r.status == "challenge" and len(r.data) == 24, r
        r2 = s.response(sh.client_proof(secret_half, cfm, r.data))
        assert r2.status == "success", r2
        assert r2.data == sh.server_proof(secret_half, cfm, r.data)
        assert s.bind() == "bob@%s/test" % prosody.host
    finally:
        s.close()


def refused(prosody, transport, build, condition, reason, user="carol"):
    """Runs build(stream) -> Result, expects failure `condition` and one log line `reason`, then
    a valid SASL-HMAC login on the same stream."""
    mark = prosody.log_mark()
    s = connect(prosody, transport)
    try:
        r = build(s)
        assert (r.status, r.condition) == ("failure", condition), r
        if reason:
            line = "Failed SASL-HMAC token login for %s@%s from 127.0.0.1: %s" % (user, prosody.host, reason)
            assert prosody.wait_log(mark, line).count(line) == 1
        cfm, secret_half, r = begin(s, "carol", mint(prosody, "carol@" + prosody.host))
        assert r.status == "challenge", r
        assert s.response(sh.client_proof(secret_half, cfm, r.data)).status == "success"
    finally:
        s.close()


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_wrong_proof(prosody, transport):
    def build(s):
        cfm, secret_half, r = begin(s, "carol", mint(prosody, "carol@" + prosody.host))
        bad = bytearray(sh.client_proof(secret_half, cfm, r.data))
        bad[-1] ^= 1
        return s.response(bytes(bad))
    refused(prosody, transport, build, "not-authorized", "bad-signature")


def test_proof_replayed_on_a_new_stream_with_a_new_challenge(prosody):
    token = mint(prosody, "carol@" + prosody.host)
    s1 = connect(prosody, "c2s")
    cfm, secret_half, r = begin(s1, "carol", token)
    captured = sh.client_proof(secret_half, cfm, r.data)
    s1.close()  # the client never sent it; an attacker who saw it tries it elsewhere

    def build(s):
        _, _, r2 = begin(s, "carol", token)
        assert r2.data != r.data
        return s.response(captured)
    refused(prosody, "websocket", build, "not-authorized", "bad-signature")


def test_token_replayed(prosody):
    token = mint(prosody, "carol@" + prosody.host)
    s = connect(prosody, "c2s")
    cfm, secret_half, r = begin(s, "carol", token)
    assert s.response(sh.client_proof(secret_half, cfm, r.data)).status == "success"
    s.close()

    def build(s):
        cfm, secret_half, r = begin(s, "carol", token)
        return s.response(sh.client_proof(secret_half, cfm, r.data))
    refused(prosody, "bosh", build, "not-authorized", "replayed")


def test_expired(prosody):
    def build(s):
        cfm, secret_half, r = begin(s, "carol", mint(prosody, "carol@" + prosody.host, now=time.time() - 120))
        return s.response(sh.client_proof(secret_half, cfm, r.data))
    refused(prosody, "c2s", build, "credentials-expired", "expired")


def test_wrong_jid(prosody):
    def build(s):
        cfm, secret_half, r = begin(s, "carol", mint(prosody, "dave@" + prosody.host))
        return s.response(sh.client_proof(secret_half, cfm, r.data))
    refused(prosody, "c2s", build, "not-authorized", "bad-signature")


@pytest.mark.parametrize("first", [
    b"", b"\0carol\0", b"\0carol\0123", b"\0carol\012345678 abc", b"\0carol\0" + b"1" * 2000,
    b"\0\0" + b"1" * 40, b"\xff\xfe\0carol\0" + b"1" * 40, b"carol\0" + b"1" * 40,
])
def test_garbage_client_first(prosody, first):
    refused(prosody, "c2s", lambda s: s.auth("SASL-HMAC", first), "malformed-request", None)


# named cases: the random one is drawn afresh in each pytest process (xdist workers must collect the same ids)
@pytest.mark.parametrize("second", [b"", b"\0" * 31, b"\0" * 33, os.urandom(200)],
                         ids=["empty", "31-zero-bytes", "33-zero-bytes", "200-random-bytes"])
def test_garbage_proof(prosody, second):
    def build(s):
        begin(s, "carol", mint(prosody, "carol@" + prosody.host))
        return s.response(second)
    refused(prosody, "c2s", build, "malformed-request", "malformed")


def test_response_without_a_challenge(prosody):
    refused(prosody, "c2s", lambda s: s.response(b"\0" * 32), "not-authorized", None)


def test_abort_mid_exchange_leaves_nothing_behind(prosody):
    token = mint(prosody, "carol@" + prosody.host)
    s = connect(prosody, "c2s")
    try:
        cfm, secret_half, r = begin(s, "carol", token)
        a = s.abort()
        assert (a.status, a.condition) == ("failure", "aborted")
        # the old challenge is gone: its proof is now out of order
        late = s.response(sh.client_proof(secret_half, cfm, r.data))
        assert (late.status, late.condition) == ("failure", "not-authorized")
        # and the token was not used up by the aborted exchange
        cfm, secret_half, r = begin(s, "carol", token)
        assert s.response(sh.client_proof(secret_half, cfm, r.data)).status == "success"
    finally:
        s.close()


def test_second_auth_mid_exchange_starts_afresh(prosody):
    s = connect(prosody, "websocket")
    try:
        cfm1, sh1, r1 = begin(s, "carol", mint(prosody, "carol@" + prosody.host))
        cfm2, sh2, r2 = begin(s, "dave", mint(prosody, "dave@" + prosody.host))
        assert r2.status == "challenge" and r2.data != r1.data
        done = s.response(sh.client_proof(sh2, cfm2, r2.data))
        assert done.status == "success"
        assert s.bind() == "dave@%s/test" % prosody.host
    finally:
        s.close()


def test_slixmpp_unpinned_never_resends_a_refused_token_by_another_mechanism(prosody):
    """Not pinned, slixmpp takes SASL-HMAC-PLUS or SASL-HMAC first; after their <failure/> it would
    try X-TOKEN or PLAIN with the same password, handing the whole token over. It must not."""
    jid = "alice@" + prosody.host
    mark = prosody.log_mark()
    status, _ = xmpp_clients.login(jid, mint(prosody, "someone-else@" + prosody.host), prosody.c2s_port, None)
    assert status == "failed"
    log = prosody.log_since(mark)
    assert "Failed SASL-HMAC token login" in log or "Failed SASL-HMAC-PLUS token login" in log, log
    for bearer in ("PLAIN", "X-TOKEN"):
        assert "Failed %s token login" % bearer not in log, log
