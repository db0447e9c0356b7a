#!/usr/bin/env bash
# Peer comparison: runs the conformance suite against this broker and the peer
# brokers (Mosquitto, rumqttd, RMQTT, mqtt-lib's mqttv5), each started here on
# loopback only with its most permissive configuration, and writes
#   reports/conformance/<broker>.json   the suite's RunReport per broker
#   reports/conformance.md              totals, statement matrix, failures
#
# Usage: ci/conformance-report.sh [--skip-install] [--only NAME[,NAME...]]
#   NAME: broker mosquitto rumqttd rmqtt mqtt-lib. The outputs always describe
#   one run: --only replaces them with a report of those brokers alone.
# Environment:
#   CONFORMANCE_RUN_TIMEOUT  seconds one suite run (one broker, one protocol
#                            version) may take before it is killed (default 150)
#   CONFORMANCE_BUDGET       seconds for all the suite runs: a run that timed
#                            out is retried only while this is not spent (default 480)
#   CONFORMANCE_CASE_TIMEOUT seconds one case may take (the suite's --case-timeout, default 30)
#   CONFORMANCE_JOBS         cases run at once (default 8)
#   CONFORMANCE_KEEP_WORK=1  keep the work folder (configs, broker logs, raw JSON)
#   CONFORMANCE_SUITE        the suite binary to run (default target/release/conformance)
#
# Each broker is run once per protocol version, so that a hang or a crash in
# one version does not cost the other's results. A run that overruns its time
# is killed and, while the time budget lasts, run once more with 32 cases at
# once and 10 s per case; if that overruns too (or no time is left), its cases
# are reported as failed with that reason. After each run the broker must
# still answer a CONNECT: one that died or stopped answering (a panicked
# thread, a deadlock) is restarted, and the cases that failed in that run are
# run again one at a time (restarting the broker whenever it is down, while
# the budget lasts) to find the case that breaks it. Every broker started here
# is stopped on exit.
set -uo pipefail
# The whole script is one brace group: bash parses it before running it, so
# editing this file while a report runs cannot derail that run.
{
cd "$(dirname "$0")/.." || exit 1
root=$PWD
command_line="ci/conformance-report.sh${*:+ $*}"
run_timeout=${CONFORMANCE_RUN_TIMEOUT:-150}
budget=${CONFORMANCE_BUDGET:-480}
case_timeout=${CONFORMANCE_CASE_TIMEOUT:-30}
jobs=${CONFORMANCE_JOBS:-8}
max_reruns=300
rerun_batch=8
retry_jobs=32
retry_case_timeout=10

skip_install=0
only=""
while [ $# -gt 0 ]; do
  case "$1" in
    --skip-install) skip_install=1 ;;
    --only) only=",$2,"; shift ;;
    -h | --help) sed -n '2,/^set -uo/p' "$0" | sed '$d' | cut -c3-; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
  shift
done
wanted() { [ -z "$only" ] || [[ "$only" == *",$1,"* ]]; }

started_at=$SECONDS
peers=$root/.peers
work=$(mktemp -d /tmp/conformance-report.XXXXXX)
declare -A pid_of=()      # broker -> pid of the running process

broker_bin=$root/target/release/broker
port_first=18900 port_last=18999
launch_prefix=()
declare -A ports=() taken=()
# shellcheck source=ci/peers/lib.sh
source "$root/ci/peers/lib.sh"
cleanup() {
  for name in "${!pid_of[@]}"; do
    stop_pid "${pid_of[$name]}"
  done
  if [ "${CONFORMANCE_KEEP_WORK:-0}" = 1 ]; then
    echo "work folder kept: $work"
  else
    rm -rf "$work"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ $skip_install -eq 0 ]; then
  echo "==> ci/install-peers.sh"
  ci/install-peers.sh
fi

echo "==> cargo build --release -p broker -p conformance"
if ! cargo build --release -q -p broker -p conformance; then
  echo "error: the build failed" >&2
  exit 1
fi
suite=${CONFORMANCE_SUITE:-$root/target/release/conformance}
"$suite" --list-cases > "$work/cases.tsv"
echo "    $(wc -l < "$work/cases.tsv") cases"

# brokers.tsv: name, label, version, state, note, ports, how installed, configuration
record_broker() { printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$@" >> "$work/brokers.tsv"; }
: > "$work/brokers.tsv"
: > "$work/runs.tsv"
: > "$work/reruns.tsv"

# The last lines of a broker's log on one line, without colour codes.

# What the broker logged since byte MARK of its log, on one line: its panic
# messages if it panicked, else its last lines.
log_since() { # log_since NAME MARK
  local log=$work/$1/broker.log text
  text=$(tail -c +$(($2 + 1)) "$log" 2>/dev/null | sed 's/\x1b\[[0-9;]*m//g' | grep -a -A1 'panicked at' | head -n 4)
  [ -n "$text" ] || text=$(tail -c +$(($2 + 1)) "$log" 2>/dev/null | sed 's/\x1b\[[0-9;]*m//g' | grep -av '^\s*$' | tail -n 5)
  echo "$text" | tr '\n' ' ' | tr -s ' ' | cut -c1-400
}
log_size() { stat -c %s "$work/$1/broker.log" 2>/dev/null || echo 0; }

# healthy PORT PROTOCOL: a CONNECT on PORT is answered with a successful
# CONNACK within 5 s. A broker whose process lives on but no longer serves
# (a panicked router thread, a deadlock) fails this.
healthy() {
  python3 - "$1" "$2" <<'PY'
import socket, sys
port, protocol = int(sys.argv[1]), sys.argv[2]
client_id = b"cr-health"
head = b"\x00\x04MQTT" + (b"\x05\x02\x00\x3c\x00" if protocol == "5" else b"\x04\x02\x00\x3c")
body = head + len(client_id).to_bytes(2, "big") + client_id
ok = False
try:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(bytes([0x10, len(body)]) + body)
        data = b""
        while len(data) < 4:
            chunk = s.recv(64)
            if not chunk:
                break
            data += chunk
        ok = len(data) >= 4 and data[0] == 0x20 and data[3] == 0
        if ok:
            s.sendall(b"\xe0\x00")
except OSError:
    ok = False
sys.exit(0 if ok else 1)
PY
}

brokers=()
add_broker() { # add_broker NAME LABEL VERSION INSTALLED-HOW BINARY CONFIG-SUMMARY CRATE-OR-PACKAGE
  local name=$1 label=$2 version=$3 how=$4 binary=$5 config=$6 package=$7
  wanted "$name" || return 0
  if [ ! -x "$binary" ]; then
    local why
    why=$(peer_state "$package" note)
    [ "$(peer_state "$package" status)" = failed ] && why="build failed: $why"
    record_broker "$name" "$label" "" not-built "${why:-not installed}" "" "$how" "$config"
    echo "    $name: not built, skipped"
    return 0
  fi
  brokers+=("$name")
  broker_info[$name]="$label"$'\t'"$version"$'\t'"$how"$'\t'"$config"
}
declare -A broker_info=()

echo "==> brokers"
ours_version=$("$root/target/release/broker" --version 2>/dev/null | head -n1)
add_broker broker "broker (this repository)" "${ours_version:-?} (commit $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- broker 2>/dev/null || echo ', broker/ modified'))" \
  "cargo build --release -p broker" "$root/target/release/broker" \
  "$(peer_summary broker)" broker
add_peers

allocate_ports v4 "${brokers[@]}"
# Versions the binaries report themselves.
v=$("$peers/bin/rmqttd" -V 2>/dev/null | head -n1) && [ -n "$v" ] && [ -n "${broker_info[rmqtt]:-}" ] \
  && broker_info[rmqtt]=$(echo "${broker_info[rmqtt]}" | awk -F'\t' -v v="$v" 'BEGIN{OFS="\t"} {$2=$2" (rmqttd -V: "v")"; print}')
v=$("$peers/bin/mqttv5" --version 2>/dev/null | head -n1) && [ -n "$v" ] && [ -n "${broker_info[mqtt-lib]:-}" ] \
  && broker_info[mqtt-lib]=$(echo "${broker_info[mqtt-lib]}" | awk -F'\t' -v v="$v" 'BEGIN{OFS="\t"} {$2=$2" (mqttv5 --version: "v")"; print}')
v=$("$peers/bin/rumqttd" --version 2>/dev/null | head -n1) && [ -n "$v" ] && [ -n "${broker_info[rumqttd]:-}" ] \
  && broker_info[rumqttd]=$(echo "${broker_info[rumqttd]}" | awk -F'\t' -v v="$v" 'BEGIN{OFS="\t"} {$2=$2" (rumqttd --version: "v")"; print}')

alive() { [ -n "${pid_of[$1]:-}" ] && kill -0 "${pid_of[$1]}" 2>/dev/null; }
# A broker that died: its exit status in $status, and forget its pid.
reap() {
  status=0
  wait "${pid_of[$1]}" 2>/dev/null
  status=$?
  unset "pid_of[$1]"
}

# run_suite NAME PROTOCOL PORT OUT.json [FILTER [JOBS CASE-TIMEOUT [RUN-TIMEOUT]]]:
# one suite run, bounded in time.
run_suite() {
  local name=$1 protocol=$2 p=$3 json=$4 filter=${5:-} n=${6:-$jobs} t=${7:-$case_timeout} limit=${8:-$run_timeout}
  local args=(--host 127.0.0.1 --port "$p" --protocol "$protocol" --json "$json" --case-timeout "$t")
  if [ -n "$filter" ]; then args+=(--filter "$filter" --jobs 1); else args+=(--jobs "$n"); fi
  rm -f "$json"
  timeout -k 10 "$limit" "$suite" "${args[@]}" > "${json%.json}.out" 2>&1
}

# After a run during which the broker died or stopped answering: run each
# failed case of that run alone, on a broker restarted whenever it is dead or
# no longer answers, and note the cases after which it is. The cases go in
# batches of $rerun_batch at once (each alone in its own suite process); a
# batch that leaves the broker down is run again one case at a time.
bisect_crash() {
  local name=$1 protocol=$2 p=$3 json=$4
  local failed=()
  mapfile -t failed < <(python3 -c 'import json,sys
for c in json.load(open(sys.argv[1]))["cases"]:
    if c["result"] == "fail": print(c["name"])' "$json" 2>/dev/null)
  local i=0 n=${#failed[@]} batch pids k
  while [ $i -lt $n ]; do
    if [ $i -ge $max_reruns ] || [ $((SECONDS - runs_started)) -ge "$budget" ]; then
      echo "      (stopped after $i of $n re-runs: the limit of $max_reruns or the time budget)"
      break
    fi
    batch=("${failed[@]:i:rerun_batch}")
    ensure_serving "$name" "$p" "$protocol" || { echo "      cannot restart $name: $launch_error"; return; }
    pids=()
    for k in "${!batch[@]}"; do
      run_suite "$name" "$protocol" "$p" "$work/$name.$protocol.rerun.$((i + k)).json" "${batch[$k]}" 1 \
        "$case_timeout" $((case_timeout + 20)) &
      pids+=($!)
    done
    wait "${pids[@]}" 2>/dev/null
    if alive "$name" && healthy "$p" "$protocol"; then
      for k in "${!batch[@]}"; do
        printf '%s\t%s\t%s\t%s\t0\t\n' "$name" "$protocol" "${batch[$k]}" "$work/$name.$protocol.rerun.$((i + k)).json" >> "$work/reruns.tsv"
      done
    else
      if alive "$name"; then stop_pid "${pid_of[$name]}"; fi
      unset "pid_of[$name]"
      for k in "${!batch[@]}"; do
        rerun_one "$name" "$protocol" "$p" "${batch[$k]}" "$work/$name.$protocol.rerun.$((i + k)).json" || return
      done
    fi
    i=$((i + ${#batch[@]}))
  done
}

# rerun_one NAME PROTOCOL PORT CASE OUT.json: the case alone, on a serving
# broker; records whether the broker died (1) or stopped answering (2) after it.
rerun_one() {
  local name=$1 protocol=$2 p=$3 case_name=$4 one=$5 crashed=0 mark
  ensure_serving "$name" "$p" "$protocol" || { echo "      cannot restart $name: $launch_error"; return 1; }
  status=""
  mark=$(log_size "$name")
  run_suite "$name" "$protocol" "$p" "$one" "$case_name" 1 "$case_timeout" $((case_timeout + 20))
  if ! alive "$name"; then
    reap "$name"
    crashed=1
    echo "      $case_name: the broker died (exit status $status)"
  elif ! healthy "$p" "$protocol"; then
    crashed=2
    status=$(log_since "$name" "$mark")
    echo "      $case_name: the broker stopped answering CONNECT: $status"
    stop_pid "${pid_of[$name]}"
    unset "pid_of[$name]"
  fi
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$protocol" "$case_name" "$one" "$crashed" "$status" >> "$work/reruns.tsv"
}

# ensure_serving NAME PORT PROTOCOL: (re)starts the broker unless it runs and answers.
restarted_note=""
ensure_serving() {
  restarted_note=""
  if alive "$1"; then
    healthy "$2" "$3" && return 0
    restarted_note="restarted before this run: it no longer answered CONNECT"
    stop_pid "${pid_of[$1]}"
    unset "pid_of[$1]"
  fi
  start_peer "$1"
}

echo "==> suite runs (run timeout ${run_timeout} s, case timeout ${case_timeout} s, ${jobs} jobs)"
runs_started=$SECONDS
for name in "${brokers[@]}"; do
  IFS=$'\t' read -r label version how config <<< "${broker_info[$name]}"
  if ! start_peer "$name"; then
    echo "    $name: $launch_error"
    record_broker "$name" "$label" "$version" failed-to-start "$launch_error" "" "$how" "$config"
    continue
  fi
  port_note="127.0.0.1:${ports[$name]}"
  [ "$name" = rumqttd ] && port_note="127.0.0.1:${ports[rumqttd]} (3.1.1), 127.0.0.1:${ports[rumqttd-v5]} (5.0)"
  record_broker "$name" "$label" "$version" ran "" "$port_note" "$how" "$config"
  for protocol in 3.1.1 5; do
    p=${ports[$name]}
    [ "$name" = rumqttd ] && [ "$protocol" = 5 ] && p=${ports[rumqttd-v5]}
    ensure_serving "$name" "$p" "$protocol" || {
      printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$protocol" "$p" "" "" not-started "could not be (re)started: $launch_error" >> "$work/runs.tsv"
      continue
    }
    json=$work/$name.$protocol.json
    t0=$SECONDS
    mark=$(log_size "$name")
    run_suite "$name" "$protocol" "$p" "$json"
    rc=$?
    outcome=ok note=$restarted_note
    if { [ $rc -eq 124 ] || [ $rc -eq 137 ]; } && alive "$name" \
      && [ $((SECONDS - runs_started + run_timeout)) -le "$budget" ]; then
      # Too many cases waited for their whole time: once more, with more
      # cases at once and a shorter bound each.
      echo "    $name $protocol: the run timed out after ${run_timeout} s; once more with --jobs $retry_jobs --case-timeout $retry_case_timeout"
      run_suite "$name" "$protocol" "$p" "$json" "" "$retry_jobs" "$retry_case_timeout"
      rc=$?
      note="the first run did not finish within ${run_timeout} s; these results are from a second run with --jobs $retry_jobs --case-timeout $retry_case_timeout"
    fi
    if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then
      outcome=timeout note="the suite run did not finish within ${run_timeout} s and was killed${note:+ (twice)}"
    elif [ ! -s "$json" ]; then
      outcome=no-json note="the suite exited with status $rc without writing its JSON: $(tail -n 3 "${json%.json}.out" | tr '\n' ' ' | cut -c1-300)"
    fi
    if ! alive "$name"; then
      reap "$name"
      outcome=crashed
      note="the broker exited (status $status) during the run; log: $(log_since "$name" "$mark")"
    elif ! healthy "$p" "$protocol"; then
      outcome=stopped-answering
      note="the broker stopped answering CONNECT during the run (its process still running); log: $(log_since "$name" "$mark")"
      stop_pid "${pid_of[$name]}"
      unset "pid_of[$name]"
    fi
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$protocol" "$p" "$json" "$rc" "$outcome" "$note" >> "$work/runs.tsv"
    echo "    $name $protocol: $(tail -n 1 "${json%.json}.out" 2>/dev/null) [$outcome, $((SECONDS - t0)) s]"
    if { [ "$outcome" = crashed ] || [ "$outcome" = stopped-answering ]; } && [ -s "$json" ]; then
      echo "      $note"
      echo "      re-running the failed cases one at a time"
      bisect_crash "$name" "$protocol" "$p" "$json"
    fi
  done
  stop_pid "${pid_of[$name]:-}"
  unset "pid_of[$name]"
done

echo "==> report"
mkdir -p reports/conformance
python3 ci/conformance_report.py \
  --work "$work" --out-dir reports/conformance --markdown reports/conformance.md \
  --command "$command_line" --peers-status "$peers/status" \
  --suite-args "--jobs $jobs --case-timeout $case_timeout" --run-timeout "$run_timeout" \
  --elapsed $((SECONDS - started_at))
exit $?
}
