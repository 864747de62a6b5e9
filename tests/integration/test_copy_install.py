"""The README's "By copying files" route: its `install` lines, run as written but into a scratch
directory standing in for /usr/local/lib/prosody/modules, give a directory from which Prosody loads
both modules and the native library with plugin_paths alone (no auth_hmac_library). And that
directory is one Debian's default prosody.cfg.lua already lists, so the README's advice to extend
that plugin_paths line (never to add a second one) keeps it."""
import re
import shlex
import subprocess
import tempfile
from pathlib import Path

import pytest

import rawxmpp
from harness import NATIVE_LIB, PROSODY, REPO, Prosody

README = (REPO / "README.md").read_text()
DEBIANS_DIR = "/usr/local/lib/prosody/modules"


def readme_copy_commands():
    lines = [line for line in README.splitlines() if line.startswith("install ") and DEBIANS_DIR in line]
    assert len(lines) == 3, lines  # install -d, the two Lua files, the library
    return lines


def test_the_readmes_copy_commands_give_a_directory_prosody_loads_from():
    if NATIVE_LIB != REPO / "build" / "lua5.4" / "prosody_auth_hmac.so":  # the file the README copies
        pytest.skip("AUTH_HMAC_LIBRARY names another library than the README's build/lua5.4 one")
    target = Path(tempfile.mkdtemp(prefix="usr-local-lib-prosody-")) / "modules"
    for line in readme_copy_commands():
        argv = [a.replace(DEBIANS_DIR, str(target)) for a in shlex.split(line)]
        subprocess.run(argv, cwd=REPO, check=True)
    assert sorted(p.name for p in target.iterdir()) == ["mod_auth_hmac.lua", "mod_sasl_hmac.lua", "prosody_auth_hmac.so"]
    server = Prosody(library=None, plugin_path=target, extra_modules=())
    try:
        assert "auth_hmac_library" not in server.config.read_text()
        server.start()
        s = rawxmpp.C2S(server.c2s_port, server.host)
        r = s.auth("PLAIN", b"\0alice\0" + server.mint("alice@" + server.host).encode())
        assert r.status == "success", (r, server.tail())
        s.close()
        assert "Loaded native library %s/prosody_auth_hmac.so" % target in server.log_path.read_text()
    finally:
        server.stop()
        subprocess.run(["rm", "-rf", str(target.parent)], check=True)


def debian_default_configs():
    """Debian's prosody.cfg.lua for the Prosody under test, as the package ships it: 13's unpacked
    by scripts/setup.sh; 0.12's in /etc/prosody, if the machine's admin has not changed it."""
    root = Path(PROSODY).resolve().parents[2]
    config = root / "etc" / "prosody" / "prosody.cfg.lua"
    if root == Path("/"):
        changed = subprocess.run(["dpkg", "--verify", "prosody"], capture_output=True, text=True).stdout
        if str(config) in changed:
            pytest.skip("%s has been changed on this machine" % config)
    if not config.is_file():
        pytest.skip("no %s" % config)
    return config


def test_debians_default_plugin_paths_lists_that_directory_and_the_readme_keeps_it():
    config = debian_default_configs().read_text()
    set_lines = re.findall(r"^plugin_paths\s*=.*$", config, flags=re.M)
    assert set_lines == ['plugin_paths = { "%s" }' % DEBIANS_DIR], set_lines
    for text, name in ((README, "README.md"),
                       ((REPO / "prosody-config" / "prosody.cfg.lua.sample").read_text(), "the sample config")):
        settings = re.findall(r"plugin_paths\s*=\s*\{[^}]*\}", text)
        assert settings, name
        for setting in settings:
            assert '"%s"' % DEBIANS_DIR in setting, (name, setting)
