"""SASL-HMAC for slixmpp (docs/sasl-hmac.md): log in with a token without sending its secret half,
and check that the server holds the shared secret.

    import sasl_hmac  # registers the mechanism
    xmpp = slixmpp.ClientXMPP("alice@example.org", token, sasl_mech="SASL-HMAC")

The token is what the web app minted: "OTP‖NONCE base64(S)". Only "OTP‖NONCE" and a proof
derived from S cross the wire. The login succeeds only after the server has proved, in its
<success/>, that it knows S: a <success/> without a valid server proof (before the challenge, with
random data, with a wrong proof) makes slixmpp disconnect (SASLMutualAuthFailed). Pin the mechanism
(sasl_mech="SASL-HMAC"): otherwise a server that offers only PLAIN is sent the whole token.

A token is tried once: the mechanism has no client nonce, so an impostor that recorded one genuine
exchange could answer a second attempt with the same token with the recorded server proof. Each
login (and each reconnect) needs a freshly minted token; a token this process has already tried is
refused before anything is sent.
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
            return client_proof(self.s, self.cfm, challenge)
        if self.state == "proof-sent":
            if not hmac.compare_digest(challenge or b"", server_proof(self.s, self.cfm, self.server_nonce)):
                self.state = "failed"
                raise SASLMutualAuthFailed("the server's SASL-HMAC proof is wrong")
            self.state = "done"
            self.server_proven = True
            return b""
        raise SASLFailed("unexpected SASL-HMAC message")


# slixmpp hands a <success/>'s data to the same process() as a challenge, so a mechanism cannot tell
# "success before the proof" from "a challenge". Route <success/> to SASL_HMAC.success instead.
_handle_success = _feature_mechanisms.FeatureMechanisms._handle_success


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
