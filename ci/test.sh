#!/usr/bin/env bash
# The project's test command: formatting, lints and every test.
# Installs what the tests need first, so a fresh machine passes.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v mosquitto_pub >/dev/null 2>&1 || need_apt+=(mosquitto-clients)
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
if [ ! -d broker/tests/interop/node_modules/mqtt ]; then
  echo "==> installing MQTT.js (npm ci)"
  (cd broker/tests/interop && npm ci --no-audit --no-fund --silent)
fi

echo "==> cargo fmt --check"
cargo fmt --all -- --check

echo "==> cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings

echo "==> cargo test"
cargo test --workspace --all-targets 2>&1 | tee /tmp/broker-test-$$.log
# The summary line for CI readers: totals over every test binary.
awk '/^test result:/ { p += $4; f += $6; i += $8 } END { printf "%d passed, %d failed, %d skipped\n", p, f, i }' /tmp/broker-test-$$.log
rm -f /tmp/broker-test-$$.log
