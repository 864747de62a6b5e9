"""Minimal XMPP clients written for the tests: c2s over TCP with STARTTLS, BOSH (XEP-0124/0206)
and WebSocket (RFC 7395), with one interface so the same SASL exchanges run over all three.

They speak the wire protocol directly (no client library smooths anything over), which is what
hostile-input tests need. The friendly-client path is slixmpp, in xmpp_clients.py.
"""
import base64
import random
import socket
import ssl
import urllib.request
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Optional

import websocket  # python3-websocket (websocket-client)

NS_STREAM = "http://etherx.jabber.org/streams"
NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
NS_SASL2 = "urn:xmpp:sasl:2"  # XEP-0388, Extensible SASL Profile
NS_TLS = "urn:ietf:params:xml:ns:xmpp-tls"
NS_BIND = "urn:ietf:params:xml:ns:xmpp-bind"
NS_BOSH = "http://jabber.org/protocol/httpbind"
NS_XBOSH = "urn:xmpp:xbosh"
NS_FRAMING = "urn:ietf:params:xml:ns:xmpp-framing"
NS_STREAMS_ERR = "urn:ietf:params:xml:ns:xmpp-streams"


@dataclass
class Result:
    status: str  # "success", "challenge", "failure", "stream-error", "closed"
    condition: Optional[str] = None
    data: Optional[bytes] = None  # challenge or success additional data
    authzid: Optional[str] = None  # SASL2 success: the authorization-identifier
    text: Optional[str] = None  # SASL failure or stream error: the <text/> the server sent with the condition

    def __str__(self):
        return "%s(%s)" % (self.status, self.condition or "")


def sasl_text(payload):
    if payload is None:
        return ""
    if payload == b"":
        return "="
    return base64.b64encode(payload).decode("ascii")


def auth_element(mechanism, payload):
    """The <auth/> stanza Stream.auth sends."""
    return "<auth xmlns='%s' mechanism='%s'>%s</auth>" % (NS_SASL, mechanism, sasl_text(payload))


def interpret(el):
    """Turns a received element into a Result (SASL outcome, stream error) or None."""
    if el is None:
        return Result("closed")
    tag = el.tag
    if tag in ("{%s}success" % NS_SASL, "{%s}challenge" % NS_SASL):
        text = (el.text or "").strip()
        data = base64.b64decode(text) if text and text != "=" else b""
        return Result(tag.split("}")[1], data=data)
    if tag == "{%s}failure" % NS_SASL:
        cond = next((c.tag.split("}")[1] for c in el if not c.tag.endswith("}text")), None)
        return Result("failure", cond, text=el.findtext("{%s}text" % NS_SASL))
    if tag in ("{%s}success" % NS_SASL2, "{%s}challenge" % NS_SASL2):
        text = (el.findtext("{%s}additional-data" % NS_SASL2) if tag.endswith("}success") else el.text) or ""
        data = base64.b64decode(text.strip()) if text.strip() and text.strip() != "=" else b""
        return Result(tag.split("}")[1], data=data, authzid=el.findtext("{%s}authorization-identifier" % NS_SASL2))
    if tag == "{%s}failure" % NS_SASL2:
        cond = next((c.tag.split("}")[1] for c in el if c.tag.startswith("{%s}" % NS_SASL)), None)
        return Result("failure", cond, text=el.findtext("{%s}text" % NS_SASL2))
    if tag == "{%s}error" % NS_STREAM:
        cond = next((c.tag.split("}")[1] for c in el if c.tag.startswith("{%s}" % NS_STREAMS_ERR) and not c.tag.endswith("}text")), None)
        return Result("stream-error", cond, text=el.findtext("{%s}text" % NS_STREAMS_ERR))
    return None


class Stream:
    """Common SASL/bind logic; subclasses move elements."""

    domain: str
    # a 'from' for the stream header (RFC 6120 4.7.1), as clients that know their JID send it;
    # set by a subclass, since the stream opens in the constructor
    stream_from: Optional[str] = None

    def _from_attr(self):
        return " from='%s'" % self.stream_from if self.stream_from else ""

    def send_raw(self, text):
        raise NotImplementedError

    def recv(self):
        """Next top-level element, or None when the stream/connection closed."""
        raise NotImplementedError

    def restart(self):
        raise NotImplementedError

    def close(self):
        raise NotImplementedError

    def mechanisms(self):
        return list(self.features_mechanisms)

    def ping(self):
        """An XEP-0199 ping to the server: True when it answers, False when the stream is gone."""
        self.send_raw("<iq xmlns='jabber:client' type='get' id='ping-1'><ping xmlns='urn:xmpp:ping'/></iq>")
        while True:
            try:
                el = self.recv()
            except (ConnectionError, OSError):
                return False
            if el is None:
                return False
            if el.get("id") == "ping-1":
                return el.get("type") == "result"

    def recv_result(self):
        while True:
            el = self.recv()
            r = interpret(el)
            if r is not None:
                return r

    def auth(self, mechanism, payload):
        self.send_raw(auth_element(mechanism, payload))
        return self.recv_result()

    def response(self, payload):
        self.send_raw("<response xmlns='%s'>%s</response>" % (NS_SASL, sasl_text(payload)))
        return self.recv_result()

    def abort(self):
        self.send_raw("<abort xmlns='%s'/>" % NS_SASL)
        return self.recv_result()

    def sasl2_mechanisms(self):
        return [m.text for m in self.features.findall("{%s}authentication/{%s}mechanism" % (NS_SASL2, NS_SASL2))]

    def authenticate(self, mechanism, payload, client_id="5a2b1d3c-0000-4000-8000-000000000001"):
        """XEP-0388 <authenticate/> with an initial response and a user agent."""
        initial = "" if payload is None else "<initial-response>%s</initial-response>" % sasl_text(payload)
        self.send_raw("<authenticate xmlns='%s' mechanism='%s'>%s<user-agent id='%s'><software>rawxmpp</software>"
                      "</user-agent></authenticate>" % (NS_SASL2, mechanism, initial, client_id))
        return self.recv_result()

    def sasl2_response(self, payload):
        self.send_raw("<response xmlns='%s'>%s</response>" % (NS_SASL2, sasl_text(payload)))
        return self.recv_result()

    def sasl2_features(self):
        """After a SASL2 success the server sends new stream features on the same stream."""
        self._take_features(self.recv())
        return self.features

    def bind(self, resource="test", restart=True):
        if restart:
            self.restart()
        self.send_raw("<iq type='set' id='bind1' xmlns='jabber:client'><bind xmlns='%s'><resource>%s</resource></bind></iq>"
                      % (NS_BIND, resource))
        while True:
            el = self.recv()
            if el is None:
                raise ConnectionError("stream closed during bind")
            if el.tag == "{jabber:client}iq" and el.get("id") == "bind1":
                jid = el.find("{%s}bind/{%s}jid" % (NS_BIND, NS_BIND))
                if el.get("type") != "result" or jid is None:
                    raise ConnectionError("bind failed: %s" % ET.tostring(el))
                return jid.text

    def _take_features(self, el):
        if el is None or el.tag != "{%s}features" % NS_STREAM:
            raise ConnectionError("expected stream features, got %r" % (None if el is None else el.tag))
        self.features = el
        self.features_mechanisms = [m.text for m in el.findall("{%s}mechanisms/{%s}mechanism" % (NS_SASL, NS_SASL))]
        return el


_TLS_CONTEXT = None


def unverified_tls_context():
    """One client TLS context for every test connection, verifying nothing (the harness's
    certificates are self-signed). Built once and without ssl.create_default_context(), which loads
    Debian's whole CA bundle each time: ~40 ms quiet and ~400 ms on a loaded machine, for every
    STARTTLS in the suite."""
    global _TLS_CONTEXT
    if _TLS_CONTEXT is None:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        _TLS_CONTEXT = ctx
    return _TLS_CONTEXT


class C2S(Stream):
    """c2s over TCP; STARTTLS unless tls=False."""

    def __init__(self, port, domain, tls=True, ip="127.0.0.1", timeout=10):
        self.domain = domain
        self.sock = socket.create_connection((ip, port), timeout=timeout)
        self._open()
        if tls:
            if self.features.find("{%s}starttls" % NS_TLS) is None:
                raise ConnectionError("server offers no STARTTLS")
            self.send_raw("<starttls xmlns='%s'/>" % NS_TLS)
            el = self.recv()
            if el is None or el.tag != "{%s}proceed" % NS_TLS:
                raise ConnectionError("STARTTLS refused")
            self.sock = unverified_tls_context().wrap_socket(self.sock, server_hostname=domain)
            self._open()

    def _open(self):
        self.parser = ET.XMLPullParser(events=("start", "end"))
        self.depth = 0
        self.pending = []
        self.closed = False
        self.send_raw("<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='%s' to='%s'%s version='1.0'>"
                      % (NS_STREAM, self.domain, self._from_attr()))
        self._take_features(self.recv())

    def send_raw(self, text):
        data = text.encode("utf-8") if isinstance(text, str) else text
        try:
            self.sock.sendall(data)
        except OSError:
            # the server closed while we were still sending (e.g. a stanza over its size limit):
            # what it sent before closing (a stream error) is still read by recv()
            pass

    def recv(self):
        while not self.pending:
            if self.closed:
                return None
            try:
                data = self.sock.recv(65536)
            except (ConnectionError, OSError):
                data = b""
            if not data:
                self.closed = True
                return None
            self.parser.feed(data)
            for event, el in self.parser.read_events():
                if event == "start":
                    self.depth += 1
                else:
                    self.depth -= 1
                    if self.depth == 1:
                        self.pending.append(el)
                    elif self.depth == 0:
                        self.closed = True
        return self.pending.pop(0)

    def restart(self):
        self._open()

    def close(self):
        try:
            self.send_raw("</stream:stream>")
        except OSError:
            pass
        self.sock.close()


class Bosh(Stream):
    def __init__(self, url, domain, timeout=15):
        self.url, self.domain, self.timeout = url, domain, timeout
        self.rid = random.randint(1_000_000, 9_000_000)
        self.queue = []
        self.terminated = None
        self.sid = None
        body = self._post("<body content='text/xml; charset=utf-8' hold='1' rid='%d' to='%s'%s wait='10' xml:lang='en' "
                          "xmpp:version='1.0' xmlns='%s' xmlns:xmpp='%s'/>" % (self.rid, domain, self._from_attr(), NS_BOSH,
                                                                                NS_XBOSH))
        self.sid = body.get("sid")
        self._take_features(self.recv())

    def _exchange(self, text):
        """One HTTP request: (status, body bytes). Subclasses send it another way."""
        req = urllib.request.Request(self.url, data=text.encode("utf-8"),
                                     headers={"Content-Type": "text/xml; charset=utf-8"})
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as e:
            return e.code, b""

    def _post(self, text):
        status, raw = self._exchange(text)
        if status != 200:
            self.terminated = "http-%d" % status
            return ET.Element("{%s}body" % NS_BOSH, {"type": "terminate"})
        body = ET.fromstring(raw)
        for child in body:
            self.queue.append(child)
        if body.get("type") == "terminate":
            self.terminated = body.get("condition") or "terminate"
        return body

    def _body(self, inner="", extra=""):
        self.rid += 1
        return "<body rid='%d' sid='%s' xmlns='%s' xmlns:xmpp='%s'%s>%s</body>" % (
            self.rid, self.sid, NS_BOSH, NS_XBOSH, extra, inner)

    def send_raw(self, text):
        if self.terminated:
            return
        self._post(self._body(text))

    def recv(self):
        polls = 0
        while not self.queue:
            if self.terminated or polls > 2:
                if self.terminated and self.terminated not in ("terminate",):
                    err = ET.Element("{%s}error" % NS_STREAM)
                    ET.SubElement(err, "{%s}%s" % (NS_STREAMS_ERR, self.terminated))
                    self.terminated = "terminate"
                    return err
                return None
            self._post(self._body())
            polls += 1
        return self.queue.pop(0)

    def restart(self):
        self._post(self._body(extra=" xmpp:restart='true' to='%s'" % self.domain))
        self._take_features(self.recv())

    def close(self):
        if not self.terminated:
            try:
                self._post(self._body(extra=" type='terminate'"))
            except OSError:
                pass


class WebSocket(Stream):
    def __init__(self, url, domain, timeout=10):
        self.domain = domain
        self.ws = websocket.create_connection(url, subprotocols=["xmpp"], timeout=timeout)
        self.closed = False
        self._open()

    def _open(self):
        self.send_raw("<open xmlns='%s' to='%s'%s version='1.0'/>" % (NS_FRAMING, self.domain, self._from_attr()))
        el = self.recv()
        if el is None or el.tag != "{%s}open" % NS_FRAMING:
            raise ConnectionError("expected <open/>")
        self._take_features(self.recv())

    def send_raw(self, text):
        if not self.closed:
            try:
                self.ws.send(text)
            except (websocket.WebSocketException, OSError):
                self.closed = True

    def recv(self):
        if self.closed:
            return None
        try:
            frame = self.ws.recv()
        except (websocket.WebSocketException, OSError):
            self.closed = True
            return None
        if not frame:
            self.closed = True
            return None
        if frame.startswith("<stream:") and "xmlns:stream=" not in frame.split(">", 1)[0]:
            # Prosody 13 sends <stream:error> over WebSocket without declaring the prefix
            frame = frame.replace("<stream:error", "<stream:error xmlns:stream='%s'" % NS_STREAM, 1)
        el = ET.fromstring(frame)
        if el.tag == "{%s}close" % NS_FRAMING:
            self.closed = True
            return None
        return el

    def restart(self):
        self._open()

    def close(self):
        if not self.closed:
            self.send_raw("<close xmlns='%s'/>" % NS_FRAMING)
        self.ws.close()
