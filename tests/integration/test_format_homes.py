"""Every implementation of the token format is known: ARCHITECTURE.md's "Implementations of the
token format" lists each file that writes, reads or signs a token, so a change of the format reaches
all of them. A file that signs with HMAC-SHA256 and names a JID is taken for one, unless it is
listed below as an HMAC of something else; in Rust the signed message is built in src/token.rs
alone."""
import re
import subprocess

import pytest

from harness import REPO

# version_independent (pytest.ini): reads the repository; no Prosody
pytestmark = pytest.mark.version_independent

# HMAC-SHA256 calls, in the languages the repository has (and the common others)
HMAC = re.compile(r"""hmac\.new\(|createHmac\(|hash_hmac\(|hmac_sha256\b|["']HMAC["']|Hmac<Sha256>|HmacSha256"""
                  r"""|OpenSSL::HMAC|hmac\.New\(|(?<![\w:])hmac::|Mac\.getInstance\(""")
JID = re.compile(r"jid", re.IGNORECASE)
CODE = (".py", ".js", ".mjs", ".cjs", ".ts", ".php", ".lua", ".rs", ".sh", ".go", ".rb", ".java", ".kt", ".cs", ".pl")

# HMACs over something other than a token, in files that also name a JID
NOT_THE_FORMAT = {
    "src/check.rs": "verification and minting policy: calls src/token.rs for the signed message",
    "src/replay_state.rs": "the saved replay state's MAC (its own label)",
    "src/signout.rs": "the sign-out request's and record's MACs (derived keys, their own labels: docs/signout.md)",
    "tests/integration/harness.py": "a test copy of the saved replay state's MAC",
    "tests/rfc_vectors.rs": "RFC 4231 HMAC-SHA256 vectors",
    "tests/signout.rs": "a sign-out MAC made under the token secret itself, which must be refused",
    "tests/vectors/generate_signout.py": "sign-out request MACs (docs/signout.md); its login tokens come from "
                                         "tests/interop's create_token",
    "tests/integration/test_format_homes.py": "this test: its patterns",
    "clients/python/tests/test_signout.py": "a sign-out MAC under the token secret itself, which must differ "
                                            "from the library's (derived key)",
    "tests/integration/signout_requests.py": "a test copy of the sign-out request's MAC (docs/signout.md)",
    "tests/integration/test_signout.py": "a sign-out MAC under the token secret itself, which Prosody must refuse",
}


def files():
    out = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                         capture_output=True, text=True, check=True).stdout
    return [f for f in out.splitlines() if f.endswith(CODE) and (REPO / f).is_file()]


def listed():
    text = (REPO / "ARCHITECTURE.md").read_text()
    section = text[text.index("## Implementations of the token format"):]
    section = section[:section.index("\n## ", 1)]
    return set(re.findall(r"^\| `([^`]+)` \|", section, re.MULTILINE))


def signers():
    found = set()
    for f in files():
        text = (REPO / f).read_text(errors="replace")
        if HMAC.search(text) and JID.search(text):
            found.add(f)
    return found


def test_every_file_that_signs_a_jid_is_listed():
    known = listed()
    unlisted = sorted(signers() - known - set(NOT_THE_FORMAT))
    assert not unlisted, ("these files sign with HMAC-SHA256 and name a JID: list them in ARCHITECTURE.md, "
                          "\"Implementations of the token format\" (or here, if they sign something else): %s" % unlisted)


def test_every_listed_file_exists_and_every_exemption_still_applies():
    for f in listed() | set(NOT_THE_FORMAT):
        assert (REPO / f).is_file(), f
    found = signers()
    stale = sorted(f for f in NOT_THE_FORMAT if f not in found)
    assert not stale, "exempted, but no longer signs and names a JID: %s" % stale


def test_the_rust_core_builds_the_signed_message_in_token_rs_only():
    # a JID fed to a MAC: `.update(jid...)`, `.update(j.as_bytes())`, `.update(&jid)`
    feeds_jid = re.compile(r"\.update\(\s*&?\s*(jid|j|account|candidate)\b")
    offenders = []
    for f in files():
        if f.startswith("src/") and f.endswith(".rs") and f != "src/token.rs":
            for n, line in enumerate((REPO / f).read_text().splitlines(), 1):
                if feeds_jid.search(line):
                    offenders.append("%s:%d: %s" % (f, n, line.strip()))
    assert not offenders, "the signed message is built in src/token.rs only: %s" % offenders
