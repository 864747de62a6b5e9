"""test_password, the path of logins outside SASL, through Prosody's own mod_legacyauth (XEP-0078):
a token logs in there like with PLAIN; a refusal gets one log line and the usual event; and with
token_mechanisms = { "SASL-HMAC" } the whole token is not accepted as a password there either."""
import shutil
import tempfile
from pathlib import Path

import pytest

import rawxmpp
from harness import Prosody, prosody_module_source

NS_AUTH = "jabber:iq:auth"

# Debian's 13.0.1-1+deb131u2 (trixie-security) added this line to mod_legacyauth for the password's
# saslprep, but no module has that name (the library is prosody.util.encodings): Prosody fails to
# initialize mod_legacyauth ("module 'prosody.encodings' not found") and answers every
# jabber:iq:auth query with an error, for every account and every auth provider.
DEBIAN_BROKEN_REQUIRE = 'require "prosody.encodings"'


@pytest.fixture(scope="module")
def legacyauth_paths():
    """Where the servers find mod_legacyauth: nowhere extra (Prosody's own), or where Prosody's own
    has Debian's broken line, a copy of it with only that line's module name corrected, so that the
    plugin's test_password runs behind the module as Debian patched it (saslprep included)."""
    source = prosody_module_source("legacyauth")
    if DEBIAN_BROKEN_REQUIRE not in source:
        yield ()
        return
    d = Path(tempfile.mkdtemp(prefix="legacyauth-"))
    fixed = source.replace(DEBIAN_BROKEN_REQUIRE, 'require "prosody.util.encodings"')
    assert fixed.count('require "prosody.util.encodings"') == source.count('require "prosody.util.encodings"') + 1
    (d / "mod_legacyauth.lua").write_text(fixed)
    yield (d,)
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module", params=["bearer", "sasl-hmac-only"])
def server(request, legacyauth_paths):
    extra = 'token_mechanisms = { "SASL-HMAC" }' if request.param == "sasl-hmac-only" else ""
    s = Prosody(extra_modules=("auth_events_probe", "legacyauth"), extra_global=extra,
                extra_plugin_paths=legacyauth_paths).start()
    s.mode = request.param
    log = s.log_since(0)
    assert "module 'legacyauth'" not in log, log  # neither "Unable to load" nor "Error initializing"
    yield s
    s.stop()


def legacy_login(server, user, token, resource="legacy"):
    s = rawxmpp.C2S(server.c2s_port, server.host)
    try:
        s.send_raw("<iq type='set' id='auth2' xmlns='jabber:client'><query xmlns='%s'><username>%s</username>"
                   "<password>%s</password><resource>%s</resource></query></iq>" % (NS_AUTH, user, token, resource))
        while True:
            el = s.recv()
            if el is None:
                return "closed"
            if el.tag == "{jabber:client}iq" and el.get("id") == "auth2":
                return el.get("type")
    finally:
        s.close()


def test_token_through_legacy_login(server):
    jid = "lena@" + server.host
    mark = server.log_mark()
    result = legacy_login(server, "lena", server.mint(jid))
    log = server.wait_log(mark, "token login for" if server.mode != "bearer" else "Authenticated")
    if server.mode == "bearer":
        assert result == "result", server.log_since(mark)
    else:
        assert result == "error"
        line = "Failed test_password token login for %s from 127.0.0.1: bearer-disabled" % jid
        assert log.count(line) == 1, log


def test_refusals_through_legacy_login_are_logged(server):
    jid = "lena@" + server.host
    mark = server.log_mark()
    for _ in range(3):
        assert legacy_login(server, "lena", server.mint("someone-else@" + server.host)) == "error"
    reason = "bad-signature" if server.mode == "bearer" else "bearer-disabled"
    line = "Failed test_password token login for %s from 127.0.0.1: %s" % (jid, reason)
    assert server.wait_log(mark, line, timeout=5).count(line) == 3, server.log_since(mark)


def test_a_flood_through_legacy_login_is_bounded_per_stream(server):
    """300 legacy logins pipelined on one stream: mod_legacyauth passes test_password no session,
    but the plugin takes it from the jabber:iq:auth query: token_max_failures (5) lines with the
    client's address, one "Closing the stream" line, and the stream is closed."""
    mark = server.log_mark()
    bad = server.mint("someone-else@" + server.host)
    s = rawxmpp.C2S(server.c2s_port, server.host)
    try:
        s.send_raw("".join("<iq type='set' id='f%d' xmlns='jabber:client'><query xmlns='%s'><username>lena</username>"
                           "<password>%s</password><resource>r</resource></query></iq>" % (i, NS_AUTH, bad)
                           for i in range(300)))
        replies = 0
        while replies < 300:
            el = s.recv()
            if el is None:
                break
            replies += el.tag == "{jabber:client}iq"
    finally:
        s.close()
    log = server.wait_log(mark, "Closing the stream from 127.0.0.1 after 5 failed token logins")
    lines = log.count("Failed test_password token login for lena@%s from 127.0.0.1: " % server.host)
    assert lines == 5, log[-3000:]
    assert log.count("Closing the stream from 127.0.0.1 after 5 failed token logins") == 1, log[-3000:]


@pytest.mark.skipif(DEBIAN_BROKEN_REQUIRE not in prosody_module_source("legacyauth"),
                    reason="this Prosody's mod_legacyauth loads")
def test_prosodys_own_legacyauth_does_not_load_where_debian_broke_it():
    """The README's known issue: with Debian's trixie-security mod_legacyauth as shipped, the module
    does not initialize, and a token sent as a legacy login is refused without a login or a token
    line (the query never reaches the auth provider)."""
    s = Prosody(extra_modules=("auth_events_probe", "legacyauth")).start()
    try:
        log = s.log_since(0)
        assert "Error initializing module 'legacyauth' on '%s'" % s.host in log, log
        assert "module 'prosody.encodings' not found" in log, log
        mark = s.log_mark()
        assert legacy_login(s, "lena", s.mint("lena@" + s.host)) == "error"
        log = s.wait_log(mark, "Unhandled c2s_unauthed stanza: iq; xmlns=jabber:iq:auth")
        assert "Unhandled c2s_unauthed stanza: iq; xmlns=jabber:iq:auth" in log, log
        for never in ("Authenticated as", "token login for", "probe: authentication-"):
            assert never not in log, log
    finally:
        s.stop()
