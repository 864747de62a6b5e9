#!/usr/bin/python3
"""Regenerates tests/vectors/tokens.json from the Python port of collective.converse (an
implementation independent of ours). Run: /usr/bin/python3 tests/vectors/generate.py

The cases are meant to be run in order against one fresh verifier (replay cases depend on it).
"""
import base64
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "interop"))
from converse_auth import create_token  # noqa: E402
import pyotp  # noqa: E402

SEED = "XVGR73KMZH2M4XMY"  # collective.converse's README example (80 bits)
SECRET = "JYXEX4IQOEYFYQ2S3MC5P4ZT4SDHYEA7"
OLD_SECRET = "previous-secret-still-accepted-during-rotation"
HOST = "example.org"
T = 1_700_000_000
STEP = 30


def mint(jid, t, nonce, secret=SECRET):
    return create_token(jid, SEED, secret, for_time=t, nonce=nonce)


def flip_mac_byte(token, index):
    public, b64 = token.split(" ")
    mac = bytearray(base64.b64decode(b64))
    mac[index] ^= 0x01
    return public + " " + base64.b64encode(bytes(mac)).decode()


cases = []


def case(name, jid, token, now, result, **extra):
    c = {"name": name, "jid": jid, "token": token, "now": now, "result": result}
    c.update(extra)
    cases.append(c)


def ok(name, jid, t, nonce, now=None, secret=SECRET):
    now = T if now is None else now
    tok = mint(jid, t, nonce, secret)
    case(name, jid, tok, now, "ok", step=t // STEP, minted_at=t, nonce=nonce,
         **({"secret": "old"} if secret != SECRET else {}))
    return tok


n = iter("%032d" % i for i in range(1, 1000))
good = ok("fresh token", "alice@example.org", T, next(n))
case("same token again is a replay", "alice@example.org", good, T, "replayed")
case("replay in the next step is still a replay", "alice@example.org", good, T + STEP, "replayed")
ok("token of the previous step", "alice@example.org", T - STEP, next(n))
ok("token of the next step (clock skew)", "alice@example.org", T + STEP, next(n))
case("token two steps old is expired", "alice@example.org", mint("alice@example.org", T - 2 * STEP, next(n)), T, "expired")
case("token three steps old is expired", "alice@example.org", mint("alice@example.org", T - 3 * STEP, next(n)), T, "expired")
case("token two steps ahead is expired", "alice@example.org", mint("alice@example.org", T + 2 * STEP, next(n)), T, "expired")
# The public part has one fixed length (8 OTP + 32 nonce digits), so no digit can move between the
# nonce and the localpart: what is signed for one JID never reads as a token for another.
case("empty nonce", "bob@example.org", mint("bob@example.org", T, ""), T, "malformed")
case("one-digit nonce", "bob@example.org", mint("bob@example.org", T, "7"), T, "malformed")
case("31-digit nonce", "bob@example.org", mint("bob@example.org", T, "1" * 31), T, "malformed")
case("33-digit nonce", "bob@example.org", mint("bob@example.org", T, "1" * 33), T, "malformed")
five = mint("5@example.org", T, "%031d3" % 0)
ok("numeric localpart", "5@example.org", T, "%031d3" % 0)
pub5, mac5 = five.split(" ")
case("last nonce digit moved into the localpart (5 -> 35)", "35@example.org", pub5[:-1] + " " + mac5, T, "malformed")
five8 = mint("5@example.org", T, "%030d83" % 0)
pub58, mac58 = five8.split(" ")
case("two nonce digits moved into the localpart (5 -> 835)", "835@example.org", pub58[:-2] + " " + mac58, T, "malformed")
t35 = mint("35@example.org", T, next(n))
pub35, mac35 = t35.split(" ")
case("first localpart digit moved into the nonce (35 -> 5)", "5@example.org", pub35 + "3 " + mac35, T, "malformed")
case("whole public part moved into the localpart", pub5 + "5@example.org", " " + mac5, T, "malformed")
ok("signed by the second (rotated-out) secret", "carol@example.org", T, next(n), secret=OLD_SECRET)
case("flipped first MAC byte", "alice@example.org", flip_mac_byte(mint("alice@example.org", T, next(n)), 0), T, "bad-signature")
case("flipped last MAC byte", "alice@example.org", flip_mac_byte(mint("alice@example.org", T, next(n)), 31), T, "bad-signature")
case("signed with an unknown secret", "alice@example.org", mint("alice@example.org", T, next(n), secret="attacker"), T, "bad-signature")
case("another user's token", "alice@example.org", mint("bob@example.org", T, next(n)), T, "bad-signature")
case("another host's token", "alice@example.org", mint("alice@other.example", T, next(n)), T, "bad-signature")
case("JID of another host", "alice@other.example", mint("alice@other.example", T, next(n)), T, "wrong-host")
case("signature is case-sensitive in the JID", "alice@example.org", mint("Alice@example.org", T, next(n)), T, "bad-signature")
tok = mint("alice@example.org", T, next(n))
public, b64 = tok.split(" ")
case("OTP altered (signature covers it)", "alice@example.org", ("1" if public[0] != "1" else "2") + public[1:] + " " + b64, T, "bad-signature")
case("nonce altered", "alice@example.org", public[:-1] + ("1" if public[-1] != "1" else "2") + " " + b64, T, "bad-signature")
case("empty", "alice@example.org", "", T, "malformed")
case("no space", "alice@example.org", public + b64, T, "malformed")
case("two spaces", "alice@example.org", public + "  " + b64, T, "malformed")
case("leading space", "alice@example.org", " " + tok, T, "malformed")
case("trailing newline", "alice@example.org", tok + "\n", T, "malformed")
case("non-digit in OTP", "alice@example.org", "1234a678" + public[8:] + " " + b64, T, "malformed")
case("non-digit in nonce", "alice@example.org", public[:20] + "x" + public[21:] + " " + b64, T, "malformed")
case("OTP shorter than 8 digits", "alice@example.org", public[:7] + " " + b64, T, "malformed")
case("unpadded base64", "alice@example.org", public + " " + b64.rstrip("="), T, "malformed")
case("URL-safe base64 alphabet", "alice@example.org", public + " " + b64.replace("+", "-").replace("/", "_").replace("A", "-"), T, "malformed")
case("base64 with an inner space", "alice@example.org", public + " " + b64[:10] + " " + b64[10:], T, "malformed")
case("base64 with an invalid character", "alice@example.org", public + " " + "!" + b64[1:], T, "malformed")
case("base64 of 31 bytes", "alice@example.org", public + " " + base64.b64encode(b"x" * 31).decode(), T, "malformed")
case("base64 of 33 bytes", "alice@example.org", public + " " + base64.b64encode(b"x" * 33).decode(), T, "malformed")
B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
case("non-canonical base64 (trailing bits set)", "alice@example.org",
     public + " " + b64[:42] + B64[B64.index(b64[42]) | 1] + "=", T, "malformed")
case("token over 1 KiB (long nonce)", "alice@example.org", mint("alice@example.org", T, "1" * 1000), T, "malformed")
case("MAC as hex instead of base64", "alice@example.org", public + " " + base64.b64decode(b64).hex(), T, "malformed")
case("bare JID without localpart", "example.org", tok, T, "malformed")
case("full JID with a resource", "alice@example.org/phone", tok, T, "malformed")

# A step whose OTP starts with 0: the leading zero is part of the code.
t0 = T
while pyotp.TOTP(SEED, digits=8).at(t0)[0] != "0":
    t0 += STEP
zero = ok("OTP with a leading zero", "dave@example.org", t0, next(n), now=t0)
case("same token without the OTP's leading zero", "dave@example.org", zero[1:], t0, "malformed")
zpub, zmac = zero.split(" ")
case("OTP's leading zero dropped, a digit appended to the nonce", "dave@example.org", zpub[1:] + "0 " + zmac, t0, "bad-signature")

doc = {
    "description": "Tokens from the Python port of collective.converse (tests/interop/converse_auth.py). "
                   "Run the cases in order against one fresh verifier; 'secrets' lists the verifier's "
                   "token secrets, the first one mints.",
    "otp_seed": SEED,
    "secrets": [SECRET, OLD_SECRET],
    "digits": 8,
    "step": STEP,
    "skew": 1,
    "host": HOST,
    "cases": cases,
}
out = os.path.join(os.path.dirname(__file__), "tokens.json")
with open(out, "w") as f:
    json.dump(doc, f, indent=1, ensure_ascii=True)
    f.write("\n")
print("wrote %d cases to %s" % (len(cases), out))


# --- SASL-HMAC (docs/sasl-hmac.md) ------------------------------------------------------------
import hashlib  # noqa: E402
import hmac as hmac_mod  # noqa: E402


def sasl_hmac_vector(name, authzid, authcid, jid, t, nonce, server_nonce_hex):
    token = create_token(jid, SEED, SECRET, for_time=t, nonce=nonce)
    public, b64 = token.split(" ")
    s = base64.b64decode(b64)
    cfm = authzid.encode() + b"\0" + authcid.encode() + b"\0" + public.encode()
    sn = bytes.fromhex(server_nonce_hex)
    client = hmac_mod.new(s, b"SASL-HMAC client\0" + cfm + b"\0" + sn, hashlib.sha256).digest()
    server = hmac_mod.new(s, b"SASL-HMAC server\0" + cfm + b"\0" + sn, hashlib.sha256).digest()
    return {"name": name, "jid": jid, "token": token, "now": t,
            "client_first_hex": cfm.hex(), "server_nonce_hex": sn.hex(), "secret_half_hex": s.hex(),
            "client_proof_hex": client.hex(), "server_proof_hex": server.hex()}


sasl_doc = {
    "description": "SASL-HMAC exchanges computed by tests/vectors/generate.py (Python hmac/hashlib). "
                   "S = HMAC-SHA256(token_secret, OTP‖NONCE‖JID); client proof = HMAC-SHA256(S, "
                   "'SASL-HMAC client' NUL client-first NUL server-nonce); server proof likewise with "
                   "'SASL-HMAC server'. Same seed, secrets and host as tokens.json.",
    "otp_seed": SEED, "secrets": [SECRET, OLD_SECRET], "digits": 8, "step": STEP, "skew": 1, "host": HOST,
    "cases": [
        sasl_hmac_vector("empty authzid", "", "alice", "alice@example.org", T, "%032d" % 7,
                         "000102030405060708090a0b0c0d0e0f1011121314151617"),
        sasl_hmac_vector("authzid is the bare JID", "bob@example.org", "bob", "bob@example.org", T, "%032d" % 8,
                         "f0e1d2c3b4a5968778695a4b3c2d1e0f0123456789abcdef"),
    ],
}
out = os.path.join(os.path.dirname(__file__), "sasl_hmac.json")
with open(out, "w") as f:
    json.dump(sasl_doc, f, indent=1)
    f.write("\n")
print("wrote %d cases to %s" % (len(sasl_doc["cases"]), out))
