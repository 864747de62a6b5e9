"""Sign-out requests as docs/signout.md states them, built with the standard library (a second
implementation beside the core's, so the format cannot drift unnoticed), and sent to a Prosody's
endpoint."""
import base64
import hashlib
import hmac
import secrets
import struct
import urllib.error
import urllib.request

KEY_LABEL = b"\x00prosody-auth-hmac signout key v1"
MESSAGE_LABEL = b"prosody-auth-hmac signout v1\x00"


def nonce():
    """32 decimal digits from the OS CSPRNG."""
    return "".join(secrets.choice("0123456789") for _ in range(32))


def mac(token_secret, time, nonce_digits, jid):
    """base64(HMAC-SHA256(K, M)), K derived from the token secret with the sign-out label."""
    key = hmac.new(token_secret.encode(), KEY_LABEL, hashlib.sha256).digest()
    jid_bytes = jid.encode()
    message = MESSAGE_LABEL + struct.pack(">Q", time) + nonce_digits.encode() + struct.pack(">H", len(jid_bytes)) + jid_bytes
    return base64.b64encode(hmac.new(key, message, hashlib.sha256).digest()).decode()


def line(token_secret, jid, time, nonce_digits=None):
    """One request line, `v1 TIME NONCE JID MAC`."""
    nonce_digits = nonce_digits or nonce()
    return "v1 %d %s %s %s" % (time, nonce_digits, jid, mac(token_secret, time, nonce_digits, jid))


def forged(request_line):
    """The same line with one bit of its MAC flipped."""
    head, b64 = request_line.rsplit(" ", 1)
    raw = bytearray(base64.b64decode(b64))
    raw[0] ^= 1
    return head + " " + base64.b64encode(bytes(raw)).decode()


def post(server, body, host=None, path="/auth_hmac/signout", method="POST", headers=None):
    """Sends `body` to the server's HTTP port with the VirtualHost's name as Host (Prosody routes a
    host's HTTP paths by it): (status, body text)."""
    url = "http://127.0.0.1:%d%s" % (server.http_port, path)
    data = body.encode() if isinstance(body, str) else body
    request = urllib.request.Request(url, data=data, method=method, headers=dict(
        {"Host": host or server.host, "Content-Type": "text/plain"}, **(headers or {})))
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace")
