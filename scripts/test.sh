#!/usr/bin/env bash
# The whole suite: the fast tier (scripts/check.sh: Rust tests, busted on 5.4, clippy, rustfmt,
# luacheck), busted specs on Lua 5.1-5.4 and LuaJIT, the minting libraries, the live-Prosody
# integration tests (slixmpp, raw clients, converse.js in Chromium) against each Prosody, and a short
# run of every fuzz target. Called by `make test` after the build; prints one tally at the end.
#
# Three lanes run side by side, each into its own log, printed whole when it ends: the offline lane
# (compiling and CPU-bound: check, busted, minting, fuzz) and one lane per Prosody version, each a
# pytest run spread over TEST_WORKERS processes (pytest-xdist, a test module per process at a time:
# a module's fixtures, its Prosody among them, stay in one process). The live tests spend most of
# their time waiting on servers and browsers, so the lanes share two cores without slowing each
# other much; every test picks its own ports and scratch directories, and the builds two tests
# could run at once in the checkout (make deb) take a lock.
set -uo pipefail
cd "$(dirname "$0")/.."
export REPO_ROOT="$PWD"
logs=$(mktemp -d)
mkdir -p test-artifacts
rm -f test-artifacts/junit-*.xml # a report left by an earlier run is never counted
workers=${TEST_WORKERS:-3}
started=$(date +%s)

tally() { # name passed failed rc: one line in the tallies file (lanes are subshells)
	echo "== $1: $2 passed, $3 failed (exit $4)"
	printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" >>"$logs/tallies"
}

offline_lane() {
	# the fast tier first (make check): Rust tests, busted on 5.4, clippy, rustfmt, luacheck
	echo "== make check (scripts/check.sh)"
	bash scripts/check.sh 2>&1 | tee "$logs/check"; rc=${PIPESTATUS[0]}
	p=$(grep -oE '^check: [0-9]+ passed' "$logs/check" | grep -oE '[0-9]+'); p=${p:-0}
	f=$(grep -oE '^check: [0-9]+ passed, [0-9]+ failed' "$logs/check" | grep -oE '[0-9]+ failed' | grep -oE '[0-9]+'); f=${f:-1}
	tally "check" "$p" "$f" "$rc"

	# The busted specs on every interpreter Prosody supports, each against the library luarocks builds
	# from the rockspec for that interpreter (which picks the mlua feature: lua51..lua54, luajit).
	# Lua 5.4 is what Debian builds Prosody (and its C util.*) for: every spec runs there. On the other
	# interpreters the specs that need Prosody's compiled util.* (tag #prosody) are left out.
	# Lua 5.4's is the release build Prosody loads (target/lua54, shared with make build). The others
	# are only for the specs: they share one target directory (the dependencies are compiled once) and
	# skip link-time optimisation, which costs minutes and changes no behaviour a spec can see.
	for lua in lua5.4 lua5.1 lua5.2 lua5.3 luajit; do
		if [ "$lua" = luajit ]; then luav=5.1 feature=luajit; else luav=${lua#lua} feature=lua${luav/./}; fi
		tree="$logs/rock-$lua"
		spec_build=()
		[ "$lua" = lua5.4 ] || spec_build=(ROCK_TARGET_DIR=target/specs CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16)
		echo "== luarocks --lua-version $luav make ($lua, expecting --features $feature)"
		env "${spec_build[@]}" luarocks --lua-version "$luav" make --tree "$tree" prosody-auth-hmac-*.rockspec LUA="/usr/bin/$lua" >"$logs/rock" 2>&1; rc=$?
		if [ $rc -ne 0 ] || ! grep -q -- "--features $feature\b" "$logs/rock" || [ ! -f "$tree/lib/lua/$luav/prosody_auth_hmac.so" ]; then
			cat "$logs/rock"; tally "luarocks make $lua" 0 1 1; continue
		fi
		tags=(); [ "$lua" = lua5.4 ] || tags=(--exclude-tags=prosody)
		echo "== busted ($lua ${tags[*]}, library from the rock)"
		AUTH_HMAC_LIBRARY="$tree/lib/lua/$luav/prosody_auth_hmac.so" busted --lua="$lua" "${tags[@]}" -o utfTerminal spec 2>&1 \
			| tee "$logs/busted"; rc=${PIPESTATUS[0]}
		line=$(grep -E '[0-9]+ success' "$logs/busted" | tail -1)
		p=$(grep -oE '[0-9]+ success' <<<"$line" | grep -oE '[0-9]+' || echo 0)
		f=$(( $(grep -oE '[0-9]+ failure' <<<"$line" | grep -oE '[0-9]+' || echo 0) + $(grep -oE '[0-9]+ error' <<<"$line" | grep -oE '[0-9]+' || echo 0) ))
		tally "busted $lua" "$p" "$f" "$rc"
	done

	# the minting libraries, each with its own ecosystem's runner, against tests/vectors/
	echo "== minting libraries (clients/python, clients/node, clients/php)"
	/usr/bin/python3 -m pytest -q -p no:cacheprovider --junitxml=test-artifacts/junit-mint-python.xml clients/python/tests 2>&1 \
		| tee "$logs/mint-py"; rc=${PIPESTATUS[0]}
	read -r p f < <(/usr/bin/python3 scripts/junit_counts.py test-artifacts/junit-mint-python.xml)
	tally "python minting library" "$p" "$f" "$rc"
	node --test clients/node/test/ 2>&1 | tee "$logs/mint-node"; rc=${PIPESTATUS[0]}
	p=$(grep -oE '^# pass [0-9]+' "$logs/mint-node" | grep -oE '[0-9]+'); p=${p:-0}
	f=$(grep -oE '^# fail [0-9]+' "$logs/mint-node" | grep -oE '[0-9]+'); f=${f:-1}
	tally "node minting library" "$p" "$f" "$rc"
	phpunit -c clients/php/phpunit.xml.dist 2>&1 | tee "$logs/mint-php"; rc=${PIPESTATUS[0]}
	# PHPUnit closes with "OK (N tests, M assertions)" or "Tests: N, Assertions: M, Failures: F, ..."
	line=$(grep -E '^(OK \(|Tests: )' "$logs/mint-php" | tail -1)
	count() { grep -oE "$1[0-9]+" <<<"$line" | grep -oE '[0-9]+' || echo 0; }
	n=$(grep -oE '^OK \([0-9]+|^Tests: [0-9]+' <<<"$line" | grep -oE '[0-9]+' || echo 0)
	f=$(( $(count 'Failures: ') + $(count 'Errors: ') )); [ -n "$line" ] || f=1
	p=$(( n - f - $(count 'Skipped: ') - $(count 'Incomplete: ') ))
	tally "php minting library" "$p" "$f" "$rc"


	# short runs from the committed seed corpus (fuzz/seeds/); the long runs are make fuzz's
	echo "== fuzz (${TEST_FUZZ_SECONDS:-15} s per target)"
	bash scripts/fuzz.sh "${TEST_FUZZ_SECONDS:-15}" 2>&1 | tee "$logs/fuzz"; rc=${PIPESTATUS[0]}
	p=$(grep -cE '^fuzz [a-z_]+: ok$' "$logs/fuzz"); f=$(grep -cE '^fuzz [a-z_]+: CRASH' "$logs/fuzz")
	tally "fuzz" "$p" "$f" "$rc"
}

# Each live pass leaves a JUnit XML report in test-artifacts/ and prints its 25 slowest tests; the
# tally is read from the report.
live_suite() { # name report-name [PROSODY_BIN [pytest arguments...]]
	local name="$1" report="test-artifacts/junit-live-$2.xml" out="$logs/pytest-$2" prosody="${3:-/usr/bin/prosody}"
	shift $(($# < 3 ? $# : 3))
	echo "== pytest (live $name, $workers processes)"
	PROSODY_BIN="$prosody" /usr/bin/python3 -m pytest -q -p no:cacheprovider -n "$workers" --dist loadfile \
		--durations=25 --junitxml="$report" "$@" tests/integration 2>&1 \
		| grep --line-buffered -v -E '^(Task was destroyed|task: <Task)' | tee "$out"; rc=${PIPESTATUS[0]}
	read -r p f < <(/usr/bin/python3 scripts/junit_counts.py "$report")
	tally "pytest ($name)" "$p" "$f" "$rc"
}

declare -A lanes=()
lane() { # name function arguments...: runs in the background into $logs/lane-<name>
	local name=$1; shift
	"$@" >"$logs/lane-$name" 2>&1 &
	lanes[$!]=$name
	echo "== lane $name started (pid $!)"
}

lane offline offline_lane
# every Prosody scripts/setup.sh provided: Debian's own, and on bookworm 13 from its backports. The
# modules marked version_independent (tests/integration/pytest.ini: no Prosody, or nothing its
# version could change) run in the first pass only.
# With a second Prosody, the modules marked second_lane (version-independent ones) run in its pass
# instead, so that the passes end about together: the run takes as long as the longest lane.
first_pass=()
[ -x .prosody13/root/usr/bin/prosody ] && first_pass=(-m "not second_lane")
lane "prosody-$(cat /usr/lib/prosody/prosody.version)" live_suite \
	"Prosody $(cat /usr/lib/prosody/prosody.version), Debian's package" "prosody-$(cat /usr/lib/prosody/prosody.version)" \
	/usr/bin/prosody "${first_pass[@]}"
if [ -x .prosody13/root/usr/bin/prosody ]; then
	lane prosody13 live_suite "Prosody 13 from bookworm-backports, .prosody13/" "prosody13-backports" \
		"$PWD/.prosody13/root/usr/bin/prosody" -m "not version_independent or second_lane"
fi

# each lane's log as it ends (a lane that dies without a tally still fails the run: its exit status)
status=0
while [ ${#lanes[@]} -gt 0 ]; do
	wait -n -p done_pid; rc=$?
	[ -n "${done_pid:-}" ] || break
	name=${lanes[$done_pid]}; unset "lanes[$done_pid]"
	echo
	echo "======== lane $name ($(( $(date +%s) - started )) s in, exit $rc) ========"
	cat "$logs/lane-$name"
	[ "$rc" -eq 0 ] || status=1
done

echo
total_pass=0 total_fail=0
while IFS=$'\t' read -r name p f rc; do
	echo "== $name: $p passed, $f failed (exit $rc)"
	total_pass=$((total_pass + p)); total_fail=$((total_fail + f))
	if [ "$rc" -ne 0 ] || [ "$f" -ne 0 ] || [ "$p" -eq 0 ]; then status=1; fi
done <"$logs/tallies"
[ -s "$logs/tallies" ] || status=1
rm -rf "$logs"
echo
echo "total: $total_pass passed, $total_fail failed ($(( $(date +%s) - started )) s)"
exit $status
