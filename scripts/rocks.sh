#!/usr/bin/env bash
# Release artifacts for luarocks and `prosodyctl install`, written to dist/ (or $DIST_DIR):
#   prosody-auth-hmac-<v>.tar.gz                           the source: every file git tracks
#   prosody-auth-hmac-<v>-1.src.rock                       source rock (building it needs cargo)
#   lua5.4/prosody-auth-hmac-<v>-1.linux-<arch>.rock       binary rock for Lua 5.4 (Debian's Prosody)
#   luajit/prosody-auth-hmac-<v>-1.linux-<arch>.rock       binary rock for LuaJIT 2.x
# ROCK_TARGETS (default "5.4 luajit") names the binary rocks: 5.1 .. 5.4, luajit. A binary rock
# needs no compiler to install.
#
# luarocks names a binary rock by platform only, and installs any of them into any tree, so a rock
# for PUC Lua 5.1 and one for LuaJIT would be the same file name, both installed by
# `luarocks --lua-version 5.1`. The directory tells them apart on disk; what stops a wrong install
# is the rockspec packed inside each binary rock, which requires the interpreter it was built for:
# `lua ~> 5.4` (luarocks provides `lua` as the version it targets), and for LuaJIT `lua ~> 5.1`
# with `luajit >= 2.0` (luarocks provides `luajit` only when its 5.1 interpreter is LuaJIT). The
# committed rockspec, and the source rock, keep `lua >= 5.1, < 5.5`: they build for any of them.
set -euo pipefail
cd "$(dirname "$0")/.."
here=$PWD
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
targets=${ROCK_TARGETS:-5.4 luajit}
spec=$(ls prosody-auth-hmac-*-*.rockspec)
name_version=${spec%.rockspec}           # prosody-auth-hmac-0.2.0-1
rock_version=${name_version#prosody-auth-hmac-}
version=${rock_version%-*}               # 0.2.0
tarball=prosody-auth-hmac-$version.tar.gz
dist=${DIST_DIR:-$here/dist}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# luarocks for LuaJIT: the 5.1 luarocks with LuaJIT as its interpreter (Debian's runs lua5.1)
printf 'lua_interpreter = "luajit"\n' > "$work/luajit-config.lua"

# rocks_for TARGET CMD...: CMD with the luarocks arguments and environment for TARGET
rocks_for() {
	local target=$1; shift
	case "$target" in
		luajit) LUAROCKS_CONFIG="$work/luajit-config.lua" "$@" --lua-version 5.1 ;;
		5.[1-4]) "$@" --lua-version "$target" ;;
		*) echo "rocks: unknown target '$target' (5.1 .. 5.4, luajit)" >&2; exit 2 ;;
	esac
}
requires() { # the binary rock's dependencies for TARGET
	case "$1" in
		luajit) echo '"lua ~> 5.1", "luajit >= 2.0"' ;;
		*) echo "\"lua ~> $1\"" ;;
	esac
}
dirname_for() { case "$1" in luajit) echo luajit ;; *) echo "lua$1" ;; esac; }
feature_for() { case "$1" in luajit) echo luajit ;; *) echo "lua${1/./}" ;; esac; }

mkdir -p "$dist"
rm -f "$dist/$tarball" "$dist/$name_version.src.rock"
git ls-files -z | tar --null --transform "s|^|prosody-auth-hmac-$version/|" -czf "$dist/$tarball" -T -

# Source rock. luarocks pack fetches source.url, which must be absolute for that; the rock then
# carries the tarball, and the rockspec shipped inside it is the committed one (whose url is the
# tarball's bare name, which is all luarocks looks for when it builds a source rock).
sed "s|^\turl = \"$tarball\",|\turl = \"file://$dist/$tarball\",|" "$spec" > "$work/$spec"
grep -q "file://$dist/$tarball" "$work/$spec" || { echo "rocks: source.url in $spec is not \"$tarball\"" >&2; exit 1; }
first=${targets%% *}
(cd "$dist" && rocks_for "$first" luarocks pack "$work/$spec" >/dev/null)
cp "$spec" "$work/$spec" && (cd "$work" && zip -q "$dist/$name_version.src.rock" "$spec")
ls "$dist/$tarball" "$dist/$name_version.src.rock" | sed 's|^|rocks: |'

# Binary rocks: install into a scratch tree from a rockspec that requires the target's interpreter
# (the build picks the mlua feature from the interpreter luarocks runs), then pack what was installed.
for target in $targets; do
	out="$dist/$(dirname_for "$target")"
	mkdir -p "$out" "$work/$target"
	rm -f "$out/$name_version".*.rock
	sed "s|^\t\"lua >= 5.1, < 5.5\",$|\t$(requires "$target"),|" "$spec" > "$work/$target/$spec"
	grep -qF "$(requires "$target")" "$work/$target/$spec" || { echo "rocks: no \"lua >= 5.1, < 5.5\" dependency line in $spec" >&2; exit 1; }
	rocks_for "$target" luarocks make --tree "$work/$target/tree" "$work/$target/$spec" >"$work/$target/log" 2>&1 \
		|| { cat "$work/$target/log" >&2; exit 1; }
	# the Makefile picks the mlua feature from the interpreter luarocks ran: a 5.1 luarocks that ran
	# lua5.1 instead of LuaJIT would build a rock for the wrong interpreter
	grep -q -- "--features $(feature_for "$target")\b" "$work/$target/log" \
		|| { cat "$work/$target/log" >&2; echo "rocks: the $target build did not use --features $(feature_for "$target")" >&2; exit 1; }
	(cd "$out" && rocks_for "$target" luarocks pack prosody-auth-hmac "$rock_version" --tree "$work/$target/tree" >/dev/null)
	ls "$out/$name_version".*.rock | sed "s|^|rocks: |;s|\$| ($target)|"
done
