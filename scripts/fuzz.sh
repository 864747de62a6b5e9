#!/usr/bin/env bash
# Runs every cargo-fuzz target for a fixed time each: scripts/fuzz.sh [SECONDS_PER_TARGET]
# (CI: 60 s each, from make test; a long run for docs/security.md: scripts/fuzz.sh 1800).
# The machine's Rust is stable; RUSTC_BOOTSTRAP=1 lets cargo-fuzz use the sanitizer flags it needs.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
budget=${1:-60}
export RUSTC_BOOTSTRAP=1 PATH="$HOME/.cargo/bin:$PATH"
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked --version 0.13.2
cargo fuzz build -O
status=0
for target in $(cargo fuzz list); do
	mkdir -p "corpus/$target" "artifacts/$target"
	echo "== fuzz $target for ${budget}s"
	if cargo fuzz run -O "$target" "corpus/$target" -- -max_total_time="$budget" -print_final_stats=1 \
		> "artifacts/$target/last-run.log" 2>&1; then
		grep -E "stat::number_of_executed_units|stat::new_units_added|cov: " "artifacts/$target/last-run.log" | tail -3
		echo "fuzz $target: ok"
	else
		tail -40 "artifacts/$target/last-run.log"
		echo "fuzz $target: CRASH (reproducer in fuzz/artifacts/$target/)"
		status=1
	fi
done
exit $status
