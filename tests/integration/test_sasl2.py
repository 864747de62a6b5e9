"""Our mechanisms inside SASL2 (XEP-0388, Extensible SASL Profile): mod_sasl2 from the prosody-modules
package that matches the Prosody under test (bookworm's for 0.12, bookworm-backports' for 13),
unpacked by scripts/setup.sh and put on plugin_paths on its own.

mod_sasl2 drives the provider's SASL handler (get_sasl_handler) with select/process/clean_clone,
so PLAIN-token, X-TOKEN and SASL-HMAC work there unchanged: success carries the authorization
identifier (and SASL-HMAC's server proof as additional data), refusals are SASL2 failures with the
same conditions and the same single log line, and the stream stays usable after a failure.

Two limits belong to bookworm's older mod_sasl2 (prosody-modules 2023-02, the one built for 0.12),
not to our handler, and are fixed in the 2025 one that goes with Prosody 13:
- over BOSH it raises before any SASL handler runs (it reads session.base_type, which 0.12's BOSH
  sessions lack): on 0.12 the BOSH cases are left out and one test shows that failure (so a fix
  would show; on 13 the same test logs in over BOSH);
- after a failure it keeps the used handler instead of taking a clean_clone(), so a second
  <authenticate/> on the same stream is refused with invalid-mechanism (Prosody's own util.sasl
  handlers behave the same there). On 0.12 each refusal gets a fresh stream."""
import time

import pytest

import rawxmpp
import sasl_hmac as sh  # clients/slixmpp
from harness import Prosody, prosody_modules_dir
from logins import OLD_MOD_SASL2, TRANSPORTS, begin, connect, flip_mac, plain, sasl2_transports

MECHS = ["PLAIN", "X-TOKEN", "SASL-HMAC"]


@pytest.fixture(scope="module")
def server():
    s = Prosody(extra_modules=("auth_events_probe", "sasl2"),
                extra_plugin_paths=(prosody_modules_dir("mod_sasl2"),)).start()
    yield s
    s.stop()


def login(stream, mech, user, token):
    """A whole SASL2 exchange for `user`; returns the final Result (and checks SASL-HMAC's server proof)."""
    if mech != "SASL-HMAC":
        return stream.authenticate(mech, plain(user, token))
    cfm, secret_half, r = begin(stream, user, token, send=stream.authenticate)
    if r.status != "challenge":
        return r
    assert len(r.data) == 24, r
    final = stream.sasl2_response(sh.client_proof(secret_half, cfm, r.data))
    if final.status == "success":
        assert final.data == sh.server_proof(secret_half, cfm, r.data), "server proof"
    return final


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_sasl2_offers_the_token_mechanisms(server, transport):
    s = connect(server, transport)
    try:
        offered = s.sasl2_mechanisms()
        for mech in MECHS:
            assert mech in offered, offered
    finally:
        s.close()


@pytest.mark.parametrize("transport", sasl2_transports())
@pytest.mark.parametrize("mech", MECHS)
def test_sasl2_login_binds_without_a_stream_restart(server, transport, mech):
    s = connect(server, transport)
    try:
        jid = "alice@" + server.host
        r = login(s, mech, "alice", server.mint(jid))
        assert r.status == "success", (r, server.tail())
        assert r.authzid == jid
        s.sasl2_features()
        assert s.bind(restart=False) == jid + "/test"
    finally:
        s.close()


@pytest.mark.parametrize("transport", sasl2_transports())
@pytest.mark.parametrize("mech", MECHS)
def test_sasl2_refusals_log_one_line_and_leave_the_stream_usable(server, transport, mech):
    jid = "carol@" + server.host
    replayed = server.mint(jid)
    first = connect(server, transport)
    try:
        assert login(first, mech, "carol", replayed).status == "success"
    finally:
        first.close()
    cases = [
        (server.mint("dave@" + server.host), "not-authorized", "bad-signature"),  # signed for someone else
        (flip_mac(server.mint(jid)), "not-authorized", "bad-signature"),
        (replayed, "not-authorized", "replayed"),
        (server.mint(jid, now=time.time() - 3600), "credentials-expired", "expired"),
    ]
    s = connect(server, transport)
    try:
        for token, condition, reason in cases:
            if OLD_MOD_SASL2:
                s.close()
                s = connect(server, transport)
            mark = server.log_mark()
            r = login(s, mech, "carol", token)
            assert (r.status, r.condition) == ("failure", condition), (reason, r)
            line = "Failed %s token login for %s from 127.0.0.1: %s" % (mech, jid, reason)
            assert server.wait_log(mark, line).count(line) == 1, (reason, server.log_since(mark))
        if OLD_MOD_SASL2:
            r = login(s, mech, "carol", server.mint(jid))
            assert (r.status, r.condition) == ("failure", "invalid-mechanism"), r
            s.close()
            s = connect(server, transport)
        r = login(s, mech, "carol", server.mint(jid))
        assert r.status == "success", (r, server.tail())
        s.sasl2_features()
        assert s.bind(restart=False) == jid + "/test"
    finally:
        s.close()


@pytest.mark.parametrize("transport", sasl2_transports())
def test_sasl2_sasl_hmac_wrong_proof(server, transport):
    jid = "erin@" + server.host
    s = connect(server, transport)
    try:
        cfm, secret_half, r = begin(s, "erin", server.mint(jid), send=s.authenticate)
        assert r.status == "challenge", r
        bad = bytearray(sh.client_proof(secret_half, cfm, r.data))
        bad[0] ^= 0x80
        mark = server.log_mark()
        r = s.sasl2_response(bytes(bad))
        assert (r.status, r.condition) == ("failure", "not-authorized"), r
        line = "Failed SASL-HMAC token login for %s from 127.0.0.1: bad-signature" % jid
        assert server.wait_log(mark, line).count(line) == 1
    finally:
        s.close()


def test_sasl2_over_bosh_as_the_installed_mod_sasl2_allows(server):
    """On 13 a SASL2 login over BOSH works; bookworm's 2023 mod_sasl2 (Prosody 0.12) raises before
    any mechanism runs (which the tests assert, so a fix would show)."""
    mark = server.log_mark()
    jid = "frank@" + server.host
    s = rawxmpp.Bosh(server.bosh_url, server.host, timeout=3)
    try:
        if not OLD_MOD_SASL2:
            r = s.authenticate("PLAIN", plain("frank", server.mint(jid)))
            assert (r.status, r.authzid) == ("success", jid), r
            return
        with pytest.raises(OSError):
            s.authenticate("PLAIN", plain("frank", server.mint(jid)))
    finally:
        s.close()
    log = server.log_since(mark)
    assert "mod_sasl2.lua" in log and "attempt to concatenate a nil value (field 'base_type')" in log, log
    assert "Failed PLAIN token login" not in log  # our handler never ran


@pytest.mark.parametrize("mech", MECHS)
def test_sasl2_second_authenticate_on_an_authenticated_session_is_refused(server, mech):
    """mod_sasl2 runs a second <authenticate/> on a session that is already logged in; the handler
    refuses it (it would split the session between two users and leave a ghost), with one line."""
    s = connect(server, "c2s")
    try:
        assert login(s, mech, "mallory", server.mint("mallory@" + server.host)).status == "success"
        mark = server.log_mark()
        other = server.mint("mallory2@" + server.host)
        r = login(s, mech, "mallory2", other)
        assert r.status == "failure", r
        log = server.wait_log(mark, "token login for")
        if r.condition == "not-authorized":
            line = "Failed %s token login for mallory@%s from 127.0.0.1: already-authenticated" % (mech, server.host)
            assert log.count(line) == 1, log
        else:  # bookworm's 2023 mod_sasl2 keeps the used handler, which refuses a second mechanism itself
            assert OLD_MOD_SASL2 and r.condition == "invalid-mechanism", r
        assert "Authenticated as mallory2" not in log
    finally:
        s.close()
    # mallory2's token was not used up
    s = connect(server, "c2s")
    try:
        assert login(s, mech, "mallory2", other).status == "success"
    finally:
        s.close()


def test_sasl2_reauthentication_attempts_leave_no_ghosts(server):
    """500 sessions that each log in and then try to authenticate again: Prosody's memory stays flat
    (each ghost session used to keep ~200 KiB)."""
    def one(i):
        s = connect(server, "c2s")
        try:
            assert login(s, "PLAIN", "ghost%d" % i, server.mint("ghost%d@%s" % (i, server.host))).status == "success"
            assert login(s, "PLAIN", "other%d" % i, server.mint("other%d@%s" % (i, server.host))).status == "failure"
        finally:
            s.close()
    for i in range(20):
        one(i)
    before = server.rss_kib()
    for i in range(20, 520):
        one(i)
    growth = server.rss_kib() - before
    print("RSS %d KiB -> %+d KiB over 500 re-authentication attempts" % (before, growth))
    assert growth < 20 * 1024, growth
