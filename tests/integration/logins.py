"""What the live tests share for logging in: a raw stream over each transport, tokens minted for
a server (and remembered, so that conftest can check none reaches the log), SASL messages, and
the checks for a refusal Prosody makes before SASL. Test files import these from here, never
from each other."""
import base64

import rawxmpp
import sasl_hmac as sh  # clients/slixmpp, put on the path by pytest.ini
from harness import STANZA_SIZE_LIMIT, bosh_limits_stanzas_before_login, prosody_version

TRANSPORTS = ["c2s", "bosh", "websocket"]


# bookworm's mod_sasl2 (the one built for 0.12) raises over BOSH before any SASL handler runs
OLD_MOD_SASL2 = prosody_version() < (13,)


def sasl2_transports():
    """The transports mod_sasl2 works over with the Prosody under test."""
    return [t for t in TRANSPORTS if not (OLD_MOD_SASL2 and t == "bosh")]


def connect(prosody, transport, domain=None):
    domain = domain or prosody.host
    if transport == "c2s":
        return rawxmpp.C2S(prosody.c2s_port, domain)
    if transport == "bosh":
        return rawxmpp.Bosh(prosody.bosh_url, domain)
    return rawxmpp.WebSocket(prosody.ws_url, domain)


def plain_login_status(server, user):
    """A PLAIN-token login of `user` with a fresh token over a new c2s stream: its status."""
    s = connect(server, "c2s")
    try:
        return s.auth("PLAIN", plain(user, server.mint("%s@%s" % (user, server.host)))).status
    finally:
        s.close()


def mint(prosody, jid, **kw):
    token = prosody.mint(jid, **kw)
    prosody.used_tokens.append(token)
    return token


def plain(user, token, authzid=""):
    return authzid.encode() + b"\0" + user.encode() + b"\0" + (token.encode() if isinstance(token, str) else token)


def refused_for_size_over_bosh(transport, mechanism, payload):
    """Whether Prosody itself refuses this <auth/> over BOSH for its size, before SASL (only some
    Prosody builds do: see harness.bosh_limits_stanzas_before_login)."""
    return (transport == "bosh" and bosh_limits_stanzas_before_login()
            and len(rawxmpp.auth_element(mechanism, payload).encode()) > STANZA_SIZE_LIMIT)


BOSH_SIZE_REFUSAL = "Error parsing BOSH payload; stanza-too-large"


def assert_refused_for_size_over_bosh(prosody, mark, r):
    """Prosody refused the <auth/> for its size before login over BOSH: it ended the session with
    bad-request and its own warning, the input never reached SASL (no plugin line, no
    authentication event) and nobody logged in."""
    assert (r.status, r.condition) == ("stream-error", "bad-request"), r
    log = prosody.wait_log(mark, BOSH_SIZE_REFUSAL)
    assert "mod_bosh\twarn\t" + BOSH_SIZE_REFUSAL in log, log
    for never in ("token login for", "probe: authentication-", "Authenticated as"):
        assert never not in log, log


def flip_mac(token):
    public, b64 = token.split(" ")
    mac = bytearray(base64.b64decode(b64))
    mac[-1] ^= 1
    return public + " " + base64.b64encode(bytes(mac)).decode()


def begin(stream, user, token, authzid="", send=None):
    """SASL-HMAC's first message for `user`, sent with `send` (stream.auth unless given, e.g.
    stream.authenticate for SASL2): (client-first message, secret half, the server's answer)."""
    public, s = sh.split_token(token)
    cfm = sh.client_first(authzid.encode(), user.encode(), public)
    return cfm, s, (send or stream.auth)("SASL-HMAC", cfm)


def shell(server, command):
    """prosodyctl shell COMMAND against `server` (which loads admin_shell): (exit code, output)."""
    r = server.shell(*command.split())
    return r.returncode, r.stdout + r.stderr


NS_SM = "urn:xmpp:sm:3"  # XEP-0198, stream management
NS_BIND2 = "urn:xmpp:bind:0"  # XEP-0386, Bind 2


def sasl2_inline(stream, user, token, inline):
    """A PLAIN XEP-0388 <authenticate/> for `user` carrying `inline` (XML text: a Bind 2 <bind/>, a
    stream-management <resume/>); the <success/> or <failure/> element the server answers."""
    stream.send_raw("<authenticate xmlns='%s' mechanism='PLAIN'><initial-response>%s</initial-response>"
                    "<user-agent id='5a2b1d3c-0000-4000-8000-000000000002'><software>rawxmpp</software></user-agent>"
                    "%s</authenticate>" % (rawxmpp.NS_SASL2, rawxmpp.sasl_text(plain(user, token)), inline))
    while True:
        el = stream.recv()
        assert el is not None, "stream closed during SASL2"
        if el.tag in ("{%s}success" % rawxmpp.NS_SASL2, "{%s}failure" % rawxmpp.NS_SASL2):
            return el


def inline_resume(previd):
    """What a client sends inline to resume the session `previd`: the <resume/> and, should that
    fail, a Bind 2 request to fall back on."""
    return "<resume xmlns='%s' previd='%s' h='0'/><bind xmlns='%s'><tag>resumer</tag></bind>" % (NS_SM, previd, NS_BIND2)
