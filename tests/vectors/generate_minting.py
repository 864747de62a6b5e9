#!/usr/bin/python3
"""Regenerates tests/vectors/minting.json: the contract every minting library (clients/python,
clients/node, clients/php) is held to. Expected tokens come from the independent Python port of
collective.converse (tests/interop/converse_auth.py); the one prepared non-ASCII localpart is
checked against Prosody's own nodeprep. Run: /usr/bin/python3 tests/vectors/generate_minting.py

Each case: `jid` (as the web app has it), `now` (unix seconds), `nonce`, optional `prepared`
(the caller vouches the JID is already in Prosody's form), optional `settings` (digits, step,
nonce_digits), optional `token_secret`; then either `signed_jid` and `token` (what the library must
return) or `error`: "jid" (not a bare JID Prosody accepts, or not one the library can prepare),
"nonce" (not exactly nonce_digits digits), "settings" (outside the plugin's ranges).
"""
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "interop"))
from converse_auth import create_token  # noqa: E402

SEED = "XVGR73KMZH2M4XMY"
SECRET = "JYXEX4IQOEYFYQ2S3MC5P4ZT4SDHYEA7"
T = 1_700_000_000
nonces = iter("%032d" % i for i in range(101, 1000))
cases = []


def prosody_nodeprep(s):
    lua = ('package.cpath = "/usr/lib/prosody/?.so;" .. package.cpath; '
           'io.write(require "util.encodings".stringprep.nodeprep(arg[1]) or "!")')
    return subprocess.run(["lua5.4", "-e", lua, "-", s], capture_output=True, text=True, check=True).stdout


def good(name, jid, signed, now=T, prepared=False, settings=None, secret=SECRET):
    s = settings or {}
    nonce = "%0*d" % (s.get("nonce_digits", 32), len(cases) + 1)
    token = create_token(signed, SEED, secret, for_time=now, nonce=nonce, digits=s.get("digits", 8),
                         interval=s.get("step", 30))
    if not prepared:  # the library's preparation must be Prosody's
        local, domain = jid.split("@")
        assert prosody_nodeprep(local) + "@" + domain.lower() == signed, (jid, signed)
    c = {"name": name, "jid": jid, "now": now, "nonce": nonce, "signed_jid": signed, "token": token}
    if prepared:
        c["prepared"] = True
    if settings:
        c["settings"] = settings
    if secret != SECRET:
        c["token_secret"] = secret
    cases.append(c)


def bad(name, jid, error, nonce=None, settings=None, prepared=False):
    if error == "jid" and jid.count("@") == 1 and jid.split("@")[0] and jid.split("@")[0].isascii():
        # a localpart of ASCII that the libraries refuse: Prosody's nodeprep refuses it too, or the
        # domain or the length is what is wrong
        local, domain = jid.split("@")
        assert prosody_nodeprep(local) == "!" or not domain or " " in domain or ".." in domain \
            or domain.endswith(".") or not domain.isascii() or "/" in domain or len(local) > 1023, jid
    c = {"name": name, "jid": jid, "now": T, "nonce": nonce or "%032d" % (len(cases) + 1), "error": error}
    if settings:
        c["settings"] = settings
    if prepared:
        c["prepared"] = True
    cases.append(c)


good("plain", "alice@example.org", "alice@example.org")
good("upper-case ASCII is what Prosody lower-cases", "Alice@Example.ORG", "alice@example.org")
good("numeric localpart", "5@example.org", "5@example.org")
good("a longer numeric localpart is another account", "35@example.org", "35@example.org")
good("OTP with a leading zero (kept)", "dave@example.org", "dave@example.org", now=1_700_000_030)
good("ASCII punctuation nodeprep allows", "o.brien-smith_2+x@chat.example.org", "o.brien-smith_2+x@chat.example.org")
good("6 digits, 60 s steps, 16 nonce digits", "erin@example.org", "erin@example.org",
     settings={"digits": 6, "step": 60, "nonce_digits": 16})
good("a secret beyond ASCII is keyed by its UTF-8 bytes", "frank@example.org", "frank@example.org",
     secret="s\u00e9cret-de-plus-de-seize-octets")
assert prosody_nodeprep("\u00f1and\u00fa") == "\u00f1and\u00fa", "not a nodeprep fixed point"
good("a prepared non-ASCII localpart is signed as given", "\u00f1and\u00fa@example.org", "\u00f1and\u00fa@example.org",
     prepared=True)

for name, jid in [
    ("empty", ""), ("no domain", "alice"), ("empty localpart", "@example.org"), ("empty domain", "alice@"),
    ("full JID with a resource", "alice@example.org/phone"), ("space in the localpart", "a b@example.org"),
    ("double quote", 'a"b@example.org'), ("ampersand", "a&b@example.org"), ("apostrophe", "a'b@example.org"),
    ("slash", "a/b@example.org"), ("colon", "a:b@example.org"), ("less-than", "a<b@example.org"),
    ("greater-than", "a>b@example.org"), ("two at signs", "a@b@example.org"), ("control character", "a\tb@example.org"),
    ("DEL", "a\x7fb@example.org"), ("space in the domain", "alice@exa mple.org"), ("empty domain label", "alice@example..org"),
    ("trailing dot in the domain", "alice@example.org."),
    ("non-ASCII localpart, not prepared", "\u00f1and\u00fa@example.org"),
    ("fullwidth letters, not prepared", "\uff21\uff2c\uff29\uff23\uff25@example.org"),
    ("non-ASCII domain", "alice@b\u00fccher.example"),
    ("localpart over 1023 bytes", "a" * 1024 + "@example.org"),
]:
    bad(name, jid, "jid")
good("a prepared JID is signed exactly as given (for token_jid_as_sent)", "Alice@example.org", "Alice@example.org",
     prepared=True)
bad("prepared, but an empty domain label", "\u00f1and\u00fa@example..org", "jid", prepared=True)
bad("prepared, but the domain is not lower-case", "\u00f1and\u00fa@Example.org", "jid", prepared=True)
bad("prepared, but a space in the localpart", "\u00f1a nd\u00fa@example.org", "jid", prepared=True)
bad("prepared, but a full JID", "\u00f1and\u00fa@example.org/phone", "jid", prepared=True)
bad("nonce one digit short", "alice@example.org", "nonce", nonce="%031d" % 1)
bad("nonce one digit long", "alice@example.org", "nonce", nonce="%033d" % 1)
bad("nonce with a letter", "alice@example.org", "nonce", nonce="%031dx" % 1)
bad("9 OTP digits", "alice@example.org", "settings", settings={"digits": 9})
bad("5 OTP digits", "alice@example.org", "settings", settings={"digits": 5})
bad("a step of 0 s", "alice@example.org", "settings", settings={"step": 0})
bad("a step over a day", "alice@example.org", "settings", settings={"step": 86401})
bad("15 nonce digits", "alice@example.org", "settings", nonce="%015d" % 1, settings={"nonce_digits": 15})
bad("65 nonce digits", "alice@example.org", "settings", nonce="%065d" % 1, settings={"nonce_digits": 65})

doc = {
    "description": __doc__.strip().split("\n\n")[1],
    "token_secret": SECRET, "otp_seed": SEED,
    "defaults": {"digits": 8, "step": 30, "nonce_digits": 32},
    "cases": cases,
}
out = os.path.join(os.path.dirname(__file__), "minting.json")
with open(out, "w") as f:
    json.dump(doc, f, indent=1, ensure_ascii=True)
print("%s: %d cases" % (out, len(cases)))
