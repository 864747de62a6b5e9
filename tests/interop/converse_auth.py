"""A Python 3 port of collective.converse's token minting (its auth.py), used as the independent
implementation for interop tests and for generating tests/vectors/.

token = OTP ‖ NONCE ␠ base64(HMAC-SHA256(token_secret, OTP ‖ NONCE ‖ bare JID))

OTP: RFC 6238 TOTP (HMAC-SHA1, 8 digits, 30 s) from the base32 otp_seed, via pyotp as upstream.
The original drew its nonce from `random`; this port uses `secrets` (a CSPRNG), which is what
anyone minting tokens today should do.
"""
import base64
import hashlib
import hmac
import secrets
import sys
import time

import pyotp


def create_token(jid, otp_seed, token_secret, for_time=None, nonce=None, digits=8, interval=30):
    """Returns the token for `jid` at unix time `for_time` (now when None)."""
    if for_time is None:
        for_time = int(time.time())  # unix time is UTC by definition: no timezone to get wrong
    totp = pyotp.TOTP(otp_seed, digits=digits, interval=interval)
    otp = totp.at(for_time)
    if nonce is None:
        nonce = "".join(secrets.choice("0123456789") for _ in range(32))
    string_to_sign = (otp + nonce + jid).encode("utf-8")
    signature = hmac.new(token_secret.encode("utf-8"), string_to_sign, hashlib.sha256).digest()
    return "%s%s %s" % (otp, nonce, base64.b64encode(signature).decode("ascii"))


if __name__ == "__main__":
    # usage: converse_auth.py JID OTP_SEED TOKEN_SECRET [UNIX_TIME]
    jid, seed, secret = sys.argv[1:4]
    when = int(sys.argv[4]) if len(sys.argv) > 4 else None
    print(create_token(jid, seed, secret, for_time=when))
