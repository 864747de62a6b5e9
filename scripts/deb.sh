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
# debhelper's own state (debian/prosody-auth-hmac/, debian/.debhelper, ...), not the builds
debian/rules clean >/dev/null
trap 'debian/rules clean >/dev/null' EXIT
debian/rules binary DEB_OUT="$dist"
[ -f "$deb" ] || { echo "deb: $deb was not written" >&2; exit 1; }
# An error or warning fails the build. The tags left (infos included) are overridden, each with its
# reason, in debian/prosody-auth-hmac.lintian-overrides (docs/development.md, "Packaging").
lintian --fail-on error,warning --info --display-info --pedantic "$deb"
echo "deb: $deb"
