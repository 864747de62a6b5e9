"""The binary rocks `make rocks` writes (scripts/rocks.sh): dist/lua5.4/ and dist/luajit/, each the
native library inside a `.rock`, installed by luarocks where no Rust toolchain can be found (no_rust:
PATH, HOME, CARGO_HOME, RUSTUP_HOME without cargo or rustc). The install unpacks and builds nothing;
the interpreter it was built for loads the library from the tree and verifies the project CLI's
tokens. There is no Prosody on LuaJIT here: luajit itself loads the LuaJIT rock.

luarocks names a binary rock by platform alone, so the LuaJIT rock and one for PUC Lua 5.1 would
have the same file name and both install with `luarocks --lua-version 5.1`; each binary rock's
rockspec therefore requires the interpreter it was built for (`lua ~> 5.4`; `lua ~> 5.1` with
`luajit >= 2.0`, which luarocks provides only when its interpreter is LuaJIT), and luarocks refuses
a rock built for another. `prosodyctl install` of the Lua 5.4 rock without Rust is in
test_prosodyctl.py."""
import os
import shutil
import subprocess
import tempfile
import time
import zipfile
from pathlib import Path

import pytest

import no_rust
from harness import HMAC_TOKEN, REPO, keygen

# version_independent (pytest.ini): luarocks and the bare lua5.4/luajit interpreters; no Prosody
pytestmark = pytest.mark.version_independent

HERE = Path(__file__).parent
LUAJIT_CONFIG = 'lua_interpreter = "luajit"\n'  # a 5.1 luarocks whose interpreter is LuaJIT
# target: (luarocks' --lua-version, the interpreter that loads it, dist/ subdirectory)
TARGETS = {"5.4": ("5.4", "lua5.4", "lua5.4"), "luajit": ("5.1", "luajit", "luajit")}


@pytest.fixture(scope="module")
def dist():
    out = Path(tempfile.mkdtemp(prefix="binrocks-"))
    subprocess.run(["bash", str(REPO / "scripts" / "rocks.sh")], check=True, capture_output=True,
                   env=dict(os.environ, DIST_DIR=str(out), ROCK_TARGETS="5.4 luajit"))
    yield out
    shutil.rmtree(out, ignore_errors=True)


@pytest.fixture
def scratch():
    d = Path(tempfile.mkdtemp(prefix="norust-"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


def binary_rock(dist, target):
    (found,) = (dist / TARGETS[target][2]).glob("prosody-auth-hmac-*-*.linux-*.rock")
    return found


def luarocks(env, lua_version, *args, luajit=False, config_dir=None):
    """luarocks as an admin types it; with luajit, a 5.1 luarocks configured for LuaJIT."""
    env = dict(env)
    if luajit:
        config = Path(config_dir) / "luajit-config.lua"
        config.write_text(LUAJIT_CONFIG)
        env["LUAROCKS_CONFIG"] = str(config)
    started = time.monotonic()
    r = subprocess.run(["luarocks", "--lua-version", lua_version, *args], capture_output=True, text=True,
                       env=env, timeout=600)
    return r, time.monotonic() - started


def probe(env, interpreter, libdir, tokens, keys, host):
    """rock_probe.lua under `interpreter`: the library from `libdir` verifying its own token and `tokens`."""
    lines = "".join("%s\t%s\n" % t for t in tokens)
    r = subprocess.run([interpreter, str(HERE / "rock_probe.lua"), str(libdir)], input=lines, capture_output=True,
                       text=True, timeout=60,
                       env=dict(env, TOKEN_SECRET=keys["token_secret"], OTP_SEED=keys["otp_seed"], HOST=host))
    assert r.returncode == 0, r.stdout + r.stderr
    return dict(line.split("\t", 1) for line in r.stdout.splitlines())


def cli_mint(keys, jid, now=None):
    args = [str(HMAC_TOKEN), "mint", "--jid", jid] + (["--now", str(int(now))] if now is not None else [])
    return subprocess.run(args, check=True, capture_output=True, text=True,
                          env=dict(os.environ, TOKEN_SECRET=keys["token_secret"], OTP_SEED=keys["otp_seed"])).stdout.strip()


def forged(token):
    """The same token with one bit of its MAC's first byte flipped (still valid base64)."""
    otp_nonce, mac = token.split(" ")
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    flipped = alphabet[alphabet.index(mac[0]) ^ 1]
    return "%s %s%s" % (otp_nonce, flipped, mac[1:])


@pytest.mark.parametrize("target", ["5.4", "luajit"])
def test_the_binary_rock_installs_without_rust_and_verifies_tokens(dist, scratch, target):
    lua_version, interpreter, _ = TARGETS[target]
    if target == "luajit":  # the README's configuration for LuaJIT, as it gives it
        assert "printf '%s\\n'" % LUAJIT_CONFIG.strip() in (REPO / "README.md").read_text()
    env = no_rust.env(scratch)
    tree = scratch / "tree"
    rock = binary_rock(dist, target)
    r, seconds = luarocks(env, lua_version, "install", "--tree", str(tree), str(rock), luajit=target == "luajit",
                          config_dir=scratch)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    assert "prosody-auth-hmac 0.2.0-1 is now installed in %s" % tree in out, out
    # installed as packed, nothing built: the library is the rock's own bytes, no cargo ran, no
    # target/ or unpacked source anywhere this install could write
    libdir = tree / "lib" / "lua" / lua_version
    with zipfile.ZipFile(rock) as z:
        assert (libdir / "prosody_auth_hmac.so").read_bytes() == z.read("lib/prosody_auth_hmac.so")
    for f in ("mod_auth_hmac.lua", "mod_sasl_hmac.lua"):
        assert (tree / "share" / "lua" / lua_version / f).read_bytes() == (REPO / "lua" / f).read_bytes(), f
    assert "cargo" not in out.lower(), out
    assert no_rust.build_dirs(scratch) == [], no_rust.build_dirs(scratch)
    assert seconds < 60, seconds  # an unzip; a cargo build from nothing takes minutes (and has no cargo here)

    keys, host = keygen(), "example.org"
    alice = "alice@" + host
    good = cli_mint(keys, alice)
    tokens = [
        (good, alice),                                   # the web app's token
        (good, alice),                                   # replayed
        (forged(cli_mint(keys, alice)), alice),          # one bit of the MAC flipped
        (cli_mint(keys, "mallory@" + host), alice),      # another user's token
        (cli_mint(keys, alice, now=time.time() - 3600), alice),  # an hour old
        (cli_mint(keygen(), alice), alice),              # an impostor's secret
        (good.replace(" ", "  ", 1), alice),             # a shifted field boundary
        (cli_mint(keys, alice), "ALICE@" + host),        # presented for a re-cased JID
    ]
    seen = probe(env, interpreter, libdir, tokens, keys, host)
    expected_runtime = "LuaJIT" if target == "luajit" else "Lua 5.4"
    assert seen["loaded"].startswith(expected_runtime), seen["loaded"]
    assert seen["loaded"].endswith(str(libdir / "prosody_auth_hmac.so")), seen["loaded"]
    assert seen["own"] == "ok" and seen["own-again"] == "replayed", seen
    assert [seen["line%d" % i] for i in range(1, 9)] == [
        "ok", "replayed", "bad-signature", "bad-signature", "expired", "bad-signature", "malformed",
        "bad-signature"], seen  # the JID is signed as given: the shim nodepreps it before it asks


def test_a_binary_rock_is_refused_by_another_interpreter(dist, scratch):
    """Each rock requires the interpreter it was built for; luarocks refuses it before installing a
    file, whether the interpreters differ in version or are Lua 5.1 and LuaJIT."""
    env = no_rust.env(scratch)
    cases = [  # (rock, --lua-version, LuaJIT as 5.1's interpreter, the unmet requirement)
        ("luajit", "5.1", False, "luajit >= 2.0"),  # PUC Lua 5.1: the same file name, the same tree layout
        ("luajit", "5.4", False, "lua ~> 5.1"),
        ("5.4", "5.1", True, "lua ~> 5.4"),
        ("5.4", "5.1", False, "lua ~> 5.4"),
    ]
    empty_server = scratch / "no-server"
    empty_server.mkdir()
    for i, (target, lua_version, luajit, requirement) in enumerate(cases):
        tree = scratch / ("tree%d" % i)
        # --only-server: an empty local one, so luarocks' search for the missing rock stays offline
        r, _ = luarocks(env, lua_version, "install", "--only-server", str(empty_server), "--tree", str(tree),
                        str(binary_rock(dist, target)), luajit=luajit, config_dir=scratch)
        out = r.stdout + r.stderr
        assert r.returncode != 0, (target, lua_version, out)
        assert "Could not satisfy dependency %s" % requirement in out, (target, lua_version, out)
        assert not list(tree.rglob("*.so")) and not list(tree.rglob("mod_*.lua")), (target, lua_version)


def test_no_rust_hides_a_system_cargo(scratch):
    """Debian's cargo-web and rustc-web are /usr/bin/cargo and /usr/bin/rustc: a system directory
    holding them (a stand-in here) gives the environment every program but those."""
    system = scratch / "system-bin"
    system.mkdir()
    for name in ("cargo", "rustc", "rustdoc", "rustup", "cargo-clippy", "luarocks", "unzip"):
        (system / name).write_text("#!/bin/sh\n")
        (system / name).chmod(0o755)
    root = scratch / "root"
    root.mkdir()
    env = no_rust.env(root, system_bin=[str(system)])
    linked = sorted(os.listdir(env["PATH"]))
    assert linked == ["luarocks", "unzip"], linked
    r = subprocess.run(["/bin/sh", "-c", "command -v cargo rustc"], capture_output=True, text=True, env=env)
    assert r.returncode != 0 and "cargo" not in r.stdout and "rustc" not in r.stdout, r.stdout


def test_the_source_rock_cannot_build_there(dist, scratch):
    """The control: in the same environment the source rock's build stops at once for want of
    cargo, so the binary rocks installing there built nothing."""
    env = no_rust.env(scratch)
    (source,) = dist.glob("prosody-auth-hmac-*-*.src.rock")
    r, _ = luarocks(env, "5.4", "install", "--tree", str(scratch / "tree"), str(source))
    out = r.stdout + r.stderr
    assert r.returncode != 0 and "cargo not found" in out, out
    assert not (scratch / "tree" / "lib" / "lua" / "5.4" / "prosody_auth_hmac.so").exists()
