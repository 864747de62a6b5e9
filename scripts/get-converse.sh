#!/usr/bin/env bash
# converse.js's browser build, fetched as the tests and the demo pin it, with the npm that Debian
# ships: `npm pack` downloads the release tarball, sha512sum checks it against the pin in
# tests/web/converse.sha512, and its dist/ is unpacked into DEST/dist.
#   scripts/get-converse.sh DEST
# `npm ci`/`npm install` of converse.js 14 fails with Debian's npm 9.2.0 (the package links a
# workspace folder, src/log, that the release tarball does not carry); the browser build needs none
# of converse.js's dependencies, so the tarball alone is installed.
set -euo pipefail
[ $# -eq 1 ] || { echo "usage: scripts/get-converse.sh DEST" >&2; exit 2; }
dest=$1
pin=$(cd "$(dirname "$0")/.." && pwd)/tests/web/converse.sha512
tarball=$(awk 'NF == 2 { print $2; exit }' "$pin")           # converse.js-14.0.0.tgz
version=${tarball#converse.js-}; version=${version%.tgz}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "converse.js@$version" >/dev/null)
[ -f "$work/$tarball" ] || { echo "get-converse: npm pack did not write $tarball" >&2; exit 1; }
if ! (cd "$work" && sha512sum --quiet -c "$pin"); then
	echo "get-converse: $tarball does not match the pinned sha512 ($pin); nothing installed" >&2
	exit 1
fi
tar -xzf "$work/$tarball" -C "$work" package/dist package/package.json package/LICENSE
rm -rf "$dest.new" && mkdir -p "$dest.new"
mv "$work/package/dist" "$work/package/package.json" "$work/package/LICENSE" "$dest.new/"
rm -rf "$dest" && mv "$dest.new" "$dest"
echo "get-converse: converse.js $version (sha512 checked) in $dest"
