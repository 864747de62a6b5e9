"""Prebind with a signed token: the web app opens a BOSH session (XEP-0124/0206) to Prosody,
authenticates it with SASL-HMAC, binds a resource, and hands the browser {"jid", "sid", "rid"}
for converse.js's `authentication: 'prebind'` (`prebind_url`).

    from prebind import prebind
    session = prebind("http://127.0.0.1:5280/http-bind", "alice@example.org", token)

SASL-HMAC (docs/sasl-hmac.md) sends only the token's public part and a proof, and the session is
used only after Prosody has proved that it holds the token secret, so not even the web app's link
to Prosody carries the secret half. Talk to Prosody's BOSH endpoint directly (loopback, or the
internal network), not through the public proxy. The browser must attach within Prosody's
`bosh_max_inactivity` (60 s by default): answer the browser's prebind request with a session opened
for that request, never from a cache.

Standard library only; raises PrebindError (with a reason fit for a log line, never the token) when
Prosody refuses or cannot prove itself.
"""
import base64
import binascii
import hashlib
import hmac
import re
import secrets
import time
import urllib.request
import xml.etree.ElementTree as ET
from xml.sax.saxutils import escape, quoteattr

NS_BOSH = "http://jabber.org/protocol/httpbind"
NS_STREAM = "http://etherx.jabber.org/streams"
NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
NS_BIND = "urn:ietf:params:xml:ns:xmpp-bind"
SERVER_NONCE_LEN = 24
MECHANISM = "SASL-HMAC"


class PrebindError(Exception):
    pass


# Hashes of the public parts of tokens this process has tried: SASL-HMAC has no client nonce, so a
# token is never used for a second exchange (docs/sasl-hmac.md), whatever became of the first.
_tried = set()


def split_token(token):
    """(public part, S) of a token "OTP‖NONCE base64(S)"; ValueError if it is not one."""
    public, sep, b64 = token.partition(" ")
    if not sep or not re.fullmatch(r"\d{6,}", public) or len(b64) != 44:
        raise ValueError("not a token")
    try:
        return public.encode("ascii"), base64.b64decode(b64, validate=True)
    except binascii.Error as e:
        raise ValueError("not a token") from e


def _proof(s, label, client_first, server_nonce):
    return hmac.new(s, label + b"\0" + client_first + b"\0" + server_nonce, hashlib.sha256).digest()


class _Bosh:
    def __init__(self, url, domain, wait, timeout):
        self.url, self.domain, self.wait, self.timeout = url, domain, wait, timeout
        self.rid = secrets.randbelow(2 ** 40) + 2 ** 20  # room to count up (XEP-0124 §7)
        self.sid = None

    def post(self, inner="", **attrs):
        """One request; returns the <body/> element of the response."""
        attrs.setdefault("rid", str(self.rid))
        if self.sid:
            attrs["sid"] = self.sid
        self.rid += 1
        head = " ".join("%s=%s" % (k.replace("_", ":"), quoteattr(v)) for k, v in attrs.items())
        data = ("<body xmlns='%s' %s>%s</body>" % (NS_BOSH, head, inner)).encode("utf-8")
        req = urllib.request.Request(self.url, data=data, headers={"Content-Type": "text/xml; charset=utf-8"})
        with urllib.request.urlopen(req, timeout=self.timeout + self.wait) as r:
            body = ET.fromstring(r.read())
        if body.get("type") == "terminate":
            raise PrebindError("the BOSH session was terminated (%s)" % body.get("condition", "no condition"))
        return body

    def next_element(self, body, deadline):
        """The first child of this response, or of the next non-empty one."""
        while len(body) == 0:
            if time.monotonic() > deadline:
                raise PrebindError("no answer from Prosody")
            body = self.post()
        return body[0]


def prebind(bosh_url, jid, token, resource=None, wait=10, timeout=10):
    """Opens, authenticates and binds a BOSH session for `jid` (a bare JID, as the token was minted
    for) with `token`. Returns {"jid": full JID, "sid": ..., "rid": the next request id}."""
    local, at, domain = jid.partition("@")
    if not at or not local or "/" in domain:
        raise ValueError("a bare JID (localpart@domain) is needed")
    public, s = split_token(token)
    tag = hashlib.sha256(public).digest()
    if tag in _tried:
        raise PrebindError("this token was already tried once; mint a new one")
    _tried.add(tag)
    try:
        return _prebind(bosh_url, local, domain, jid, public, s, resource, wait, timeout)
    except (ET.ParseError, binascii.Error, ValueError) as e:
        raise PrebindError("unexpected answer from Prosody (%s)" % type(e).__name__) from e


def _prebind(bosh_url, local, domain, jid, public, s, resource, wait, timeout):
    deadline = time.monotonic() + timeout
    bosh = _Bosh(bosh_url, domain, wait, timeout)
    body = bosh.post(to=domain, xml_lang="en", ver="1.6", wait=str(wait), hold="1",
                     content="text/xml; charset=utf-8", xmlns_xmpp="urn:xmpp:xbosh", xmpp_version="1.0")
    bosh.sid = body.get("sid")
    if not bosh.sid:
        raise PrebindError("Prosody did not open a BOSH session")
    features = bosh.next_element(body, deadline)
    offered = [m.text for m in features.iter("{%s}mechanism" % NS_SASL)]
    if MECHANISM not in offered:  # never fall back: PLAIN would send the whole token
        raise PrebindError("Prosody does not offer %s (offered: %s)" % (MECHANISM, ", ".join(offered) or "none"))

    client_first = b"\0" + local.encode("utf-8") + b"\0" + public
    el = bosh.next_element(bosh.post("<auth xmlns='%s' mechanism='%s'>%s</auth>" % (
        NS_SASL, MECHANISM, base64.b64encode(client_first).decode())), deadline)
    if el.tag != "{%s}challenge" % NS_SASL:
        raise PrebindError("login refused: %s" % _condition(el))
    server_nonce = base64.b64decode((el.text or "").strip(), validate=True)
    if len(server_nonce) != SERVER_NONCE_LEN:
        raise PrebindError("malformed challenge")
    proof = _proof(s, b"SASL-HMAC client", client_first, server_nonce)
    el = bosh.next_element(bosh.post("<response xmlns='%s'>%s</response>" % (
        NS_SASL, base64.b64encode(proof).decode())), deadline)
    if el.tag != "{%s}success" % NS_SASL:
        raise PrebindError("login refused: %s" % _condition(el))
    expected = _proof(s, b"SASL-HMAC server", client_first, server_nonce)
    try:
        got = base64.b64decode((el.text or "").strip(), validate=True)
    except binascii.Error:
        got = b""
    if not hmac.compare_digest(got, expected):
        raise PrebindError("Prosody could not prove that it holds the token secret")

    features = bosh.next_element(bosh.post(to=domain, xml_lang="en", xmpp_restart="true",
                                           xmlns_xmpp="urn:xmpp:xbosh"), deadline)
    if features.find("{%s}bind" % NS_BIND) is None:
        raise PrebindError("Prosody offered no resource binding")
    res = "<resource>%s</resource>" % escape(resource) if resource else ""
    el = bosh.next_element(bosh.post("<iq xmlns='jabber:client' type='set' id='prebind_1'><bind xmlns='%s'>%s</bind></iq>"
                                     % (NS_BIND, res)), deadline)
    full = el.findtext("{%s}bind/{%s}jid" % (NS_BIND, NS_BIND))
    if el.get("type") != "result" or not full:
        raise PrebindError("resource binding failed")
    if full.partition("/")[0].lower() != jid.lower():  # the session is for the token's user, or none
        raise PrebindError("Prosody bound another JID than the token's")
    return {"jid": full, "sid": bosh.sid, "rid": bosh.rid}


def _condition(el):
    if el.tag == "{%s}failure" % NS_SASL:
        for child in el:
            if not child.tag.endswith("}text"):
                return child.tag.split("}")[1]
    return el.tag.split("}")[-1]
