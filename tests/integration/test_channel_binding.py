"""SASL-HMAC-PLUS against a live Prosody: the shipped slixmpp client logs in with the channel bound
(tls-unique on TLS 1.2, on 0.12 and 13; tls-server-end-point on TLS 1.3 where Prosody 13 advertises
it, on every connection), and an active relay — a man in the middle with a TLS session to each side — gets the session
with plain SASL-HMAC but is refused with -PLUS."""
import hashlib
import ssl

import pytest

import sasl_hmac
import xmpp_clients
from harness import Prosody, prosody_version
from relay import Relay
from logins import mint

TLS12 = ssl.TLSVersion.TLSv1_2


@pytest.fixture(scope="module")
def endpoint_server():
    """Prosody that also offers tls-server-end-point (from its certificate)."""
    s = Prosody(extra_global='tls_server_end_point_hash = "auto"').start()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def hashed_server():
    """Prosody given its certificate's tls-server-end-point hash explicitly (hex, as for TLS ended by a
    proxy): the harness certificate is signed with SHA-256, so the binding is SHA-256 of its DER."""
    s = Prosody(extra_global='tls_server_end_point_hash = "@HASH@"')
    der = ssl.PEM_cert_to_DER_cert((s.dir / "host.crt").read_text())
    s.config.write_text(s.config.read_text().replace("@HASH@", hashlib.sha256(der).hexdigest()))
    yield s.start()
    s.stop()


def _repeated_cases():
    """What each Prosody can bind for the Python client (which has no tls-exporter). Prosody 13:
    tls-server-end-point on TLS 1.3 with "auto" (the reported fault: 13.0.1's mod_saslauth offers it
    on the first stream after a start only) and with the hash given (the control), and tls-unique on
    TLS 1.2. Prosody 0.12 has no tls-server-end-point (its mod_saslauth neither reads the option nor
    offers the binding) and no binding at all on TLS 1.3: there only tls-unique on TLS 1.2, with the
    option set all the same (0.12 ignores it)."""
    unique = pytest.param("endpoint_server", TLS12, "tls-unique", id="auto-tls12-tls-unique")
    if prosody_version() < (13,):
        return [unique]
    return [pytest.param("endpoint_server", None, "tls-server-end-point", id="auto-tls13-tls-server-end-point"),
            pytest.param("hashed_server", None, "tls-server-end-point", id="hash-tls13-tls-server-end-point"),
            unique]


@pytest.mark.parametrize("server_fixture,tls_max,binding", _repeated_cases())
def test_plus_logs_in_on_every_connection_to_one_prosody(request, server_fixture, tls_max, binding):
    """Four SASL-HMAC-PLUS logins in a row, each on a new TLS stream, against one running Prosody:
    every one is bound to the channel, not only the first after the start."""
    server = request.getfixturevalue(server_fixture)
    for n, user in enumerate(("gil", "hal", "ida", "jon")):
        jid = "%s-%s@%s" % (user, binding, server.host)
        mark = server.log_mark()
        status, bound = xmpp_clients.login(jid, server.mint(jid), server.c2s_port, "SASL-HMAC-PLUS", tls_max=tls_max)
        advertised = sasl_hmac._channel["advertised"]  # XEP-0440, as this stream offered it
        assert status == "bound", (n, bound, advertised, server.log_since(mark)[-3000:])
        if binding == "tls-server-end-point":  # on TLS 1.3 the Python client has no other
            assert binding in advertised, (n, advertised)
        line = "probe: authentication-success user=%s-%s mechanism=SASL-HMAC-PLUS" % (user, binding)
        assert line in server.wait_log(mark, line), n
    if server_fixture == "endpoint_server" and binding == "tls-server-end-point":
        # 13.0.1 left the binding out after the first stream and the module said so, once
        said = server.log_since(0).count("on its first stream only (a fault of Prosody 13.0.1)")
        assert said == 1 or (said == 0 and prosody_version() > (13, 0, 1)), said


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


def assert_no_end_point_on_012(server):
    """Prosody 0.12 has no tls-server-end-point (and no binding at all on TLS 1.3), "auto" or not:
    the module adds none there either, so a pinned -PLUS client on TLS 1.3 finds nothing to bind."""
    jid = "ivy@" + server.host
    mark = server.log_mark()
    status, detail = xmpp_clients.login(jid, server.mint(jid), server.c2s_port, "SASL-HMAC-PLUS")
    assert status == "failed", (status, detail)
    assert "tls-server-end-point" not in (sasl_hmac._channel["advertised"] or ())
    log = server.log_since(mark)
    assert "token login for" not in log and "Traceback" not in log, log[-2000:]


def test_a_relay_is_refused_on_the_streams_whose_tls_server_end_point_this_module_adds(endpoint_server):
    """Prosody 13 with "auto", TLS 1.3 (where tls-server-end-point is the Python client's only
    binding): after the first stream, whose binding is mod_saslauth's, the binding is this module's;
    a relay with a certificate of its own is refused there as everywhere else."""
    if prosody_version() < (13,):
        return assert_no_end_point_on_012(endpoint_server)
    jid = "gwen@" + endpoint_server.host
    # the first stream after the start (mod_saslauth's own binding), if no test has used it yet
    assert xmpp_clients.login(jid, endpoint_server.mint(jid), endpoint_server.c2s_port, "SASL-HMAC-PLUS")[0] == "bound"
    for n in range(2):
        relay = Relay(endpoint_server.c2s_port, endpoint_server.host, tls_max=ssl.TLSVersion.TLSv1_3)
        mark = endpoint_server.log_mark()
        try:
            status, detail = xmpp_clients.login(jid, endpoint_server.mint(jid), relay.port, "SASL-HMAC-PLUS")
            assert (status, detail) in (("failed", "not-authorized"), ("disconnected", None)), (n, status, detail, relay.stage)
            assert "tls-server-end-point" in sasl_hmac._channel["advertised"], n
            line = "Failed SASL-HMAC-PLUS token login for %s from 127.0.0.1: bad-signature" % jid
            assert endpoint_server.wait_log(mark, line).count(line) == 1, n
        finally:
            relay.close()


def test_tls_server_end_point_is_not_advertised_when_the_certificate_cannot_be_read():
    """The certificate file gone after the start (Prosody keeps its TLS context): from the second
    stream on, this module cannot compute the binding, so it neither offers nor advertises it and
    warns once. The pinned -PLUS client then has no binding on TLS 1.3 and sends nothing, instead of
    picking tls-server-end-point and being refused as malformed (a failure fail2ban counts). Put
    back, it binds again."""
    server = Prosody(extra_global='tls_server_end_point_hash = "auto"').start()
    if prosody_version() < (13,):
        try:
            return assert_no_end_point_on_012(server)
        finally:
            server.stop()
    crt = server.dir / "host.crt"
    kept = server.dir / "host.crt.kept"
    try:
        jid = "hedy@" + server.host
        assert xmpp_clients.login(jid, server.mint(jid), server.c2s_port, "SASL-HMAC-PLUS")[0] == "bound"
        crt.rename(kept)
        for n in range(2):
            mark = server.log_mark()
            status, detail = xmpp_clients.login(jid, server.mint(jid), server.c2s_port, "SASL-HMAC-PLUS")
            assert status == "failed", (n, status, detail)
            assert "tls-server-end-point" not in (sasl_hmac._channel["advertised"] or ()), n
            log = server.log_since(mark)
            assert "token login for" not in log, (n, log[-2000:])  # nothing sent, nothing refused
            assert "Traceback" not in log, (n, log[-2000:])
        log = server.log_since(0)
        warned = [l for l in log.splitlines() if "\twarn\t" in l and "could not be read: no tls-server-end-point" in l]
        assert len(warned) == 1, log[-3000:]
        kept.rename(crt)
        assert xmpp_clients.login(jid, server.mint(jid), server.c2s_port, "SASL-HMAC-PLUS")[0] == "bound"
        assert "Traceback" not in server.log_since(0)
    finally:
        if kept.exists():
            kept.rename(crt)
        server.stop()
