#!/usr/bin/env bash
# Memory per idle connection: starts a release broker, opens N MQTT 3.1.1
# connections (CONNECT, CONNACK, then idle), and reports the broker's RSS
# growth divided by N. Usage: ci/idle-connections.sh [N] [--json FILE]
set -euo pipefail
cd "$(dirname "$0")/.."
count="${1:-10000}"
json="${3:-}"
port=$((20000 + RANDOM % 20000))
cargo build --release -q -p broker
cfg=$(mktemp)
printf '[listeners.tcp]\nbind = "127.0.0.1:%s"\n' "$port" > "$cfg"
RUST_LOG=warn ./target/release/broker --config "$cfg" &
broker_pid=$!
trap 'kill $broker_pid 2>/dev/null; rm -f "$cfg"' EXIT
python3 - "$broker_pid" "$port" "$count" "$json" <<'PY'
import json, socket, sys, time

pid, port, count, out = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]

def rss_kib():
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])

def connect_packet(i):
    cid = f"idle-{i}".encode()
    var = b"\x00\x04MQTT\x04\x02\x00\x3c"  # 3.1.1, clean session, keep alive 60 s
    body = var + len(cid).to_bytes(2, "big") + cid
    return bytes([0x10, len(body)]) + body

for _ in range(50):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        break
    except OSError:
        time.sleep(0.1)
time.sleep(0.5)
before = rss_kib()
socks = []
for i in range(count):
    # Spread over source addresses so ephemeral ports never run out.
    s = socket.socket()
    s.bind((f"127.0.{1 + i // 20000}.{1 + (i // 250) % 250}", 0))
    s.connect(("127.0.0.1", port))
    s.sendall(connect_packet(i))
    socks.append(s)
for s in socks:
    ack = b""
    while len(ack) < 4:
        chunk = s.recv(4 - len(ack))
        if not chunk:
            raise SystemExit("connection closed before CONNACK")
        ack += chunk
    assert ack == b"\x20\x02\x00\x00", ack
time.sleep(1)
after = rss_kib()
per = (after - before) * 1024 / count
result = {"connections": count, "rss_before_kib": before, "rss_after_kib": after, "bytes_per_connection": round(per)}
print(f"{count} idle connections: RSS {before} KiB -> {after} KiB, {per:.0f} bytes per connection")
if out:
    with open(out, "w") as f:
        json.dump(result, f, indent=2)
PY
