"""mod_sasl2_fast (prosody-modules) on a token host: FAST would trade one token login for a credential
valid for weeks, so the plugin keeps it off. FAST is not offered, a FAST <authenticate/> is an ordinary
SASL2 login (a FAST mechanism is not offered: invalid-mechanism) with no traceback and leaves the
stream usable, and a token login that asks for a FAST token gets none. The load-time warning is tests/integration/test_boundary.py's.

Prosody 13 only: bookworm's mod_sasl2_fast (prosody-modules 2023, the one built for 0.12) reads
event.stream, which bookworm's mod_sasl2 does not pass, and so breaks every SASL2 stream on 0.12
(`attempt to index a nil value (field 'stream')`) before any auth provider runs."""
import base64
import xml.etree.ElementTree as ET

import pytest

import rawxmpp
from harness import Prosody, prosody_modules_dir, prosody_version
from logins import plain, sasl2_transports

NS_FAST = "urn:xmpp:fast:0"
pytestmark = pytest.mark.skipif(prosody_version() < (13,), reason="bookworm's mod_sasl2_fast breaks SASL2 on 0.12")
CLIENT_ID = "5a2b1d3c-0000-4000-8000-00000000fa57"


@pytest.fixture(scope="module")
def server():
    s = Prosody(extra_modules=("sasl2", "sasl2_fast"),
                extra_plugin_paths=(prosody_modules_dir("mod_sasl2"), prosody_modules_dir("mod_sasl2_fast"))).start()
    yield s
    s.stop()


def connect_as(server, transport, jid):
    """A stream whose header names `jid` (from=): mod_sasl2_fast offers FAST only to such a stream."""
    base = {"c2s": rawxmpp.C2S, "bosh": rawxmpp.Bosh, "websocket": rawxmpp.WebSocket}[transport]
    cls = type("From" + base.__name__, (base,), {"stream_from": jid})
    if transport == "c2s":
        return cls(server.c2s_port, server.host)
    return cls(server.bosh_url if transport == "bosh" else server.ws_url, server.host)


def answer(stream):
    """The SASL2 <success/> or <failure/> element, or None when the stream ended first."""
    while True:
        el = stream.recv()
        if el is None or el.tag in ("{%s}success" % rawxmpp.NS_SASL2, "{%s}failure" % rawxmpp.NS_SASL2):
            return el


def no_faults(log):
    faults = [line for line in log.splitlines() if "Traceback" in line or "\terror\t" in line]
    assert not faults, faults


@pytest.mark.parametrize("transport", sasl2_transports())
def test_fast_is_not_offered(server, transport):
    s = connect_as(server, transport, "fastseen@" + server.host)
    try:
        assert "PLAIN" in s.sasl2_mechanisms()
        assert s.features.find(".//{%s}fast" % NS_FAST) is None, ET.tostring(s.features)
    finally:
        s.close()


@pytest.mark.parametrize("transport", sasl2_transports())
@pytest.mark.parametrize("mechanism", ["HT-SHA-256-NONE", "HT-SHA-256-ENDP", "PLAIN"])
def test_a_fast_login_fails_cleanly_and_leaves_the_stream_usable(server, transport, mechanism):
    """An <authenticate/> that says FAST is an ordinary SASL2 login: with a FAST mechanism a failure
    (invalid-mechanism: not offered), with a token mechanism a token login; no traceback either way."""
    user = "fasttry"
    jid = "%s@%s" % (user, server.host)
    s = connect_as(server, transport, jid)
    try:
        mark = server.log_mark()
        initial = (user + "\0").encode() + b"\x01" * 32 if mechanism != "PLAIN" else plain(user, server.mint(jid))
        s.send_raw("<authenticate xmlns='%s' mechanism='%s'><initial-response>%s</initial-response>"
                   "<user-agent id='%s'><software>rawxmpp</software></user-agent><fast xmlns='%s'/></authenticate>"
                   % (rawxmpp.NS_SASL2, mechanism, base64.b64encode(initial).decode(), CLIENT_ID, NS_FAST))
        el = answer(s)
        no_faults(server.log_since(mark))
        assert el is not None, server.log_since(mark)
        if mechanism == "PLAIN":
            assert el.tag == "{%s}success" % rawxmpp.NS_SASL2, ET.tostring(el)
            assert el.findtext("{%s}authorization-identifier" % rawxmpp.NS_SASL2) == jid
            return
        assert el.tag == "{%s}failure" % rawxmpp.NS_SASL2, ET.tostring(el)
        assert el.find("{%s}invalid-mechanism" % rawxmpp.NS_SASL) is not None, ET.tostring(el)
        r = s.authenticate("PLAIN", plain(user, server.mint(jid)))
        assert (r.status, r.authzid) == ("success", jid), (r, server.log_since(mark))
        no_faults(server.log_since(mark))
    finally:
        s.close()


@pytest.mark.parametrize("transport", sasl2_transports())
def test_a_token_login_gets_no_fast_token(server, transport):
    user = "fastask"
    jid = "%s@%s" % (user, server.host)
    s = connect_as(server, transport, jid)
    try:
        mark = server.log_mark()
        s.send_raw("<authenticate xmlns='%s' mechanism='PLAIN'><initial-response>%s</initial-response>"
                   "<user-agent id='%s'><software>rawxmpp</software></user-agent>"
                   "<request-token xmlns='%s' mechanism='HT-SHA-256-NONE'/></authenticate>"
                   % (rawxmpp.NS_SASL2, rawxmpp.sasl_text(plain(user, server.mint(jid))), CLIENT_ID, NS_FAST))
        el = answer(s)
        assert el is not None and el.tag == "{%s}success" % rawxmpp.NS_SASL2, (el, server.log_since(mark))
        assert el.find("{%s}token" % NS_FAST) is None, ET.tostring(el)
        no_faults(server.log_since(mark))
    finally:
        s.close()
