#!/usr/bin/env bash
# Release artifacts for luarocks and `prosodyctl install`, written to dist/ (or $DIST_DIR):
#   prosody-auth-hmac-<v>.tar.gz                          the source: every file git tracks
#   prosody-auth-hmac-<v>-1.src.rock                      source rock (building it needs cargo)
#   lua<L>/prosody-auth-hmac-<v>-1.linux-<arch>.rock      binary rock for Lua <L> (LUA_VERSION, default
#                                                         5.4 = Debian's Prosody); needs no compiler
set -euo pipefail
cd "$(dirname "$0")/.."
here=$PWD
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
lua_version=${LUA_VERSION:-5.4}
spec=$(ls prosody-auth-hmac-*-*.rockspec)
name_version=${spec%.rockspec}           # prosody-auth-hmac-0.2.0-1
rock_version=${name_version#prosody-auth-hmac-}
version=${rock_version%-*}               # 0.2.0
tarball=prosody-auth-hmac-$version.tar.gz
dist=${DIST_DIR:-$here/dist}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$dist/lua$lua_version"
rm -f "$dist/$tarball" "$dist/$name_version.src.rock" "$dist/lua$lua_version/$name_version".*.rock

git ls-files -z | tar --null --transform "s|^|prosody-auth-hmac-$version/|" -czf "$dist/$tarball" -T -

# Source rock. luarocks pack fetches source.url, which must be absolute for that; the rock then
# carries the tarball, and the rockspec shipped inside it is the committed one (whose url is the
# tarball's bare name, which is all luarocks looks for when it builds a source rock).
sed "s|^\turl = \"$tarball\",|\turl = \"file://$dist/$tarball\",|" "$spec" > "$work/$spec"
grep -q "file://$dist/$tarball" "$work/$spec" || { echo "rocks: source.url in $spec is not \"$tarball\"" >&2; exit 1; }
(cd "$dist" && luarocks --lua-version "$lua_version" pack "$work/$spec" >/dev/null)
cp "$spec" "$work/$spec" && (cd "$work" && zip -q "$dist/$name_version.src.rock" "$spec")

# Binary rock: install into a scratch tree, then pack what was installed.
luarocks --lua-version "$lua_version" make --tree "$work/tree" "$spec" >/dev/null
(cd "$dist/lua$lua_version" && luarocks --lua-version "$lua_version" pack prosody-auth-hmac "$rock_version" --tree "$work/tree" >/dev/null)

ls "$dist/$tarball" "$dist/$name_version.src.rock" "$dist/lua$lua_version/$name_version".*.rock | sed 's|^|rocks: |'
