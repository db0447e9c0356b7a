#!/usr/bin/env bash
# The project's test command: formatting, lints and every test.
# Installs what the tests need first, so a fresh machine passes.
set -euo pipefail
cd "$(dirname "$0")/.."

# Full debuginfo and incremental state are most of a clean build's target/
# (12 GB with them); CI needs line numbers in backtraces, nothing more.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
export CARGO_PROFILE_DEV_DEBUG="${CARGO_PROFILE_DEV_DEBUG:-line-tables-only}"

need_apt=()
command -v mosquitto_pub >/dev/null 2>&1 || need_apt+=(mosquitto-clients)
# The browser test (broker/tests/browser.rs) drives Debian's Chromium with playwright-core.
[ -x /usr/bin/chromium ] || need_apt+=(chromium)
command -v node >/dev/null 2>&1 || need_apt+=(nodejs npm)
# The cluster's network-namespace partition test (broker/tests/cluster_netns.rs) needs ip(8).
command -v ip >/dev/null 2>&1 || need_apt+=(iproute2)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "==> installing ${need_apt[*]}"
  if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}"
fi

if ! python3 -c 'import paho.mqtt.client' >/dev/null 2>&1; then
  echo "==> installing paho-mqtt (Python)"
  python3 -m pip install -q paho-mqtt
fi
if [ ! -d broker/tests/interop/node_modules/mqtt ] || [ ! -d broker/tests/interop/node_modules/playwright-core ]; then
  echo "==> installing MQTT.js and playwright-core (npm ci)"
  (cd broker/tests/interop && npm ci --no-audit --no-fund --silent)
fi

echo "==> cargo fmt --check"
cargo fmt --all -- --check

echo "==> cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings

log=$(mktemp)
trap 'rm -f "$log"' EXIT
echo "==> cargo test"
cargo test --workspace --all-targets 2>&1 | tee "$log"

echo "==> loom models (broker/sync)"
# Its own target directory: --cfg loom must reach only broker-sync and loom.
RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom cargo test -p broker-sync --release --test loom 2>&1 | tee -a "$log"

echo "==> conformance suite against this broker"
ci/conformance-self.sh | tee -a "$log"

# The summary line for CI readers: totals over every test binary and the suite.
awk '/^test result:/ { p += $4; f += $6; i += $8 }
     /^[0-9]+ passed, [0-9]+ failed, [0-9]+ skipped$/ { p += $1; f += $3; i += $5 }
     END { printf "%d passed, %d failed, %d skipped\n", p, f, i }' "$log"
