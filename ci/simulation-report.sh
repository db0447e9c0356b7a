#!/usr/bin/env bash
# The simulator's figures for reports/simulation.md: a sweep of every
# scenario (seeds and jobs from SEEDS and JOBS), each sweep's summary line
# (seeds run, passed, with known gaps, failed, simulated and wall time) and
# every failing seed with its replay command, into reports/simulation/sweeps.txt;
# then the wall time of `cargo test -p simulation` into reports/simulation/tests.txt.
set -euo pipefail
cd "$(dirname "$0")/.."

SEEDS=${SEEDS:-0..200}
JOBS=${JOBS:-2}
SCENARIOS=${SCENARIOS:-"single partition crash swarm takeover shared retained rolling late-join one-way latency churn"}
out=reports/simulation
mkdir -p "$out"

cargo build --release -p simulation --quiet
{
  echo "# simulation sweep, seeds $SEEDS, $JOBS jobs, $(nproc) CPUs, commit $(git rev-parse --short HEAD)$(git diff --quiet || echo ' (+ local changes)')"
  for s in $SCENARIOS; do
    echo "## $s"
    # A sweep exits non-zero when a seed fails; the failures are the figures.
    target/release/simulation sweep --scenario "$s" --seeds "$SEEDS" --jobs "$JOBS" || true
  done
} | tee "$out/sweeps.txt"

if [ "${TESTS:-1}" = 1 ]; then
  cargo test -p simulation --no-run --quiet
  start=$(date +%s)
  cargo test -p simulation --quiet 2>&1 | tail -n 30 > "$out/tests.log"
  echo "cargo test -p simulation: $(( $(date +%s) - start )) s wall on $(nproc) CPUs" | tee "$out/tests.txt"
fi
