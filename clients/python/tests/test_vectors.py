"""prosody_hmac_token against the contract vectors (tests/vectors/*.json) and its own guarantees.

Run: /usr/bin/python3 -m pytest -q clients/python/tests
"""
import base64
import json
import pathlib
import re
import sys

import pytest

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))  # the package, without installing it

import prosody_hmac_token as pht  # noqa: E402

VECTORS = HERE.parent.parent.parent / "tests" / "vectors"
MINTING = json.loads((VECTORS / "minting.json").read_text(encoding="utf-8"))
TOKENS = json.loads((VECTORS / "tokens.json").read_text(encoding="utf-8"))

SECRET = MINTING["token_secret"]
SEED = MINTING["otp_seed"]
JID = "alice@example.org"
NOW = 1700000000


def _options(case):
    opts = dict(MINTING["defaults"])
    opts.update(case.get("settings", {}))
    return opts


# ---------------------------------------------------------------------------------------------
# minting.json


def test_minting_vectors():
    assert MINTING["cases"], "no cases in minting.json"
    failures = []
    for case in MINTING["cases"]:
        name = case["name"]
        secret = case.get("token_secret", MINTING["token_secret"])
        prepared = case.get("prepared", False)
        kwargs = dict(_options(case), now=case["now"], prepared=prepared, nonce=case["nonce"])
        if "error" in case:
            with pytest.raises(pht.TokenError) as info:
                pht.mint(case["jid"], secret, MINTING["otp_seed"], **kwargs)
            if info.value.kind != case["error"]:
                failures.append("%s: kind %r, want %r" % (name, info.value.kind, case["error"]))
            with pytest.raises(pht.TokenError) as info:
                pht.credentials(case["jid"], secret, MINTING["otp_seed"], **kwargs)
            if info.value.kind != case["error"]:
                failures.append("%s: credentials kind %r" % (name, info.value.kind))
            if case["error"] == "jid":
                with pytest.raises(pht.TokenError) as info:
                    pht.signed_jid(case["jid"], prepared=prepared)
                assert info.value.kind == "jid", name
            continue
        token = pht.mint(case["jid"], secret, MINTING["otp_seed"], **kwargs)
        if token != case["token"]:
            failures.append("%s: %r, want %r" % (name, token, case["token"]))
        if pht.signed_jid(case["jid"], prepared=prepared) != case["signed_jid"]:
            failures.append("%s: signed_jid %r" % (name, pht.signed_jid(case["jid"], prepared)))
        body = pht.credentials(case["jid"], secret, MINTING["otp_seed"], **kwargs)
        if body != {"jid": case["signed_jid"], "password": case["token"]}:
            failures.append("%s: credentials %r" % (name, body))
        # and the token checks out
        opts = _options(case)
        result = pht.verify(
            token,
            case["jid"],
            [secret],
            MINTING["otp_seed"],
            now=case["now"],
            digits=opts["digits"],
            step=opts["step"],
            nonce_digits=opts["nonce_digits"],
            prepared=prepared,
        )
        if result is not None:
            failures.append("%s: verify says %r" % (name, result))
    assert not failures, "\n".join(failures)


# ---------------------------------------------------------------------------------------------
# tokens.json


def test_token_vectors():
    assert TOKENS["cases"], "no cases in tokens.json"
    failures = []
    for case in TOKENS["cases"]:
        result = pht.verify(
            case["token"],
            case["jid"],
            TOKENS["secrets"],
            TOKENS["otp_seed"],
            case["now"],
            TOKENS["digits"],
            TOKENS["step"],
            TOKENS["skew"],
            host=TOKENS["host"],
        )
        # "replayed": refusing a replay needs the server's state (its replay cache); a stateless
        # verify accepts the token, whose signature and OTP are good.
        want = None if case["result"] in ("ok", "replayed") else case["result"]
        if result != want:
            failures.append("%s: %r, want %r" % (case["name"], result, want))
    assert not failures, "\n".join(failures)


def test_token_vectors_single_secret_string():
    """token_secrets may be one string; the rotated-out secret's token then fails."""
    first, old = TOKENS["secrets"]
    case = next(c for c in TOKENS["cases"] if c.get("secret") == "old")
    args = (case["token"], case["jid"])
    assert pht.verify(*args, old, TOKENS["otp_seed"], now=case["now"]) is None
    assert pht.verify(*args, first, TOKENS["otp_seed"], now=case["now"]) == "bad-signature"


# ---------------------------------------------------------------------------------------------
# The nonce


def test_nonces_are_distinct_32_ascii_digits():
    nonces = set()
    for _ in range(1000):
        token = pht.mint(JID, SECRET, SEED, now=NOW)
        public = token.split(" ")[0]
        nonce = public[8:]
        assert len(public) == 40 and len(nonce) == 32
        assert all(c in "0123456789" for c in nonce), nonce
        nonces.add(nonce)
    assert len(nonces) == 1000


def test_nonce_comes_from_secrets(monkeypatch):
    calls = []

    def fake_token_bytes(n):
        calls.append(n)
        # 250..255 must be rejected (modulo bias), the rest map to byte % 10
        return bytes([255, 250, 249, 13] + [0] * (n - 4))

    monkeypatch.setattr(pht.secrets, "token_bytes", fake_token_bytes)
    token = pht.mint(JID, SECRET, SEED, now=NOW)
    assert calls, "secrets.token_bytes was not used"
    nonce = token.split(" ")[0][8:]
    # each draw of 32 bytes gives 30 digits (two rejected), so a second draw supplies the last two
    assert calls == [32, 32]
    assert nonce == "93" + "0" * 28 + "93"
    assert pht.verify(token, JID, SECRET, SEED, now=NOW) is None


def test_nonce_rejection_draws_more_bytes(monkeypatch):
    """Bytes >= 250 are dropped, so a draw with many of them asks the CSPRNG for more."""
    draws = iter([bytes([251] * 16), bytes([7] * 16)])
    monkeypatch.setattr(pht.secrets, "token_bytes", lambda n: next(draws))
    token = pht.mint(JID, SECRET, SEED, now=NOW, nonce_digits=16)
    assert token.split(" ")[0][8:] == "7" * 16


def test_nonce_digits_distribution_is_plausibly_uniform():
    counts = dict.fromkeys("0123456789", 0)
    for _ in range(200):
        for c in pht.mint(JID, SECRET, SEED, now=NOW, nonce_digits=64).split(" ")[0][8:]:
            counts[c] += 1
    # 12800 digits: 1280 expected per digit, standard deviation about 34. A coarse check that
    # catches a constant, missing or doubled digit; the rejection of bytes >= 250 (no modulo
    # bias) is checked exactly in test_nonce_comes_from_secrets.
    assert all(1100 < n < 1460 for n in counts.values()), counts


# ---------------------------------------------------------------------------------------------
# Time


def test_now_default_is_int_time(monkeypatch):
    monkeypatch.setattr(pht.time, "time", lambda: 1700000000.9)
    used = []
    real_totp = pht._totp

    def spy(key, counter, digits):
        used.append(counter)
        return real_totp(key, counter, digits)

    monkeypatch.setattr(pht, "_totp", spy)
    token = pht.mint(JID, SECRET, SEED, nonce="0" * 31 + "1")
    assert used == [1700000000 // 30]
    assert token == MINTING["cases"][0]["token"]
    assert pht.verify(token, JID, SECRET, SEED) is None


def test_now_default_rounds_down_at_step_boundary(monkeypatch):
    # 1700000009.99 must not round up into the next step (1700000010 is a multiple of 30)
    monkeypatch.setattr(pht.time, "time", lambda: 1700000009.99)
    a = pht.mint(JID, SECRET, SEED, nonce="1" * 32)
    b = pht.mint(JID, SECRET, SEED, now=1700000009, nonce="1" * 32)
    c = pht.mint(JID, SECRET, SEED, now=1700000010, nonce="1" * 32)
    assert a == b != c


@pytest.mark.parametrize("bad", [1700000000.5, "1700000000", -1, True])
def test_now_must_be_a_non_negative_int(bad):
    with pytest.raises(pht.TokenError) as info:
        pht.mint(JID, SECRET, SEED, now=bad)
    assert info.value.kind == "settings"


# ---------------------------------------------------------------------------------------------
# Errors


def test_token_error_is_a_value_error():
    assert issubclass(pht.TokenError, ValueError)
    e = pht.TokenError("jid", "x")
    assert e.kind == "jid" and str(e) == "x"


@pytest.mark.parametrize(
    "jid",
    [
        "",
        "alice",
        "@example.org",
        "alice@",
        "alice@example.org/phone",
        "a@b@example.org",
        "a b@example.org",
        "a\x00b@example.org",
        "alice@example..org",
        "alice@example.org.",
        "alice@bücher.example",
        "ñandú@example.org",
        "a" * 1024 + "@example.org",
        "alice@" + "a" * 1024,
    ],
)
def test_jid_errors(jid):
    for call in (
        lambda: pht.signed_jid(jid),
        lambda: pht.mint(jid, SECRET, SEED, now=NOW),
        lambda: pht.credentials(jid, SECRET, SEED, now=NOW),
    ):
        with pytest.raises(pht.TokenError) as info:
            call()
        assert info.value.kind == "jid"
    assert pht.verify("0" * 40 + " " + "A" * 43 + "=", jid, SECRET, SEED, now=NOW) == "malformed"


def test_localpart_of_1023_bytes_is_accepted():
    assert pht.signed_jid("A" * 1023 + "@example.org") == "a" * 1023 + "@example.org"


def test_non_ascii_message_says_how_to_prepare():
    with pytest.raises(pht.TokenError) as info:
        pht.signed_jid("ñandú@example.org")
    assert "prepared=True" in str(info.value)
    assert "hmac-token jid" in str(info.value)


@pytest.mark.parametrize(
    "jid",
    ["ñandú@example.org/x", "ñ@a@example.org", "@example.org", "ñandú@", "ñ andú@example.org",
     "ñ<@example.org", "ñ\tx@example.org", "ñ\x7fx@example.org"],
)
def test_prepared_still_refuses_structural_errors(jid):
    with pytest.raises(pht.TokenError) as info:
        pht.signed_jid(jid, prepared=True)
    assert info.value.kind == "jid"


def test_prepared_is_signed_unchanged():
    assert pht.signed_jid("ñandú@example.org", prepared=True) == "ñandú@example.org"
    assert pht.signed_jid("Alice@example.org", prepared=True) == "Alice@example.org"


@pytest.mark.parametrize("nonce", ["1" * 31, "1" * 33, "1" * 31 + "x", "١" * 32, "1" * 31 + " ", 11])
def test_nonce_errors(nonce):
    with pytest.raises(pht.TokenError) as info:
        pht.mint(JID, SECRET, SEED, now=NOW, nonce=nonce)
    assert info.value.kind == "nonce"


@pytest.mark.parametrize(
    "settings",
    [
        {"digits": 5},
        {"digits": 9},
        {"digits": "8"},
        {"digits": True},
        {"step": 0},
        {"step": 86401},
        {"step": 30.0},
        {"nonce_digits": 15},
        {"nonce_digits": 65},
    ],
)
def test_settings_errors(settings):
    with pytest.raises(pht.TokenError) as info:
        pht.mint(JID, SECRET, SEED, now=NOW, **settings)
    assert info.value.kind == "settings"
    with pytest.raises(pht.TokenError) as info:
        pht.verify("x", JID, SECRET, SEED, now=NOW, **settings)
    assert info.value.kind == "settings"


@pytest.mark.parametrize("skew", [-1, 11, 1.0, None])
def test_skew_errors(skew):
    with pytest.raises(pht.TokenError) as info:
        pht.verify("x", JID, SECRET, SEED, now=NOW, skew=skew)
    assert info.value.kind == "settings"


def test_skew_range_ends_are_accepted():
    token = pht.mint(JID, SECRET, SEED, now=NOW - 300)
    assert pht.verify(token, JID, SECRET, SEED, now=NOW, skew=10) is None
    assert pht.verify(token, JID, SECRET, SEED, now=NOW, skew=0) == "expired"
    assert pht.verify(pht.mint(JID, SECRET, SEED, now=NOW), JID, SECRET, SEED, now=NOW, skew=0) is None


SECRETISH = "Sup3r-S3cret-Value-\u00e9\ud800"  # not UTF-8 encodable


@pytest.mark.parametrize(
    "secret,seed",
    [
        ("", SEED),  # empty secret
        (SECRETISH, SEED),  # secret not encodable
        (SECRET, ""),  # empty seed
        (SECRET, "NOT-BASE32-SEED!"),
        (SECRET, "XVGR73KMZ"),  # impossible base32 length
        (SECRET, "XVGR73KMZH2M4XMÝ"),
    ],
)
def test_secret_and_seed_errors_never_show_them(secret, seed):
    for call in (
        lambda: pht.mint(JID, secret, seed, now=NOW),
        lambda: pht.verify("x", JID, [secret], seed, now=NOW),
    ):
        with pytest.raises(pht.TokenError) as info:
            call()
        assert info.value.kind == "settings"
        _assert_hidden(info.value, [secret, seed])


def _assert_hidden(exc, values):
    text = str(exc) + repr(exc) + repr(exc.args)
    cause = exc.__cause__ or (None if exc.__suppress_context__ else exc.__context__)
    if cause is not None:
        text += str(cause) + repr(cause)
    for value in values:
        if value:
            assert value not in text
            assert value.upper() not in text


def test_error_messages_never_contain_secret_or_seed():
    cases = [
        lambda: pht.mint("bad jid", SECRET, SEED, now=NOW),
        lambda: pht.mint("ñandú@example.org", SECRET, SEED, now=NOW),
        lambda: pht.mint(JID, SECRET, SEED, now=NOW, nonce="123"),
        lambda: pht.mint(JID, SECRET, SEED, now=NOW, digits=9),
        lambda: pht.mint(JID, SECRET, SEED, now=-5),
        lambda: pht.verify("t", JID, [SECRET], SEED, now=NOW, skew=99),
        lambda: pht.credentials("a@b@c", SECRET, SEED, now=NOW),
    ]
    for call in cases:
        with pytest.raises(pht.TokenError) as info:
            call()
        _assert_hidden(info.value, [SECRET, SEED])


def test_empty_secret_list_is_a_settings_error():
    with pytest.raises(pht.TokenError) as info:
        pht.verify("t", JID, [], SEED, now=NOW)
    assert info.value.kind == "settings"


# ---------------------------------------------------------------------------------------------
# Seed and secret encoding


def test_seed_is_case_insensitive_and_padding_optional():
    want = MINTING["cases"][0]["token"]
    for seed in (SEED, SEED.lower(), SEED + "======", SEED.lower() + "======"):
        assert pht.mint(JID, SECRET, seed, now=NOW, nonce="0" * 31 + "1") == want


def test_bytes_secret_is_taken_as_is():
    case = next(c for c in MINTING["cases"] if "token_secret" in c)
    secret = case["token_secret"]
    token = pht.mint(case["jid"], secret.encode("utf-8"), SEED, now=case["now"], nonce=case["nonce"])
    assert token == case["token"]


def test_short_secrets_are_not_refused():
    token = pht.mint(JID, "x", SEED, now=NOW)
    assert pht.verify(token, JID, ["x"], SEED, now=NOW) is None


def test_rfc6238_sha1_vectors():
    """RFC 6238 appendix B (SHA-1, 8 digits, seed "12345678901234567890")."""
    key = b"12345678901234567890"
    for t, otp in [
        (59, "94287082"),
        (1111111109, "07081804"),
        (1111111111, "14050471"),
        (1234567890, "89005924"),
        (2000000000, "69279037"),
        (20000000000, "65353130"),
    ]:
        assert pht._totp(key, t // 30, 8) == otp
        seed = base64.b32encode(key).decode()
        token = pht.mint(JID, SECRET, seed, now=t)
        assert token.startswith(otp)


# ---------------------------------------------------------------------------------------------
# verify details


def test_verify_uses_compare_digest(monkeypatch):
    calls = []
    real = pht.hmac.compare_digest

    def spy(a, b):
        calls.append((type(a), type(b)))
        return real(a, b)

    monkeypatch.setattr(pht.hmac, "compare_digest", spy)
    token = pht.mint(JID, SECRET, SEED, now=NOW)
    assert pht.verify(token, JID, [SECRET, "other"], SEED, now=NOW) is None
    # every secret (2) and every step of the window (3) was compared
    assert len(calls) == 5


def test_verify_host_compares_ascii_case_insensitively():
    token = pht.mint(JID, SECRET, SEED, now=NOW)
    assert pht.verify(token, JID, SECRET, SEED, now=NOW, host="Example.ORG") is None
    assert pht.verify(token, JID, SECRET, SEED, now=NOW, host="example.com") == "wrong-host"


def test_verify_signs_the_prepared_jid():
    token = pht.mint("Alice@EXAMPLE.org", SECRET, SEED, now=NOW)
    assert pht.verify(token, "alice@example.org", SECRET, SEED, now=NOW) is None
    assert pht.verify(token, "Alice@example.org", SECRET, SEED, now=NOW, prepared=True) == "bad-signature"


def test_verify_malformed_inputs():
    token = pht.mint(JID, SECRET, SEED, now=NOW)
    assert pht.verify(token.encode(), JID, SECRET, SEED, now=NOW) == "malformed"
    assert pht.verify(None, JID, SECRET, SEED, now=NOW) == "malformed"
    assert pht.verify(token + "\u00e9", JID, SECRET, SEED, now=NOW) == "malformed"
    public, mac = token.split(" ")
    assert pht.verify("١" + public[1:] + " " + mac, JID, SECRET, SEED, now=NOW) == "malformed"


def test_credentials_is_json_ready():
    body = pht.credentials("Alice@Example.org", SECRET, SEED, now=NOW)
    assert set(body) == {"jid", "password"}
    assert body["jid"] == "alice@example.org"
    assert json.loads(json.dumps(body)) == body
    assert pht.verify(body["password"], body["jid"], SECRET, SEED, now=NOW) is None


def test_public_api():
    assert re.fullmatch(r"\d+\.\d+\.\d+", pht.__version__)  # the release's: tests/integration/test_versions.py
    for name in ("mint", "credentials", "signed_jid", "verify", "TokenError"):
        assert name in pht.__all__
        assert getattr(pht, name).__doc__
