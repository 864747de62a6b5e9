"""The minting libraries as their ecosystems' packages: each is built with its own standard tool,
installed from the built artifact (never the source tree) into a clean environment, type-checked
as a consumer sees it, and used there to mint a token that logs in to the live Prosody once.

* Python: `python3 -m build --no-isolation` (Debian's build and setuptools, no download) makes the
  sdist and the wheel; each goes into its own new venv with pip and no index (the sdist is built
  by pip with the setuptools and wheel Debian ships in /usr/share/python-wheels); mypy --strict
  checks a consumer against the installed package.
* Node: `npm pack` makes the tarball; a fresh npm project installs it (`npm install --offline`),
  imports it by name through its `exports` map, and `tsc --noEmit` checks a TypeScript consumer
  against the package's `index.d.ts`.
* converse.js plugins: `npm pack` of clients/converse; a fresh npm project installs the tarball
  offline, imports the plugins by name (and by their two subpaths), and `tsc --noEmit` checks a
  consumer. The browser tests (test_browser.py) load the same installed package into converse.js.
* PHP: `composer validate --strict`; a fresh Composer project with the composer.json of
  clients/php/README.md requires the package through a path repository (mirrored, not symlinked;
  Packagist off) and its autoloader loads it.

Only the builds read the checkout (Python's from a copy, as setuptools writes into its source).
Installs and uses run in new directories, with an environment that cannot point back into the
checkout or out to a registry (no PYTHONPATH, no pip or npm user configuration, `python -I`)."""
import email
import json
import os
import re
import shutil
import subprocess
import tarfile
import tomllib
import zipfile
from pathlib import Path

import pytest

import rawxmpp
from harness import REPO

# version_independent (pytest.ini): builds, installs and type-checks the packages; each logs in once with
# what its library's source mints, which test_minting_libs logs in with on every Prosody version
# second_lane: the longest of them (~340 s of builds), run beside the second Prosody's pass to even the lanes
pytestmark = [pytest.mark.version_independent, pytest.mark.second_lane]

PYTHON_SRC = REPO / "clients" / "python"
NODE_SRC = REPO / "clients" / "node"
CONVERSE_SRC = REPO / "clients" / "converse"
PHP_SRC = REPO / "clients" / "php"
# the release's version: test_versions.py holds every package's to it
VERSION = tomllib.loads((REPO / "Cargo.toml").read_text())["package"]["version"]
# the project's licence text, which every package must carry (check.sh keeps the copies equal)
LICENSE = (REPO / "LICENSE").read_bytes()
# setuptools and (for bookworm's setuptools) wheel, as Debian ships them: pip builds the sdist
# with these, offline
DEBIAN_WHEELS = "/usr/share/python-wheels"


def clean_env(**extra):
    """The environment minus everything that could lead a tool back to the checkout or to a
    registry: PYTHONPATH, pip's configuration and find-links, node's and npm's paths."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PYTHON", "PIP_", "NODE_", "npm_", "NPM_", "COMPOSER"))}
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_DISABLE_PIP_VERSION_CHECK="1", **extra)
    return env


def run(args, cwd, env=None, timeout=300):
    r = subprocess.run([str(a) for a in args], cwd=cwd, env=env or clean_env(), capture_output=True,
                       text=True, timeout=timeout)
    assert r.returncode == 0, "%s: exit %d\n%s\n%s" % (args, r.returncode, r.stdout[-3000:], r.stderr[-3000:])
    return r.stdout


def plain(user, token):
    return b"\0" + user.encode() + b"\0" + token.encode()


def logs_in_once(prosody, user, password):
    """The token is no good for another account, logs in as `user` (as typed: Prosody nodepreps
    it), and not a second time. Returns (other account, login, replay) outcomes."""
    def login(name):
        r = rawxmpp.C2S(prosody.c2s_port, prosody.host).auth("PLAIN", plain(name, password))
        return r.status if r.status == "success" else (r.status, r.condition)
    return login(user + "x"), login(user), login(user.lower())


LOGGED_IN_ONCE = (("failure", "not-authorized"), "success", ("failure", "not-authorized"))


# ---------------------------------------------------------------------------------------------
# Python


@pytest.fixture(scope="module")
def python_dist(tmp_path_factory):
    """sdist and wheel, built from a copy of clients/python (setuptools writes its egg-info into
    the source directory) the way `python3 -m build` builds by default: the wheel from the sdist,
    so a file missing from the sdist is missing from the wheel too."""
    work = tmp_path_factory.mktemp("python-build")
    shutil.copytree(PYTHON_SRC, work / "src", ignore=shutil.ignore_patterns(
        "__pycache__", "*.egg-info", "build", "dist", ".mypy_cache"))
    run(["/usr/bin/python3", "-m", "build", "--no-isolation", "--outdir", work / "dist", work / "src"], cwd=work)
    sdists = sorted((work / "dist").glob("*.tar.gz"))
    wheels = sorted((work / "dist").glob("*.whl"))
    assert len(sdists) == 1 and len(wheels) == 1, sorted(p.name for p in (work / "dist").iterdir())
    return {"sdist": sdists[0], "wheel": wheels[0]}


@pytest.fixture(scope="module")
def python_venvs(python_dist, tmp_path_factory):
    """Two new venvs, the package installed in one from the wheel and in the other from the
    sdist, by pip, with no index. pip is the one a venv gets (Debian's pip wheel, which ensurepip
    would unpack and byte-compile into each venv: seconds of CPU, a minute on a busy machine), run
    by the venv's own interpreter straight from that wheel."""
    pip = sorted(Path(DEBIAN_WHEELS).glob("pip-*.whl"))
    assert len(pip) == 1, pip
    venvs = {}
    for kind in ("wheel", "sdist"):
        venv = venvs[kind] = tmp_path_factory.mktemp("venv-" + kind)
        run(["/usr/bin/python3", "-m", "venv", "--without-pip", venv], cwd=venv)
        run([venv / "bin" / "python", pip[0] / "pip", "install", "--no-index", "--no-compile", "--find-links",
             DEBIAN_WHEELS, python_dist[kind]], cwd=venv)
    return venvs


def test_python_wheel_metadata(python_dist):
    with zipfile.ZipFile(python_dist["wheel"]) as whl:
        names = whl.namelist()
        meta = email.message_from_string(whl.read("prosody_hmac_token-%s.dist-info/METADATA" % VERSION).decode())
    assert python_dist["wheel"].name == "prosody_hmac_token-%s-py3-none-any.whl" % VERSION
    # the module and PEP 561's marker (type checkers read the package's own hints), nothing else
    assert sorted(n for n in names if ".dist-info/" not in n) == [
        "prosody_hmac_token/__init__.py", "prosody_hmac_token/py.typed"], names
    # MIT asks for its notice in every copy: setuptools puts LICENSE in the dist-info
    licenses = [n for n in names if ".dist-info/" in n and n.endswith("/LICENSE")]
    assert len(licenses) == 1, names
    with zipfile.ZipFile(python_dist["wheel"]) as whl:
        assert whl.read(licenses[0]) == LICENSE
    assert (meta["Name"], meta["Version"], meta["Requires-Python"]) == ("prosody-hmac-token", VERSION, ">=3.9")
    assert meta["License"] == "MIT"
    assert meta.get_all("Requires-Dist") is None  # the standard library only
    urls = dict(u.split(", ", 1) for u in meta.get_all("Project-URL"))
    assert {"Homepage", "Documentation", "Repository", "Issues", "Changelog"} <= set(urls), urls
    assert all(u.startswith("https://") for u in urls.values()), urls
    classifiers = meta.get_all("Classifier")
    for c in ("Typing :: Typed", "License :: OSI Approved :: MIT License", "Programming Language :: Python :: 3 :: Only"):
        assert c in classifiers, classifiers
    assert meta["Description-Content-Type"] == "text/markdown"
    assert "mint(" in meta.get_payload()  # the README is the long description


def test_python_sdist_contents(python_dist):
    with tarfile.open(python_dist["sdist"]) as tar:
        names = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
    for name in ("pyproject.toml", "README.md", "LICENSE", "PKG-INFO", "src/prosody_hmac_token/__init__.py",
                 "src/prosody_hmac_token/py.typed"):
        assert name in names, sorted(names)


@pytest.mark.parametrize("kind", ["wheel", "sdist"])
def test_python_package_from_the_artifact_logs_in(prosody, python_venvs, kind, tmp_path):
    """Run from an empty directory with `python -I`: the module is the venv's copy, and the token
    it mints for an upper-case name logs in once as the lower-case account."""
    python_venv = python_venvs[kind]
    user = "PyPkg" + kind.capitalize()
    script = ("import json, os, sys, importlib.metadata as md, prosody_hmac_token as t; "
              "print(json.dumps({'file': t.__file__, 'version': t.__version__, "
              "'dist': md.version('prosody-hmac-token'), "
              "'body': t.credentials(sys.argv[1], os.environ['TOKEN_SECRET'], os.environ['OTP_SEED'])}))")
    out = json.loads(run([python_venv / "bin" / "python", "-I", "-c", script, "%s@%s" % (user, prosody.host)],
                         cwd=tmp_path, env=clean_env(TOKEN_SECRET=prosody.token_secret, OTP_SEED=prosody.otp_seed)))
    assert Path(out["file"]).is_relative_to(python_venv / "lib"), out["file"]
    assert out["version"] == out["dist"] == VERSION
    assert out["body"]["jid"] == "%s@%s" % (user.lower(), prosody.host)
    assert logs_in_once(prosody, user, out["body"]["password"]) == LOGGED_IN_ONCE


CONSUMER = '''\
from typing import Dict, List, Optional

import prosody_hmac_token as pht


def endpoint(user: str, secret: str, seed: str) -> Dict[str, str]:
    try:
        return pht.credentials(user + "@example.org", secret, seed, now=1700000000, digits=8)
    except pht.TokenError as e:
        kind: str = e.kind
        return {"error": kind}


def check(token: str, secrets: List[str], seed: str) -> Optional[str]:
    return pht.verify(token, "alice@example.org", secrets, seed, host="example.org", skew=1)


token: str = pht.mint("alice@example.org", b"secret", "JBSWY3DPEHPK3PXP")
jid: str = pht.signed_jid("Alice@Example.org", prepared=False)
line: str = pht.signout_request("alice@example.org", "secret", now=1700000000)


def logout(url: str, secret: str) -> Optional[str]:
    try:
        pht.signout(url, "alice@example.org", secret, timeout=2.5, host="example.org")
    except pht.SignoutError as e:
        status: Optional[int] = e.status
        return e.kind if status is None else "%s %d" % (e.kind, status)
    return None


def attach(url: str, token: str) -> pht.PrebindSession:
    try:
        session = pht.prebind(url, "alice@example.org", token, timeout=5.0, resource="web", insecure_http=False)
    except pht.PrebindError as e:
        condition: Optional[str] = e.condition
        raise RuntimeError("%s %s" % (e.kind, condition))
    rid: int = session["rid"]
    sid: str = session["sid"]
    return session
'''

# what --strict must refuse: proof that mypy reads the package's types rather than Any
MISUSES = {
    "mint returns str": 'n: int = pht.mint("a@b.c", "s", "JBSWY3DP")',
    "now is an int": 'pht.mint("a@b.c", "s", "JBSWY3DP", now="1700000000")',
    "verify may return None": 'r: str = pht.verify("t", "a@b.c", ["s"], "JBSWY3DP")',
    "no such keyword": 'pht.credentials("a@b.c", "s", "JBSWY3DP", nonce_length=32)',
    "signout returns None": 'ok: bool = pht.signout("http://127.0.0.1:5280/auth_hmac/signout", "a@b.c", "s")',
    "signout takes no nonce": 'pht.signout("http://127.0.0.1:5280/auth_hmac/signout", "a@b.c", "s", nonce="1" * 32)',
    "prebind's rid is an int": 'r: str = pht.prebind("http://127.0.0.1:5280/http-bind", "a@b.c", "t")["rid"]',
}


def mypy(venv, cwd, files):
    """One mypy --strict run over every file of `files` (name: source), each its own module."""
    for name, source in files.items():
        (cwd / name).write_text(source)
    return subprocess.run(["mypy", "--strict", "--no-incremental", "--cache-dir", os.devnull,
                           "--python-executable", str(venv / "bin" / "python"), *sorted(files)],
                          cwd=cwd, env=clean_env(), capture_output=True, text=True, timeout=300)


def misuse_files(consumer, misuses, suffix):
    """One file per misuse: the consumer, then the misuse alone on the line after it. They are
    type-checked together, as one program of independent modules, because each checker run costs
    10-40 s; each file's errors are then read apart, so every misuse is still refused on its own."""
    return {"misuse_%d%s" % (i, suffix): (name, consumer + misuses[name] + "\n")
            for i, name in enumerate(sorted(misuses))}


def error_lines(output, pattern):
    """{file name: set of line numbers with an error}, from a checker's output."""
    found = {}
    for m in re.finditer(pattern, output, re.M):
        found.setdefault(m.group(1), set()).add(int(m.group(2)))
    return found


MYPY_ERROR = r"^([\w.]+\.py):(\d+): error:"
PY_MISUSE_FILES = misuse_files(CONSUMER, MISUSES, ".py")


@pytest.fixture(scope="module")
def mypy_wheel(python_venvs, tmp_path_factory):
    """The consumer and every misuse file, checked in one mypy run against the wheel's install."""
    files = {"consumer.py": CONSUMER} | {name: source for name, (_, source) in PY_MISUSE_FILES.items()}
    r = mypy(python_venvs["wheel"], tmp_path_factory.mktemp("mypy-wheel"), files)
    assert r.returncode == 1 and "(checked %d source files)" % len(files) in r.stdout, r.stdout + r.stderr
    return r, error_lines(r.stdout, MYPY_ERROR)


def test_python_package_types_check_strictly_wheel(mypy_wheel):
    """mypy --strict, with the venv's interpreter, finds the installed package's own hints
    (py.typed) and accepts a consumer that uses the API as documented."""
    r, errors = mypy_wheel
    assert "consumer.py" not in errors, r.stdout


def test_python_package_types_check_strictly_sdist(python_venvs, tmp_path):
    r = mypy(python_venvs["sdist"], tmp_path, {"consumer.py": CONSUMER})
    assert r.returncode == 0 and "Success" in r.stdout, r.stdout + r.stderr


@pytest.mark.parametrize("file", sorted(PY_MISUSE_FILES), ids=lambda f: PY_MISUSE_FILES[f][0])
def test_python_package_types_refuse_misuse(mypy_wheel, file):
    r, errors = mypy_wheel
    assert errors.get(file) == {CONSUMER.count("\n") + 1}, r.stdout


# ---------------------------------------------------------------------------------------------
# Node


def npm_env(work):
    """npm with its own empty user configuration and cache: nothing from the machine's ~/.npmrc,
    no registry reached (every install is --offline from a local tarball)."""
    (work / "npmrc").write_text("")
    return clean_env(npm_config_userconfig=str(work / "npmrc"), npm_config_cache=str(work / "npm-cache"),
                     npm_config_update_notifier="false", npm_config_fund="false", npm_config_audit="false")


def npm_pack_and_install(work, src, package, app_name):
    """`npm pack` of src, which must write exactly PACKAGE-VERSION.tgz, and a fresh ES-module npm
    project named app_name with that tarball installed, offline."""
    env = npm_env(work)
    run(["npm", "pack", "--pack-destination", work], cwd=src, env=env)
    tarballs = sorted(work.glob("*.tgz"))
    assert [t.name for t in tarballs] == ["%s-%s.tgz" % (package, VERSION)]
    app = work / "app"
    app.mkdir()
    (app / "package.json").write_text(json.dumps({"name": app_name, "version": "1.0.0", "private": True,
                                                  "type": "module"}))
    run(["npm", "install", "--offline", "--ignore-scripts", tarballs[0]], cwd=app, env=env)
    return {"tarball": tarballs[0], "app": app, "env": env}


@pytest.fixture(scope="module")
def node_project(tmp_path_factory):
    """`npm pack` of clients/node, and a fresh ES-module npm project with that tarball installed."""
    return npm_pack_and_install(tmp_path_factory.mktemp("node-pack"), NODE_SRC, "prosody-hmac-token", "consumer")


def test_node_tarball_contents_and_metadata(node_project):
    with tarfile.open(node_project["tarball"]) as tar:
        names = sorted(tar.getnames())
        meta = json.load(tar.extractfile("package/package.json"))
    assert names == ["package/LICENSE", "package/README.md", "package/index.d.ts", "package/index.js",
                     "package/package.json"]
    assert (meta["name"], meta["version"], meta["type"], meta["license"]) == (
        "prosody-hmac-token", VERSION, "module", "MIT")
    entry = meta["exports"]["."]
    assert list(entry)[0] == "types", entry  # TypeScript takes the first condition that matches
    assert (entry["types"], entry["default"]) == ("./index.d.ts", "./index.js")
    assert meta["files"] == ["index.js", "index.d.ts", "README.md", "LICENSE"]
    for key in ("homepage", "description", "keywords", "engines"):
        assert meta.get(key), key
    assert meta["repository"]["url"].startswith("https://") and meta["bugs"]["url"].startswith("https://")
    assert "dependencies" not in meta  # node:crypto only


def test_node_package_installed_is_a_copy_of_the_tarball(node_project):
    installed = node_project["app"] / "node_modules" / "prosody-hmac-token"
    assert installed.is_dir() and not installed.is_symlink()
    assert sorted(p.name for p in installed.iterdir()) == ["LICENSE", "README.md", "index.d.ts", "index.js",
                                                           "package.json"]
    assert (installed / "index.js").read_bytes() == (NODE_SRC / "index.js").read_bytes()
    assert (installed / "LICENSE").read_bytes() == LICENSE


MINT_JS = """
import { credentials } from "prosody-hmac-token";
console.log(JSON.stringify(credentials(process.argv[2], process.env.TOKEN_SECRET, process.env.OTP_SEED)));
"""


def test_node_package_from_the_tarball_logs_in(prosody, node_project):
    app = node_project["app"]
    (app / "mint.js").write_text(MINT_JS)
    user = "NodePkg"
    env = dict(node_project["env"], TOKEN_SECRET=prosody.token_secret, OTP_SEED=prosody.otp_seed)
    body = json.loads(run(["node", "mint.js", "%s@%s" % (user, prosody.host)], cwd=app, env=env))
    assert body["jid"] == "%s@%s" % (user.lower(), prosody.host)
    assert logs_in_once(prosody, user, body["password"]) == LOGGED_IN_ONCE


def test_node_package_exports_only_its_entry_point(node_project):
    app = node_project["app"]
    (app / "deep.js").write_text('import "prosody-hmac-token/index.js";\n')
    r = subprocess.run(["node", "deep.js"], cwd=app, env=node_project["env"], capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "ERR_PACKAGE_PATH_NOT_EXPORTED" in r.stderr, r.stderr
    (app / "meta.js").write_text('import { createRequire } from "node:module";\n'
                                 'console.log(createRequire(import.meta.url)("prosody-hmac-token/package.json").version);\n')
    assert run(["node", "meta.js"], cwd=app, env=node_project["env"]).strip() == VERSION


TS_CONSUMER = """\
import { credentials, mint, prebind, signedJid, signout, signoutRequest, verify, PrebindError, SignoutError, TokenError } from "prosody-hmac-token";
import type { Credentials, MintOptions, PrebindErrorKind, PrebindSession, SignoutErrorKind, TokenErrorKind, VerifyFailure } from "prosody-hmac-token";

const options: MintOptions = { now: 1700000000, digits: 8, step: 30, nonceDigits: 32 };
export function endpoint(user: string, secret: string, seed: string): Credentials | { error: TokenErrorKind } {
  try {
    return credentials(user + "@example.org", secret, seed, options);
  } catch (e) {
    if (e instanceof TokenError) return { error: e.kind };
    throw e;
  }
}
export const token: string = mint("alice@example.org", "secret", "JBSWY3DPEHPK3PXP");
export const jid: string = signedJid("Alice@Example.org", { prepared: false });
export const result: VerifyFailure | null = verify(token, jid, ["secret"], "JBSWY3DPEHPK3PXP", { host: "example.org", skew: 1 });
export const line: string = signoutRequest("alice@example.org", "secret", { now: 1700000000n });
export async function logout(url: string): Promise<SignoutErrorKind | null> {
  try {
    await signout(url, "alice@example.org", "secret", { timeout: 2000, host: "example.org" });
    return null;
  } catch (e) {
    if (e instanceof SignoutError) return e.kind;
    throw e;
  }
}
export async function attach(url: string): Promise<PrebindSession | [PrebindErrorKind, string | null]> {
  try {
    const session = await prebind(url, "alice@example.org", mint("alice@example.org", "secret", "JBSWY3DP"), { timeout: 5000, resource: "web" });
    const rid: number = session.rid;
    return session;
  } catch (e) {
    if (e instanceof PrebindError) return [e.kind, e.condition];
    throw e;
  }
}
"""

# what tsc must refuse: proof that it reads the package's declarations rather than any
TS_MISUSES = {
    "mint returns a string": 'export const n: number = mint("a@b.c", "s", "JBSWY3DP");',
    "now is a number": 'mint("a@b.c", "s", "JBSWY3DP", { now: "1700000000" });',
    "verify may return null": 'export const r: VerifyFailure = verify("t", "a@b.c", ["s"], "JBSWY3DP");',
    "no such option": 'mint("a@b.c", "s", "JBSWY3DP", { nonceLength: 32 });',
    "signout resolves to nothing": 'export const b: Promise<boolean> = signout("u", "a@b.c", "s");',
    "signout takes no nonce": 'signout("u", "a@b.c", "s", { nonce: "1" });',
    "prebind resolves to a session": 'export const p: Promise<string> = prebind("u", "a@b.c", "t");',
}

TSCONFIG = {"compilerOptions": {"strict": True, "noEmit": True, "module": "node16", "moduleResolution": "node16",
                                "target": "es2020", "types": [], "skipLibCheck": False}}


def tsc(app, files):
    """One tsc run (strict, --noEmit) over every file of `files` (name: source), each a module."""
    for name, source in files.items():
        (app / name).write_text(source)
    (app / "tsconfig.json").write_text(json.dumps(dict(TSCONFIG, files=sorted(files))))
    return subprocess.run(["tsc", "-p", "tsconfig.json", "--listFiles"], cwd=app, env=clean_env(),
                          capture_output=True, text=True, timeout=300)


TSC_ERROR = r"^([\w.]+\.ts)\((\d+),\d+\): error"


def tsc_misuses(app, consumer, misuses):
    """The consumer and every misuse file, in one tsc run; every file must have been read."""
    files = misuse_files(consumer, misuses, ".ts")
    r = tsc(app, {"consumer.ts": consumer} | {name: source for name, (_, source) in files.items()})
    listed = [line for line in r.stdout.splitlines() if line.startswith("/")]
    for name in ["consumer.ts", *files]:
        assert str(app / name) in listed, r.stdout + r.stderr
    return r, error_lines(r.stdout, TSC_ERROR)


NODE_MISUSE_FILES = misuse_files(TS_CONSUMER, TS_MISUSES, ".ts")


@pytest.fixture(scope="module")
def node_tsc(node_project):
    return tsc_misuses(node_project["app"], TS_CONSUMER, TS_MISUSES)


def test_node_package_types_check_with_tsc(node_tsc):
    """tsc --noEmit (strict, node16 resolution: the exports map's `types`) accepts a consumer
    that uses the API as documented..."""
    r, errors = node_tsc
    assert "consumer.ts" not in errors, r.stdout + r.stderr


@pytest.mark.parametrize("file", sorted(NODE_MISUSE_FILES), ids=lambda f: NODE_MISUSE_FILES[f][0])
def test_node_package_types_refuse_misuse(node_tsc, file):
    """...and refuses one that does not."""
    r, errors = node_tsc
    assert r.returncode != 0 and errors.get(file) == {TS_CONSUMER.count("\n") + 1}, r.stdout + r.stderr


# ---------------------------------------------------------------------------------------------
# converse.js plugins

CONVERSE_PACKAGE = "prosody-auth-hmac-converse"
# reconnect-rules.js: token-reconnect's rules, imported by token-reconnect.js, not an entry point
CONVERSE_FILES = ["LICENSE", "README.md", "index.d.ts", "index.js", "reconnect-rules.js", "sasl-hmac.d.ts",
                  "sasl-hmac.js", "token-reconnect.d.ts", "token-reconnect.js"]


@pytest.fixture(scope="module")
def converse_project(tmp_path_factory):
    """`npm pack` of clients/converse, and a fresh npm project (a chat page's web root) with that
    tarball installed, offline."""
    return npm_pack_and_install(tmp_path_factory.mktemp("converse-pack"), CONVERSE_SRC, CONVERSE_PACKAGE, "chat-page")


def test_converse_tarball_contents_and_metadata(converse_project):
    with tarfile.open(converse_project["tarball"]) as tar:
        names = sorted(tar.getnames())
        meta = json.load(tar.extractfile("package/package.json"))
    assert names == sorted("package/" + n for n in CONVERSE_FILES + ["package.json"])
    assert (meta["name"], meta["version"], meta["type"], meta["license"]) == (CONVERSE_PACKAGE, VERSION, "module", "MIT")
    assert "private" not in meta
    exports = meta["exports"]
    assert sorted(exports) == [".", "./package.json", "./sasl-hmac", "./token-reconnect"], exports
    for subpath, module in ((".", "index"), ("./sasl-hmac", "sasl-hmac"), ("./token-reconnect", "token-reconnect")):
        entry = exports[subpath]
        assert list(entry)[0] == "types", entry  # TypeScript takes the first condition that matches
        assert entry == {"types": "./%s.d.ts" % module, "default": "./%s.js" % module}, entry
    assert sorted(meta["files"]) == CONVERSE_FILES
    # importing token-reconnect.js registers it with a window.converse: a bundler must keep it
    assert meta["sideEffects"] == ["./token-reconnect.js"]
    for key in ("homepage", "description", "keywords"):
        assert meta.get(key), key
    assert meta["repository"]["url"].startswith("https://") and meta["bugs"]["url"].startswith("https://")
    assert meta["repository"]["directory"] == "clients/converse"
    # the page's converse.js is the deployer's: nothing installed beside the plugins
    for key in ("dependencies", "peerDependencies", "optionalDependencies", "scripts"):
        assert key not in meta, key


def test_converse_package_installed_is_a_copy_of_the_tarball(converse_project):
    installed = converse_project["app"] / "node_modules" / CONVERSE_PACKAGE
    assert installed.is_dir() and not installed.is_symlink()
    assert sorted(p.name for p in installed.iterdir()) == sorted(CONVERSE_FILES + ["package.json"])
    for name in ("sasl-hmac.js", "token-reconnect.js", "reconnect-rules.js"):
        assert (installed / name).read_bytes() == (CONVERSE_SRC / name).read_bytes(), name


# The plugins by name, in Node, with a minimal Strophe and converse standing in: what each entry
# point exports, that the three are the same functions, and that the mechanism from the package
# behaves (a token tried once, legacy login refused) and the plugin registers once.
CONVERSE_JS = r"""
import { webcrypto } from 'node:crypto';
if (!globalThis.crypto) globalThis.crypto = webcrypto;
globalThis.isSecureContext = true;
const pkg = await import('prosody-auth-hmac-converse');
const mech = await import('prosody-auth-hmac-converse/sasl-hmac');
const plugin = await import('prosody-auth-hmac-converse/token-reconnect');
class SASLMechanism { constructor(mechname, isClientFirst, priority) { Object.assign(this, { mechname, isClientFirst, priority }); }
    onStart() {} onFailure() {} onSuccess() {} }
class Connection { _attemptLegacyAuth() { this.legacy = true; } _changeConnectStatus(s) { this.status = s; }
    _sasl_failure_cb() {} _attemptSASLAuth() { return true; } _connect_cb() {} }
const Strophe = { SASLMechanism, Connection, Status: { AUTHFAIL: 4, CONNFAIL: 2 } };
const Mech = pkg.makeSASLHMAC(Strophe);
const m = new Mech();
const conn = { authcid: 'alice', authzid: '', pass: '12345678' + '0'.repeat(32) + ' ' + Buffer.alloc(32, 1).toString('base64') };
const fresh = m.test(conn);
m.clientChallenge(conn);
const pinned = new Connection(); pinned.mechanisms = { 'SASL-HMAC': m };
pinned._attemptLegacyAuth();
const added = [];
const converse = { plugins: { add: (name) => added.push(name) }, env: { Strophe, log: console } };
pkg.addTokenReconnect(converse);
plugin.addTokenReconnect(converse);
console.log(JSON.stringify({
    exports: Object.keys(pkg).sort(), mechExports: Object.keys(mech), pluginExports: Object.keys(plugin).sort(),
    same: pkg.makeSASLHMAC === mech.makeSASLHMAC && pkg.addTokenReconnect === plugin.addTokenReconnect,
    name: new Mech().mechname, fresh, retried: m.test(conn), legacy: !!pinned.legacy, status: pinned.status, added,
}));
"""


def test_converse_package_by_name(converse_project):
    app = converse_project["app"]
    (app / "plugins.js").write_text(CONVERSE_JS)
    out = json.loads(run(["node", "plugins.js"], cwd=app, env=converse_project["env"]).strip().splitlines()[-1])
    assert out == {
        "exports": ["DEFAULTS", "MESSAGES", "PLUGIN_NAME", "WAITING", "addTokenReconnect", "backoffDelay", "makeSASLHMAC"],
        "mechExports": ["makeSASLHMAC"],
        "pluginExports": ["DEFAULTS", "MESSAGES", "PLUGIN_NAME", "WAITING", "addTokenReconnect", "backoffDelay"],
        "same": True, "name": "SASL-HMAC", "fresh": True, "retried": False, "legacy": False, "status": 4,
        "added": ["token-reconnect"],
    }, out


@pytest.mark.parametrize("path", ["sasl-hmac.js", "token-reconnect.js", "reconnect-rules.js", "index.js", "README.md"])
def test_converse_package_exports_only_its_entry_points(converse_project, path):
    app = converse_project["app"]
    (app / "deep.js").write_text('import "%s/%s";\n' % (CONVERSE_PACKAGE, path))
    r = subprocess.run(["node", "deep.js"], cwd=app, env=converse_project["env"], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode != 0 and "ERR_PACKAGE_PATH_NOT_EXPORTED" in r.stderr, r.stderr


CONVERSE_TS = """\
import { addTokenReconnect, backoffDelay, DEFAULTS, makeSASLHMAC, MESSAGES, PLUGIN_NAME } from "prosody-auth-hmac-converse";
import type { StopReason, TokenReconnectSettings } from "prosody-auth-hmac-converse";
import { makeSASLHMAC as mechanismOnly } from "prosody-auth-hmac-converse/sasl-hmac";
import { addTokenReconnect as pluginOnly } from "prosody-auth-hmac-converse/token-reconnect";

class SASLMechanism {
  constructor(public mechname: string, public isClientFirst: boolean, public priority: number) {}
}
const Strophe = { SASLMechanism, Status: { AUTHFAIL: 4 } };
declare const converse: {
  plugins: { add(name: string, plugin: object): void };
  env: { Strophe: typeof Strophe; log: object };
  initialize(settings: object): Promise<void>;
};
addTokenReconnect(converse);
pluginOnly(converse);
const settings: TokenReconnectSettings = { token_reconnect_max_refusals: 3, token_reconnect_delay: 500 };
export const mechanisms = [makeSASLHMAC(Strophe), mechanismOnly(Strophe)];
export const started: Promise<void> = converse.initialize({
  whitelisted_plugins: [PLUGIN_NAME], auto_reconnect: true, connection_options: { mechanisms }, ...settings,
});
const reason: StopReason = "otp-mismatch";
export const why: string = MESSAGES[reason];
export const ms: number = backoffDelay(2, DEFAULTS.token_reconnect_delay, DEFAULTS.token_reconnect_max_delay);
"""

# what tsc must refuse: proof that it reads the package's declarations rather than any
CONVERSE_TS_MISUSES = {
    "a setting is a number": 'export const s: TokenReconnectSettings = { token_reconnect_delay: "500" };',
    "no such setting": "export const s: TokenReconnectSettings = { token_reconnect_maxdelay: 1000 };",
    "no such stop reason": 'export const m: string = MESSAGES["expired"];',
    "the mechanism needs Strophe": "makeSASLHMAC(converse);",
    "the plugin needs converse": "addTokenReconnect(Strophe);",
    "the defaults are read-only": "DEFAULTS.token_reconnect_delay = 1;",
}


CONVERSE_MISUSE_FILES = misuse_files(CONVERSE_TS, CONVERSE_TS_MISUSES, ".ts")


@pytest.fixture(scope="module")
def converse_tsc(converse_project):
    return tsc_misuses(converse_project["app"], CONVERSE_TS, CONVERSE_TS_MISUSES)


def test_converse_package_types_check_with_tsc(converse_tsc):
    r, errors = converse_tsc
    assert "consumer.ts" not in errors, r.stdout + r.stderr


@pytest.mark.parametrize("file", sorted(CONVERSE_MISUSE_FILES), ids=lambda f: CONVERSE_MISUSE_FILES[f][0])
def test_converse_package_types_refuse_misuse(converse_tsc, file):
    r, errors = converse_tsc
    assert r.returncode != 0 and errors.get(file) == {CONVERSE_TS.count("\n") + 1}, r.stdout + r.stderr


# ---------------------------------------------------------------------------------------------
# PHP


def composer_env(work):
    """Composer with its own home and no network: Packagist is never asked."""
    return clean_env(COMPOSER_HOME=str(work / "composer-home"), COMPOSER_DISABLE_NETWORK="1",
                     COMPOSER_NO_INTERACTION="1", COMPOSER_ALLOW_SUPERUSER="1")


def readme_composer_json():
    """The app's composer.json as clients/php/README.md shows it (the one ```json block)."""
    blocks = re.findall(r"^```json\n(.*?)^```", (PHP_SRC / "README.md").read_text(), flags=re.M | re.S)
    assert len(blocks) == 1, blocks
    return json.loads(blocks[0])


@pytest.fixture(scope="module")
def php_project(tmp_path_factory):
    """A fresh Composer project with the README's composer.json (its path repository pointed at
    clients/php, Packagist off): the library at this version, mirrored into vendor/ (not a
    symlink to the checkout)."""
    app = tmp_path_factory.mktemp("php-app")
    env = composer_env(app)
    project = readme_composer_json()
    (repository,) = project["repositories"]
    assert repository["type"] == "path" and repository["options"]["symlink"] is False, repository
    repository["url"] = str(PHP_SRC)
    project.update(name="example/consumer", type="project", license="proprietary",
                   repositories=[{"packagist.org": False}, repository])
    (app / "composer.json").write_text(json.dumps(project))
    run(["composer", "install", "--no-progress"], cwd=app, env=env)
    return {"app": app, "env": env}


def test_php_composer_json_validates_strictly(tmp_path):
    out = run(["composer", "validate", "--strict", "--no-check-lock"], cwd=PHP_SRC, env=composer_env(tmp_path))
    assert "is valid" in out


def test_php_composer_json_metadata():
    meta = json.loads((PHP_SRC / "composer.json").read_text())
    assert (meta["name"], meta["type"], meta["license"]) == ("prosody-auth-hmac/token", "library", "MIT")
    assert meta["autoload"] == {"psr-4": {"ProsodyHmacToken\\": "src/"}}
    assert "phpunit/phpunit" in meta["require-dev"]
    assert meta["homepage"].startswith("https://")
    assert {"issues", "source"} <= set(meta["support"]), meta.get("support")
    assert "version" not in meta  # Composer takes it from the repository (a tag, or the path repository's option)


def test_php_package_is_installed_as_a_copy(php_project):
    installed = php_project["app"] / "vendor" / "prosody-auth-hmac" / "token"
    assert installed.is_dir() and not installed.is_symlink()
    assert (installed / "src" / "Token.php").read_bytes() == (PHP_SRC / "src" / "Token.php").read_bytes()
    assert (installed / "LICENSE").read_bytes() == LICENSE
    lock = json.loads((php_project["app"] / "composer.lock").read_text())
    assert [(p["name"], p["version"]) for p in lock["packages"]] == [("prosody-auth-hmac/token", VERSION)]


MINT_PHP = """<?php
require __DIR__ . '/vendor/autoload.php';
use ProsodyHmacToken\\Token;
echo json_encode(Token::credentials($argv[1], getenv('TOKEN_SECRET'), getenv('OTP_SEED')));
"""


def test_php_package_through_composer_logs_in(prosody, php_project):
    app = php_project["app"]
    (app / "mint.php").write_text(MINT_PHP)
    user = "PhpPkg"
    env = dict(php_project["env"], TOKEN_SECRET=prosody.token_secret, OTP_SEED=prosody.otp_seed)
    body = json.loads(run(["php", "mint.php", "%s@%s" % (user, prosody.host)], cwd=app, env=env))
    assert body["jid"] == "%s@%s" % (user.lower(), prosody.host)
    assert logs_in_once(prosody, user, body["password"]) == LOGGED_IN_ONCE
