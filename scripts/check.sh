#!/usr/bin/env bash
# make check: the fast tier (about a minute once built): the Rust tests, the busted specs on Lua 5.4,
# clippy with the Lua binding compiled (lua54 and luajit), rustfmt, luacheck, token-reconnect's rules
# in Node and pyflakes. `make test` runs it first. Prints one line per step and a tally:
# "check: N passed, M failed".
set -uo pipefail
cd "$(dirname "$0")/.."
export REPO_ROOT="$PWD"
log=$(mktemp)
passed=0 failed=0 status=0
started=$(date +%s)

step() { # name command...
	local name=$1; shift
	local t0; t0=$(date +%s)
	if "$@" >"$log" 2>&1; then
		echo "== check $name: ok ($(( $(date +%s) - t0 )) s)"
		return 0
	fi
	cat "$log"
	echo "== check $name: FAILED"
	status=1
	return 1
}

# counted by their own tallies: every test and spec is one
if step "cargo test" cargo test --locked; then :; fi
p=$(grep -o '[0-9]* passed' "$log" | awk '{s+=$1} END {print s+0}'); f=$(grep -o '[0-9]* failed' "$log" | awk '{s+=$1} END {print s+0}')
[ "$p" -gt 0 ] || { echo "== check cargo test: no test ran"; status=1; f=$((f + 1)); }
passed=$((passed + p)) failed=$((failed + f))

# the benchmarks' load generator: its SCRAM client (RFC 5802/7677 examples) and reply parsing
if step "cargo test (loadgen)" cargo test --locked --manifest-path tools/loadgen/Cargo.toml; then :; fi
p=$(grep -o '[0-9]* passed' "$log" | awk '{s+=$1} END {print s+0}'); f=$(grep -o '[0-9]* failed' "$log" | awk '{s+=$1} END {print s+0}')
[ "$p" -gt 0 ] || { echo "== check cargo test (loadgen): no test ran"; status=1; f=$((f + 1)); }
passed=$((passed + p)) failed=$((failed + f))

if step "busted lua5.4" busted --lua=lua5.4 -o utfTerminal spec; then :; fi
line=$(grep -E '[0-9]+ success' "$log" | tail -1)
p=$(grep -oE '[0-9]+ success' <<<"$line" | grep -oE '[0-9]+' || echo 0)
f=$(( $(grep -oE '[0-9]+ failure' <<<"$line" | grep -oE '[0-9]+' || echo 0) + $(grep -oE '[0-9]+ error' <<<"$line" | grep -oE '[0-9]+' || echo 0) ))
[ "$p" -gt 0 ] || { echo "== check busted: no spec ran"; status=1; f=$((f + 1)); }
passed=$((passed + p)) failed=$((failed + f))

# each lint counts as one
lint() {
	if step "$@"; then passed=$((passed + 1)); else failed=$((failed + 1)); fi
}
# the binding only compiles with a Lua feature: clippy sees it under the one Prosody uses and LuaJIT's
# (one target directory: the dependencies other than mlua are checked once for both)
lint "clippy (lua54)" env CARGO_TARGET_DIR=target/clippy cargo clippy --locked --all-targets --features lua54 -- -D warnings
lint "clippy (luajit)" env CARGO_TARGET_DIR=target/clippy cargo clippy --locked --all-targets \
	--no-default-features --features luajit -- -D warnings
lint "rustfmt" cargo fmt --check
lint "rustfmt (fuzz)" cargo fmt --check --manifest-path fuzz/Cargo.toml
lint "rustfmt (loadgen)" cargo fmt --check --manifest-path tools/loadgen/Cargo.toml
lint "luacheck" luacheck --no-color lua spec tests/integration/plugins benches/lua
# token-reconnect's rules (clients/converse/reconnect-rules.js) in Node, with time as an input: milliseconds
lint "node --test clients/converse" node --test clients/converse/test/
# shared test helpers live in modules (harness, logins, rawxmpp, ...), never in another test file
lint "no test file imports another" bash -c "! grep -rnE --include='*.py' '^\s*(from|import) test_' tests clients"
lint "every package's LICENSE is the project's" bash -c 'for d in clients/python clients/node clients/php clients/converse; do cmp -s LICENSE $d/LICENSE || { echo "$d/LICENSE is not LICENSE"; exit 1; }; done'
lint "pyflakes" pyflakes3 tests/integration tests/interop tests/vectors examples/webapp clients/slixmpp clients/python scripts/demo.py benches

rm -f "$log"
echo "check: $passed passed, $failed failed ($(( $(date +%s) - started )) s)"
exit $status
