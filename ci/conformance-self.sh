#!/usr/bin/env bash
# Starts this broker on a free loopback port and runs the whole conformance
# suite against it. Cases listed in conformance/known-failures.txt (each with
# its reason: a bug to fix) are reported but do not fail the run.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build -q -p broker -p conformance
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
dir=$(mktemp -d)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; rm -rf "$dir"' EXIT

# start_broker NAME EXTRA_TOML: starts target/debug/broker on a free port; sets $port.
start_broker() {
  port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  printf '[listeners.tcp]\nbind = "127.0.0.1:%s"\n%b' "$port" "$2" > "$dir/$1.toml"
  RUST_LOG=warn target/debug/broker --config "$dir/$1.toml" &
  pids+=($!)
  for _ in $(seq 50); do
    python3 -c "import socket; socket.create_connection(('127.0.0.1', $port), 1)" 2>/dev/null && break
    sleep 0.1
  done
}

echo "--- defaults: every feature available"
start_broker defaults ""
target/debug/conformance --port "$port" --known-failures conformance/known-failures.txt \
  --json target/conformance-self.json

# The MQTT 5 suite against a broker that announces features as unavailable in
# CONNACK, so that the cases for refusing them run (and the cases needing
# them skip). MQTT 3.1.1 has no way to announce this, so it is not rerun.
echo "--- restricted: maximum QoS 1, no retain, wildcard, shared or subscription identifiers"
start_broker restricted '[mqtt]\nmaximum_qos = 1\nretain_available = false\nwildcard_subscription_available = false\nshared_subscription_available = false\nsubscription_identifiers_available = false\n'
target/debug/conformance --port "$port" --protocol 5 --known-failures conformance/known-failures.txt \
  --json target/conformance-self-restricted.json
