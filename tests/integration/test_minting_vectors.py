"""tests/vectors/minting.json, the minting libraries' contract, against the server's own rule: every
token it expects verifies for its signed JID with the plugin's verifier (hmac-token verify), and a
library answer for another spelling would not."""
import json
import os
import subprocess

import pytest

from harness import HMAC_TOKEN, REPO

# version_independent (pytest.ini): the vectors against the CLI's verifier; no Prosody
pytestmark = pytest.mark.version_independent

DOC = json.loads((REPO / "tests" / "vectors" / "minting.json").read_text())


def verify(token, jid, case):
    s = dict(DOC["defaults"], **case.get("settings", {}))
    env = dict(os.environ, TOKEN_SECRET=case.get("token_secret", DOC["token_secret"]), OTP_SEED=DOC["otp_seed"],
               TOKEN_ALLOW_WEAK_SECRETS="1")  # the contract uses collective.converse's published examples
    args = [str(HMAC_TOKEN), "verify", "--jid", jid, "--now", str(case["now"]), "--digits", str(s["digits"]),
            "--step", str(s["step"]), "--nonce-digits", str(s["nonce_digits"])]
    if case.get("prepared"):  # signed as given: for a name that is not nodeprep'd, the server's token_jid_as_sent
        args.append("--jid-as-sent")
    return subprocess.run(args, input=token, capture_output=True, text=True, env=env)


def test_every_expected_token_verifies_for_its_signed_jid_only():
    good = [c for c in DOC["cases"] if "token" in c]
    assert len(good) >= 9
    for c in good:
        r = verify(c["token"], c["signed_jid"], c)
        assert r.returncode == 0 and r.stdout.startswith("valid"), (c["name"], r.stdout, r.stderr)
        local, domain = c["signed_jid"].split("@")
        for other in (local + "x@" + domain, "x" + local + "@" + domain, local + "@other." + domain):
            r = verify(c["token"], other, c)
            assert r.returncode == 1, (c["name"], other, r.stdout)


def test_the_refusals_are_of_the_three_kinds():
    bad = [c for c in DOC["cases"] if "error" in c]
    assert {c["error"] for c in bad} == {"jid", "nonce", "settings"}
    assert all("token" not in c for c in bad)
