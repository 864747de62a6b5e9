"""The hmac-token CLI: keygen, mint (plain and --json), verify, and secrets from env and files."""
import json
import os
import re
import subprocess
import sys
import tempfile

from harness import HMAC_TOKEN

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "interop"))
from converse_auth import create_token  # noqa: E402


def run(*args, env=None, stdin=None):
    return subprocess.run([str(HMAC_TOKEN), *args], capture_output=True, text=True, input=stdin,
                          env=dict(os.environ, **(env or {})))


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
    assert (r.returncode, r.stdout.strip()) == (1, "refused: expired")


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
    assert bad.returncode == 2 and "otp_seed is not valid base32" in bad.stderr
    assert "SUPER-SECRET-VALUE" not in bad.stderr and "NOT-BASE32-SEED!" not in bad.stderr
    nojid = run("mint", "--jid", "not-a-jid", "--secret", "s", "--otp-seed", k["otp_seed"])
    assert nojid.returncode == 2 and "malformed" in nojid.stderr


def test_weak_and_published_secrets_and_long_lifetimes_are_refused():
    k = keys()
    cases = [
        (["--secret", "fifteen-bytes!!", "--otp-seed", k["otp_seed"]], "token_secret must be at least 16 bytes, not 15"),
        (["--secret", "JYXEX4IQOEYFYQ2S3MC5P4ZT4SDHYEA7", "--otp-seed", k["otp_seed"]], "token_secret is an example value"),
        (["--secret", k["token_secret"], "--otp-seed", "XVGR73KMZH2M4XMY"], "otp_seed is an example value"),
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


def test_keygen_writes_the_secret_files_as_debian_does():
    import grp
    import stat
    with tempfile.TemporaryDirectory() as d:
        r = run("keygen", "--write", d)
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
