#!/usr/bin/env bash
# Runs every cargo-fuzz target for a fixed time each, starting from the committed seed corpus:
#   scripts/fuzz.sh [SECONDS_PER_TARGET]   make test: 15 s each; make fuzz: FUZZ_SECONDS (600) each
#   scripts/fuzz.sh --update-seeds         merge what the runs found (fuzz/corpus/, not committed)
#                                          with fuzz/seeds/ into a new minimal fuzz/seeds/ (libFuzzer
#                                          -merge=1: the smallest set with the same coverage)
# fuzz/seeds/<target>/ is committed and small, so a short run starts where long runs left off
# instead of from nothing; new inputs a run finds go to fuzz/corpus/<target>/ only (libFuzzer writes
# to the first corpus directory it is given and only reads the others).
# The machine's Rust is stable; RUSTC_BOOTSTRAP=1 lets cargo-fuzz use the sanitizer flags it needs.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
mode=run budget=60
case "${1:-}" in
	--update-seeds) mode=merge ;;
	"") ;;
	*) budget=$1 ;;
esac
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
	mkdir -p "corpus/$target" "artifacts/$target" "seeds/$target"
	if [ "$mode" = merge ]; then
		new=$(mktemp -d "seeds/.$target.XXXXXX")
		cargo fuzz run -O "${sanitizer[@]}" "$target" "$new" "seeds/$target" "corpus/$target" -- -merge=1 \
			> "artifacts/$target/merge.log" 2>&1 || { tail -20 "artifacts/$target/merge.log"; rm -rf "$new"; exit 1; }
		rm -rf "seeds/$target" && mv "$new" "seeds/$target"
		echo "fuzz $target: $(find "seeds/$target" -type f | wc -l) seeds ($(du -s --apparent-size --block-size=1K "seeds/$target" | cut -f1) KiB)"
		continue
	fi
	echo "== fuzz $target for ${budget}s from $(find "seeds/$target" -type f | wc -l) seeds"
	if cargo fuzz run -O "${sanitizer[@]}" "$target" "corpus/$target" "seeds/$target" -- -max_total_time="$budget" -print_final_stats=1 \
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
