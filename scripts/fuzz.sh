#!/usr/bin/env bash
# Runs every cargo-fuzz target for a fixed time each: scripts/fuzz.sh [SECONDS_PER_TARGET]
# (CI: 60 s each, from make test; a long run for docs/security.md: scripts/fuzz.sh 1800).
# The machine's Rust is stable; RUSTC_BOOTSTRAP=1 lets cargo-fuzz use the sanitizer flags it needs.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
budget=${1:-60}
export RUSTC_BOOTSTRAP=1 PATH="$HOME/.cargo/bin:$PATH"
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked --version 0.13.2
# AddressSanitizer needs the compiler's ASan runtime: rustup's toolchains ship it, Debian's rustc
# (rustc-web) does not (the link fails on librustc-stable_rt.asan.a). Without it the targets run
# with coverage and no sanitizer; the code under test forbids unsafe, so what they find are panics.
sanitizer=()
if ! compgen -G "$(rustc --print sysroot)/lib/rustlib/*/lib/librustc-*_rt.asan.a" >/dev/null; then
	echo "fuzz: this rustc has no AddressSanitizer runtime: fuzzing without a sanitizer (-s none)"
	sanitizer=(-s none)
fi
cargo fuzz build -O "${sanitizer[@]}"
status=0
for target in $(cargo fuzz list); do
	mkdir -p "corpus/$target" "artifacts/$target"
	echo "== fuzz $target for ${budget}s"
	if cargo fuzz run -O "${sanitizer[@]}" "$target" "corpus/$target" -- -max_total_time="$budget" -print_final_stats=1 \
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
