"""The README for admins: the sections a Prosody module page has, and an option table that lists
every option the modules read, with its type, and the defaults the native module really uses; the
converse.js checksum its five-minute recipe shows is the one the tests pin."""
import json
import re
import subprocess

import pytest

from harness import NATIVE_LIB, REPO

# version_independent (pytest.ini): the README against the native library loaded by lua5.4; no Prosody
pytestmark = pytest.mark.version_independent

README = (REPO / "README.md").read_text()
SECTIONS = ["Stability", "Two commands", "Install", "Production build", "Configure", "Multiple hosts",
            "Tokens", "converse.js", "converse.js in five minutes", "Behind a reverse proxy", "SASL mechanisms", "Logs and events", "Compatibility",
            "Not supported", "Troubleshooting", "Known issues", "Migrating from mod_auth_token", "Security notes",
            "Development"]
PROSODYS_OWN = {"modules_enabled"}  # read to warn about mod_sasl2_fast; not ours to document
# Prosody's options the shims read, documented where they matter to us but not in src/options.rs
PROSODYS = PROSODYS_OWN | {"authentication", "allow_unencrypted_plain_auth", "insecure_sasl_mechanisms",
                           "tls_server_end_point_hash"}


def option_rows():
    table = README[README.index("| option | type | default | meaning |"):]
    table = table[:table.index("\n\n")]
    rows = {}
    for line in table.splitlines()[2:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        for name in re.findall(r"`([a-z_0-9]+)`", cells[0]):
            rows[name] = cells
    return rows


def native_options():
    """src/options.rs' table, as the native module exports it: {name: type}."""
    lua = ('local n = package.loadlib("%s", "luaopen_prosody_auth_hmac")(); local out = {}; '
           'for k, v in pairs(n.options) do out[#out+1] = string.format("%%q:%%q", k, v.type) end; '
           'print("{" .. table.concat(out, ",") .. "}")' % NATIVE_LIB)
    return json.loads(subprocess.run(["lua5.4", "-e", lua], capture_output=True, text=True, check=True).stdout)


def native_defaults():
    lua = ('local n = package.loadlib("%s", "luaopen_prosody_auth_hmac")(); local out = {}; '
           'for k, v in pairs(n.defaults) do if type(v) ~= "table" then out[#out+1] = string.format("%%q:%%q", k, tostring(v)) end end; '
           'print("{" .. table.concat(out, ",") .. "}")' % NATIVE_LIB)
    return json.loads(subprocess.run(["lua5.4", "-e", lua], capture_output=True, text=True, check=True).stdout)


def test_the_readme_has_a_module_pages_sections():
    headings = re.findall(r"^#{2,3} (.+)$", README, flags=re.M)
    missing = [s for s in SECTIONS if s not in headings]
    assert not missing, missing


def test_every_option_the_modules_read_is_in_the_table_with_a_type():
    read = set()
    for f in ("mod_auth_hmac.lua", "mod_sasl_hmac.lua"):
        read |= set(re.findall(r'get_option[a-z_]*\("([a-z_]+)"', (REPO / "lua" / f).read_text()))
    options = native_options()
    # the shims read no option of ours that src/options.rs does not list (Prosody's own excepted)
    assert not sorted(read - PROSODYS - set(options)), sorted(read - PROSODYS - set(options))
    read |= set(options)  # some are read by a loop over native.options, or through secret_list()
    rows = option_rows()
    missing = sorted(read - PROSODYS_OWN - set(rows))
    assert not missing, missing
    for name, cells in rows.items():
        assert cells[1] and cells[1] != "—", (name, cells)
    for name, kind in options.items():
        if kind in ("integer", "boolean"):
            assert cells_type(rows[name]) == kind, (name, kind, rows[name][1])


def cells_type(cells):
    return cells[1].split()[0]


def test_the_tables_defaults_are_the_native_modules():
    rows = option_rows()
    defaults = native_defaults()
    assert len(defaults) >= 11, defaults
    for name, value in defaults.items():
        assert name in rows, name
        # `8`, `false`, `"seen"`
        assert re.search(r'`"?%s"?`' % re.escape(value), rows[name][2]), (name, value, rows[name][2])


def test_the_readmes_converse_checksum_is_the_pinned_one():
    """The five-minute recipe checks converse.js with the very line tests/web/converse.sha512 pins,
    for the version it packs."""
    pin = (REPO / "tests" / "web" / "converse.sha512").read_text().strip()
    section = README[README.index("### converse.js in five minutes"):]
    section = section[:section.index("\n## ")]
    assert re.findall(r"^echo '([0-9a-f]{128}  \S+)' \| sha512sum -c$", section, flags=re.M) == [pin]
    tarball = pin.split()[1]  # converse.js-14.0.0.tgz
    assert re.findall(r"^npm pack (\S+)$", section, flags=re.M) == [tarball[:-len(".tgz")].replace("-", "@", 1)]
