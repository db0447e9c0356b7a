#!/usr/bin/env bash
# Benchmarks. Two parts, both by default:
#
# 1. Micro-benchmarks (criterion) of the codec and the core, summarised into
#    reports/micro-benchmarks.md from criterion's raw estimates.
# 2. Single node, side by side: this broker and its peers (Mosquitto, rumqttd,
#    RMQTT, mqtt-lib's mqttv5; installed by ci/install-peers.sh, a peer that
#    does not build is reported as such) under the loadgen scenarios of
#    loadgen/scenarios/ (p2p-qos0, p2p-qos1, fan-out, fan-in,
#    idle-connections), each run on a fresh broker process listening on
#    loopback only (ports 19000-19099), the broker pinned to CPU 0 and loadgen
#    to CPU 1 (taskset), each started once the machine is quiet (both cores
#    under 20% busy; at most 120 s of waiting). Then a maximum-throughput
#    search per publish scenario and broker: the publish rate doubles from
#    twice the scenario's rate until a step fails (p99 latency over 10 ms, 50 ms
#    for fan-out; achieved publish rate under 95% of the target; under 95% of
#    the expected deliveries received; a connection failed), then two
#    bisections between the last pass and the first failure; each step is a
#    short run on a fresh broker, and a failure near the bounds is run once
#    more. CPU use of loadgen, the broker and both cores is sampled from /proc
#    during every run. Writes
#      reports/single-node/raw/<broker>-<scenario>.json    loadgen results
#      reports/single-node/raw/search/<broker>-<scenario>-<rate>.json  search steps
#      reports/single-node/raw/cpu/<result>.tsv           CPU samples of each run
#      reports/single-node/raw/{brokers,runs,search}.tsv, meta.env  what ran
#      reports/single-node/<scenario>.md + <scenario>/*.svg  `loadgen report` plots
#      reports/single-node.md   figures and ratios (ci/bench_report.py)
#    The outputs always describe one run: --only and --scenarios replace them.
#
# Usage: ci/bench.sh [--quick] [--micro-only | --no-micro] [--skip-install]
#                    [--only NAME[,NAME...]] [--scenarios ID[,ID...]] [--no-search] [--rev REV]
#   --quick        criterion's --quick, and 5 s publish phases / single-step
#                  bisection for the load part (a trial, not a report to keep)
#   NAME: broker mosquitto rumqttd rmqtt mqtt-lib
#   ID: a scenario file name in loadgen/scenarios/ without .toml
#   --rev REV      the load part builds the broker and loadgen of commit REV
#                  (`git archive` into a temporary folder, target/bench-rev)
#                  instead of the working tree's; scenarios and scripts are
#                  still the working tree's. For a report of a commit while
#                  the working tree is being edited.
# Environment:
#   BENCH_SEARCH_BUDGET  seconds the throughput searches may take in all; once
#                        spent, the searches stop and the report says where (default 1320)
#   BENCH_KEEP_WORK=1    keep the work folder (configurations, broker logs, loadgen output)
set -uo pipefail
# One brace group: bash parses it whole before running it, so editing this
# file while it runs cannot derail that run.
{
cd "$(dirname "$0")/.." || exit 1
command_line="ci/bench.sh${*:+ $*}"
script_started=$SECONDS
micro=1 load=1 quick=0 skip_install=0 search=1 only="" only_scenarios="" rev=""
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=1 ;;
    --micro-only) load=0 ;;
    --no-micro) micro=0 ;;
    --skip-install) skip_install=1 ;;
    --no-search) search=0 ;;
    --only) only=",$2,"; shift ;;
    --scenarios) only_scenarios=",$2,"; shift ;;
    --rev) rev=$2; shift ;;
    -h | --help) sed -n '2,/^set -uo/p' "$0" | sed '$d' | cut -c3-; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
  shift
done

# ---- 1. micro-benchmarks ------------------------------------------------------
if [ $micro -eq 1 ]; then
args=(--warm-up-time 1 --measurement-time 3)
[ $quick -eq 1 ] && args=(--quick)
micro_failed=0
if cargo bench -p mqtt-codec --bench codec -- "${args[@]}" \
  && cargo bench -p broker --bench core --bench topic_match --bench cluster -- "${args[@]}"; then
python3 - "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)" <<'PY' || exit 1
import json, os, pathlib, platform, sys, time

root = pathlib.Path("target/criterion")
rows = []
for est in sorted(root.glob("**/new/estimates.json")):
    bench = json.loads((est.parent / "benchmark.json").read_text())
    mean = json.loads(est.read_text())["mean"]["point_estimate"]
    tp = bench.get("throughput") or {}
    extra = ""
    if "Bytes" in tp:
        extra = f"{tp['Bytes'] / mean * 1e9 / 2**20:,.0f} MiB/s"
    elif "Elements" in tp:
        extra = f"{tp['Elements'] / mean * 1e9 / 1e6:,.2f} M elements/s"
    rows.append((bench["full_id"], mean, extra))
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "unknown")
os.makedirs("reports", exist_ok=True)
with open("reports/micro-benchmarks.md", "w") as f:
    f.write("# Micro-benchmarks\n\nGenerated by `ci/bench.sh` from criterion's `target/criterion/**/estimates.json`.\n")
    f.write(f"Machine: {cpu}, {os.cpu_count()} cores, kernel {platform.release()}; commit {sys.argv[1]}, {time.strftime('%Y-%m-%d')}.\n\n")
    f.write("`route_qos0/N`: one QoS 0 PUBLISH routed by the sans-IO core to N subscribers and every outbox drained (no network).\n\n")
    f.write("`forward_send/qosQ_Nnode`: one QoS 0/1 PUBLISH of a local client on a cluster member (sync forwarding) whose topic matches the routes of N other nodes, each `Forward` encoded as its peer link does (QoS 1: the `ForwardAck`s handled and the held PUBACK released); `forward_receive/qosQ_Nsub`: one `Forward` frame decoded and handled by the receiving member and delivered to N local subscribers, their outboxes drained (QoS 1: their PUBACKs and the `ForwardAck` encoded); `local_publish/qosQ_Nsub`: for comparison, the same PUBLISH on a member whose N subscribers are all local (one element = one message, no network).\n\n")
    f.write("`topic_match/*`: one topic looked up (one element) in the subscription index holding 100,000 filters, one subscriber each: exact (`site/{i%100}/device/{i}/temp`), wildcard (`site/{n}/device/+/temp`, `site/{n}/#`, `+/{n}/device/{n}/+`, `site/+/device/{n}/#`) or half of each; `hit` reaches 1, 4 or 5 filters, `miss` none. `topic_insert/*`: those 100,000 filters subscribed into an empty index (100,000 elements).\n\n")
    f.write("| benchmark | mean | throughput |\n| --- | ---: | ---: |\n")
    for name, mean, extra in rows:
        t = f"{mean:,.1f} ns" if mean < 1e4 else f"{mean / 1e3:,.2f} µs"
        f.write(f"| `{name}` | {t} | {extra} |\n")
print(open("reports/micro-benchmarks.md").read())
PY
else
  micro_failed=1
  echo "error: the micro-benchmarks failed; reports/micro-benchmarks.md is unchanged" >&2
  [ $load -eq 1 ] || exit 1
fi
fi

# ---- 2. single node, side by side -----------------------------------------------
[ $load -eq 1 ] || exit 0
micro_failed=${micro_failed:-0}
root=$PWD
peers=$root/.peers
started_at=$SECONDS
search_budget=${BENCH_SEARCH_BUDGET:-1320}
broker_cpu=0
loadgen_cpu=1
publish_duration=20s
step_duration=4s
bisections=2
[ $quick -eq 1 ] && { publish_duration=5s; bisections=1; }
step_drain=1s
run_timeout=240       # seconds one loadgen run may take before it is killed
# The search's latency bound: 10 ms. Fan-out is the exception: one message to
# 1,000 subscribers is a burst of 1,000 deliveries, and on two cores the last
# of them arrives 10-15 ms after the first even at 10 messages/s for every
# broker (the broker writes 1,000 sockets, loadgen reads them on one core), so
# 10 ms would fail every step of every broker.
declare -A p99_max_ms=([fan-out]=50)
# Other processes taking more than this (percent of one core, both cores
# together) during a publish phase disturbed the run: it is run once more.
others_max=10
wanted() { [ -z "$only" ] || [[ "$only" == *",$1,"* ]]; }
scenario_wanted() { [ -z "$only_scenarios" ] || [[ "$only_scenarios" == *",$1,"* ]]; }

if pgrep -f 'ci/conformance-report.sh|target/release/conformance ' >/dev/null 2>&1; then
  echo "warning: ci/conformance-report.sh is running: the figures will be disturbed" >&2
fi
if [ "$(nproc)" -lt 2 ]; then
  echo "error: the load benchmarks pin the broker and loadgen to two different CPUs; this machine has $(nproc)" >&2
  exit 1
fi
# 18,000 idle connections need as many open files in the broker and in loadgen.
ulimit -n "$(ulimit -Hn)" 2>/dev/null
nofile=$(ulimit -n)
if [ "$nofile" != unlimited ] && [ "$nofile" -lt 19000 ]; then
  echo "warning: at most $nofile open files per process: the idle-connections scenario (18,000) will fail" >&2
fi

work=$(mktemp -d /tmp/bench.XXXXXX)
mkdir -p "$work/raw/search" "$work/raw/cpu" "$work/scenarios" "$work/logs"
declare -A pid_of=() ports=() taken=()
broker_bin=""  # set once built
port_first=19000 port_last=19099
launch_prefix=(taskset -c "$broker_cpu")
# shellcheck source=ci/peers/lib.sh
source "$root/ci/peers/lib.sh"
cleanup() {
  for name in "${!pid_of[@]}"; do stop_pid "${pid_of[$name]}"; done
  if [ "${BENCH_KEEP_WORK:-0}" = 1 ]; then echo "work folder kept: $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'echo "ci/bench.sh: stopped by SIGINT" >&2; exit 130' INT
trap 'echo "ci/bench.sh: stopped by SIGTERM" >&2; exit 143' TERM
trap 'echo "ci/bench.sh: stopped by SIGHUP" >&2; exit 129' HUP

if [ $skip_install -eq 0 ]; then
  echo "==> ci/install-peers.sh"
  ci/install-peers.sh
fi
if [ -n "$rev" ]; then
  commit=$(git rev-parse --short "$rev^{commit}" 2>/dev/null) || { echo "error: --rev $rev: no such commit" >&2; exit 1; }
  src=$work/src
  mkdir -p "$src"
  echo "==> cargo build --release -p broker -p loadgen of commit $commit (target/bench-rev)"
  git archive "$commit" | tar -x -C "$src" || { echo "error: git archive $commit failed" >&2; exit 1; }
  (cd "$src" && cargo build --release -q -p broker -p loadgen --target-dir "$root/target/bench-rev") \
    || { echo "error: the build of $commit failed" >&2; exit 1; }
  bin=$root/target/bench-rev/release
  dirty=""
  built_how="cargo build --release -p broker of commit $commit"
else
  echo "==> cargo build --release -p broker -p loadgen"
  cargo build --release -q -p broker -p loadgen || { echo "error: the build failed" >&2; exit 1; }
  bin=$root/target/release
  commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
  dirty=$(git status --porcelain 2>/dev/null | grep -v '^??' | awk '{print $2}' | tr '\n' ' ')
  built_how="cargo build --release -p broker (working tree)"
fi
loadgen=$bin/loadgen
broker_bin=$bin/broker

# ---- the brokers: each started by ci/peers/lib.sh's start_peer with the
# configuration of ci/peers/ (the conformance report's too) ---------------------------
alive() { [ -n "${pid_of[$1]:-}" ] && kill -0 "${pid_of[$1]}" 2>/dev/null; }
stop_broker() { stop_pid "${pid_of[$1]:-}"; unset "pid_of[$1]"; }

# brokers.tsv: name, label, version, state (ok / not-built), note, how installed, configuration
record_broker() { printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$@" >> "$work/raw/brokers.tsv"; }
: > "$work/raw/brokers.tsv"
declare -A version_of=()
brokers=()
add_broker() { # add_broker NAME LABEL VERSION INSTALLED-HOW BINARY CONFIG-SUMMARY PACKAGE
  local name=$1 label=$2 version=$3 how=$4 binary=$5 config=$6 package=$7
  wanted "$name" || return 0
  if [ ! -x "$binary" ]; then
    local why
    why=$(peer_state "$package" note)
    [ "$(peer_state "$package" status)" = failed ] && why="build failed: $why"
    record_broker "$name" "$label" "" not-built "${why:-not installed}" "$how" "$config"
    echo "    $name: not built, skipped"
    return 0
  fi
  brokers+=("$name")
  version_of[$name]=$version
  record_broker "$name" "$label" "$version" ok "" "$how" "$config"
}

echo "==> brokers"
modified=""
[ -z "$rev" ] && ! git diff --quiet HEAD -- broker 2>/dev/null && modified=", broker/ modified"
ours_version="$("$bin/broker" --version 2>/dev/null | head -n1 | sed 's/^broker //') (commit $commit$modified)"
add_broker broker "broker (this repository)" "$ours_version" "$built_how" \
  "$bin/broker" "$(peer_summary broker)" broker
add_peers
[ ${#brokers[@]} -gt 0 ] || { echo "error: no broker to run" >&2; exit 1; }

allocate_ports v5 "${brokers[@]}"

# ---- scenarios ---------------------------------------------------------------------
scenarios=()
declare -A deliveries_of=() kind_of=() rate_of=()
for id in p2p-qos0 p2p-qos1 fan-out fan-in idle-connections; do
  scenario_wanted "$id" || continue
  [ -f "loadgen/scenarios/$id.toml" ] || { echo "error: loadgen/scenarios/$id.toml is missing" >&2; exit 1; }
  read -r kind deliveries rate < <(python3 ci/bench_scenario.py info "loadgen/scenarios/$id.toml") \
    || { echo "error: loadgen/scenarios/$id.toml: cannot read it" >&2; exit 1; }
  scenarios+=("$id")
  kind_of[$id]=$kind deliveries_of[$id]=$deliveries rate_of[$id]=$rate
done
[ ${#scenarios[@]} -gt 0 ] || { echo "error: no scenario to run" >&2; exit 1; }

{
  echo "command=$command_line"
  echo "commit=$commit"
  echo "dirty=$dirty"
  echo "rev=$rev"
  echo "date=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "loadavg_start=$(cut -d' ' -f1-3 /proc/loadavg)"
  echo "cores=$(nproc --all)"
  echo "nofile=$nofile"
  echo "broker_cpu=$broker_cpu"
  echo "loadgen_cpu=$loadgen_cpu"
  echo "publish_duration=$publish_duration"
  echo "step_duration=$step_duration"
  echo "step_drain=$step_drain"
  echo "bisections=$bisections"
  echo "search_budget=$search_budget"
  echo "search_p99_max_ms=$(for id in "${scenarios[@]}"; do [ "${kind_of[$id]}" = publish ] && printf '%s:%s,' "$id" "${p99_max_ms[$id]:-10}"; done)"
  echo "loadgen_version=$("$loadgen" --version 2>/dev/null | head -n1)"
  echo "rustc=$(rustc --version 2>/dev/null)"
  echo "os=$(. /etc/os-release 2>/dev/null && echo "$PRETTY_NAME")"
  echo "search=$search"
  echo "quick=$quick"
} > "$work/raw/meta.env"

# sample_cpu PID BROKER-PID: CPU use twice a second while loadgen (the child
# of PID, `timeout`) runs, one line each: wall-clock time (s since the epoch);
# loadgen's utime and stime; the broker's utime and stime; then for the
# broker's core and for loadgen's: busy (all but idle and iowait, so also
# interrupts, softirqs and kernel threads), total, and user + nice time (user
# time beyond loadgen's and the broker's is other work that disturbed the
# run); all in clock ticks. loadgen itself records the broker's process CPU
# per second, not its own nor the cores'. Builtins only, but for the sleep.
sample_cpu() {
  local lp="" stat rest fields b line f c0="" c1=""
  for _ in $(seq 50); do
    lp=$(pgrep -P "$1" | head -n1)
    [ -n "$lp" ] && break
    sleep 0.05
  done
  [ -n "$lp" ] || return 0
  while { read -r stat < "/proc/$lp/stat"; } 2>/dev/null; do
    rest=${stat##*) }
    read -ra fields <<< "$rest"
    b="0 0"
    if { read -r stat < "/proc/$2/stat"; } 2>/dev/null; then
      rest=${stat##*) }
      read -ra f <<< "$rest"
      b="${f[11]} ${f[12]}"
    fi
    while read -r line; do
      read -ra f <<< "$line"
      case "${f[0]}" in
        "cpu$broker_cpu") c0="$((f[1] + f[2] + f[3] + f[6] + f[7] + f[8])) $((f[1] + f[2] + f[3] + f[4] + f[5] + f[6] + f[7] + f[8])) $((f[1] + f[2]))" ;;
        "cpu$loadgen_cpu") c1="$((f[1] + f[2] + f[3] + f[6] + f[7] + f[8])) $((f[1] + f[2] + f[3] + f[4] + f[5] + f[6] + f[7] + f[8])) $((f[1] + f[2]))" ;;
      esac
    done < /proc/stat
    echo "$EPOCHREALTIME ${fields[11]} ${fields[12]} $b $c0 $c1"
    sleep 0.5
  done
}

# wait_quiet: until neither core was over 20% busy for half a second (other
# work on this machine disturbs the figures), at most 120 s. Sets quiet_wait
# (seconds waited) and quiet_busy (the last busy percentages).
cores_busy() { # prints "busy0 total0 busy1 total1" in clock ticks
  local line f out=""
  while read -r line; do
    read -ra f <<< "$line"
    case "${f[0]}" in
      "cpu$broker_cpu" | "cpu$loadgen_cpu")
        out="$out $((f[1] + f[2] + f[3] + f[6] + f[7] + f[8])) $((f[1] + f[2] + f[3] + f[4] + f[5] + f[6] + f[7] + f[8]))" ;;
    esac
  done < /proc/stat
  echo "$out"
}
wait_quiet() {
  local start=$SECONDS a b
  quiet_wait=0 quiet_busy=""
  while :; do
    read -ra a <<< "$(cores_busy)"
    sleep 0.5
    read -ra b <<< "$(cores_busy)"
    local p0=$(( (b[0] - a[0]) * 100 / (b[1] - a[1] + 1) )) p1=$(( (b[2] - a[2]) * 100 / (b[3] - a[3] + 1) ))
    quiet_busy="$p0% $p1%"
    quiet_wait=$((SECONDS - start))
    { [ $p0 -le 20 ] && [ $p1 -le 20 ]; } && return 0
    [ $quiet_wait -ge 120 ] && return 1
    [ $quiet_wait -eq 0 ] || [ $((quiet_wait % 10)) -ne 0 ] || echo "      (waiting for the machine to be quiet: cores $quiet_busy busy)" >&2
    sleep 1
  done
}

# run_load NAME SCENARIO FILE OUT.json LABELS...: one loadgen run against a
# fresh NAME. Sets run_outcome (ok, failed-to-start, loadgen-failed, timeout,
# broker-died) and run_note.
run_load() {
  local name=$1 id=$2 file=$3 out=$4
  shift 4
  local log=$work/logs/$(basename "${out%.json}").out
  run_outcome=ok run_note=""
  wait_quiet || echo "      (the machine stayed busy for 120 s (cores $quiet_busy): running anyway)" >&2
  if ! start_peer "$name"; then
    run_outcome=failed-to-start run_note=$launch_error
    return
  fi
  local pid=${pid_of[$name]} limits
  limits=$(awk '/Max open files/ {print $4}' "/proc/$pid/limits" 2>/dev/null)
  rm -f "$out"
  timeout -k 10 "$run_timeout" taskset -c "$loadgen_cpu" "$loadgen" run "$file" --json "$out" --broker-pid "$pid" \
    --label "broker=$name" --label "broker_version=${version_of[$name]}" --label "scenario=$id" \
    --label "deliveries_per_message=${deliveries_of[$id]}" --label "broker_open_files_max=$limits" \
    --label "waited_for_quiet_s=$quiet_wait" --label "cores_busy_before=$quiet_busy" \
    "$@" --quiet > "$log" 2>&1 &
  local tpid=$!
  sample_cpu "$tpid" "$pid" > "$work/raw/cpu/$(basename "${out%.json}").tsv" &
  local spid=$!
  wait "$tpid"
  local rc=$?
  wait "$spid" 2>/dev/null
  if ! alive "$name"; then
    wait "$pid" 2>/dev/null
    run_outcome=broker-died run_note="the broker exited (status $?) during the run: $(log_tail "$(broker_log "$name")")"
    unset "pid_of[$name]"
  elif [ $rc -eq 124 ] || [ $rc -eq 137 ]; then
    run_outcome=timeout run_note="loadgen did not finish within $run_timeout s and was killed"
  elif [ $rc -ne 0 ] || [ ! -s "$out" ]; then
    run_outcome=loadgen-failed run_note="loadgen exited with status $rc: $(log_tail "$log")"
  fi
  stop_broker "$name"
}

# ---- the scenario runs -------------------------------------------------------------
: > "$work/raw/runs.tsv"
echo "==> scenario runs (publish phases $publish_duration; broker on CPU $broker_cpu, loadgen on CPU $loadgen_cpu)"
for id in "${scenarios[@]}"; do
  for name in "${brokers[@]}"; do
    file=$work/scenarios/$name-$id.toml
    python3 ci/bench_scenario.py render "loadgen/scenarios/$id.toml" "$file" --port "${ports[$name]}" \
      --publish-duration "$publish_duration"
    out=$work/raw/$name-$id.json
    t0=$SECONDS
    run_load "$name" "$id" "$file" "$out"
    outcome=$run_outcome note=$run_note
    # Other work on the machine during the publish phase: once more, after waiting for quiet.
    if [ "$outcome" = ok ] && [ "${kind_of[$id]}" = publish ]; then
      others=$(python3 ci/bench_scenario.py verdict "$out" --deliveries-per-message "${deliveries_of[$id]}" \
        --cpu-samples "$work/raw/cpu/$name-$id.tsv" | cut -f12)
      if [ -n "$others" ] && [ "$others" -gt "$others_max" ]; then
        echo "    $id $name: disturbed (other processes took $others% of a core): once more"
        run_load "$name" "$id" "$file" "$out"
        outcome=$run_outcome note="run twice: other processes took $others% of a core during the first run${run_note:+; $run_note}"
      fi
    fi
    printf '%s\t%s\t%s\t%s\t%s\n' "$id" "$name" "$outcome" "$(basename "$out")" "$note" >> "$work/raw/runs.tsv"
    summary=$(grep -E '^(phase .* publish|latency|connects)' "$work/logs/$name-$id.out" 2>/dev/null | tr '\n' ' ' | cut -c1-300)
    echo "    $id $name: $outcome [$((SECONDS - t0)) s] ${note:-$summary}"
  done
done

# ---- the maximum-throughput search ----------------------------------------------
: > "$work/raw/search.tsv"
# search.tsv: scenario, broker, step, rate, verdict (pass, fail, skipped),
#   reason, target, achieved, received, expected, p99 ms, broker CPU %,
#   loadgen CPU %, broker core busy %, loadgen core busy %, other processes'
#   CPU %, marginal, result file, attempt
# search_step NAME ID RATE ATTEMPT: one step; sets $line (the verdict's fields)
search_step() {
  local name=$1 id=$2 rate=$3 attempt=$4 file out stem
  stem=$name-$id-$rate
  [ "$attempt" = 1 ] || stem=$stem-again
  file=$work/scenarios/$stem.toml
  python3 ci/bench_scenario.py render "loadgen/scenarios/$id.toml" "$file" --port "${ports[$name]}" \
    --rate "$rate" --publish-duration "$step_duration" --drain "$step_drain"
  out=$work/raw/search/$stem.json
  run_load "$name" "$id" "$file" "$out" --label "search_rate=$rate" --label "search_attempt=$attempt"
  if [ "$run_outcome" = ok ]; then
    line=$(python3 ci/bench_scenario.py verdict "$out" --deliveries-per-message "${deliveries_of[$id]}" \
      --p99-max-ms "${p99_max_ms[$id]:-10}" --cpu-samples "$work/raw/cpu/$stem.tsv")
  else
    line=$(printf 'fail\t%s: %s\t%s\t\t\t\t\t\t\t\t\t\tno' "$run_outcome" "$run_note" "$rate")
  fi
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$id" "$name" "$step" "$rate" "$line" "search/$stem.json" "$attempt" >> "$work/raw/search.tsv"
}
if [ $search -eq 1 ]; then
  echo "==> throughput search (steps of $step_duration + $step_drain drain; budget $search_budget s)"
  search_started=$SECONDS
  for id in "${scenarios[@]}"; do
    [ "${kind_of[$id]}" = publish ] || continue
    for name in "${brokers[@]}"; do
      base=${rate_of[$id]}
      rate=$((base * 2)) pass="" fail="" step=0 bisected=0 trail=""
      while :; do
        if [ $((SECONDS - search_started)) -ge "$search_budget" ]; then
          printf '%s\t%s\t%s\t%s\tskipped\tthe time budget of the searches (%s s) was spent\n' "$id" "$name" $((step + 1)) "$rate" "$search_budget" >> "$work/raw/search.tsv"
          trail="$trail (time budget spent)"
          break
        fi
        step=$((step + 1))
        search_step "$name" "$id" "$rate" 1
        # A failure near the bounds, or while other processes took CPU, is run
        # once more: one stall of the machine should not decide it. The second
        # run's verdict stands.
        others=$(cut -f12 <<< "$line")
        if [ "${line%%$'\t'*}" = fail ] && { [ "${line##*$'\t'}" = yes ] || [ "${others:-0}" -gt "$others_max" ]; }; then
          trail="$trail $rate:fail,again"
          search_step "$name" "$id" "$rate" 2
        fi
        verdict=${line%%$'\t'*}
        trail="$trail $rate:$verdict"
        if [ "$verdict" = pass ]; then pass=$rate; else fail=$rate; fi
        if [ -n "$pass" ] && [ -n "$fail" ]; then
          [ $bisected -ge $bisections ] && break
          bisected=$((bisected + 1))
          rate=$(( (pass + fail) / 2 ))
          # Nothing left between them at this resolution.
          { [ "$rate" -le "$pass" ] || [ "$rate" -ge "$fail" ]; } && break
        elif [ -n "$pass" ]; then
          rate=$((rate * 2))
          [ "$rate" -gt $((base * 256)) ] && break
        else
          rate=$((rate / 2))
          { [ "$rate" -lt $((base / 4)) ] || [ "$rate" -lt 1 ]; } && break
        fi
      done
      echo "    $id $name:$trail -> ${pass:-none passed}"
    done
  done
fi

# ---- reports -------------------------------------------------------------------------
echo "==> reports"
echo "elapsed=$((SECONDS - started_at))" >> "$work/raw/meta.env"
echo "elapsed_script=$((SECONDS - script_started))" >> "$work/raw/meta.env"
echo "loadavg_end=$(cut -d' ' -f1-3 /proc/loadavg)" >> "$work/raw/meta.env"
rm -rf reports/single-node
mkdir -p reports/single-node
cp -r "$work/raw" reports/single-node/raw
for id in "${scenarios[@]}"; do
  results=()
  for name in "${brokers[@]}"; do
    [ -s "reports/single-node/raw/$name-$id.json" ] && results+=("reports/single-node/raw/$name-$id.json")
  done
  [ ${#results[@]} -gt 0 ] || continue
  "$loadgen" report "${results[@]}" --out "reports/single-node/$id" --title "Single node: $id, each broker" \
    2> "$work/logs/report-$id.out" || echo "    loadgen report for $id failed: $(log_tail "$work/logs/report-$id.out")"
done
python3 ci/bench_report.py reports/single-node/raw --out reports/single-node.md || exit 1
echo "    wrote reports/single-node.md ($(( (SECONDS - started_at) / 60 )) min)"
exit $micro_failed
}
