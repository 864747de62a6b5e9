"""prebind() of each minting library (clients/python, clients/node, clients/php; docs/prebind.md)
against the live Prosody: the session it opens is one a raw BOSH client goes on with, as converse.js
does after attaching; an impostor BOSH server that cannot prove the token secret, and a PLAIN-only
one, get no session and nothing that logs in; a refused token gives the SASL condition."""
import base64
import os
import threading
import time
import xml.etree.ElementTree as ET
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import prosody_hmac_token as pht
import pytest

import rawxmpp
from harness import free_port
from prebind_runners import LANGS, prebind

def run_prebind(lang, url, jid, secret, seed, ago=0, resource=None):
    """The library's prebind with a token minted `ago` seconds back: {"ok": session} or the error."""
    token = pht.mint(jid, secret, seed, now=int(time.time()) - ago)
    try:
        return {"ok": prebind(lang, url, jid, token, resource)}
    except pht.PrebindError as e:
        return {"error": e.kind, "condition": e.condition, "message": str(e), "token": token}


def attached(server, session):
    """A raw BOSH client on the prebound session, as converse.js attaches: its first request uses
    the returned rid."""
    b = rawxmpp.Bosh.__new__(rawxmpp.Bosh)
    b.url, b.domain, b.timeout = server.bosh_url, server.host, 15
    b.queue, b.terminated, b.sid = [], None, session["sid"]
    b.rid = session["rid"] - 1  # it counts up before each request
    return b


@pytest.mark.parametrize("lang", LANGS)
def test_prebind_opens_a_session_a_bosh_client_goes_on_with(prosody, lang):
    user = "prebind" + lang
    jid = "%s@%s" % (user, prosody.host)
    mark = prosody.log_mark()
    out = run_prebind(lang, prosody.bosh_url, jid, prosody.token_secret, prosody.otp_seed)
    assert "ok" in out, out
    session = out["ok"]
    assert session["jid"].startswith(jid + "/") and len(session["jid"]) > len(jid) + 1
    assert isinstance(session["rid"], int) and session["sid"]
    assert "probe: authentication-success user=%s " % user in prosody.wait_log(mark, "authentication-success user=%s " % user)
    assert "Failed SASL-HMAC" not in prosody.log_since(mark)
    b = attached(prosody, session)
    assert b.ping(), "the prebound session does not answer"
    b.close()


@pytest.mark.parametrize("lang", LANGS)
def test_the_resource_asked_for_is_bound(prosody, lang):
    """Sent escaped: XML's special characters are a resource's like any other."""
    jid = "prebindres%s@%s" % (lang, prosody.host)
    out = run_prebind(lang, prosody.bosh_url, jid, prosody.token_secret, prosody.otp_seed, resource="web <&'\"> 1")
    assert out.get("ok", {}).get("jid") == jid + "/web <&'\"> 1", out


@pytest.mark.parametrize("lang", LANGS)
def test_a_token_of_another_secret_is_refused_with_its_condition(prosody, lang):
    user = "prebindbad" + lang
    jid = "%s@%s" % (user, prosody.host)
    mark = prosody.log_mark()
    out = run_prebind(lang, prosody.bosh_url, jid, "not-the-token-secret-of-this-host", prosody.otp_seed)
    assert (out.get("error"), out.get("condition")) == ("refused", "not-authorized"), out
    line = "Failed SASL-HMAC token login for %s from 127.0.0.1: bad-signature" % jid
    assert prosody.wait_log(mark, line).count(line) == 1
    assert "probe: authentication-success user=%s " % user not in prosody.log_since(mark)


@pytest.mark.parametrize("lang", LANGS)
def test_an_expired_token_is_refused_with_its_condition(prosody, lang):
    user = "prebindold" + lang
    jid = "%s@%s" % (user, prosody.host)
    mark = prosody.log_mark()
    out = run_prebind(lang, prosody.bosh_url, jid, prosody.token_secret, prosody.otp_seed, ago=600)
    assert (out.get("error"), out.get("condition")) == ("refused", "credentials-expired"), out
    line = "Failed SASL-HMAC token login for %s from 127.0.0.1: expired" % jid
    assert prosody.wait_log(mark, line).count(line) == 1


@pytest.mark.parametrize("lang", LANGS)
def test_no_bosh_endpoint_is_a_transport_error(prosody, lang):
    """The library's own HTTP client: a port nobody listens on, and Prosody's HTTP port at a path
    that is not BOSH (404)."""
    jid = "prebindnone%s@%s" % (lang, prosody.host)
    for url in ("http://127.0.0.1:%d/http-bind" % free_port(), prosody.bosh_url.replace("/http-bind", "/no-such-path")):
        out = run_prebind(lang, url, jid, prosody.token_secret, prosody.otp_seed)
        assert out.get("error") == "transport", (url, out)
        assert out["token"].split(" ")[0] not in out["message"]


class BoshImpostor:
    """A BOSH endpoint that does not hold the token secret: it offers SASL-HMAC and answers any
    proof with a made-up server proof ("wrong-proof"), or offers PLAIN alone ("plain-only"). It
    records every body it is sent and whether the client went on after <success/>."""

    SASL = "urn:ietf:params:xml:ns:xmpp-sasl"

    def __init__(self, mode):
        self.mode, self.bodies, self.went_on = mode, [], False
        impostor = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode("utf-8", "replace")
                answer = impostor.answer(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/xml; charset=utf-8")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = "http://127.0.0.1:%d/http-bind" % self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def answer(self, body):
        succeeded = any("<response" in b for b in self.bodies)
        self.bodies.append(body)
        head = "<body xmlns='http://jabber.org/protocol/httpbind' xmlns:stream='http://etherx.jabber.org/streams'"
        if "sid=" not in body:
            mechanism = "PLAIN" if self.mode == "plain-only" else "SASL-HMAC"
            return head + (" sid='impostor' wait='10' hold='1' ver='1.6'><stream:features><mechanisms xmlns='%s'>"
                           "<mechanism>%s</mechanism></mechanisms></stream:features></body>" % (self.SASL, mechanism))
        if succeeded:
            self.went_on = True
            return head + "><stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></stream:features></body>"
        if "<auth" in body:
            return head + "><challenge xmlns='%s'>%s</challenge></body>" % (self.SASL, base64.b64encode(os.urandom(24)).decode())
        if "<response" in body:
            return head + "><success xmlns='%s'>%s</success></body>" % (self.SASL, base64.b64encode(os.urandom(32)).decode())
        return head + "/>"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.parametrize("mode", ["wrong-proof", "plain-only"])
@pytest.mark.parametrize("lang", LANGS)
def test_an_impostor_gets_no_session_and_nothing_that_logs_in(prosody, lang, mode):
    """Tokens of the live Prosody's secret, sent to an impostor: `unproven`, the client stops at
    the made-up proof (or before any <auth/>), and sends neither a PLAIN auth nor the secret half."""
    impostor = BoshImpostor(mode)
    try:
        out = run_prebind(lang, impostor.url, "imp%s@%s" % (lang, prosody.host), prosody.token_secret, prosody.otp_seed)
    finally:
        impostor.close()
    assert out.get("error") == "unproven", out
    assert not impostor.went_on, "the client went on after an unproven success"
    sent = "\n".join(impostor.bodies)
    assert "mechanism='PLAIN'" not in sent and "X-TOKEN" not in sent
    public, mac = out["token"].split(" ")
    s = base64.b64decode(mac)  # the secret half: in no SASL payload, decoded, nor anywhere as base64
    payloads = [base64.b64decode(el.text or "") for b in impostor.bodies for el in ET.fromstring(b)
                if el.tag in ("{%s}auth" % BoshImpostor.SASL, "{%s}response" % BoshImpostor.SASL)]
    assert mac not in sent and not any(s in p for p in payloads)
    if mode == "plain-only":
        assert len(impostor.bodies) == 1 and "<auth" not in sent  # the session creation alone
    else:
        assert "<auth" in sent and "<response" in sent
        local = "imp%s" % lang
        assert payloads[0] == b"\0" + local.encode() + b"\0" + public.encode() and len(payloads[1]) == 32
