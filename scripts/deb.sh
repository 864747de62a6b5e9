#!/usr/bin/env bash
# The Debian package, with debhelper: dist/prosody-auth-hmac_<version>_<arch>.deb (or in $DIST_DIR),
# then lintian on it. debian/rules builds with `make build` (the checkout's target/ and build/ are
# reused) and renders the manual pages with hmac-token. Needs `scripts/setup.sh deb`'s packages.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
dist=${DIST_DIR:-$PWD/dist}
mkdir -p "$dist"
version=$(dpkg-parsechangelog -S Version)
upstream=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -1)
[ "${version%-*}" = "$upstream" ] || { echo "deb: debian/changelog is at $version, Cargo.toml at $upstream" >&2; exit 1; }
deb="$dist/prosody-auth-hmac_${version}_$(dpkg-architecture -qDEB_HOST_ARCH).deb"
rm -f "$deb"
# One build at a time in a checkout: debhelper stages the package in debian/ (which the clean below
# and the one at exit remove), so a second make deb beside this one (make test runs the package's
# tests side by side) would pack or delete this one's files. The lock goes with the process.
mkdir -p target
exec 9>target/.deb-build.lock
flock 9
# debhelper's own state (debian/prosody-auth-hmac/, debian/.debhelper, ...), not the builds
debian/rules clean >/dev/null
trap 'debian/rules clean >/dev/null' EXIT
debian/rules binary DEB_OUT="$dist"
[ -f "$deb" ] || { echo "deb: $deb was not written" >&2; exit 1; }
# An error or warning fails the build. The tags left (infos included) are overridden, each with its
# reason, in debian/prosody-auth-hmac.lintian-overrides (docs/development.md, "Packaging").
lintian --fail-on error,warning --info --display-info --pedantic "$deb"
echo "deb: $deb"
