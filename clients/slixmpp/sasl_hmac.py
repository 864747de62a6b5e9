"""SASL-HMAC for slixmpp (docs/sasl-hmac.md): log in with a token without sending its secret half,
and check that the server holds the shared secret.

    import sasl_hmac  # registers SASL-HMAC and SASL-HMAC-PLUS
    xmpp = slixmpp.ClientXMPP("alice@example.org", token, sasl_mech="SASL-HMAC-PLUS")

The token is what the web app minted: "OTP‖NONCE base64(S)". Only "OTP‖NONCE" and a proof
derived from S cross the wire. The login succeeds only after the server has proved, in its
<success/>, that it knows S: a <success/> without a valid server proof (before the challenge, with
random data, with a wrong proof) makes slixmpp disconnect (SASLMutualAuthFailed). Pin the mechanism
(sasl_mech="SASL-HMAC-PLUS", or "SASL-HMAC" where the server cannot bind): otherwise a server that
offers only PLAIN is sent the whole token.

SASL-HMAC-PLUS also binds both proofs to the TLS channel, so an exchange relayed by a man in the
middle (who holds its own TLS session with each side) fails. Python's ssl module offers tls-unique
(TLS 1.2) and the server's certificate (tls-server-end-point), not tls-exporter: on TLS 1.3 this
client binds with tls-server-end-point when the server advertises it (XEP-0440; Prosody 13 with
tls_server_end_point_hash = "auto"), and otherwise cannot use -PLUS there (cap the TLS version at
1.2 for tls-unique, which Prosody 0.12 and 13 both offer). Pinned to -PLUS, a client that cannot
bind refuses to log in rather than fall back.

A token is tried once: the mechanism has no client nonce, so an impostor that recorded one genuine
exchange could answer a second attempt with the same token with the recorded server proof. Each
login (and each reconnect) needs a freshly minted token. Once this process has tried a token with
SASL-HMAC(-PLUS), no mechanism sends it again: not SASL-HMAC, and not PLAIN or X-TOKEN either (a
server that answers <failure/> would otherwise be sent the whole token by slixmpp's next choice).
"""
import base64
import binascii
import hashlib
import hmac
import re

from slixmpp.features.feature_mechanisms import mechanisms as _feature_mechanisms
from slixmpp.util.sasl.client import Mech, SASLCancelled, SASLFailed, SASLMutualAuthFailed, sasl_mech

SERVER_NONCE_LEN = 24


def split_token(token):
    """Returns (public, S) from a token (bytes or str); raises ValueError if it is not one."""
    if isinstance(token, str):
        token = token.encode("ascii")
    public, sep, b64 = token.partition(b" ")
    if not sep or not re.fullmatch(rb"\d{6,}", public) or len(b64) != 44:
        raise ValueError("not a token")
    try:
        s = base64.b64decode(b64, validate=True)
    except binascii.Error as e:
        raise ValueError("not a token") from e
    return public, s


# The public parts of tokens this process has tried (hashed): never sent twice.
_tried = set()

# What the current SASL negotiation runs over: the TLS object, and the channel-binding types the
# server advertised (XEP-0440), or None when it advertised none. Set by the hook below.
_channel = {"tls": None, "advertised": None}
NS_SASL_CB = "urn:xmpp:sasl-cb:0"


def channel_binding(tls, advertised):
    """(name, data) of the binding this client can offer on `tls`, or None."""
    import ssl
    if not isinstance(tls, (ssl.SSLSocket, ssl.SSLObject)):
        return None
    if tls.version() in ("TLSv1", "TLSv1.1", "TLSv1.2") and (advertised is None or "tls-unique" in advertised):
        data = tls.get_channel_binding("tls-unique")
        return ("tls-unique", data) if data else None
    if advertised and "tls-server-end-point" in advertised:
        der = tls.getpeercert(binary_form=True)
        return ("tls-server-end-point", server_end_point(der)) if der else None
    return None


def server_end_point(der):
    """RFC 5929 §4.1: the certificate's hash, with SHA-256 for MD5 and SHA-1 signatures."""
    algorithm = "sha256"
    try:
        from cryptography import x509
        name = x509.load_der_x509_certificate(der).signature_hash_algorithm.name
        if name in ("sha384", "sha512"):
            algorithm = name
    except Exception:  # noqa: BLE001 - without the parser, SHA-256 (what Prosody uses for sha256/sha1 certs)
        pass
    return hashlib.new(algorithm, der).digest()


def client_first(authzid, authcid, public):
    return authzid + b"\0" + authcid + b"\0" + public


def proof(s, label, cfm, server_nonce):
    return hmac.new(s, label + b"\0" + cfm + b"\0" + server_nonce, hashlib.sha256).digest()


def client_proof(s, cfm, server_nonce):
    return proof(s, b"SASL-HMAC client", cfm, server_nonce)


def server_proof(s, cfm, server_nonce):
    return proof(s, b"SASL-HMAC server", cfm, server_nonce)


@sasl_mech(60)
class SASL_HMAC(Mech):  # noqa: N801 - slixmpp's naming
    name = "SASL-HMAC"
    required_credentials = {"username", "password"}
    optional_credentials = {"authzid"}
    security = set()

    def setup(self, name):
        # SASLCancelled: slixmpp then tries no other mechanism within the pinned one
        try:
            self.public, self.s = split_token(self.credentials["password"])
        except ValueError as e:
            raise SASLCancelled("the password is not a token") from e
        tag = hashlib.sha256(self.public).digest()
        if tag in _tried:
            raise SASLCancelled("this token was already tried once; fetch a new one")
        _tried.add(tag)
        self.cfm = client_first(self.credentials["authzid"], self.credentials["username"], self.public)
        self.state = "start"
        self.server_proven = False

    def _client_proof(self, challenge):
        return client_proof(self.s, self.cfm, challenge)

    def _server_proof(self):
        return server_proof(self.s, self.cfm, self.server_nonce)

    def success(self, data):
        """The server's <success/>: accepted only with the server proof for this exchange (as its
        additional data, or already checked in a final challenge)."""
        if self.state == "proof-sent":
            self.process(data)  # raises SASLMutualAuthFailed when the proof is wrong
        if not (self.state == "done" and self.server_proven):
            self.state = "failed"
            raise SASLMutualAuthFailed("SASL <success/> without the server's SASL-HMAC proof")
        self.state = "accepted"
        return b""

    def process(self, challenge=b""):
        if self.state == "accepted":  # slixmpp's own success handler, after success() passed
            return b""
        if self.state == "start":
            self.state = "first-sent"
            return self.cfm
        if self.state == "first-sent":
            if challenge == b"":  # the server wanted the client-first message as a response
                return self.cfm
            if len(challenge) != SERVER_NONCE_LEN:
                raise SASLFailed("bad SASL-HMAC challenge")
            self.server_nonce = challenge
            self.state = "proof-sent"
            return self._client_proof(challenge)
        if self.state == "proof-sent":
            if not hmac.compare_digest(challenge or b"", self._server_proof()):
                self.state = "failed"
                raise SASLMutualAuthFailed("the server's SASL-HMAC proof is wrong")
            self.state = "done"
            self.server_proven = True
            return b""
        raise SASLFailed("unexpected SASL-HMAC message")


def plus_proof(s, label, cfm, server_nonce, cb_data):
    return hmac.new(s, label + b"\0" + cfm + b"\0" + server_nonce + b"\0" + cb_data, hashlib.sha256).digest()


@sasl_mech(61)
class SASL_HMAC_PLUS(SASL_HMAC):  # noqa: N801 - slixmpp's naming
    """SASL-HMAC with channel binding: client-first is `cb-name NUL authzid NUL authcid NUL P`, and
    both proofs also cover the binding data (docs/sasl-hmac.md)."""
    name = "SASL-HMAC-PLUS"

    def setup(self, name):
        binding = channel_binding(_channel["tls"], _channel["advertised"])
        if binding is None:
            raise SASLCancelled("no channel binding this client can offer on this connection")
        self.cb_name, self.cb_data = binding
        super().setup(name)
        self.cfm = self.cb_name.encode() + b"\0" + self.cfm

    def _client_proof(self, challenge):
        return plus_proof(self.s, b"SASL-HMAC client", self.cfm, challenge, self.cb_data)

    def _server_proof(self):
        return plus_proof(self.s, b"SASL-HMAC server", self.cfm, self.server_nonce, self.cb_data)


# slixmpp hands a <success/>'s data to the same process() as a challenge, so a mechanism cannot tell
# "success before the proof" from "a challenge". Route <success/> to SASL_HMAC.success instead.
_handle_success = _feature_mechanisms.FeatureMechanisms._handle_success


_handle_sasl_auth = _feature_mechanisms.FeatureMechanisms._handle_sasl_auth


def _noting_the_channel(self, features):
    """Before a mechanism is chosen: note the TLS object and the advertised bindings (XEP-0440)."""
    _channel["tls"] = getattr(self.xmpp, "socket", None)
    advertised = features.xml.find("{%s}sasl-channel-binding" % NS_SASL_CB)
    _channel["advertised"] = None if advertised is None else {
        el.get("type") for el in advertised.findall("{%s}channel-binding" % NS_SASL_CB)}
    return _handle_sasl_auth(self, features)


_feature_mechanisms.FeatureMechanisms._handle_sasl_auth = _noting_the_channel

_send_auth = _feature_mechanisms.FeatureMechanisms._send_auth


def _never_resending_a_tried_token(self):
    """slixmpp picks the next mechanism after a <failure/> (and on a new connection) with the same
    password; for a token already tried with SASL-HMAC, there is no next mechanism."""
    password = getattr(self.xmpp, "password", None)
    try:
        public, _ = split_token(password or "")
    except (ValueError, UnicodeEncodeError):
        public = None
    if public is not None and hashlib.sha256(public).digest() in _tried:
        self.attempted_mechs |= set(self.mech_list)
    return _send_auth(self)


_feature_mechanisms.FeatureMechanisms._send_auth = _never_resending_a_tried_token


def _checked_success(self, stanza):
    mech = getattr(self, "mech", None)
    if isinstance(mech, SASL_HMAC):
        try:
            mech.success(stanza["value"])
        except SASLMutualAuthFailed:
            _feature_mechanisms.log.error("Mutual authentication failed! The server did not prove it holds the token secret.")
            self.attempted_mechs.add(mech.name)
            self.xmpp.disconnect()
            return
    return _handle_success(self, stanza)


_feature_mechanisms.FeatureMechanisms._handle_success = _checked_success
