#!/usr/bin/env bash
# make test, RUNS times in a row (3), with two CPU-bound processes beside it the whole time: a test
# whose timing margin needs a quiet machine fails here. The burners are stress-ng's (Debian's
# stress-ng) when it is installed, two shell busy loops otherwise; they are stopped by PID.
# Prints one line per run (its closing tally and time) and exits non-zero if any run failed.
#   scripts/test-under-load.sh [RUNS]      each run's output: test-artifacts/under-load-N.log
set -uo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}
mkdir -p test-artifacts
burners=()
stop_burners() {
	[ ${#burners[@]} -gt 0 ] && kill "${burners[@]}" 2>/dev/null
	wait "${burners[@]}" 2>/dev/null
	burners=()
}
trap stop_burners EXIT
if command -v stress-ng >/dev/null; then
	stress-ng --cpu 2 --quiet &
	burners+=($!)
	what="stress-ng --cpu 2"
else
	for _ in 1 2; do
		bash -c 'while :; do :; done' &
		burners+=($!)
	done
	what="two shell busy loops"
fi
echo "under load ($what, pids ${burners[*]}), $runs runs of make test, from $(git rev-parse --short HEAD)"
status=0
for n in $(seq 1 "$runs"); do
	t0=$(date +%s)
	make test >"test-artifacts/under-load-$n.log" 2>&1; rc=$?
	kill -0 "${burners[@]}" 2>/dev/null || { echo "a burner stopped during run $n: the load was not there" >&2; status=1; }
	echo "run $n: exit $rc in $(( $(date +%s) - t0 )) s: $(grep -E '^total: ' "test-artifacts/under-load-$n.log" | tail -1)"
	[ "$rc" -eq 0 ] || status=1
done
exit $status
