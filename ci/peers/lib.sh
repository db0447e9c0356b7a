# shellcheck shell=bash disable=SC2154,SC2034,SC2004  # the caller declares and reads these variables (see below)
# Sourced by ci/bench.sh and ci/conformance-report.sh: how the peer brokers
# (and this broker, as one of them) are configured, started on loopback,
# checked and stopped. The configurations are the templates beside this file,
# which ci/bench_cluster.py renders too: every report runs a peer the same way.
#
# The caller sets, before calling these functions:
#   root            the repository
#   work            its work folder; broker NAME runs in $work/NAME and logs
#                   to $work/NAME/broker.log
#   peers           the folder ci/install-peers.sh installs into (.peers)
#   broker_bin      this broker's binary
#   port_first, port_last   the range free_port takes ports from
#   launch_prefix   (array, may be empty) put before each broker's command,
#                   e.g. (taskset -c 0)
# and declares `declare -A pid_of=() ports=() taken=()`. ports[NAME] is the
# port a broker is reached on; rumqttd also has ports[rumqttd-v4] and
# ports[rumqttd-v5] (one of them equal to ports[rumqttd]), rmqtt ports[rmqtt-rpc].

peers_templates=$root/ci/peers

stop_pid() { # stop_pid PID: SIGTERM, then SIGKILL after 5 s
  local pid=${1:-}
  # Only a real child pid: never 0 or empty (kill 0 would hit our own group).
  [[ "$pid" =~ ^[1-9][0-9]*$ ]] || return 0
  kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null
  for _ in $(seq 50); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
  return 0
}

free_port() { # sets $port to a free loopback port of port_first..port_last
  : "${next_port:=$port_first}"
  while [ "$next_port" -le "$port_last" ]; do
    local p=$next_port
    next_port=$((next_port + 1))
    [ -n "${taken[$p]:-}" ] && continue
    if ! ss -Htln "sport = :$p" 2>/dev/null | grep -q .; then
      taken[$p]=1
      port=$p
      return 0
    fi
  done
  echo "error: no free port left in $port_first-$port_last" >&2
  exit 1
}

wait_port() { # wait_port PID PORT: until PORT accepts (0), or PID dies / 30 s pass (1)
  local pid=$1 p=$2
  for _ in $(seq 300); do
    kill -0 "$pid" 2>/dev/null || return 1
    if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  return 1
}

# Loopback only: every listening socket (TCP and UDP) of PID must be on
# 127.0.0.0/8 or ::1. Prints the offending addresses and returns 1 if any.
check_loopback() {
  local bad
  bad=$(ss -Htulnp 2>/dev/null | grep -E "pid=$1," | awk '{print $5}' \
    | grep -vE '^(127\.[0-9.]+|\[::1\]|\[::ffff:127\.[0-9.]+\]):[0-9]+$')
  [ -z "$bad" ] && return 0
  echo "$bad" | tr '\n' ' '
  return 1
}

broker_log() { echo "$work/$1/broker.log"; }
# The last lines of a log file on one line, without colour codes.
log_tail() { tail -n 5 "$1" 2>/dev/null | sed 's/\x1b\[[0-9;]*m//g' | tr '\n' ' ' | tr -s ' ' | cut -c1-400; }

# launch NAME PORT COMMAND...: starts a fresh process in $work/NAME, logging to
# its broker.log, waits until PORT accepts and checks that it listens on
# loopback only. Sets pid_of[NAME]; on failure sets launch_error, stops it and
# returns 1.
launch() {
  local name=$1 p=$2
  shift 2
  local dir=$work/$name log
  log=$(broker_log "$name")
  mkdir -p "$dir"
  echo "---- $(date -u +%H:%M:%S) start" >> "$log"
  (cd "$dir" && exec "${launch_prefix[@]}" "$@") >> "$log" 2>&1 &
  local pid=$!
  pid_of[$name]=$pid
  if ! wait_port "$pid" "$p"; then
    launch_error="did not start listening on 127.0.0.1:$p within 30 s: $(log_tail "$log")"
    stop_pid "$pid"
    unset "pid_of[$name]"
    return 1
  fi
  sleep 0.3 # let it open its other sockets before the check
  local bad
  if ! bad=$(check_loopback "$pid"); then
    launch_error="refused: it listened on a non-loopback address ($bad); stopped"
    stop_pid "$pid"
    unset "pid_of[$name]"
    return 1
  fi
  return 0
}

# render TEMPLATE OUT KEY=VALUE...: ci/peers/TEMPLATE with each @KEY@ replaced.
render() {
  local template=$peers_templates/$1 out=$2 text kv
  shift 2
  text=$(cat "$template") || return 1
  for kv in "$@"; do
    text=${text//@${kv%%=*}@/${kv#*=}}
  done
  printf '%s\n' "$text" > "$out"
}

peer_state() { sed -n "s/^$2=//p" "$peers/status/$1.status" 2>/dev/null; }

# start_peer NAME: writes NAME's configuration (once) and launches a fresh
# process of it; sets launch_error on failure. NAME: broker mosquitto rumqttd
# rmqtt mqtt-lib.
start_peer() {
  local name=$1 dir=$work/$1
  launch_error=""
  mkdir -p "$dir"
  case "$name" in
    broker)
      [ -f "$dir/broker.toml" ] || render broker.toml "$dir/broker.toml" ADDR=127.0.0.1 PORT="${ports[broker]}"
      launch broker "${ports[broker]}" env RUST_LOG=warn "$broker_bin" --config "$dir/broker.toml"
      ;;
    mosquitto)
      [ -f "$dir/mosquitto.conf" ] || render mosquitto.conf "$dir/mosquitto.conf" ADDR=127.0.0.1 PORT="${ports[mosquitto]}"
      launch mosquitto "${ports[mosquitto]}" /usr/sbin/mosquitto -c "$dir/mosquitto.conf"
      ;;
    rumqttd)
      [ -f "$dir/rumqttd.toml" ] || render rumqttd.toml "$dir/rumqttd.toml" \
        ADDR=127.0.0.1 V4_PORT="${ports[rumqttd-v4]}" V5_PORT="${ports[rumqttd-v5]}"
      launch rumqttd "${ports[rumqttd]}" "$peers/bin/rumqttd" --quiet --config "$dir/rumqttd.toml" || return 1
      local other=${ports[rumqttd-v4]}
      [ "$other" = "${ports[rumqttd]}" ] && other=${ports[rumqttd-v5]}
      wait_port "${pid_of[rumqttd]}" "$other" || {
        launch_error="its second listener 127.0.0.1:$other did not open"
        return 1
      }
      ;;
    rmqtt)
      mkdir -p "$dir/plugins"
      [ -f "$dir/rmqtt.toml" ] || render rmqtt.toml "$dir/rmqtt.toml" NODE_ID=1 ADDR=127.0.0.1 \
        PORT="${ports[rmqtt]}" RPC_PORT="${ports[rmqtt-rpc]}" PLUGINS_DIR="$dir/plugins/" \
        STARTUPS='["rmqtt-retainer", "rmqtt-shared-subscription"]'
      cp -n "$peers_templates/rmqtt-retainer.toml" "$peers_templates/rmqtt-shared-subscription.toml" "$dir/plugins/"
      launch rmqtt "${ports[rmqtt]}" "$peers/bin/rmqttd" -f "$dir/rmqtt.toml"
      ;;
    mqtt-lib)
      # Sessions are kept in memory; --no-persistence would not keep them at all.
      launch mqtt-lib "${ports[mqtt-lib]}" "$peers/bin/mqttv5" broker \
        --host "127.0.0.1:${ports[mqtt-lib]}" --allow-anonymous --non-interactive \
        --storage-backend memory --storage-dir "$dir/storage" \
        --no-sys-topics --max-clients 100000
      ;;
    *)
      launch_error="no such broker: $name"
      return 1
      ;;
  esac
}

# What the reports say of each broker's configuration (the templates of
# ci/peers/ and start_peer's command lines, in one line).
peer_summary() {
  case "$1" in
    broker) echo "defaults (max_inflight 32, max_queued_messages 1000), [auth] allow_anonymous = true, RUST_LOG=warn" ;;
    mosquitto) echo "allow_anonymous true, persistence false, max_queued_messages 100000, max_keepalive 65535, set_tcp_nodelay true, logging errors and warnings" ;;
    rumqttd) echo "v4 and v5 listeners (separate loopback ports), max_connections 20000, segments 1 MiB x 2, max_outgoing_packet_count 200, max_payload_size 1 MiB, max_inflight_count 500, dynamic_filters, --quiet" ;;
    rmqtt) echo "allow_anonymous, plugins retainer (ram) + shared-subscription (round robin), no ACL / HTTP API, max_inflight 128, max_mqueue_len 100000, max_packet_size 16M, max_topic_aliases 65535, busy check off, log level warn" ;;
    mqtt-lib) echo "--allow-anonymous --storage-backend memory --no-sys-topics --max-clients 100000 (not --no-persistence: that drops sessions)" ;;
  esac
}

# Mosquitto's version and its Debian package's, or nothing when not installed.
mosquitto_version() {
  [ -x /usr/sbin/mosquitto ] || return 0
  echo "$(/usr/sbin/mosquitto -h 2>/dev/null | head -n1 | sed 's/^mosquitto version //') (Debian $(dpkg-query -W -f='${Version}' mosquitto 2>/dev/null))"
}

# add_peers: calls the caller's `add_broker NAME LABEL VERSION INSTALLED-HOW
# BINARY CONFIG-SUMMARY PACKAGE` for each of the four peers.
add_peers() {
  add_broker mosquitto "Mosquitto" "$(mosquitto_version)" "Debian package" /usr/sbin/mosquitto "$(peer_summary mosquitto)" mosquitto
  add_broker rumqttd "rumqttd" "$(peer_state rumqttd version)" "$(peer_state rumqttd method)" "$peers/bin/rumqttd" "$(peer_summary rumqttd)" rumqttd
  add_broker rmqtt "RMQTT (rmqttd)" "$(peer_state rmqttd version)" "$(peer_state rmqttd method)" "$peers/bin/rmqttd" "$(peer_summary rmqtt)" rmqttd
  add_broker mqtt-lib "mqtt-lib (mqttv5 broker)" "$(peer_state mqttv5-cli version)" "$(peer_state mqttv5-cli method)" "$peers/bin/mqttv5" "$(peer_summary mqtt-lib)" mqttv5-cli
}

# allocate_ports RUMQTTD-LISTENER NAME...: a free port for each broker, and
# rumqttd's second listener and RMQTT's RPC port; ports[rumqttd] is rumqttd's
# v4 or v5 listener, as RUMQTTD-LISTENER says.
allocate_ports() {
  local main=$1 other name
  shift
  [ "$main" = v4 ] && other=v5 || other=v4
  for name in "$@"; do
    free_port
    ports[$name]=$port
    case "$name" in
      rumqttd) ports[rumqttd-$main]=$port; free_port; ports[rumqttd-$other]=$port ;;
      rmqtt) free_port; ports[rmqtt-rpc]=$port ;;
    esac
  done
}
