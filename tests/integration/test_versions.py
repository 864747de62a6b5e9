"""One version, one place: Cargo.toml's [package] version is the release's, and every other
version string a release carries (the Cargo lock files, the rockspec, the Debian package, the
three minting libraries, the converse.js plugins' package, and the file names and versions the
install instructions show) must equal it. To release X.Y.Z: set it in Cargo.toml, then this test
names every other place to change."""
import ast
import json
import re
import tomllib

import pytest

from harness import REPO

# version_independent (pytest.ini): reads the tree's files; no Prosody
pytestmark = pytest.mark.version_independent

CARGO = tomllib.loads((REPO / "Cargo.toml").read_text())["package"]["version"]


def cargo_lock(path):
    """The version the lock file records for the crate itself (a path dependency of the fuzz
    targets and the load generator)."""
    packages = tomllib.loads((REPO / path).read_text())["package"]
    return [p["version"] for p in packages if p["name"] == "prosody-auth-hmac"]


def rockspec():
    specs = sorted(p.name for p in REPO.glob("prosody-auth-hmac-*.rockspec"))
    assert len(specs) == 1, specs
    text = (REPO / specs[0]).read_text()
    version = re.search(r'^version = "([^"]+)"$', text, re.M).group(1)
    tarball = re.search(r'^\s*url = "prosody-auth-hmac-([^"]+)\.tar\.gz",$', text, re.M).group(1)
    return [re.fullmatch(r"prosody-auth-hmac-(.+)-\d+\.rockspec", specs[0]).group(1),
            re.fullmatch(r"(.+)-\d+", version).group(1), tarball]


def debian():
    path = REPO / "debian" / "changelog"
    if not path.exists():
        pytest.skip("no debian/ in this tree")
    # the newest entry: "prosody-auth-hmac (X.Y.Z-R) unstable; urgency=medium"
    return [re.match(r"prosody-auth-hmac \((.+)-\d+\) ", path.read_text()).group(1)]


def python_library():
    init = REPO / "clients" / "python" / "src" / "prosody_hmac_token" / "__init__.py"
    module = ast.parse(init.read_text())
    versions = [n.value.value for n in module.body if isinstance(n, ast.Assign)
                and any(getattr(t, "id", None) == "__version__" for t in n.targets)]
    project = tomllib.loads((REPO / "clients" / "python" / "pyproject.toml").read_text())["project"]
    # the built package's version is __version__ (setuptools' dynamic attr), never a second copy
    assert "version" not in project and "version" in project["dynamic"], project
    return versions


def package_json(path):
    return [json.loads((REPO / path).read_text())["version"]]


def documented():
    """Versions in the file names and Composer constraints that README.md and the libraries'
    READMEs tell a user to type; past versions named in prose (the advisory's "fixed in 0.2.0") are
    not among these patterns."""
    patterns = [
        r"prosody-auth-hmac-(\d+\.\d+\.\d+)(?:-\d+)?(?:\.tar\.gz|\.src\.rock|\.linux-x86_64\.rock)",
        r"prosody[-_]hmac[-_]token-(\d+\.\d+\.\d+)(?:-py3-none-any\.whl|\.tgz|\.tar\.gz)",
        r"prosody-auth-hmac-converse-(\d+\.\d+\.\d+)\.tgz",
        r'"prosody-auth-hmac/token": "\^?(\d+\.\d+\.\d+)"',
        r"^Version (\d+\.\d+\.\d+), ",
        r"Ready on [a-z.]+: prosody-auth-hmac (\d+\.\d+\.\d+),",
    ]
    found = []
    for doc in ("README.md", "clients/python/README.md", "clients/node/README.md", "clients/php/README.md",
                "clients/converse/README.md"):
        text = (REPO / doc).read_text()
        for pattern in patterns:
            found += re.findall(pattern, text, re.M)
    assert len(found) >= 10, found  # the patterns still match what the docs show
    return found


SOURCES = {
    "Cargo.lock": lambda: cargo_lock("Cargo.lock"),
    "fuzz/Cargo.lock": lambda: cargo_lock("fuzz/Cargo.lock"),
    "tools/loadgen/Cargo.lock": lambda: cargo_lock("tools/loadgen/Cargo.lock"),
    "the rockspec (file name, version, source tarball)": rockspec,
    "debian/changelog": debian,
    "clients/python (__version__, the package's version)": python_library,
    "clients/node/package.json": lambda: package_json("clients/node/package.json"),
    "clients/converse/package.json": lambda: package_json("clients/converse/package.json"),
    "README.md and the libraries' READMEs": documented,
}


@pytest.mark.parametrize("source", sorted(SOURCES))
def test_version_matches_cargo_toml(source):
    versions = SOURCES[source]()
    assert versions, "%s: no version found" % source
    assert set(versions) == {CARGO}, "%s says %s, Cargo.toml says %s" % (source, sorted(set(versions)), CARGO)


def test_cargo_version_is_semver():
    assert re.fullmatch(r"\d+\.\d+\.\d+", CARGO), CARGO


def test_the_packages_name_one_home():
    """The four packages point at the same homepage, repository and issue tracker, so a move
    (or the first publication) is changed everywhere or the test says where not."""
    python = tomllib.loads((REPO / "clients" / "python" / "pyproject.toml").read_text())["project"]["urls"]
    node = json.loads((REPO / "clients" / "node" / "package.json").read_text())
    converse = json.loads((REPO / "clients" / "converse" / "package.json").read_text())
    php = json.loads((REPO / "clients" / "php" / "composer.json").read_text())
    homes = {python["Homepage"], node["homepage"], converse["homepage"], php["homepage"]}
    repositories = {python["Repository"], node["repository"]["url"], converse["repository"]["url"],
                    php["support"]["source"]}
    trackers = {python["Issues"], node["bugs"]["url"], converse["bugs"]["url"], php["support"]["issues"]}
    assert len(homes) == len(repositories) == len(trackers) == 1, (homes, repositories, trackers)
