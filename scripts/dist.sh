#!/usr/bin/env bash
# The release artifacts, built from the checkout into dist/ (or $DIST_DIR), then SHA256SUMS over
# them. Nothing is uploaded: these are the files a maintainer publishes (docs/development.md,
# "Cutting a release").
#   prosody-auth-hmac_<v>-1_<arch>.deb                 the Debian package (scripts/deb.sh, lintian)
#   prosody-auth-hmac-<v>.tar.gz, -<v>-1.src.rock      source tarball and source rock (scripts/rocks.sh)
#   lua5.4/…rock, luajit/…rock                         binary rocks (scripts/rocks.sh)
#   python/prosody_hmac_token-<v>.tar.gz, …whl         the Python minting library (python3 -m build)
#   node/prosody-hmac-token-<v>.tgz                    the Node minting library (npm pack)
#   php/prosody-auth-hmac-token-<v>.zip                the PHP minting library (composer archive)
#   converse/prosody-auth-hmac-converse-<v>.tgz        the converse.js plugins (npm pack)
# Every file's name must carry Cargo.toml's version, or the release check fails. Needs
# `scripts/setup.sh dist`'s packages (make dist installs them).
set -euo pipefail
cd "$(dirname "$0")/.."
here=$PWD
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -1)
dist=${DIST_DIR:-$here/dist}
# Only what this run builds is summed: an artifact left by an earlier version must not ride along,
# so the directory is emptied first. It must be this checkout's dist/, empty, or an earlier make
# dist's (it has a SHA256SUMS): a DIST_DIR set to a directory of other files is refused, not wiped.
if [ -d "$dist" ] && [ "$(cd "$dist" && pwd)" != "$here/dist" ] && [ -n "$(ls -A "$dist")" ] && [ ! -f "$dist/SHA256SUMS" ]; then
	echo "dist: $dist has files and no SHA256SUMS (not an earlier make dist): choose an empty DIST_DIR" >&2
	exit 1
fi
rm -rf "$dist"
mkdir -p "$dist"
dist=$(cd "$dist" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
step() { echo "== dist: $*"; }

step "Debian package"
DIST_DIR=$dist bash scripts/deb.sh
step "rocks"
DIST_DIR=$dist ROCK_TARGETS="${ROCK_TARGETS:-5.4 luajit}" bash scripts/rocks.sh

# The client packages are built from copies of what git tracks, so nothing untracked in the
# checkout (a venv, node_modules/, vendor/, egg-info) can end up in an artifact.
git ls-files -z clients | tar --null -cf - -T - | tar -xf - -C "$work"
step "Python minting library"
/usr/bin/python3 -m build --no-isolation --outdir "$dist/python" "$work/clients/python" >"$work/python.log" 2>&1 \
	|| { cat "$work/python.log" >&2; exit 1; }
# npm and Composer write their caches under HOME: a scratch one keeps the run from the user's
for pkg in node converse; do
	step "npm package (clients/$pkg)"
	mkdir -p "$dist/$pkg"
	(cd "$work/clients/$pkg" && HOME=$work/home npm pack --offline --silent --pack-destination "$dist/$pkg" >/dev/null)
done
step "PHP minting library"
mkdir -p "$dist/php"
name=$(/usr/bin/python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["name"].replace("/", "-"))' clients/php/composer.json)
(cd "$work/clients/php" && COMPOSER_HOME=$work/composer-home COMPOSER_DISABLE_NETWORK=1 HOME=$work/home \
	composer archive --no-interaction --quiet --format=zip --dir="$dist/php" --file="$name-$version")

# The release check: every artifact is named for this version, then the sums.
(cd "$dist" && find . -type f ! -name SHA256SUMS | sed 's|^\./||' | LC_ALL=C sort) > "$work/files"
bad=$(grep -v -F -- "$version" "$work/files" || true)
[ -z "$bad" ] || { echo "dist: not named for $version: $bad" >&2; exit 1; }
(cd "$dist" && xargs -d '\n' sha256sum -- < "$work/files" > SHA256SUMS)
(cd "$dist" && sha256sum --check --quiet SHA256SUMS)
step "$(wc -l < "$dist/SHA256SUMS") artifacts in $dist, summed in SHA256SUMS"
cat "$dist/SHA256SUMS"
