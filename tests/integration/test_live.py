"""Live Prosody (Debian's package) with the plugin, driven by slixmpp and by raw clients over c2s
with STARTTLS, BOSH and WebSocket."""
import time

import pytest

import rawxmpp
import xmpp_clients
from logins import TRANSPORTS, assert_refused_for_size_over_bosh, connect, flip_mac, mint, plain, refused_for_size_over_bosh

from converse_auth import create_token  # tests/interop, on the path by pytest.ini

MECHS = ["PLAIN", "X-TOKEN"]


@pytest.mark.parametrize("mech", MECHS)
def test_slixmpp_logs_in_over_starttls(prosody, mech):
    jid = "alice@" + prosody.host
    status, bound = xmpp_clients.login(jid, mint(prosody, jid), prosody.c2s_port, mech)
    assert status == "bound", bound
    assert bound.startswith(jid + "/")


def test_slixmpp_gets_sasl_failures(prosody):
    jid = "alice@" + prosody.host
    token = mint(prosody, jid)
    assert xmpp_clients.login(jid, token, prosody.c2s_port)[0] == "bound"
    assert xmpp_clients.login(jid, token, prosody.c2s_port) == ("failed", "not-authorized")  # replay
    assert xmpp_clients.login(jid, flip_mac(mint(prosody, jid)), prosody.c2s_port) == ("failed", "not-authorized")
    assert xmpp_clients.login(jid, mint(prosody, jid), prosody.c2s_port)[0] == "bound"


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("mech", MECHS)
def test_raw_login_binds(prosody, transport, mech):
    s = connect(prosody, transport)
    try:
        assert mech in s.mechanisms()
        mark = prosody.log_mark()
        r = s.auth(mech, plain("bob", mint(prosody, "bob@" + prosody.host)))
        assert r.status == "success", r
        assert s.bind("raw") == "bob@%s/raw" % prosody.host
        assert "probe: authentication-success user=bob mechanism=%s" % mech in prosody.wait_log(mark, "probe: authentication-success")
    finally:
        s.close()


# name -> (payload for alice, expected SASL condition, expected log reason)
def refusal_cases(prosody):
    alice = "alice@" + prosody.host
    good = lambda: mint(prosody, alice)  # noqa: E731
    used = good()
    return {
        "bad-signature": (lambda: plain("alice", flip_mac(good())), "not-authorized", "bad-signature"),
        "otp-3-steps-old": (lambda: plain("alice", mint(prosody, alice, now=time.time() - 90)), "credentials-expired", "expired"),
        "another-users-token": (lambda: plain("alice", mint(prosody, "bob@" + prosody.host)), "not-authorized", "bad-signature"),
        "another-hosts-token": (lambda: plain("alice", mint(prosody, "alice@" + prosody.other_host)), "not-authorized", "bad-signature"),
        "same-token-twice": ((lambda: plain("alice", used)), "not-authorized", "replayed"),
        "empty": (lambda: plain("alice", b""), "malformed-request", "malformed"),
        "no-space": (lambda: plain("alice", good().replace(" ", "")), "malformed-request", "malformed"),
        "non-digit-otp": (lambda: plain("alice", "x" + good()[1:]), "malformed-request", "malformed"),
        "bad-base64": (lambda: plain("alice", good()[:-2] + "!="), "malformed-request", "malformed"),
        "2-KiB-token": (lambda: plain("alice", "1" * 2048 + " " + good().split(" ")[1]), "malformed-request", "malformed"),
    }, used


CASE_NAMES = ["bad-signature", "otp-3-steps-old", "another-users-token", "another-hosts-token", "same-token-twice",
              "empty", "no-space", "non-digit-otp", "bad-base64", "2-KiB-token"]


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("mech", MECHS)
@pytest.mark.parametrize("case", CASE_NAMES)
def test_refused_with_failure_and_log_line_then_next_login_works(prosody, transport, mech, case):
    cases, used = refusal_cases(prosody)
    if case == "same-token-twice":
        s = connect(prosody, transport)
        assert s.auth(mech, plain("alice", used)).status == "success"
        s.close()
    make_payload, condition, reason = cases[case]
    payload = make_payload()
    mark = prosody.log_mark()
    s = connect(prosody, transport)
    try:
        r = s.auth(mech, payload)
        assert (r.status, r.condition) == ("failure", condition)
        line = "Failed %s token login for alice@%s from 127.0.0.1: %s" % (mech, prosody.host, reason)
        log = prosody.wait_log(mark, line)
        assert log.count(line) == 1, log
        assert "probe: authentication-failure condition=%s" % condition in prosody.wait_log(mark, "probe:")
        # the same stream accepts a valid login right after
        r = s.auth(mech, plain("alice", mint(prosody, "alice@" + prosody.host)))
        assert r.status == "success", r
        assert s.bind() == "alice@%s/test" % prosody.host
    finally:
        s.close()


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_one_mebibyte_token_is_refused_and_server_carries_on(prosody, transport):
    """Over c2s and WebSocket, Prosody refuses stanzas over 10 000 bytes before login, so a 1 MiB
    token never reaches SASL: the answer is a stream error. Over BOSH, Prosody 0.12.3 and
    bookworm-backports' 13.0.1 accept larger bodies, so it reaches the plugin and is refused as
    malformed with the usual log line; Debian's 13.0.1-1+deb131u2 refuses it first, as over c2s.
    Either way the next login works."""
    mark = prosody.log_mark()
    s = connect(prosody, transport)
    payload = plain("alice", "1" * (1 << 20) + " x")
    r = s.auth("PLAIN", payload)
    s.close()
    if refused_for_size_over_bosh(transport, "PLAIN", payload):
        assert_refused_for_size_over_bosh(prosody, mark, r)
    elif transport == "bosh":
        assert (r.status, r.condition) == ("failure", "malformed-request")
        line = "Failed PLAIN token login for alice@%s from 127.0.0.1: malformed" % prosody.host
        assert line in prosody.wait_log(mark, line)
    else:
        assert r.status in ("stream-error", "closed"), r
        if r.status == "stream-error":
            assert r.condition == "policy-violation", r
    s = connect(prosody, transport)
    try:
        assert s.auth("PLAIN", plain("alice", mint(prosody, "alice@" + prosody.host))).status == "success"
    finally:
        s.close()


@pytest.mark.parametrize("mech", MECHS)
def test_authcid_of_another_host_is_wrong_host(prosody, mech):
    mark = prosody.log_mark()
    s = connect(prosody, "c2s")
    try:
        r = s.auth(mech, plain("alice@" + prosody.other_host, mint(prosody, "alice@" + prosody.other_host)))
        assert (r.status, r.condition) == ("failure", "not-authorized")
        assert ": wrong-host" in prosody.wait_log(mark, "wrong-host")
    finally:
        s.close()


def test_each_host_has_its_own_secret(prosody):
    jid = "alice@" + prosody.other_host
    s = connect(prosody, "c2s", domain=prosody.other_host)
    try:
        assert s.auth("PLAIN", plain("alice", mint(prosody, jid))).status == "success"
        assert s.bind() == jid + "/test"
    finally:
        s.close()


def test_authzid_must_be_the_users_own_jid(prosody):
    s = connect(prosody, "c2s")
    try:
        token = mint(prosody, "alice@" + prosody.host)
        r = s.auth("PLAIN", plain("alice", token, authzid="bob@" + prosody.host))
        assert (r.status, r.condition) == ("failure", "invalid-authzid")
        # the refused attempt did not use the token up: it still works with a proper authzid
        r = s.auth("PLAIN", plain("alice", token, authzid="alice@" + prosody.host))
        assert r.status == "success", r
    finally:
        s.close()


def test_nodeprep(prosody):
    # Sent as "Carol", signed for the nodeprep'd "carol@host": the session user is "carol". (A
    # signature over "Carol@host" is refused: tests/integration/test_boundary.py.)
    s = connect(prosody, "websocket")
    try:
        assert s.auth("PLAIN", plain("Carol", mint(prosody, "carol@" + prosody.host))).status == "success"
        assert s.bind() == "carol@%s/test" % prosody.host
    finally:
        s.close()


def test_rotated_out_secret_still_verifies(prosody):
    jid = "dave@" + prosody.host
    s = connect(prosody, "bosh")
    try:
        assert s.auth("X-TOKEN", plain("dave", mint(prosody, jid, secret=prosody.old_token_secret))).status == "success"
    finally:
        s.close()


def test_unencrypted_c2s_is_not_offered_token_mechanisms(prosody):
    s = rawxmpp.C2S(prosody.c2s_port, prosody.host, tls=False)
    try:
        assert s.mechanisms() == []
        r = s.auth("X-TOKEN", plain("alice", mint(prosody, "alice@" + prosody.host)))
        assert (r.status, r.condition) == ("failure", "encryption-required")
    finally:
        s.close()


@pytest.mark.parametrize("transport", ["c2s", "bosh"])
def test_collective_converse_token_logs_in(prosody, transport):
    """Interop: a token minted by the Python port of collective.converse's auth.py (pyotp)."""
    jid = "erin@" + prosody.host
    token = create_token(jid, prosody.otp_seed, prosody.token_secret)
    prosody.used_tokens.append(token)
    if transport == "c2s":
        status, bound = xmpp_clients.login(jid, token, prosody.c2s_port)
        assert status == "bound", bound
    else:
        s = connect(prosody, transport)
        try:
            assert s.auth("PLAIN", plain("erin", token)).status == "success"
        finally:
            s.close()


def login_counters(prosody):
    """{(mechanism, outcome): count} for this host, from mod_http_openmetrics."""
    import re
    import urllib.request
    body = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % prosody.http_port, timeout=10).read().decode()
    out = {}
    for m in re.finditer(r'^prosody_mod_sasl_hmac__logins_total\{host="([^"]+)",mechanism="([^"]+)",outcome="([^"]+)"\} (\d+)',
                         body, re.M):
        if m.group(1) == prosody.host:
            out[(m.group(2), m.group(3))] = int(m.group(4))
    return out


def test_login_counters_are_exported(prosody):
    before = login_counters(prosody)
    s = connect(prosody, "c2s")
    try:
        assert s.auth("X-TOKEN", plain("kim", flip_mac(mint(prosody, "kim@" + prosody.host)))).status == "failure"
        assert s.auth("X-TOKEN", plain("kim", b"")).status == "failure"
        assert s.auth("X-TOKEN", plain("kim", mint(prosody, "kim@" + prosody.host))).status == "success"
    finally:
        s.close()
    after = login_counters(prosody)
    delta = {k: after.get(k, 0) - before.get(k, 0) for k in set(before) | set(after)}
    assert {k: v for k, v in delta.items() if v} == {
        ("X-TOKEN", "bad-signature"): 1, ("X-TOKEN", "malformed"): 1, ("X-TOKEN", "success"): 1}


def test_no_token_or_secret_in_the_log(prosody):
    """Its own logins on every transport (accepted, replayed, forged, expired), then the whole log
    against every token this module's tests used so far and every secret."""
    for transport in TRANSPORTS:
        for mech in MECHS:
            user = "quiet%s%s" % (transport, mech.replace("-", "").lower())
            good = mint(prosody, "%s@%s" % (user, prosody.host))
            forged = flip_mac(mint(prosody, "%s@%s" % (user, prosody.host)))
            prosody.used_tokens.append(forged)
            old = mint(prosody, "%s@%s" % (user, prosody.host), now=time.time() - 3600)
            for token, outcome in ((good, "success"), (good, "failure"), (forged, "failure"), (old, "failure")):
                s = connect(prosody, transport)
                try:
                    assert s.auth(mech, plain(user, token)).status == outcome, (transport, mech, outcome)
                finally:
                    s.close()
    log = prosody.log_path.read_text(errors="replace")
    assert "Failed X-TOKEN token login for quietwebsocketxtoken@%s from 127.0.0.1: replayed" % prosody.host in log
    for token in prosody.used_tokens:
        public, _, mac = token.partition(" ")
        assert token not in log
        assert mac not in log
    for secret in (prosody.token_secret, prosody.old_token_secret, prosody.other_token_secret, prosody.otp_seed):
        assert secret not in log


def _deliver(stream, to, msg_id):
    """Sends a chat message, then a ping to the server as a barrier; returns the error condition
    the server bounced the message with, or None when it accepted it."""
    stream.send_raw("<message xmlns='jabber:client' to='%s' type='chat' id='%s'><body>hi</body></message>"
                    "<iq xmlns='jabber:client' type='get' id='%s-ping' to='%s'><ping xmlns='urn:xmpp:ping'/></iq>"
                    % (to, msg_id, msg_id, stream.domain))
    bounced = None
    while True:
        el = stream.recv()
        assert el is not None, "stream closed"
        if el.tag == "{jabber:client}message" and el.get("id") == msg_id and el.get("type") == "error":
            err = el.find("{jabber:client}error")
            bounced = next((c.tag.split("}")[1] for c in err
                            if c.tag.startswith("{urn:ietf:params:xml:ns:xmpp-stanzas}")), "unknown")
        if el.tag == "{jabber:client}iq" and el.get("id") == msg_id + "-ping":
            return bounced


def test_users_exist_once_they_have_logged_in(prosody):
    # "seen" (the default): fred has logged in once, so messages to him are kept offline;
    # nobody-ever@ never has, so messages to them bounce instead of filling storage.
    s = connect(prosody, "c2s")
    assert s.auth("PLAIN", plain("fred", mint(prosody, "fred@" + prosody.host))).status == "success"
    s.close()
    s = connect(prosody, "c2s")
    try:
        assert s.auth("PLAIN", plain("gina", mint(prosody, "gina@" + prosody.host))).status == "success"
        s.bind()
        assert _deliver(s, "fred@" + prosody.host, "m1") is None
        assert _deliver(s, "nobody-ever@" + prosody.host, "m2") == "service-unavailable"
    finally:
        s.close()
