"""`make build` installs only what building needs (scripts/setup.sh build); the test and demo
set-up comes with `make test`/`make demo`. The README's production command lists the same packages."""
import os
import re
import subprocess

import pytest

from harness import REPO

# version_independent (pytest.ini): setup.sh's lists, make's dry runs, a cargo install; no Prosody
pytestmark = pytest.mark.version_independent

RUST = {"rustc-web", "cargo-web"}  # installed only when no rustup toolchain is found


def listed(profile):
    r = subprocess.run(["bash", str(REPO / "scripts" / "setup.sh"), "--list", profile], capture_output=True,
                       text=True, check=True)
    return set(r.stdout.split())


def dry_run(target):
    r = subprocess.run(["make", "-n", "--no-print-directory", target], cwd=REPO, capture_output=True, text=True,
                       check=True)
    return r.stdout.splitlines()


def test_make_build_runs_only_the_build_setup():
    setup = [line for line in dry_run("build") if "setup.sh" in line]
    assert setup == ["bash scripts/setup.sh build"], setup
    assert not [line for line in dry_run("build") if re.search(r"\b(npm|apt-get|pip)\b", line)]


def test_the_build_profile_has_no_test_package():
    build, everything = listed("build"), listed("all")
    assert build - RUST <= {"gcc", "libc6-dev", "make", "ca-certificates"}, build
    assert build < everything
    for test_only in ["prosody", "chromium", "fail2ban", "valgrind", "nginx", "apache2", "python3-slixmpp",
                      "lua-busted", "luarocks"]:
        assert test_only in everything and test_only not in build, test_only


def test_the_setup_installs_debians_rust_only_without_a_toolchain():
    text = (REPO / "scripts" / "setup.sh").read_text()
    assert "missing+=(rustc-web cargo-web)" in text


def test_the_build_stops_on_a_cargo_older_than_the_crate_needs(tmp_path):
    """A stand-in `cargo` first on PATH reports each version; the build profile's check decides."""
    for version, ok in [("1.85.0", False), ("1.87.9", False), ("1.88.0", True), ("1.88.0-nightly", True),
                        ("1.96.0", True), ("1.100.0", True)]:
        fake = tmp_path / version / "cargo"
        fake.parent.mkdir()
        fake.write_text("#!/bin/sh\necho 'cargo %s (fake 2026-01-01)'\n" % version)
        fake.chmod(0o755)
        r = subprocess.run(["bash", str(REPO / "scripts" / "setup.sh"), "build"], capture_output=True, text=True,
                           env=dict(os.environ, PATH="%s:%s" % (fake.parent, os.environ["PATH"])))
        assert (r.returncode == 0) == ok, (version, r.stdout + r.stderr)
        if not ok:
            assert "cargo %s is older than the 1.88 this build needs" % version in r.stderr, r.stderr


def test_the_readme_lists_the_build_packages():
    lines = [line for line in (REPO / "README.md").read_text().splitlines() if "scripts/setup.sh --list build" in line
             and line.startswith("apt-get install")]
    assert len(lines) == 1, lines
    packages = set(lines[0].split("#")[0].split()[2:]) - {"--no-install-recommends"}
    assert packages - RUST == listed("build") - RUST and RUST <= packages, packages


def test_make_test_and_demo_run_the_whole_setup():
    for target in ["test", "demo", "serve"]:
        assert "bash scripts/setup.sh" in dry_run(target), target


def test_the_readmes_cli_install_command_installs_a_working_cli(tmp_path):
    """`cargo install ... --root /usr/local` as the README gives it, into a scratch root (reusing
    the build's target directory, so it costs no second build)."""
    (line,) = [line for line in (REPO / "README.md").read_text().splitlines() if line.startswith("cargo install ")]
    args = line.split("#")[0].split()
    assert args[-2:] == ["--root", "/usr/local"], args
    args[-1] = str(tmp_path)
    r = subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=600,
                       env=dict(os.environ, CARGO_TARGET_DIR=str(REPO / "target")))
    assert r.returncode == 0, r.stderr
    out = subprocess.run([str(tmp_path / "bin" / "hmac-token"), "keygen", "--json"], capture_output=True, text=True)
    assert out.returncode == 0 and '"token_secret"' in out.stdout, out


def test_make_rocks_runs_only_the_rocks_setup():
    """Building rocks needs luarocks, zip, git and each target Lua with its headers (Lua 5.4 and
    LuaJIT), never the test set-up (Chromium, Prosody, the proxies, npm): a release is built on a
    machine without them."""
    setup = [line for line in dry_run("rocks") if "setup.sh" in line]
    assert setup == ["LUA_VERSION=5.4 bash scripts/setup.sh rocks", "LUA_VERSION=luajit bash scripts/setup.sh rocks",
                     "bash scripts/setup.sh build"], setup
    assert 'ROCK_TARGETS="5.4 luajit" bash scripts/rocks.sh' in dry_run("rocks")
    assert not [line for line in dry_run("rocks") if re.search(r"\b(npm|pip)\b", line)]
    rocks, build, everything = listed("rocks"), listed("build"), listed("all")
    assert build < rocks and rocks <= everything  # make test builds rocks too
    assert rocks - build - RUST == {"luarocks", "zip", "unzip", "git", "lua5.4", "liblua5.4-dev"}, rocks
    jit = set(subprocess.run(["bash", str(REPO / "scripts" / "setup.sh"), "--list", "rocks"], capture_output=True,
                             text=True, check=True, env=dict(os.environ, LUA_VERSION="luajit")).stdout.split())
    assert jit - build - RUST == {"luarocks", "zip", "unzip", "git", "luajit", "libluajit-5.1-dev"}, jit
    # make test builds the LuaJIT rock with Lua 5.1's headers, which luarocks accepts for LuaJIT too
    assert jit - {"libluajit-5.1-dev"} <= everything and "liblua5.1-0-dev" in everything
    for test_only in ["prosody", "chromium", "fail2ban", "nginx", "apache2", "nodejs", "npm", "lua-busted"]:
        assert test_only not in rocks | jit, test_only


def test_the_rocks_profile_follows_the_target_lua():
    r = subprocess.run(["bash", str(REPO / "scripts" / "setup.sh"), "--list", "rocks"], capture_output=True, text=True,
                       check=True, env=dict(os.environ, LUA_VERSION="luajit"))
    assert {"luajit", "libluajit-5.1-dev"} <= set(r.stdout.split()), r.stdout
    assert "lua5.4" not in r.stdout.split()
