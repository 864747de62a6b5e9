"""The hmac-token CLI: keygen, mint (plain and --json), verify, and secrets from env and files."""
import json
import os
import re
import subprocess
import tempfile
from pathlib import Path

from harness import HMAC_TOKEN, prosody_lib

from converse_auth import create_token  # tests/interop, on the path by pytest.ini


def run(*args, env=None, stdin=None):
    """The CLI with `env` over this environment (a None value removes that variable)."""
    full = {k: v for k, v in dict(os.environ, **(env or {})).items() if v is not None}
    return subprocess.run([str(HMAC_TOKEN), *args], capture_output=True, text=True, input=stdin, env=full)


def keys():
    return json.loads(run("keygen", "--json").stdout)


def test_keygen_prints_config_lines_and_fresh_secrets():
    out = run("keygen").stdout
    m = re.fullmatch(r'token_secret = "([A-Z2-7]{52})"\notp_seed = "([A-Z2-7]{32})"\n', out)
    assert m, out
    assert keys() != keys()


def test_mint_json_is_a_credentials_url_body_and_verifies():
    k = keys()
    env = {"TOKEN_SECRET": k["token_secret"], "OTP_SEED": k["otp_seed"]}
    body = json.loads(run("mint", "--jid", "alice@example.org", "--json", env=env).stdout)
    assert body["jid"] == "alice@example.org"
    assert re.fullmatch(r"\d{40} [A-Za-z0-9+/]{43}=", body["password"])
    ok = run("verify", "--jid", "alice@example.org", "--token", body["password"], env=env)
    assert ok.returncode == 0 and ok.stdout.startswith("valid"), ok
    bad = run("verify", "--jid", "bob@example.org", env=env, stdin=body["password"] + "\n")
    assert bad.returncode == 1 and bad.stdout.strip() == "refused: bad-signature"


def test_agrees_with_the_collective_converse_port_at_a_fixed_time():
    k = keys()
    token = create_token("carol@example.org", k["otp_seed"], k["token_secret"], for_time=1_800_000_000)
    env = {"TOKEN_SECRET": k["token_secret"], "OTP_SEED": k["otp_seed"]}
    r = run("verify", "--jid", "carol@example.org", "--token", token, "--now", "1800000030", env=env)
    assert r.returncode == 0, r
    r = run("verify", "--jid", "carol@example.org", "--token", token, "--now", "1800000090", env=env)
    assert (r.returncode, r.stdout.strip()) == (1, "refused: expired (minted about 90 s ago, and a token is accepted for at "
                                                "most 60 s after minting: most likely used late - a page kept open, a slow "
                                                "credentials fetch, an old token sent again; if every login fails so, check "
                                                "the web app's clock)")
    r = run("verify", "--jid", "carol@example.org", "--token", token, "--now", "1800003600", env=env)
    assert (r.returncode, r.stdout.strip()) == (1, "refused: expired (minted about 3600 s in the past: check the web app's clock and timezone)")
    other = dict(env, OTP_SEED="MFRGGZDFMZTWQ2LKNNWG23TPOBYXE43U")
    r = run("verify", "--jid", "carol@example.org", "--token", token, "--now", "1800000030", env=other)
    assert (r.returncode, r.stdout.strip()) == (1, "refused: otp-mismatch (no OTP step within 24 h matches: the web app's "
                                                "otp_seed (or otp_digits, otp_step) probably differs)")


def test_secrets_from_files_and_clear_errors():
    k = keys()
    with tempfile.TemporaryDirectory() as d:
        sf, of = os.path.join(d, "secret"), os.path.join(d, "seed")
        open(sf, "w").write(k["token_secret"] + "\n")
        open(of, "w").write(k["otp_seed"] + "\n")
        t = run("mint", "--jid", "dan@example.org", "--secret-file", sf, "--otp-seed-file", of).stdout.strip()
        env = {"TOKEN_SECRET": k["token_secret"], "OTP_SEED": k["otp_seed"]}
        assert run("verify", "--jid", "dan@example.org", "--token", t, env=env).returncode == 0
        missing = run("mint", "--jid", "dan@example.org", "--secret-file", os.path.join(d, "nope"), "--otp-seed-file", of)
        assert missing.returncode == 2 and "cannot read" in missing.stderr
    bad = run("mint", "--jid", "x@example.org", "--secret", "SUPER-SECRET-VALUE", "--otp-seed", "NOT-BASE32-SEED!")
    assert bad.returncode == 2 and "--otp-seed/OTP_SEED is not valid base32" in bad.stderr
    assert "SUPER-SECRET-VALUE" not in bad.stderr and "NOT-BASE32-SEED!" not in bad.stderr
    nojid = run("mint", "--jid", "not-a-jid", "--secret", "s", "--otp-seed", k["otp_seed"])
    assert nojid.returncode == 2 and "malformed" in nojid.stderr


def test_weak_and_published_secrets_and_long_lifetimes_are_refused():
    k = keys()
    cases = [
        (["--secret", "fifteen-bytes!!", "--otp-seed", k["otp_seed"]], "--secret/TOKEN_SECRET must be at least 16 bytes, not 15"),
        (["--secret", "JYXEX4IQOEYFYQ2S3MC5P4ZT4SDHYEA7", "--otp-seed", k["otp_seed"]], "--secret/TOKEN_SECRET is an example value"),
        (["--secret", k["token_secret"], "--otp-seed", "XVGR73KMZH2M4XMY"], "--otp-seed/OTP_SEED is an example value"),
        (["--secret", k["token_secret"], "--otp-seed", k["otp_seed"], "--step", "301"], "is 903 s, longer than the 900 s"),
    ]
    for args, message in cases:
        r = run("mint", "--jid", "a@example.org", *args)
        assert r.returncode == 2 and message in r.stderr, (args, r.stderr)
        assert "fifteen-bytes!!" not in r.stderr
    assert run("mint", "--jid", "a@example.org", "--secret", "short", "--otp-seed", "XVGR73KMZH2M4XMY",
               "--allow-weak-secrets").returncode == 0
    assert run("mint", "--jid", "a@example.org", "--secret", k["token_secret"], "--otp-seed", k["otp_seed"],
               "--step", "3600", "--allow-long-lifetime").returncode == 0


CONFIG_NAMES = re.compile(r"\b(token_secret|otp_seed|otp_step|otp_skew|otp_digits|token_nonce_digits|"
                          r"token_allow_long_lifetime)(_file)?\b")


def test_errors_name_the_clis_flags_and_variables():
    """What the CLI's user types (flags, environment variables), not prosody.cfg.lua's options."""
    k = keys()
    good = {"TOKEN_SECRET": k["token_secret"], "OTP_SEED": k["otp_seed"]}
    blank = {"TOKEN_SECRET": None, "OTP_SEED": None, "TOKEN_SECRET_FILE": None, "OTP_SEED_FILE": None}
    cases = [
        ({**blank, "TOKEN_SECRET": k["token_secret"]}, [],
         "--otp-seed/OTP_SEED is not set (give --otp-seed/OTP_SEED or --otp-seed-file/OTP_SEED_FILE)"),
        ({**blank, "OTP_SEED": k["otp_seed"]}, [],
         "--secret/TOKEN_SECRET is not set (give --secret/TOKEN_SECRET or --secret-file/TOKEN_SECRET_FILE)"),
        (good, ["--digits", "9"], "--digits must be between 6 and 8, not 9"),
        (good, ["--step", "0"], "--step must be between 1 and 86400 seconds, not 0"),
        (good, ["--skew", "11"], "--skew must be between 0 and 10, not 11"),
        (good, ["--nonce-digits", "3"], "--nonce-digits/TOKEN_NONCE_DIGITS must be between 16 and 64, not 3"),
        (good, ["--step", "600"], "shorten --step or --skew, or pass --allow-long-lifetime"),
        ({**good, "OTP_SEED": None, "OTP_SEED_FILE": "/nonexistent/seed"}, [],
         '--otp-seed-file/OTP_SEED_FILE: cannot read /nonexistent/seed ('),
        (good, ["--secret-file", "/nonexistent/secret"], '--secret-file/TOKEN_SECRET_FILE: cannot read /nonexistent/secret ('),
    ]
    for env, args, message in cases:
        r = run("mint", "--jid", "a@example.org", *args, env=env)
        assert r.returncode == 2 and message in r.stderr, (args, r.stderr)
        assert not CONFIG_NAMES.search(r.stderr), r.stderr


def test_a_secret_given_as_a_file_name_is_never_printed():
    k = keys()
    for env in ({"TOKEN_SECRET": None, "TOKEN_SECRET_FILE": k["token_secret"], "OTP_SEED": k["otp_seed"]},
                {"TOKEN_SECRET": k["token_secret"], "OTP_SEED": None, "OTP_SEED_FILE": k["otp_seed"]}):
        r = run("mint", "--jid", "a@example.org", env=env)
        assert r.returncode == 2 and "not shown: it looks like a secret" in r.stderr, r.stderr
        helped = run("mint", "--help", env=env)
        for value in (k["token_secret"], k["otp_seed"]):
            assert value not in r.stderr + r.stdout + helped.stdout + helped.stderr


def test_keygen_writes_the_secret_files_as_debian_does():
    import grp
    import stat
    with tempfile.TemporaryDirectory() as d:
        d = os.path.realpath(d)
        # from inside the directory, under a strict umask: still absolute paths, still 0640
        r = subprocess.run(["sh", "-c", 'umask 077 && cd "$1" && exec "$2" keygen --write .', "sh", d, str(HMAC_TOKEN)],
                           capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        sf, of = os.path.join(d, "token_secret"), os.path.join(d, "otp_seed")
        assert r.stdout == 'token_secret_file = "%s"\notp_seed_file = "%s"\n' % (sf, of)
        for path in (sf, of):
            st = os.stat(path)
            assert stat.S_IMODE(st.st_mode) == 0o640, oct(st.st_mode)
            if os.geteuid() == 0:
                assert (st.st_uid, grp.getgrgid(st.st_gid).gr_name) == (0, "prosody")
        t = run("mint", "--jid", "kay@example.org", "--secret-file", sf, "--otp-seed-file", of)
        assert t.returncode == 0, t.stderr
        assert run("verify", "--jid", "kay@example.org", "--token", t.stdout.strip(), "--secret-file", sf,
                   "--otp-seed-file", of).returncode == 0
        before = open(sf).read()
        again = run("keygen", "--write", d)
        assert again.returncode == 2 and "never overwritten" in again.stderr
        assert open(sf).read() == before


# The nodeprep of the Prosody under test (PROSODY_BIN): its own util.encodings and nothing else on
# the C path, so a pass against 13 compares with 13's build. The first line out names the file.
PROSODY_NODEPREP = r"""
package.cpath = os.getenv("PROSODY_LIB") .. "/?.so"
io.write(assert(package.searchpath("util.encodings", package.cpath)), "\n")
local nodeprep = require "util.encodings".stringprep.nodeprep
for line in io.lines() do
    local prepped = nodeprep(line)
    io.write((prepped and prepped ~= "") and prepped or "!", "\n")
end
"""


def _prosody_nodeprep(names):
    """(the util.encodings file loaded, Prosody's nodeprep of each name or "!")."""
    r = subprocess.run(["lua5.4", "-e", PROSODY_NODEPREP], input="\n".join(names) + "\n", capture_output=True,
                       text=True, timeout=120, env=dict(os.environ, PROSODY_LIB=str(prosody_lib())))
    assert r.returncode == 0, r.stderr
    loaded, *out = r.stdout.split("\n")
    return loaded, out[:len(names)]


def _cli_accounts(names):
    r = run("jid", "-", stdin="".join("%s@example.org\n" % n for n in names))
    assert r.returncode == 0, r.stderr
    out = r.stdout.split("\n")[:len(names)]
    return [o[:-len("@example.org")] if o != "!" else "!" for o in out]


def _names():
    """Every code point alone (but line breaks and surrogates), then 20 000 seeded random names
    mixing case, combining marks, Hangul jamo, compatibility forms and the ranges new since Unicode 3.2."""
    import random
    names = [chr(cp) for cp in range(0x110000) if cp not in (0x0a, 0x0d) and not 0xd800 <= cp <= 0xdfff]
    pools = ["aAbBzZ09", "\u0301\u0308\u0327\u20dd", "\u1100\u1161\u11a8\uac00", "\uff21\u2160\u00bd\u0130\u03a3\u00df\ufb01",
             "\u1d43\u2090\u1d2c\U0001fbf5\u1e9e\u0221", "\u00ad\u200b\u200d\ufe0f\u202e"]
    rng = random.Random(20261201)
    for _ in range(20000):
        names.append("".join(rng.choice(rng.choice(pools)) for _ in range(rng.randint(1, 6))))
    return names


def test_cli_nodeprep_never_joins_what_prosody_keeps_apart():
    """hmac-token jid (and so mint and verify) against Prosody's own nodeprep (util.encodings, ICU)
    for every code point and a random corpus: where the CLI gives an answer it is Prosody's; where
    it cannot be sure (characters unassigned in Unicode 3.2, which Prosody passes through and the
    stringprep crate would map with later data) it refuses."""
    names = [n for n in _names() if "@" not in n]
    loaded, theirs = _prosody_nodeprep(names)
    assert Path(loaded) == prosody_lib() / "util" / "encodings.so", loaded
    print("Prosody's nodeprep from", loaded)
    ours = _cli_accounts(names)
    assert len(ours) == len(theirs) == len(names)
    agreed = refused_here_only = 0
    for name, a, b in zip(names, ours, theirs):
        if a == "!":
            refused_here_only += b != "!"
            continue
        assert a == b, "%r: CLI %r, Prosody %r" % (name, a, b)
        agreed += 1
    assert agreed > 100_000, agreed  # the whole Unicode 3.2 repertoire that nodeprep allows, and more
    assert refused_here_only < 900_000


def test_mint_refuses_a_name_that_is_another_account_in_xmpp():
    k = keys()
    env = {"TOKEN_SECRET": k["token_secret"], "OTP_SEED": k["otp_seed"]}
    ok = run("mint", "--jid", "Alice@Example.org", "--json", env=env)
    assert ok.returncode == 0 and json.loads(ok.stdout)["jid"] == "alice@example.org"
    for name, account in [("ＡＬＩＣＥ", "alice"), ("stra\u00dfe", "strasse"), ("al\u00adice", "alice")]:
        r = run("mint", "--jid", name + "@example.org", env=env)
        assert r.returncode == 2 and ('XMPP account "%s"' % account) in r.stderr, (name, r.stderr)
    for name in ["\u2090lice", "3\U0001fbf5"]:  # new since Unicode 3.2: Prosody keeps them as they are
        r = run("mint", "--jid", name + "@example.org", env=env)
        assert r.returncode == 2 and "cannot prepare exactly as Prosody does" in r.stderr, (name, r.stderr)
    assert run("verify", "--jid", "a@example.org", "--token", "x", env=dict(env, TOKEN_JID_AS_SENT="0")).returncode == 1


def test_secrets_on_the_command_line_are_warned_about_and_files_checked():
    k = keys()
    flagged = run("mint", "--jid", "a@example.org", "--secret", k["token_secret"], "--otp-seed=" + k["otp_seed"])
    assert flagged.returncode == 0
    assert "--secret puts a secret on the command line" in flagged.stderr, flagged.stderr
    assert "--otp-seed puts a secret on the command line" in flagged.stderr
    assert k["token_secret"] not in flagged.stderr and k["otp_seed"] not in flagged.stderr
    env = {"TOKEN_SECRET": k["token_secret"], "OTP_SEED": k["otp_seed"]}
    quiet = run("mint", "--jid", "a@example.org", env=env)
    assert quiet.returncode == 0 and quiet.stderr == "", quiet.stderr
    token = quiet.stdout.strip()
    assert "--token puts a secret" in run("verify", "--jid", "a@example.org", "--token", token, env=env).stderr
    piped = run("verify", "--jid", "b@example.org", env=env, stdin=token + "\n")
    assert piped.stderr == "" and piped.stdout.strip() == "refused: bad-signature"
    with tempfile.TemporaryDirectory() as d:
        sf, of = os.path.join(d, "secret"), os.path.join(d, "seed")
        for path, value in ((sf, k["token_secret"]), (of, k["otp_seed"])):
            open(path, "w").write(value + "\n")
            os.chmod(path, 0o644)
        loose = run("mint", "--jid", "a@example.org", "--secret-file", sf, "--otp-seed-file", of)
        assert loose.returncode == 0 and loose.stderr.count("is readable by others (rw-r--r--)") == 2, loose.stderr
        # the module's rule (one implementation): Debian's root:prosody 0640 is fine, another group is not
        import grp
        prosody_gid = grp.getgrnam("prosody").gr_gid
        os.chmod(sf, 0o640)
        os.chmod(of, 0o600)
        os.chown(sf, -1, prosody_gid)
        tight = run("mint", "--jid", "a@example.org", "--secret-file", sf, "--otp-seed-file", of)
        assert tight.returncode == 0 and tight.stderr == "", tight.stderr
        other = 0 if prosody_gid != 0 else 65534
        os.chown(sf, -1, other)
        foreign = run("mint", "--jid", "a@example.org", "--secret-file", sf, "--otp-seed-file", of)
        assert foreign.returncode == 0, foreign.stderr
        assert ("is readable by group %d, which is not Prosody's (%d)" % (other, prosody_gid)) in foreign.stderr, foreign.stderr


def signout_vectors():
    with open(Path(__file__).resolve().parents[1] / "vectors" / "signout.json") as f:
        return json.load(f)


def test_signout_writes_every_vectors_line_exactly():
    cases = [c for c in signout_vectors()["cases"] if "mint" in c]
    assert len(cases) > 10
    for c in cases:
        m = c["mint"]
        r = run("signout", "--jid", m["jid"], "--now", str(m["time"]), "--nonce", m["nonce"],
                env={"TOKEN_SECRET": m["secret"], "OTP_SEED": None})
        assert (r.returncode, r.stdout) == (0, c["line"] + "\n"), (c["name"], r.stderr)


def test_signout_picks_a_fresh_nonce_and_the_clock_and_signs_the_prepared_jid():
    k = keys()
    env = {"TOKEN_SECRET": k["token_secret"]}
    first, second = (run("signout", "--jid", "Alice@Example.ORG", env=env) for _ in range(2))
    assert first.returncode == 0, first.stderr
    assert "alice@example.org" in first.stderr  # says which form it signed
    lines = [r.stdout.split(" ") for r in (first, second)]
    for version, time, nonce, jid, mac in lines:
        assert (version, jid) == ("v1", "alice@example.org")
        assert abs(int(time) - __import__("time").time()) < 60
        assert re.fullmatch(r"\d{32}", nonce) and re.fullmatch(r"[A-Za-z0-9+/]{43}=\n", mac)
    assert lines[0][2] != lines[1][2], "a random nonce each time"


def test_signout_refuses_what_the_server_would_refuse():
    k = keys()
    env = {"TOKEN_SECRET": k["token_secret"]}
    for args, says in [
        (["--jid", "alice@example.org", "--nonce", "1" * 31], "nonce 32 digits"),
        (["--jid", "alice@example.org", "--nonce", "1" * 33], "nonce 32 digits"),
        (["--jid", "alice@example.org", "--now", "0"], "unix time from 1 on"),
        (["--jid", "alice@example.org/web"], "not a bare JID"),
        (["--jid", "\uff21lice@example.org"], "its localpart is the XMPP account"),
    ]:
        r = run("signout", *args, env=env)
        assert r.returncode == 2 and r.stdout == "" and says in r.stderr, (args, r.stderr)
    weak = run("signout", "--jid", "alice@example.org", env={"TOKEN_SECRET": "short"})
    assert weak.returncode == 2 and "--secret/TOKEN_SECRET must be at least 16 bytes" in weak.stderr, weak.stderr
    none = run("signout", "--jid", "alice@example.org", env={"TOKEN_SECRET": None, "TOKEN_SECRET_FILE": None})
    assert none.returncode == 2 and "--secret/TOKEN_SECRET is not set" in none.stderr, none.stderr
