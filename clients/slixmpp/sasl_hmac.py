"""SASL-HMAC for slixmpp (docs/sasl-hmac.md): log in with a token without sending its secret half,
and check that the server holds the shared secret.

    import sasl_hmac  # registers the mechanism
    xmpp = slixmpp.ClientXMPP("alice@example.org", token, sasl_mech="SASL-HMAC")

The token is what the web app minted: "OTP‖NONCE base64(S)". Only "OTP‖NONCE" and a proof
derived from S cross the wire. If the server's final proof is wrong, slixmpp is told
(SASLMutualAuthFailed) and disconnects.
"""
import base64
import binascii
import hashlib
import hmac
import re

from slixmpp.util.sasl.client import Mech, SASLFailed, SASLMutualAuthFailed, sasl_mech

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
        try:
            self.public, self.s = split_token(self.credentials["password"])
        except ValueError as e:
            raise SASLFailed("the password is not a token") from e
        self.cfm = client_first(self.credentials["authzid"], self.credentials["username"], self.public)
        self.state = "start"

    def process(self, challenge=b""):
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
                raise SASLMutualAuthFailed("the server's SASL-HMAC proof is wrong")
            self.state = "done"
            return b""
        raise SASLFailed("unexpected SASL-HMAC message")
