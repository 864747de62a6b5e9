"""SASL-HMAC-PLUS against a live Prosody: the shipped slixmpp client logs in with the channel bound
(tls-unique on TLS 1.2, on 0.12 and 13; tls-server-end-point on TLS 1.3 where Prosody 13 advertises
it), and an active relay — a man in the middle with a TLS session to each side — gets the session
with plain SASL-HMAC but is refused with -PLUS."""
import ssl

import pytest

import xmpp_clients
from harness import Prosody, prosody_version
from relay import Relay
from test_live import mint

TLS12 = ssl.TLSVersion.TLSv1_2


@pytest.fixture(scope="module")
def endpoint_server():
    """Prosody that also offers tls-server-end-point (from its certificate)."""
    s = Prosody(extra_global='tls_server_end_point_hash = "auto"').start()
    yield s
    s.stop()


def test_plus_logs_in_with_tls_unique(prosody):
    jid = "cora@" + prosody.host
    mark = prosody.log_mark()
    status, bound = xmpp_clients.login(jid, mint(prosody, jid), prosody.c2s_port, "SASL-HMAC-PLUS", tls_max=TLS12)
    assert status == "bound", (bound, prosody.log_since(mark)[-2000:])
    assert "probe: authentication-success user=cora mechanism=SASL-HMAC-PLUS" in prosody.wait_log(mark, "probe:")


def test_plus_on_tls13_with_tls_server_end_point_as_the_server_allows(endpoint_server):
    """Prosody 13 with tls_server_end_point_hash = "auto" advertises tls-server-end-point: the client
    binds to the server's certificate. Prosody 0.12 has no such binding (nor any on TLS 1.3): the
    pinned client does not log in (which the test asserts, so a change would show)."""
    jid = "dina@" + endpoint_server.host
    status, bound = xmpp_clients.login(jid, endpoint_server.mint(jid), endpoint_server.c2s_port, "SASL-HMAC-PLUS")
    if prosody_version() >= (13,):
        assert status == "bound", (bound, endpoint_server.tail())
    else:
        assert status == "failed", bound


def test_pinned_plus_refuses_to_log_in_where_it_cannot_bind(prosody):
    """TLS 1.3 to a server that advertises no binding this client has (0.12: none; 13: tls-exporter
    only, which Python's ssl cannot compute): no fallback, nothing sent."""
    jid = "edna@" + prosody.host
    mark = prosody.log_mark()
    status, _ = xmpp_clients.login(jid, mint(prosody, jid), prosody.c2s_port, "SASL-HMAC-PLUS")
    assert status == "failed"
    assert "token login" not in prosody.log_since(mark)


def test_a_relay_gets_the_session_with_sasl_hmac_and_is_refused_with_plus(prosody):
    jid = "fay@" + prosody.host
    relay = Relay(prosody.c2s_port, prosody.host)
    try:
        status, bound = xmpp_clients.login(jid, mint(prosody, jid), relay.port, "SASL-HMAC", tls_max=TLS12)
        # the relay now holds fay's session: what -PLUS is for
        assert status == "bound", (status, bound, relay.stage, prosody.tail())
        assert relay.relayed > 0
    finally:
        relay.close()
    relay = Relay(prosody.c2s_port, prosody.host)
    mark = prosody.log_mark()
    try:
        status, detail = xmpp_clients.login(jid, mint(prosody, jid), relay.port, "SASL-HMAC-PLUS", tls_max=TLS12)
        # refused (the client usually sees the failure; the relay may close first)
        assert (status, detail) in (("failed", "not-authorized"), ("disconnected", None)), (status, detail, relay.stage)
        line = "Failed SASL-HMAC-PLUS token login for %s from 127.0.0.1: bad-signature" % jid
        assert prosody.wait_log(mark, line).count(line) == 1
    finally:
        relay.close()
