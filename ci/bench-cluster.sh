#!/usr/bin/env bash
# Cluster benchmarks -> reports/cluster.md (about 20 minutes on two cores):
#
# 1. Cross-node point-to-point at QoS 1 with clusters of 1, 2 and 3 nodes of
#    this broker and of RMQTT (its Raft cluster plugin): 500 publisher /
#    subscriber pairs, publisher i on node i mod n and subscriber i on node
#    (i+1) mod n, at a fixed 5,000 msg/s for 20 s, then a short maximum-
#    throughput search (the rate doubles from 10,000 msg/s until p99 latency
#    exceeds 10 ms, under 95% is published or delivered, or a connect fails;
#    then two bisections), each run on a fresh cluster.
# 2. From those runs: the CPU of all nodes per million messages, forwarded
#    (2 and 3 nodes) against local (1 node, and a 2-node run whose pairs share
#    a node).
# 3. Route convergence of this broker with 100,000 subscriptions: a node
#    holding them joins a 2-node cluster; a fresh node joins a cluster
#    holding them; 100,000 subscriptions made on a member reach another node.
#
# Every node listens on its own loopback address (127.61.0.k this broker,
# 127.62.0.k RMQTT, 127.63.0.k convergence), all nodes run on CPU 0 and
# loadgen on CPU 1 (taskset). Each measurement waits until no ci/bench.sh
# runs and the machine is quiet. The measurements are ci/bench_cluster.py;
# the report is written by ci/bench_cluster_report.py from the raw results:
#   reports/cluster/raw/meta.json          what ran and where
#   reports/cluster/raw/runs/*.json        one per point-to-point run (timings, /proc samples)
#   reports/cluster/raw/loadgen/*.json     loadgen's results
#   reports/cluster/raw/convergence/*.json one per convergence repetition (every admin API poll)
#   reports/cluster.md
# The outputs always describe one run: they are replaced, also by --only/--parts.
#
# Usage: ci/bench-cluster.sh [--quick] [--only broker|rmqtt[,...]] [--parts p2p,convergence]
#                            [--no-search] [--repeat N] [--skip-build]
#   --quick       5 s fixed-rate runs, 3 s search steps, one bisection, one
#                 convergence repetition (a trial, not a report to keep)
#   --repeat N    convergence repetitions (default 3)
# Environment:
#   BENCH_SEARCH_BUDGET  seconds all throughput searches may take (default 780); once spent,
#                        the remaining steps are skipped and the report says so
#   BENCH_QUIET_WAIT_MAX seconds a run waits for both cores to be under 20% busy (default 20)
#   BENCH_KEEP_WORK=1    keep the work folder (configurations, node logs, loadgen output)
set -uo pipefail
{
cd "$(dirname "$0")/.." || exit 1
root=$PWD
command_line="ci/bench-cluster.sh${*:+ $*}"
quick=0 only="broker,rmqtt" parts="p2p,convergence" search=1 repeat=3 build=1
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=1 ;;
    --only) only=$2; shift ;;
    --parts) parts=$2; shift ;;
    --no-search) search=0 ;;
    --repeat) repeat=$2; shift ;;
    --skip-build) build=0 ;;
    -h | --help) sed -n '2,/^set -uo/p' "$0" | sed '$d' | cut -c3-; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
  shift
done
[ $quick -eq 1 ] && [ "$repeat" = 3 ] && repeat=1

if [ "$(nproc)" -lt 2 ]; then
  echo "error: the nodes run on CPU 0 and loadgen on CPU 1; this machine has $(nproc) CPU" >&2
  exit 1
fi
ulimit -n "$(ulimit -Hn)" 2>/dev/null
nofile=$(ulimit -n)
if [ "$nofile" != unlimited ] && [ "$nofile" -lt 4096 ]; then
  echo "error: at most $nofile open files per process; 1,000 connections per node and loadgen need more" >&2
  exit 1
fi

# ci/bench.sh measures on this machine too: neither may run while the other does
# (the driver checks again before every run).
if pgrep -f 'ci/bench\.sh' >/dev/null; then
  echo "==> ci/bench.sh is running: waiting until it ends"
  while pgrep -f 'ci/bench\.sh' >/dev/null; do sleep 10; done
fi
started_at=$SECONDS
if [ $build -eq 1 ]; then
  echo "==> cargo build --release -p broker -p loadgen"
  cargo build --release -q -p broker -p loadgen || { echo "error: the build failed" >&2; exit 1; }
fi
bin=$root/target/release
rmqttd=$root/.peers/bin/rmqttd
if [[ ",$only," == *",rmqtt,"* ]] && [[ ",$parts," == *",p2p,"* ]] && [ ! -x "$rmqttd" ]; then
  echo "==> ci/install-peers.sh rmqttd"
  ci/install-peers.sh rmqttd
  if [ ! -x "$rmqttd" ]; then
    echo "warning: RMQTT is not built ($(sed -n 's/^note=//p' .peers/status/rmqttd.status 2>/dev/null)): this broker only" >&2
    only=broker
  fi
fi

work=$(mktemp -d /tmp/bench-cluster.XXXXXX)
driver=""
cleanup() {
  [ -n "$driver" ] && kill -TERM "$driver" 2>/dev/null && wait "$driver" 2>/dev/null
  if [ "${BENCH_KEEP_WORK:-0}" = 1 ]; then echo "work folder kept: $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
dirty=$(git status --porcelain -- broker loadgen Cargo.toml Cargo.lock 2>/dev/null | grep -v '^??' | awk '{print $2}' | tr '\n' ' ')
rmqtt_version=$(sed -n 's/^version=//p' .peers/status/rmqttd.status 2>/dev/null)
rmqtt_v=$("$rmqttd" -V 2>/dev/null | head -n1)
versions=$(python3 -c 'import json,sys; print(json.dumps({"broker": sys.argv[1], "rmqtt": sys.argv[2], "loadgen": sys.argv[3]}))' \
  "$("$bin/broker" --version 2>/dev/null | sed 's/^broker //') (commit $commit${dirty:+, modified})" \
  "${rmqtt_version:-?} ($(sed -n 's/^method=//p' .peers/status/rmqttd.status 2>/dev/null); rmqttd -V: $rmqtt_v)" \
  "$("$bin/loadgen" --version 2>/dev/null | sed 's/^loadgen //')")
loadavg_start=$(cut -d' ' -f1-3 /proc/loadavg)

args=(run --raw "$work/raw" --work "$work/runs" --bin "$bin" --rmqttd "$rmqttd" --versions "$versions"
      --only "$only" --parts "$parts" --repeat "$repeat" --search-budget "${BENCH_SEARCH_BUDGET:-780}")
[ $quick -eq 1 ] && args+=(--quick)
[ $search -eq 0 ] && args+=(--no-search)
python3 ci/bench_cluster.py "${args[@]}" &
driver=$!
wait "$driver"
rc=$?
driver=""
[ $rc -eq 0 ] || { echo "error: ci/bench_cluster.py failed (status $rc); reports/cluster.md is unchanged" >&2; exit 1; }

python3 - "$work/raw/meta.json" <<PY || exit 1
import json, os, platform, sys
mem = next((int(l.split()[1]) for l in open("/proc/meminfo") if l.startswith("MemTotal")), 0)
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "unknown")
osname = next((l.split("=", 1)[1].strip().strip('"') for l in open("/etc/os-release") if l.startswith("PRETTY_NAME=")), "?")
quick = $quick == 1
meta = {
    "command": "$command_line", "commit": "$commit", "dirty": "$dirty".strip(),
    "date": "$(date -u +%Y-%m-%dT%H:%M:%SZ)", "elapsed_s": $((SECONDS - started_at)),
    "loadavg_start": "$loadavg_start", "loadavg_end": open("/proc/loadavg").read().split()[:3],
    "machine": {"cpu": cpu, "cores": os.cpu_count(), "memory": f"{mem / 2**20:.0f} GiB",
                "kernel": platform.release(), "os": osname},
    "rustc": "$(rustc --version 2>/dev/null)", "nofile": "$nofile",
    "versions": json.loads('''$versions'''),
    "pairs": 500, "base_rate": 5000, "publish": "5s" if quick else "20s",
    "step_publish": "3s" if quick else "5s", "step_drain": "2s", "bisections": 1 if quick else 2,
    "search": $search == 1, "quick": quick,
}
meta["loadavg_end"] = " ".join(meta["loadavg_end"])
json.dump(meta, open(sys.argv[1], "w"), indent=1)
PY
rm -rf reports/cluster
mkdir -p reports/cluster
cp -r "$work/raw" reports/cluster/raw
python3 ci/bench_cluster_report.py reports/cluster/raw --out reports/cluster.md || exit 1
echo "    wrote reports/cluster.md ($(( (SECONDS - started_at) / 60 )) min $(( (SECONDS - started_at) % 60 )) s)"
exit 0
}
