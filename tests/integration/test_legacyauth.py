"""test_password, the path of logins outside SASL, through Prosody's own mod_legacyauth (XEP-0078):
a token logs in there like with PLAIN; a refusal gets one log line and the usual event; and with
token_mechanisms = { "SASL-HMAC" } the whole token is not accepted as a password there either."""
import pytest

import rawxmpp
from harness import Prosody

NS_AUTH = "jabber:iq:auth"


@pytest.fixture(scope="module", params=["bearer", "sasl-hmac-only"])
def server(request):
    extra = 'token_mechanisms = { "SASL-HMAC" }' if request.param == "sasl-hmac-only" else ""
    s = Prosody(extra_modules=("auth_events_probe", "legacyauth"), extra_global=extra).start()
    s.mode = request.param
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
        line = "Failed test_password token login for %s from (unknown address): bearer-disabled" % jid
        assert log.count(line) == 1, log


def test_refusals_through_legacy_login_are_logged(server):
    jid = "lena@" + server.host
    mark = server.log_mark()
    for _ in range(3):
        assert legacy_login(server, "lena", server.mint("someone-else@" + server.host)) == "error"
    reason = "bad-signature" if server.mode == "bearer" else "bearer-disabled"
    line = "Failed test_password token login for %s from (unknown address): %s" % (jid, reason)
    assert server.wait_log(mark, line, timeout=5).count(line) == 3, server.log_since(mark)


def test_a_flood_through_legacy_login_writes_few_lines(server):
    """300 legacy logins pipelined on one stream: there is no session to count per stream, so at most
    token_max_failures (5) lines a second are written, then one line with the count of the rest."""
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
    log = server.log_since(mark)
    lines = log.count("Failed test_password token login for lena@")
    assert 1 <= lines <= 15, lines  # five a second; the burst spans at most a couple of seconds
