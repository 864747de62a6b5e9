"""The package's own hints pass mypy --strict (its configuration: pyproject.toml's [tool.mypy]).
Consumers read these hints from the installed package (py.typed, `Typing :: Typed`);
tests/integration/test_packages.py checks a consumer against the built wheel and sdist."""
import os
import pathlib
import subprocess

ROOT = pathlib.Path(__file__).resolve().parent.parent


def test_the_package_passes_mypy_strict():
    r = subprocess.run(["mypy", "--strict", "--no-incremental", "--cache-dir", os.devnull,
                        "--config-file", "pyproject.toml", "src/prosody_hmac_token"],
                       cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and "Success: no issues found in 1 source file" in r.stdout, r.stdout + r.stderr
