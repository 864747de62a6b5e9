"""The release check, `make dist` (scripts/dist.sh): every artifact built into one directory, each
named for Cargo.toml's version, and a SHA256SUMS that covers exactly those files. What each
artifact holds and that it installs and logs in is for test_deb, test_binary_rocks and
test_packages; this is what a maintainer uploads and what a user checks a download against."""
import hashlib
import os
import shutil
import subprocess
import tarfile
import tempfile
import tomllib
import zipfile
from pathlib import Path

import pytest

from harness import REPO

# version_independent (pytest.ini): builds and sums the release files; no Prosody
pytestmark = pytest.mark.version_independent

VERSION = tomllib.loads((REPO / "Cargo.toml").read_text())["package"]["version"]
ARTIFACTS = {  # each with the names of two files it must carry (the licence, and its code)
    "prosody-auth-hmac_%s-1_amd64.deb" % VERSION: None,
    "prosody-auth-hmac-%s.tar.gz" % VERSION: ["prosody-auth-hmac-%s/LICENSE" % VERSION,
                                              "prosody-auth-hmac-%s/src/lib.rs" % VERSION],
    "prosody-auth-hmac-%s-1.src.rock" % VERSION: ["prosody-auth-hmac-%s-1.rockspec" % VERSION],
    "lua5.4/prosody-auth-hmac-%s-1.linux-x86_64.rock" % VERSION: ["lib/prosody_auth_hmac.so",
                                                                  "lua/mod_auth_hmac.lua"],
    "luajit/prosody-auth-hmac-%s-1.linux-x86_64.rock" % VERSION: ["lib/prosody_auth_hmac.so",
                                                                  "lua/mod_auth_hmac.lua"],
    "python/prosody_hmac_token-%s-py3-none-any.whl" % VERSION: ["prosody_hmac_token/__init__.py"],
    "node/prosody-hmac-token-%s.tgz" % VERSION: ["package/LICENSE", "package/index.js"],
    "php/prosody-auth-hmac-token-%s.zip" % VERSION: ["LICENSE", "src/Token.php"],
    "converse/prosody-auth-hmac-converse-%s.tgz" % VERSION: ["package/LICENSE", "package/token-reconnect.js"],
}


# The sdist's name: PEP 625's normalised one from setuptools >= 69.3 (trixie), the project name as
# written from older ones (bookworm's 66). The wheel's licence is in dist-info/ or, with metadata 2.4
# (trixie), in dist-info/licenses/.
SDIST_NAMES = ["prosody_hmac_token-%s" % VERSION, "prosody-hmac-token-%s" % VERSION]
WHEEL_LICENSES = ["prosody_hmac_token-%s.dist-info/%sLICENSE" % (VERSION, d) for d in ("", "licenses/")]


def artifacts(dist):
    """ARTIFACTS with the sdist this setuptools names, and the files each must carry."""
    (sdist,) = [n for n in SDIST_NAMES if (dist / "python" / (n + ".tar.gz")).exists()] or [SDIST_NAMES[0]]
    found = dict(ARTIFACTS)
    found["python/%s.tar.gz" % sdist] = [sdist + "/LICENSE", sdist + "/pyproject.toml"]
    return found


@pytest.fixture(scope="module")
def dist():
    out = Path(tempfile.mkdtemp(prefix="dist-"))
    # an earlier release's make dist: its files must not be summed with this one's
    (out / "prosody-auth-hmac_0.0.1-1_amd64.deb").write_bytes(b"stale")
    (out / "SHA256SUMS").write_text("%s  prosody-auth-hmac_0.0.1-1_amd64.deb\n" % hashlib.sha256(b"stale").hexdigest())
    r = subprocess.run(["bash", str(REPO / "scripts" / "dist.sh")], capture_output=True, text=True,
                       env=dict(os.environ, DIST_DIR=str(out)))
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    yield out
    shutil.rmtree(out, ignore_errors=True)


def members(path):
    if path.suffix in (".whl", ".zip", ".rock"):
        with zipfile.ZipFile(path) as z:
            return set(z.namelist())
    with tarfile.open(path) as t:
        return set(t.getnames())


def test_dist_builds_every_artifact_named_for_the_version(dist):
    files = sorted(str(p.relative_to(dist)) for p in dist.rglob("*") if p.is_file())
    expected = artifacts(dist)
    assert files == sorted(list(expected) + ["SHA256SUMS"])
    for name, wanted in expected.items():
        if wanted:
            assert set(wanted) <= members(dist / name), (name, sorted(members(dist / name))[:40])
    wheel = members(dist / ("python/prosody_hmac_token-%s-py3-none-any.whl" % VERSION))
    assert len(wheel & set(WHEEL_LICENSES)) == 1, sorted(wheel)


def test_sha256sums_covers_exactly_the_artifacts(dist):
    lines = (dist / "SHA256SUMS").read_text().splitlines()
    sums = dict(reversed(line.split("  ", 1)) for line in lines)
    assert sorted(sums) == sorted(artifacts(dist))
    for name, digest in sums.items():
        assert hashlib.sha256((dist / name).read_bytes()).hexdigest() == digest, name
    ok = subprocess.run(["sha256sum", "--check", "--strict", "SHA256SUMS"], cwd=dist, capture_output=True, text=True)
    assert ok.returncode == 0, ok.stdout + ok.stderr


def test_a_changed_artifact_fails_the_sums(dist, tmp_path):
    """What a user runs on a download: one flipped byte in any artifact is caught."""
    copy = tmp_path / "dist"
    shutil.copytree(dist, copy)
    wheel = copy / ("python/prosody_hmac_token-%s-py3-none-any.whl" % VERSION)
    data = bytearray(wheel.read_bytes())
    data[len(data) // 2] ^= 1
    wheel.write_bytes(bytes(data))
    bad = subprocess.run(["sha256sum", "--check", "--strict", "SHA256SUMS"], cwd=copy, capture_output=True, text=True)
    assert bad.returncode != 0
    assert "python/prosody_hmac_token-%s-py3-none-any.whl: FAILED" % VERSION in bad.stdout


def test_a_directory_of_other_files_is_refused_not_emptied(tmp_path):
    """DIST_DIR is emptied before the build; a directory that is not an earlier dist is left alone."""
    (tmp_path / "notes.txt").write_text("mine")
    r = subprocess.run(["bash", str(REPO / "scripts" / "dist.sh")], capture_output=True, text=True,
                       env=dict(os.environ, DIST_DIR=str(tmp_path)))
    assert r.returncode != 0
    assert "not an earlier make dist" in r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]
