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
