#!/usr/bin/python3
"""Regenerates tests/vectors/prebind.json: scripted BOSH servers for prebind() (docs/prebind.md),
written here with the standard library's hmac, hashlib and base64 only, independently of the
minting libraries, with the outcome a client must have. Run: /usr/bin/python3 tests/vectors/generate_prebind.py

Every case stands alone (its own token: a client never sends a token twice). `script` is the
server's side, one step per HTTP request the client makes, in order: `request` is what the client
must send (create: a session creation request, no sid; poll: an empty body; auth: SASL-HMAC's
<auth/> whose text is `payload`; response: a SASL <response/> whose text is `payload`; restart: a
stream restart; bind: a resource binding <iq/>) and `response` the BOSH body the server answers
with (`status`, when present, the HTTP status instead of 200 and no body; `response` null: no
answer at all, a connection error; `response_base64`, when present, the answer's exact bytes in
base64, sent instead of `response` in UTF-8, which then holds the same text for reading). A client that sends anything else, or anything after the last
step, fails the case. `expect` is {"jid", "sid"} (and the returned rid is the last request's rid
plus one), or {"error": kind} with the SASL `condition` for "refused".
"""
import base64
import codecs
import hashlib
import hmac
import json
import os

HOST = "example.org"
SECRET = "a-prebind-vector-secret-of-32-by"
OTP = "80952309"
SERVER_NONCE = bytes(range(24))
SID = "0f5e7d1c-prebind-vector-sid"
SPARE = "not-the-token-secret-of-this-host"

NS_BOSH = "http://jabber.org/protocol/httpbind"
NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
NS_BIND = "urn:ietf:params:xml:ns:xmpp-bind"


def b64(raw):
    return base64.b64encode(raw).decode("ascii")


def token_for(jid, n, secret=SECRET):
    public = OTP + "%032d" % n
    s = hmac.new(secret.encode(), (public + jid).encode(), hashlib.sha256).digest()
    return public, s, public + " " + b64(s)


def proof(s, label, client_first, sn=SERVER_NONCE):
    return hmac.new(s, label + b"\0" + client_first + b"\0" + sn, hashlib.sha256).digest()


def body(inner="", first=False, **attrs):
    head = ""
    if first:
        head = (" xmlns:stream='http://etherx.jabber.org/streams' xmlns:xmpp='urn:xmpp:xbosh' sid='%s'"
                " wait='10' inactivity='60' polling='5' requests='2' hold='1' from='%s' ver='1.6'"
                " secure='true' authid='%s' xmpp:version='1.0' xmpp:restartlogic='true'" % (SID, HOST, SID))
    head += "".join(" %s='%s'" % (k, v) for k, v in attrs.items())
    if first:
        return "<body xmlns='%s'%s>%s</body>" % (NS_BOSH, head, inner)
    return "<body xmlns='%s' xmlns:stream='http://etherx.jabber.org/streams'%s>%s</body>" % (NS_BOSH, head, inner)


def mechanisms(*names):
    return ("<stream:features><mechanisms xmlns='%s'>%s</mechanisms></stream:features>"
            % (NS_SASL, "".join("<mechanism>%s</mechanism>" % n for n in names)))


BIND_FEATURES = ("<stream:features><bind xmlns='%s'><required/></bind>"
                 "<session xmlns='urn:ietf:params:xml:ns:xmpp-session'><optional/></session></stream:features>" % NS_BIND)


def challenge(raw):
    return "<challenge xmlns='%s'>%s</challenge>" % (NS_SASL, b64(raw))


def success(raw):
    return "<success xmlns='%s'>%s</success>" % (NS_SASL, b64(raw) if raw else "")


def failure(condition, text=None):
    t = "<text xml:lang='en'>%s</text>" % text if text else ""
    return "<failure xmlns='%s'><%s/>%s</failure>" % (NS_SASL, condition, t)


def bound(full):
    return ("<iq xmlns='jabber:client' type='result' id='prebind_1'><bind xmlns='%s'><jid>%s</jid></bind></iq>"
            % (NS_BIND, full))


cases = []
counter = [0]


class Case:
    """One token for `jid`, and the genuine exchange's parts for it."""

    def __init__(self, jid="alice@example.org", secret=SECRET):
        counter[0] += 1
        self.jid = jid
        self.public, self.s, self.token = token_for(jid, counter[0], secret)
        self.client_first = b"\0" + jid.split("@")[0].encode() + b"\0" + self.public.encode()
        self.client_proof = proof(self.s, b"SASL-HMAC client", self.client_first)
        self.server_proof = proof(self.s, b"SASL-HMAC server", self.client_first)

    def auth(self, response):
        return {"request": "auth", "payload": b64(self.client_first), "response": response}

    def response(self, response):
        return {"request": "response", "payload": b64(self.client_proof), "response": response}

    def genuine(self, full=None):
        """The whole exchange a genuine Prosody has with a conforming client."""
        return [
            {"request": "create", "response": body(mechanisms("SASL-HMAC", "PLAIN"), first=True)},
            self.auth(body(challenge(SERVER_NONCE))),
            self.response(body(success(self.server_proof))),
            {"request": "restart", "response": body(BIND_FEATURES)},
            {"request": "bind", "response": body(bound(full or self.jid + "/prebind-1"))},
        ]

    def add(self, name, script, expect, **extra):
        c = {"name": name, "jid": self.jid, "token": self.token, "script": script, "expect": expect}
        c.update(extra)
        cases.append(c)


def ok(c, full=None):
    return {"jid": full or c.jid + "/prebind-1", "sid": SID}


def err(kind, condition=None):
    e = {"error": kind}
    if condition:
        e["condition"] = condition
    return e


# accepted
c = Case()
c.add("the genuine exchange", c.genuine(), ok(c))

c = Case()
s = c.genuine()
s[0]["response"] = body(first=True)
s.insert(1, {"request": "poll", "response": body(mechanisms("PLAIN", "SASL-HMAC"))})
c.add("features on the poll after an empty creation answer", s, ok(c))

c = Case()
s = c.genuine()
s[1]["response"] = body()
s.insert(2, {"request": "poll", "response": body(challenge(SERVER_NONCE))})
s[4]["response"] = body()
s.insert(5, {"request": "poll", "response": body(BIND_FEATURES)})
c.add("empty answers in between are polled past", s, ok(c))

c = Case()
c.add("SASL-HMAC-PLUS and SCRAM offered too", [dict(c.genuine()[0], response=body(
    mechanisms("SCRAM-SHA-1", "SASL-HMAC-PLUS", "SASL-HMAC"), first=True))] + c.genuine()[1:], ok(c))

c = Case()
c.add("a resource of the server's choosing is kept", c.genuine("alice@example.org/9a8b7c"),
      ok(c, "alice@example.org/9a8b7c"))

c = Case("bob.smith-2@example.org")
c.add("another user", c.genuine(), ok(c))

# refused: a SASL failure, with its condition
c = Case()
c.add("not-authorized after the proof (a token of another secret, or replayed)",
      c.genuine()[:2] + [c.response(body(failure("not-authorized")))], err("refused", "not-authorized"))

c = Case()
c.add("credentials-expired, with a text", c.genuine()[:2] + [c.response(body(
    failure("credentials-expired", "The token has expired")))], err("refused", "credentials-expired"))

c = Case()
c.add("temporary-auth-failure", c.genuine()[:2] + [c.response(body(failure("temporary-auth-failure")))],
      err("refused", "temporary-auth-failure"))

c = Case()
c.add("malformed-request instead of a challenge", c.genuine()[:1] + [c.auth(body(failure("malformed-request")))],
      err("refused", "malformed-request"))

c = Case()
c.add("a failure with a text before its condition", c.genuine()[:2] + [c.response(body(
    "<failure xmlns='%s'><text>no</text><not-authorized/></failure>" % NS_SASL))], err("refused", "not-authorized"))

# unproven: the server did not show it holds the secret, or did not log in this token's user
c = Case()
c.add("a PLAIN-only server is sent nothing", [{"request": "create", "response": body(mechanisms("PLAIN"), first=True)}],
      err("unproven"))

c = Case()
c.add("no mechanisms at all", [{"request": "create", "response": body(mechanisms(), first=True)}], err("unproven"))

c = Case()
c.add("SASL-HMAC-PLUS alone (prebind does not bind a channel)", [{"request": "create", "response": body(
    mechanisms("SASL-HMAC-PLUS", "PLAIN"), first=True)}], err("unproven"))

c = Case()
c.add("features without SASL (a server that skips authentication)", [{"request": "create", "response": body(
    BIND_FEATURES, first=True)}], err("unproven"))

c = Case()
c.add("success with a wrong server proof", c.genuine()[:2] + [c.response(body(success(bytes(32))))], err("unproven"))

c = Case()
wrong = Case()
c.add("success with the proof of another token", c.genuine()[:2] + [c.response(body(success(wrong.server_proof)))],
      err("unproven"))

c = Case()
impostor_s = hmac.new(SPARE.encode(), (c.public + c.jid).encode(), hashlib.sha256).digest()
c.add("success with a proof under another token_secret (an impostor)", c.genuine()[:2] + [
    c.response(body(success(proof(impostor_s, b"SASL-HMAC server", c.client_first))))], err("unproven"))

c = Case()
c.add("success with the client's own proof echoed", c.genuine()[:2] + [c.response(body(success(c.client_proof)))],
      err("unproven"))

c = Case()
c.add("success without the server proof", c.genuine()[:2] + [c.response(body(success(b"")))], err("unproven"))

c = Case()
c.add("success with the server proof cut short", c.genuine()[:2] + [c.response(body(success(c.server_proof[:31])))],
      err("unproven"))

c = Case()
c.add("success before any challenge", c.genuine()[:1] + [c.auth(body(success(c.server_proof)))], err("unproven"))

c = Case()
c.add("a second challenge instead of success", c.genuine()[:2] + [c.response(body(challenge(c.server_proof)))],
      err("unproven"))

c = Case()
c.add("another user's JID bound", c.genuine("mallory@example.org/prebind-1"), err("unproven"))

c = Case()
c.add("the JID bound on another host", c.genuine("alice@example.net/prebind-1"), err("unproven"))

c = Case()
c.add("the bare JID bound with no resource", c.genuine("alice@example.org"), err("unproven"))

c = Case()
c.add("a longer localpart bound", c.genuine("alice2@example.org/prebind-1"), err("unproven"))

# transport: no usable answer
c = Case()
c.add("the session is terminated at creation", [{"request": "create", "response": body(
    type="terminate", condition="host-unknown")}], err("transport"))

c = Case()
c.add("the session is terminated after the proof", c.genuine()[:2] + [c.response(body(
    type="terminate", condition="remote-stream-error"))], err("transport"))

c = Case()
c.add("HTTP 404 (not the BOSH URL)", [{"request": "create", "status": 404, "response": ""}], err("transport"))

c = Case()
c.add("no answer at all", [{"request": "create", "response": None}], err("transport"))

c = Case()
c.add("an answer that is not XML", [{"request": "create", "response": "<html><body>Bad gateway"}], err("transport"))

c = Case()
c.add("an answer with a DOCTYPE (entities are never expanded)", [{"request": "create", "response":
      "<!DOCTYPE body [<!ENTITY m 'SASL-HMAC'>]>" + body(mechanisms("&m;"), first=True)}], err("transport"))

c = Case()
doc = ("<?xml version='1.0' encoding='UTF-16'?><!DOCTYPE body [<!ENTITY m 'SASL-HMAC'>]>"
       + body(mechanisms("&m;"), first=True))
c.add("an answer in UTF-16 with a DOCTYPE (its <! is not the octets <!)", [{"request": "create", "response": doc,
      "response_base64": b64(codecs.BOM_UTF16_LE + doc.encode("utf-16-le"))}], err("transport"))

c = Case()
c.add("a processing instruction inside the body", [{"request": "create", "response": body(
    "<?pi x?>" + mechanisms("SASL-HMAC"), first=True)}], err("transport"))

c = Case()
c.add("a creation answer without a sid", [{"request": "create", "response": body(
    mechanisms("SASL-HMAC"), wait="10")}], err("transport"))

c = Case()
c.add("a root element that is not a BOSH body", [{"request": "create", "response":
      "<stream:features xmlns:stream='http://etherx.jabber.org/streams'/>"}], err("transport"))

c = Case()
c.add("a challenge of 23 octets", c.genuine()[:1] + [c.auth(body(challenge(SERVER_NONCE[:23])))], err("transport"))

c = Case()
c.add("a challenge that is not base64", c.genuine()[:1] + [c.auth(body(
    "<challenge xmlns='%s'>not base64!</challenge>" % NS_SASL))], err("transport"))

c = Case()
c.add("no resource binding offered after the restart", c.genuine()[:3] + [{"request": "restart", "response": body(
    "<stream:features/>")}], err("transport"))

c = Case()
c.add("binding refused", c.genuine()[:4] + [{"request": "bind", "response": body(
    "<iq xmlns='jabber:client' type='error' id='prebind_1'><error type='cancel'>"
    "<not-allowed xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>")}], err("transport"))

c = Case()
c.add("empty answers with no end", [{"request": "create", "response": body(first=True)}]
      + [{"request": "poll", "response": body()}] * 5, err("transport"))

doc = {
    "description": __doc__.strip().split("\n\n")[1].replace("\n", " "),
    "host": HOST,
    "token_secret": SECRET,
    "server_nonce": b64(SERVER_NONCE),
    "sid": SID,
    "max_polls": 5,
    "cases": cases,
}
with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "prebind.json"), "w") as f:
    json.dump(doc, f, indent=1, ensure_ascii=False)
    f.write("\n")
