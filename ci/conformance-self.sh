#!/usr/bin/env bash
# Starts this broker on a free loopback port and runs the whole conformance
# suite against it. Cases listed in conformance/known-failures.txt (each with
# its reason: a bug to fix) are reported but do not fail the run.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build -q -p broker -p conformance
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
config=$(mktemp)
printf '[listeners.tcp]\nbind = "127.0.0.1:%s"\n' "$port" > "$config"
RUST_LOG=warn target/debug/broker --config "$config" &
broker_pid=$!
trap 'kill $broker_pid 2>/dev/null; rm -f "$config"' EXIT
for _ in $(seq 50); do
  python3 -c "import socket; socket.create_connection(('127.0.0.1', $port), 1)" 2>/dev/null && break
  sleep 0.1
done
target/debug/conformance --port "$port" --known-failures conformance/known-failures.txt \
  --json target/conformance-self.json
