#!/usr/bin/env bash
# Fuzzes every target in fuzz/ (cargo-fuzz, libFuzzer) for a bounded time,
# starting from the committed seeds in fuzz/corpus/<target>/:
#
#   ci/fuzz.sh [SECONDS]     # per target; default 60
#
# Prints each target's executions and executions per second; exits non-zero
# on the first finding (libFuzzer writes it to fuzz/artifacts/<target>/ and
# prints the command that replays it). New corpus entries stay in
# fuzz/corpus/<target>/ but are not committed (fuzz/.gitignore): add one as
# seed-<name> when it is worth keeping; broker/tests/fuzz_corpus.rs then
# replays it in every `cargo test`.
#
# cargo-fuzz needs nightly compiler flags: with a nightly toolchain it is
# used; with stable only, RUSTC_BOOTSTRAP=1 lets stable accept them.
# FUZZ_SANITIZER picks the sanitizer (default none: the broker has no unsafe
# code, so panics, overflow checks and the targets' own assertions are what
# is hunted, at about twice the speed of address).
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
seconds="${1:-60}"
sanitizer="${FUZZ_SANITIZER:-none}"

toolchain=()
if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
  toolchain=(+nightly)
else
  export RUSTC_BOOTSTRAP=1
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "==> installing cargo-fuzz"
  cargo install cargo-fuzz --locked
fi

log=$(mktemp)
trap 'rm -f "$log"' EXIT
for target in $(cargo "${toolchain[@]}" fuzz list); do
  echo "==> fuzzing $target for ${seconds}s (sanitizer: $sanitizer)"
  mkdir -p "corpus/$target"
  status=0
  cargo "${toolchain[@]}" fuzz run --sanitizer "$sanitizer" "$target" "corpus/$target" -- \
    -max_total_time="$seconds" -max_len=65536 -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    >"$log" 2>&1 || status=$?
  if [ "$status" -ne 0 ]; then
    tail -n 60 "$log"
    echo "==> $target: finding or failure (exit $status; findings go to fuzz/artifacts/$target/)"
    exit 1
  fi
  grep -E '^(#[0-9]+[[:space:]]+(INITED|DONE)|Done [0-9]+ runs|stat::(number_of_executed_units|average_exec_per_sec|peak_rss_mb))' "$log" || true
done
echo "==> no findings"
