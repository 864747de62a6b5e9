"""scripts/get-converse.sh installs converse.js's browser build only when `npm pack` brought the
tarball that tests/web/converse.sha512 pins; anything else leaves the destination as it was."""
import os
import subprocess
import tarfile

import pytest

from harness import REPO

# version_independent (pytest.ini): scripts/get-converse.sh with a stand-in npm; no Prosody
pytestmark = pytest.mark.version_independent

SCRIPT = REPO / "scripts" / "get-converse.sh"
PIN = (REPO / "tests" / "web" / "converse.sha512").read_text().split()
TARBALL = PIN[1]


def stand_in_npm(tmp_path, content):
    """An `npm` first on PATH whose `pack` writes a converse.js tarball holding `content` as dist/converse.js."""
    src = tmp_path / "src" / "package"
    (src / "dist").mkdir(parents=True)
    (src / "dist" / "converse.js").write_text(content)
    (src / "package.json").write_text('{"name": "converse.js"}')
    (src / "LICENSE").write_text("MPL-2.0")
    with tarfile.open(tmp_path / TARBALL, "w:gz") as t:
        t.add(src, arcname="package")
    npm = tmp_path / "bin" / "npm"
    npm.parent.mkdir()
    npm.write_text('#!/bin/sh\n[ "$1" = pack ] || exit 2\ncp %s "$PWD/"\necho %s\n' % (tmp_path / TARBALL, TARBALL))
    npm.chmod(0o755)
    return dict(os.environ, PATH="%s:%s" % (npm.parent, os.environ["PATH"]))


def test_a_tarball_that_is_not_the_pinned_one_installs_nothing(tmp_path):
    dest = tmp_path / "converse"
    dest.mkdir()
    (dest / "kept").write_text("the previous install")
    r = subprocess.run(["bash", str(SCRIPT), str(dest)], capture_output=True, text=True,
                       env=stand_in_npm(tmp_path, "alert('not converse.js')"))
    assert r.returncode == 1, r.stdout + r.stderr
    assert "does not match the pinned sha512" in r.stderr, r.stderr
    assert sorted(p.name for p in dest.iterdir()) == ["kept"]


def test_the_pinned_tarball_is_installed():
    """What make test's set-up installed: the pinned release's dist/ and nothing else of the package."""
    installed = REPO / ".converse"
    assert (installed / "dist" / "converse.js").is_file()
    assert sorted(p.name for p in installed.iterdir() if p.name != ".pin") == ["LICENSE", "dist", "package.json"]
    assert (installed / ".pin").read_text().split() == PIN
