"""The rockspec: `luarocks --lua-version 5.4 make --tree T` installs a tree that Debian's Prosody
loads with plugin_paths = { "T/share/lua/5.4" } or installer_plugin_path = "T", and nothing else."""
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

import rawxmpp
from harness import REPO, Prosody


@pytest.fixture(scope="module")
def rock_tree():
    tree = Path(tempfile.mkdtemp(prefix="rocktree-"))
    subprocess.run(["luarocks", "--lua-version", "5.4", "make", "--tree", str(tree)], cwd=REPO, check=True,
                   capture_output=True)
    yield tree
    shutil.rmtree(tree, ignore_errors=True)


def test_rock_layout(rock_tree):
    assert (rock_tree / "lib/lua/5.4/prosody_auth_hmac.so").is_file()
    assert (rock_tree / "share/lua/5.4/mod_auth_hmac.lua").is_file()
    assert (rock_tree / "share/lua/5.4/mod_sasl_hmac.lua").is_file()


@pytest.mark.parametrize("route", ["plugin_paths", "installer_plugin_path"])
def test_prosody_loads_the_rock_with_no_other_setting(rock_tree, route):
    test_plugins = REPO / "tests" / "integration" / "plugins"
    if route == "plugin_paths":
        server = Prosody(library=None, plugin_path=rock_tree / "share/lua/5.4")
    else:
        server = Prosody(library=None, plugin_path=test_plugins,
                         extra_global='installer_plugin_path = "%s"' % rock_tree)
    server.start()
    try:
        s = rawxmpp.C2S(server.c2s_port, server.host)
        r = s.auth("PLAIN", b"\0alice\0" + server.mint("alice@" + server.host).encode())
        assert r.status == "success", (r, server.tail())
        assert s.bind() == "alice@%s/test" % server.host
        s.close()
        log = server.log_path.read_text()
        assert "Loaded native library %s/lib/lua/5.4/prosody_auth_hmac.so" % rock_tree in log
    finally:
        server.stop()
