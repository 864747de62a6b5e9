#!/usr/bin/python3
"""Regenerates tests/vectors/signout.json: sign-out requests (docs/signout.md) made here with the
standard library's hmac and hashlib only, independently of the Rust core, with the outcome each
must have. Run: /usr/bin/python3 tests/vectors/generate_signout.py

Every case stands alone: a fresh store, then the lines in `before` (each accepted at its `now`,
its record stored for the user), then `line` at `now`. `expect` is "accepted" or the refusal
reason; an accepted case also gives `username` and the stored time after it, `signed_out_at`: the
latest of every accepted line's TIME and the server's clock (`now`) when it was accepted. No
authentic, timely, new request is refused for the number before it: a nonce is remembered until
its TIME + 60 s, and past 16 remembered nonces the one whose window ends soonest (the first of
them) is forgotten.
A case with `mint` holds what a minting library needs to write `line` exactly: the secret, the
time, the nonce and the bare JID. A case flagged `beyond_2_53` has integers past 2^53 (a reader
with only doubles skips it). `logins` are login tokens for a verifier with these secrets and
`otp_seed`, `digits`, `step`, `skew`: a sign-out MAC presented as a login token, and tokens minted
before and after a sign-out at `signed_out_at`, with the outcome a login has.
"""
import base64
import hashlib
import hmac
import json
import os
import struct
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "interop"))
from converse_auth import create_token  # noqa: E402

HOST = "example.org"
SECRETS = ["a-signout-vector-secret-of-32-by", "the-previous-secret-during-rotation"]
STRANGER = "a-secret-this-host-never-configured"
SEED = "KRSXG5DTMVSWI4ZAONUWO3TPOV2A"
T = 1_750_000_000
WINDOW = 60
MAX_RECENT = 16
STEP = 30

KEY_LABEL = b"\x00prosody-auth-hmac signout key v1"
MAC_LABEL = b"prosody-auth-hmac signout v1\x00"


def signout_key(secret):
    return hmac.new(secret.encode("utf-8"), KEY_LABEL, hashlib.sha256).digest()


def message(time, nonce, jid):
    j = jid.encode("utf-8")
    return MAC_LABEL + struct.pack(">Q", time) + nonce.encode("ascii") + struct.pack(">H", len(j)) + j


def mac(secret, time, nonce, jid):
    return hmac.new(signout_key(secret), message(time, nonce, jid), hashlib.sha256).digest()


def b64(raw):
    return base64.b64encode(raw).decode("ascii")


def line(time, nonce, jid, secret=SECRETS[0]):
    return "v1 %d %s %s %s" % (time, nonce, jid, b64(mac(secret, time, nonce, jid)))


def nonce(n):
    return "%032d" % n


def prosody_nodeprep(s):
    lua = ('package.cpath = "/usr/lib/prosody/?.so;" .. package.cpath; '
           'io.write(require "util.encodings".stringprep.nodeprep(arg[1]) or "!")')
    return subprocess.run(["lua5.4", "-e", lua, "-", s], capture_output=True, text=True, check=True).stdout


cases = []


def accepted(name, time, n, jid, now=None, secret=SECRETS[0], before=()):
    local = jid.split("@")[0]
    assert prosody_nodeprep(local) == local, "an accepted JID's localpart is nodeprep'd: %r" % jid
    now = T if now is None else now
    # the stored time never moves back, and is never before the server's clock at acceptance
    signed_out_at = max([time, now] + [max(int(b.split(" ")[1]), at) for b, at in before])
    c = {"name": name, "now": now, "line": line(time, n, jid, secret),
         "expect": "accepted", "username": local, "signed_out_at": signed_out_at,
         "mint": {"secret": secret, "time": time, "nonce": n, "jid": jid}}
    if before:
        c["before"] = [{"line": b, "now": at} for b, at in before]
    cases.append(c)


def refused(name, text, reason, now=T, before=()):
    c = {"name": name, "now": now, "line": text, "expect": reason}
    if before:
        c["before"] = [{"line": b, "now": at} for b, at in before]
    cases.append(c)


N = nonce(12345678)
GOOD = line(T, N, "alice@example.org")
_, _, _, _, GOOD_MAC = GOOD.split(" ")

# accepted
accepted("plain", T, N, "alice@example.org")
accepted("signed under the previous secret (rotation)", T, nonce(2), "alice@example.org", secret=SECRETS[1])
accepted("nonce of all zeros", T, nonce(0), "bob@example.org")
accepted("nonce of all nines", T, "9" * 32, "bob@example.org")
accepted("TIME one digit", 1, nonce(3), "alice@example.org", now=61)
accepted("TIME 2^64-1, 20 digits", 2**64 - 1, nonce(4), "alice@example.org", now=2**64 - 1)
# JSON readers with only doubles (JavaScript, Lua 5.1) cannot hold it: they skip what is flagged
cases[-1]["beyond_2_53"] = True
accepted("TIME 60 s behind", T - 60, nonce(5), "alice@example.org")
accepted("TIME 60 s ahead", T + 60, nonce(6), "alice@example.org")
accepted("localpart of 1023 octets", T, nonce(7), "a" * 1023 + "@example.org")
accepted("numeric localpart", T, nonce(8), "5@example.org")
assert prosody_nodeprep("j\u00fcrgen") == "j\u00fcrgen"
accepted("a prepared non-ASCII localpart, UTF-8", T, nonce(9), "j\u00fcrgen@example.org")
accepted("punctuation nodeprep keeps", T, nonce(10), "o.brien-smith_2+x@example.org")
accepted("one trailing line feed is ignored", T, nonce(11), "alice@example.org")
cases[-1]["line"] += "\n"
del cases[-1]["mint"]  # a library writes the line without it
accepted("an older TIME never moves the stored time back", T - 30, nonce(12), "alice@example.org",
         before=[(line(T + 30, nonce(13), "alice@example.org"), T)])
assert cases[-1]["signed_out_at"] == T + 30
accepted("a TIME behind the server's clock stores the server's", T - 45, nonce(16), "alice@example.org")
assert cases[-1]["signed_out_at"] == T
accepted("a later TIME moves it on", T + 30, nonce(14), "alice@example.org",
         before=[(line(T - 30, nonce(15), "alice@example.org"), T)])
accepted("another user's nonce is no replay", T, N, "bob@example.org", before=[(GOOD, T)])
accepted("a nonce is forgotten once its request is stale", T + 61, N, "alice@example.org", now=T + 61,
         before=[(GOOD, T)])
accepted("sixteen within a minute", T, nonce(100 + MAX_RECENT - 1), "alice@example.org",
         before=[(line(T, nonce(100 + i), "alice@example.org"), T) for i in range(MAX_RECENT - 1)])
accepted("the seventeenth once the first is stale", T + 61, nonce(200), "alice@example.org", now=T + 61,
         before=[(line(T, nonce(100 + i), "alice@example.org"), T) for i in range(MAX_RECENT)])
accepted("the seventeenth within a minute (a flood never delays a sign-out)", T, nonce(999), "alice@example.org",
         now=T + 30, before=[(line(T, nonce(100 + i), "alice@example.org"), T) for i in range(MAX_RECENT)])
# sixteen remembered, each until a second later than the one before; then a seventeenth
FULL = [(line(T + i, nonce(300 + i), "alice@example.org"), T + i) for i in range(MAX_RECENT)]
SEVENTEENTH = line(T + 20, nonce(399), "alice@example.org")
accepted("past sixteen, the nonce that expires soonest is forgotten", T, nonce(300), "alice@example.org",
         now=T + 21, before=FULL + [(SEVENTEENTH, T + 20)])
assert cases[-1]["line"] == FULL[0][0]

# malformed: the shape
fields = GOOD.split(" ")


def with_field(i, value):
    f = list(fields)
    f[i] = value
    return " ".join(f)


def relined(time=None, n=None, jid="alice@example.org"):
    """A line with its fields changed but the MAC of the original fields (the shape is what fails)."""
    f = list(fields)
    if time is not None:
        f[1] = time
    if n is not None:
        f[2] = n
    f[3] = jid
    return " ".join(f)


refused("empty", "", "malformed")
refused("a line feed alone", "\n", "malformed")
refused("two line feeds", GOOD + "\n\n", "malformed")
refused("CRLF", GOOD + "\r\n", "malformed")
refused("a carriage return", GOOD + "\r", "malformed")
refused("trailing space", GOOD + " ", "malformed")
refused("leading space", " " + GOOD, "malformed")
refused("two spaces between fields", GOOD.replace(" ", "  ", 1), "malformed")
refused("a tab for a space", GOOD.replace(" ", "\t", 1), "malformed")
refused("missing MAC", " ".join(fields[:4]), "malformed")
refused("missing version", " ".join(fields[1:]), "malformed")
refused("missing nonce", " ".join(fields[:2] + fields[3:]), "malformed")
refused("a sixth field", GOOD + " x", "malformed")
refused("version v2", with_field(0, "v2"), "malformed")
refused("version V1", with_field(0, "V1"), "malformed")
refused("TIME 0", line(0, N, "alice@example.org"), "malformed")
refused("TIME with a leading zero", relined(time="0%d" % T), "malformed")
refused("TIME 2^64", relined(time=str(2**64)), "malformed")
refused("TIME of 21 digits", relined(time="1" + "0" * 20), "malformed")
refused("TIME negative", relined(time="-%d" % T), "malformed")
refused("TIME with a plus sign", relined(time="+%d" % T), "malformed")
refused("TIME empty", relined(time=""), "malformed")
refused("TIME not decimal", relined(time="0x%x" % T), "malformed")
refused("nonce of 31 digits", relined(n=N[:31]), "malformed")
refused("nonce of 33 digits", relined(n=N + "0"), "malformed")
refused("nonce with a letter", relined(n=N[:31] + "a"), "malformed")
refused("nonce of full-width digits", relined(n="\uff11" * 32), "malformed")
refused("JID with a resource", relined(jid="alice@example.org/web"), "malformed")
refused("JID without a localpart", relined(jid="@example.org"), "malformed")
refused("JID without a host", relined(jid="alice@"), "malformed")
refused("JID without @", relined(jid="alice"), "malformed")
refused("JID with two @", relined(jid="a@b@example.org"), "malformed")
refused("JID with a no-break space", relined(jid="al\u00a0ice@example.org"), "malformed")
refused("JID with a NUL", relined(jid="al\x00ice@example.org"), "malformed")
refused("localpart of 1024 octets", line(T, N, "a" * 1024 + "@example.org"), "malformed")
refused("JID of 2048 octets", line(T, N, "a" * 1023 + "@" + "b" * 1024), "malformed")
refused("localpart not nodeprep'd (upper case)", line(T, N, "Alice@example.org"), "malformed")
assert prosody_nodeprep("J\u00fcrgen") == "j\u00fcrgen"
refused("localpart not nodeprep'd (non-ASCII upper case)", line(T, N, "J\u00fcrgen@example.org"), "malformed")
assert prosody_nodeprep("al\u00adice") == "alice"
refused("localpart not nodeprep'd (a soft hyphen nodeprep drops)", line(T, N, "al\u00adice@example.org"), "malformed")
assert prosody_nodeprep("a\u0627b") == "!"
refused("localpart nodeprep refuses (mixed directions)", line(T, N, "a\u0627b@example.org"), "malformed")
refused("MAC of 43 characters", with_field(4, GOOD_MAC[:43]), "malformed")
refused("MAC without padding", with_field(4, GOOD_MAC.rstrip("=")), "malformed")
refused("MAC in URL-safe base64", with_field(4, base64.urlsafe_b64encode(base64.b64decode(GOOD_MAC)).decode()
                                          if any(c in GOOD_MAC for c in "+/") else GOOD_MAC[:42] + "-="), "malformed")
refused("MAC with a character outside base64", with_field(4, GOOD_MAC[:42] + "!="), "malformed")
refused("MAC of 33 bytes", with_field(4, b64(base64.b64decode(GOOD_MAC) + b"\x00")), "malformed")
refused("MAC of 31 bytes", with_field(4, b64(base64.b64decode(GOOD_MAC)[:31])), "malformed")
ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
refused("MAC with non-zero trailing bits (not canonical base64)",
        with_field(4, GOOD_MAC[:42] + ALPHABET[ALPHABET.index(GOOD_MAC[42]) ^ 1] + "="), "malformed")
refused("MAC in hex", with_field(4, base64.b64decode(GOOD_MAC).hex()), "malformed")

# wrong-host
refused("another host", line(T, N, "alice@other.org"), "wrong-host")
refused("a subdomain of the host", line(T, N, "alice@chat.example.org"), "wrong-host")
refused("the host with a trailing dot", line(T, N, "alice@example.org."), "wrong-host")

# bad-signature
refused("signed under a secret this host does not have", line(T, N, "alice@example.org", STRANGER), "bad-signature")
direct = hmac.new(SECRETS[0].encode(), message(T, N, "alice@example.org"), hashlib.sha256).digest()
refused("MAC made under token_secret itself, not the derived key", with_field(4, b64(direct)), "bad-signature")
login = create_token("alice@example.org", SEED, SECRETS[0], for_time=T, nonce=N)
login_mac = login.split(" ")[1]
refused("a login token's MAC for the same JID and nonce", with_field(4, login_mac), "bad-signature")
refused("a login token presented as a sign-out", login, "malformed")
refused("a login token's MAC under the sign-out fields' text",
        with_field(4, b64(hmac.new(SECRETS[0].encode(), ("%d%s%s" % (T, N, "alice@example.org")).encode(),
                                   hashlib.sha256).digest())), "bad-signature")
# the same digits, another boundary: TIME one digit shorter, its last digit the nonce's first, the
# nonce's last digit the localpart's first: as text "TIME NONCE JID" they concatenate the same
shifted = mac(SECRETS[0], T // 10, str(T % 10) + N[:31], N[31] + "alice@example.org")
assert str(T // 10) + str(T % 10) + N[:31] + N[31] + "alice@example.org" == str(T) + N + "alice@example.org"
refused("MAC over a shifted field boundary", with_field(4, b64(shifted)), "bad-signature")
no_prefix = hmac.new(signout_key(SECRETS[0]), MAC_LABEL + struct.pack(">Q", T) + N.encode() + b"alice@example.org",
                     hashlib.sha256).digest()
refused("MAC without the JID's length prefix", with_field(4, b64(no_prefix)), "bad-signature")
refused("a re-cased host (the MAC covers the JID as sent)", relined(jid="alice@EXAMPLE.org"), "bad-signature")
refused("another user's MAC", with_field(3, "bob@example.org"), "bad-signature")
refused("another TIME under the same MAC", relined(time=str(T + 1)), "bad-signature")
refused("another nonce under the same MAC", relined(n=nonce(12345679)), "bad-signature")
refused("a bad MAC is refused before the time is looked at", with_field(4, b64(direct)), "bad-signature", now=T + 3600)

# stale
refused("TIME 61 s behind", line(T - 61, N, "alice@example.org"), "stale")
refused("TIME 61 s ahead", line(T + 61, N, "alice@example.org"), "stale")
refused("TIME an hour behind", line(T - 3600, N, "alice@example.org"), "stale")

# replayed
refused("the same line again", GOOD, "replayed", before=[(GOOD, T - 10)])
refused("the same nonce for the same user with another TIME", line(T + 5, N, "alice@example.org"), "replayed",
        before=[(GOOD, T)])
ahead = line(T + 60, N, "alice@example.org")
refused("a replay 120 s later of a request 60 s ahead", ahead, "replayed", now=T + 120, before=[(ahead, T)])

refused("past sixteen, the others are still remembered", FULL[1][0], "replayed", now=T + 21,
        before=FULL + [(SEVENTEENTH, T + 20)])
# the oldest is not the one forgotten when its window ends last: one 50 s ahead, then fifteen 50 s
# behind, the latest TIME first (behind(1)'s window, TIME + 60, ends first), then a seventeenth
AHEAD = line(T + 50, nonce(400), "alice@example.org")
MIXED = [(AHEAD, T)] + [(line(T - 50 + n, nonce(400 + n), "alice@example.org"), T) for n in range(15, 0, -1)] \
    + [(line(T, nonce(499), "alice@example.org"), T)]
accepted("past sixteen, the window that ends first is forgotten, not the oldest", T - 49, nonce(401),
         "alice@example.org", before=MIXED)
refused("past sixteen, the oldest whose window ends last is still remembered", AHEAD, "replayed", before=MIXED)
refused("past sixteen, one whose window ends later is still remembered", MIXED[1][0], "replayed", before=MIXED)
refused("past sixteen, the newest is remembered", SEVENTEENTH, "replayed", now=T + 21,
        before=FULL + [(SEVENTEENTH, T + 20)])

# login tokens
logins = []
signout_mac_token = login.split(" ")[0] + " " + b64(mac(SECRETS[0], T, N, "alice@example.org"))
logins.append({"name": "the login token itself logs in", "token": login, "username": "alice", "now": T,
               "expect": "accepted"})
logins.append({"name": "a sign-out MAC presented as a login token", "token": signout_mac_token, "username": "alice",
               "now": T, "expect": "bad-signature"})
step_start = (T // STEP) * STEP
for name, minted, signed_out_at, expect in [
    ("minted in the sign-out's step", step_start, step_start + STEP - 1, "signed-out"),
    ("minted the step before", step_start - STEP, step_start, "signed-out"),
    ("minted the step after", step_start + STEP, step_start + STEP - 1, "accepted"),
]:
    logins.append({"name": name, "token": create_token("alice@example.org", SEED, SECRETS[0], for_time=minted,
                                                       nonce=nonce(minted)),
                   "username": "alice", "now": minted, "signed_out_at": signed_out_at, "expect": expect})

doc = {
    "description": __doc__.strip().split("\n\n")[1].replace("\n", " "),
    "host": HOST,
    "secrets": SECRETS,
    "window": WINDOW,
    "max_recent": MAX_RECENT,
    "otp_seed": SEED,
    "digits": 8,
    "step": STEP,
    "skew": 1,
    "cases": cases,
    "logins": logins,
}
with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "signout.json"), "w") as f:
    json.dump(doc, f, indent=1, ensure_ascii=False)
    f.write("\n")
