#!/usr/bin/env bash
# Installs the peer brokers the conformance report compares this broker with.
# Idempotent: a peer already installed is left as it is.
#
#   mosquitto   Debian package (apt-get)
#   rumqttd     crates.io, binary rumqttd
#   rmqttd      crates.io (RMQTT), binary rmqttd
#   mqttv5-cli  crates.io (mqtt-lib's CLI), binary mqttv5 (`mqttv5 broker`)
#
# Crates go to .peers/ (git-ignored): binaries in .peers/bin, one build
# folder per crate in .peers/build/NAME (kept, so a retried build resumes),
# the full build log in .peers/logs/NAME.log.
#
# Each peer's outcome is written to .peers/status/NAME.status (key=value:
# status=ok|failed, version, method, note) and, for a failure, the last lines
# of its output to .peers/status/NAME.tail. A peer that fails does not stop
# the others and the script still exits 0: the report lists it as not built.
# A crate is first built with --locked. If that fails, the dependencies that
# failed to compile, or whose locked version the registry lacks, are updated
# (cargo update -p, newest semver-compatible release) in a copy of the crate's
# source and lock file (.peers/src/), the rest staying locked; if that fails
# too, once more without --locked. The status file says which.
# A failed build is not retried on the next run unless --retry-failed is given.
#
# Usage: ci/install-peers.sh [--retry-failed] [PEER...]   (default: all four)
set -uo pipefail
# One brace group: bash parses it whole before running it, so editing this
# file while it runs (builds take long) cannot derail that run.
{
cd "$(dirname "$0")/.." || exit 1
root=$PWD
peers_dir=$root/.peers
status_dir=$peers_dir/status
mkdir -p "$peers_dir/bin" "$peers_dir/logs" "$peers_dir/build" "$status_dir"

retry_failed=0
selected=()
for arg in "$@"; do
  case "$arg" in
    --retry-failed) retry_failed=1 ;;
    -h | --help) sed -n '2,/^set -uo/p' "$0" | sed '$d' | cut -c3-; exit 0 ;;
    *) selected+=("$arg") ;;
  esac
done
[ ${#selected[@]} -gt 0 ] || selected=(mosquitto rumqttd rmqttd mqttv5-cli)

if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
apt_updated=0
apt_install() { # apt_install PACKAGE... : installs those not yet installed
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -gt 0 ] || return 0
  if [ $apt_updated -eq 0 ]; then
    $SUDO apt-get update -qq || return 1
    apt_updated=1
  fi
  echo "==> apt-get install ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}"
}

write_status() { # write_status NAME STATUS VERSION METHOD NOTE
  {
    echo "status=$2"
    echo "version=$3"
    echo "method=$4"
    echo "note=$5"
    echo "date=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  } > "$status_dir/$1.status"
}
status_of() { sed -n 's/^status=//p' "$status_dir/$1.status" 2>/dev/null; }

install_mosquitto() {
  local log=$peers_dir/logs/mosquitto.log
  if ! command -v mosquitto >/dev/null 2>&1 && [ ! -x /usr/sbin/mosquitto ]; then
    echo "==> mosquitto (Debian)"
    if ! apt_install mosquitto > "$log" 2>&1; then
      tail -n 30 "$log" > "$status_dir/mosquitto.tail"
      write_status mosquitto failed "" apt "apt-get install mosquitto failed"
      echo "    mosquitto: FAILED (see $log)"
      return
    fi
  fi
  local version
  version=$(dpkg-query -W -f='${Version}' mosquitto 2>/dev/null)
  write_status mosquitto ok "$version" "Debian package" ""
  rm -f "$status_dir/mosquitto.tail"
  echo "    mosquitto $version: ok"
}

# Someone else's `cargo install CRATE` still running: wait for it rather than
# build the same crate twice at once.
wait_for_other_install() {
  local crate=$1 waited=0
  while pgrep -f "cargo install .*(^| )$crate( |$)" >/dev/null 2>&1; do
    [ $waited -eq 0 ] && echo "    another 'cargo install $crate' is running: waiting for it"
    sleep 10
    waited=$((waited + 10))
  done
}

installed_version() { # version of CRATE installed under .peers, from cargo's record
  cargo install --list --root "$peers_dir" 2>/dev/null | sed -n "s/^$1 v\([^ :]*\).*/\1/p"
}

# After a failed --locked build: take the crate's own source and lock file,
# `cargo update -p` only the dependencies that failed to compile or whose
# locked version the registry lacks (to the newest semver-compatible release
# it has) and build that, still --locked, up to three rounds. Prints what was
# updated; fails if that does not build.
install_with_updates() { # install_with_updates CRATE LOG
  local crate=$1 log=$2 version src updated=""
  version=$(sed -n "s/^ *Installing $crate v\([^ ]*\).*/\1/p" "$log" | head -n1)
  src=$(ls -d "$HOME"/.cargo/registry/src/*/"$crate-$version" 2>/dev/null | head -n1)
  [ -n "$version" ] && [ -n "$src" ] || return 1
  rm -rf "$peers_dir/src/$crate-$version"
  mkdir -p "$peers_dir/src"
  cp -r "$src" "$peers_dir/src/" || return 1
  src=$peers_dir/src/$crate-$version
  # .peers/ lies inside this repository's workspace: make the copy its own.
  printf '\n[workspace]\n' >> "$src/Cargo.toml"
  for _ in 1 2 3; do
    local failing dep dep_version changed=0
    # Dependencies that did not compile (`could not compile `NAME``), and
    # locked versions the registry no longer offers (`failed to select a
    # version for the requirement `NAME = "..."` (locked to VERSION)`).
    failing=$( {
      grep -oE 'could not compile `[^`]+`' "$log" | sed 's/.*`\(.*\)`/\1/'
      sed -n 's/.*failed to select a version for the requirement `\([^ =`]*\) = [^`]*` (locked to \([^)]*\)).*/\1@\2/p' "$log"
    } | sort -u)
    for dep in $failing; do
      dep_version=""
      if [[ "$dep" == *@* ]]; then
        dep_version=${dep#*@}
        dep=${dep%@*}
      fi
      [ "$dep" = "$crate" ] && continue
      [ -n "$dep_version" ] || dep_version=$(grep -oE "Compiling $dep v[^ ]+" "$log" | head -n1 | sed 's/.* v//')
      echo "    the --locked build failed on $dep $dep_version: cargo update -p $dep${dep_version:+@$dep_version}" >&2
      if (cd "$src" && cargo update -p "$dep${dep_version:+@$dep_version}") >> "$log.updates" 2>&1; then
        local now
        now=$(grep -A1 "^name = \"$dep\"" "$src/Cargo.lock" | sed -n 's/^version = "\(.*\)"/\1/p' | tr '\n' ' ')
        updated="$updated${updated:+, }$dep ${dep_version:-?} -> ${now% }"
        changed=1
      fi
    done
    [ $changed -eq 1 ] || return 1
    if cargo install --locked --path "$src" --root "$peers_dir" --target-dir "$peers_dir/build/$crate" > "$log" 2>&1; then
      echo "$updated"
      return 0
    fi
  done
  return 1
}

install_crate() { # install_crate CRATE BINARY [APT BUILD DEPENDENCIES...]
  local crate=$1 binary=$2
  shift 2
  local log=$peers_dir/logs/$crate.log
  wait_for_other_install "$crate"
  if [ -x "$peers_dir/bin/$binary" ]; then
    local version method
    version=$(installed_version "$crate")
    method=$(sed -n 's/^method=//p' "$status_dir/$crate.status" 2>/dev/null)
    write_status "$crate" ok "$version" "${method:-cargo install}" ""
    rm -f "$status_dir/$crate.tail"
    echo "    $crate $version: ok (already installed)"
    return
  fi
  if [ "$(status_of "$crate")" = failed ] && [ $retry_failed -eq 0 ]; then
    echo "    $crate: previous build FAILED, not retried (--retry-failed to retry; tail in $status_dir/$crate.tail)"
    return
  fi
  if [ $# -gt 0 ] && ! apt_install "$@" >> "$peers_dir/logs/apt.log" 2>&1; then
    echo "    warning: could not install the build dependencies $* (see $peers_dir/logs/apt.log)"
  fi
  echo "==> cargo install --locked $crate (log: $log)"
  local started=$SECONDS note=""
  local method="cargo install --locked"
  if ! cargo install --locked "$crate" --root "$peers_dir" --target-dir "$peers_dir/build/$crate" > "$log" 2>&1; then
    local first_error
    first_error=$(grep -m1 -E '^error' "$log" | cut -c1-200)
    cp "$log" "$peers_dir/logs/$crate.locked.log"
    note="the --locked build failed: $first_error"
    if updated=$(install_with_updates "$crate" "$log"); then
      method="cargo install --locked from the crate's source with its lock file, except: $updated"
    else
      echo "    retrying without --locked"
      method="cargo install (without --locked)"
      if ! cargo install "$crate" --root "$peers_dir" --target-dir "$peers_dir/build/$crate" > "$log" 2>&1; then
        {
          echo "--- cargo install --locked $crate (last lines) ---"
          tail -n 15 "$peers_dir/logs/$crate.locked.log"
          echo "--- cargo install $crate (last lines) ---"
          tail -n 25 "$log"
        } > "$status_dir/$crate.tail"
        write_status "$crate" failed "" "$method" "every build failed; first error: $(grep -m1 -E '^error' "$log" | cut -c1-200)"
        echo "    $crate: FAILED after $((SECONDS - started)) s (see $status_dir/$crate.tail)"
        return
      fi
    fi
  fi
  local version
  version=$(installed_version "$crate")
  write_status "$crate" ok "$version" "$method" "$note"
  rm -f "$status_dir/$crate.tail"
  echo "    $crate $version: ok, built in $((SECONDS - started)) s"
}

for peer in "${selected[@]}"; do
  case "$peer" in
    mosquitto) install_mosquitto ;;
    rumqttd) install_crate rumqttd rumqttd ;;
    # RMQTT links librdkafka (cmake build), OpenSSL, SASL and protobuf.
    rmqttd) install_crate rmqttd rmqttd cmake pkg-config libssl-dev zlib1g-dev libsasl2-dev protobuf-compiler ;;
    mqttv5-cli) install_crate mqttv5-cli mqttv5 ;;
    *) echo "unknown peer: $peer (expected mosquitto, rumqttd, rmqttd, mqttv5-cli)" >&2 ;;
  esac
done
exit 0
}
