#!/usr/bin/env bash
# One-box rehearsal of a cluster: a master and N workers on this machine,
# started with the ExecStart lines of deploy/systemd/locusta-master.service
# and locusta-worker.service (read from the units, not copied), settings
# passed as the LOCUSTA_* variables the units' environment files hold.
# Runs lua/examples/shop.lua against the built-in demo target on 127.0.0.1,
# prints the master's summary and what each worker reported, and exits with
# the master's exit code. Every process it starts is stopped on exit.
#
#   deploy/local-cluster.sh N
#
# Environment (all optional):
#   LOCUSTA_BIN                the binary (default: target/release/locusta, else `locusta` on PATH)
#   LOCUSTA_LOCAL_RUN_TIME     how long the swarm runs (default 30s)
#   LOCUSTA_LOCAL_USERS        users in all (default 20 per worker)
#   LOCUSTA_LOCAL_TARGET       a target URL instead of the built-in demo target
#   LOCUSTA_LOCAL_SCRIPT       the script (default lua/examples/shop.lua)
#   LOCUSTA_LOCAL_MASTER_PORT  the master's port (default: a free one)
#   LOCUSTA_LOCAL_DIR          where logs and reports go (default: a new temp dir)
set -euo pipefail

usage() {
  echo "usage: $0 N   (N workers, 1..64)" >&2
  exit 2
}
[[ $# -eq 1 && $1 =~ ^[0-9]+$ ]] || usage
workers=$1
((workers >= 1 && workers <= 64)) || usage

repo=$(cd "$(dirname "$0")/.." && pwd)
bin=${LOCUSTA_BIN:-$repo/target/release/locusta}
if [[ ! -x $bin ]]; then
  bin=$(command -v locusta) || {
    echo "local-cluster: no locusta binary: run \`cargo build --release\` or set LOCUSTA_BIN" >&2
    exit 2
  }
fi
script=${LOCUSTA_LOCAL_SCRIPT:-$repo/lua/examples/shop.lua}
run_time=${LOCUSTA_LOCAL_RUN_TIME:-30s}
users=${LOCUSTA_LOCAL_USERS:-$((20 * workers))}
dir=${LOCUSTA_LOCAL_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/locusta-local.XXXXXX")}
mkdir -p "$dir"

# The command line a unit runs, with the binary and script of this checkout.
unit_command() {
  local unit=$repo/deploy/systemd/$1 line
  line=$(grep -m1 '^ExecStart=' "$unit") || {
    echo "local-cluster: no ExecStart= in $unit" >&2
    exit 2
  }
  line=${line#ExecStart=}
  line=${line//\/usr\/local\/bin\/locusta/$bin}
  echo "${line//\/etc\/locusta\/locustfile.lua/$script}"
}
read -r -a master_cmd <<<"$(unit_command locusta-master.service)"
read -r -a worker_cmd <<<"$(unit_command locusta-worker.service)"

pids=()
# shellcheck disable=SC2329 # called by the EXIT trap
cleanup() {
  local pid
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for _ in $(seq 50); do
    local alive=0
    for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    ((alive)) || break
    sleep 0.1
  done
  for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Wait until FILE has a line matching REGEX (printed), or give up after SECONDS.
wait_line() {
  local file=$1 regex=$2 seconds=$3 pid=$4
  for _ in $(seq $((seconds * 10))); do
    if grep -m1 -oE "$regex" "$file" 2>/dev/null; then return 0; fi
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  echo "local-cluster: \`$regex\` did not show in $file:" >&2
  cat "$file" >&2
  return 1
}

# CPUs this script may use, one per line (e.g. "0-3,8" -> 0 1 2 3 8).
allowed_cpus() {
  local list part
  list=$(awk '/^Cpus_allowed_list:/ {print $2}' /proc/self/status)
  IFS=, read -r -a parts <<<"$list"
  for part in "${parts[@]}"; do
    if [[ $part == *-* ]]; then seq "${part%-*}" "${part#*-}"; else echo "$part"; fi
  done
}
mapfile -t cpus < <(allowed_cpus)
# Disjoint CPU sets: one for the master when there is room, the rest split
# evenly among the workers; too few CPUs (or no taskset): nothing is pinned.
worker_sets=()
master_set=""
if command -v taskset >/dev/null && ((${#cpus[@]} >= workers)); then
  first=0
  if ((${#cpus[@]} > workers)); then
    master_set=${cpus[0]}
    first=1
  fi
  per=$(((${#cpus[@]} - first) / workers))
  for ((i = 0; i < workers; i++)); do
    set_list=$(printf '%s,' "${cpus[@]:first+i*per:per}")
    worker_sets+=("${set_list%,}")
  done
else
  echo "local-cluster: ${#cpus[@]} CPU(s) for $workers worker(s): not pinning" >&2
fi

# The command prefix that pins to CPU set $1 (CPUAffinity= in the units).
pin_prefix() {
  [[ -z $1 ]] || printf '%s\n' taskset -c "$1"
}

target=${LOCUSTA_LOCAL_TARGET:-}
if [[ -z $target ]]; then
  # The built-in demo target, served by a `--demo` run whose only user idles.
  cat >"$dir/idle.lua" <<'EOF'
local locusta = require "locusta"
local Idle = locusta.user { name = "Idle", wait_time = locusta.constant(3600) }
Idle:task(1, function(self) end)
EOF
  "$bin" --demo -f "$dir/idle.lua" --shards 1 -u 1 -r 1 -t 1h --only-summary \
    >"$dir/target.out" 2>"$dir/target.err" </dev/null &
  pids+=($!)
  target=$(wait_line "$dir/target.err" 'http://127\.0\.0\.1:[0-9]+' 10 "${pids[-1]}")
fi

port=${LOCUSTA_LOCAL_MASTER_PORT:-}
if [[ -z $port ]]; then
  for _ in $(seq 50); do
    port=$((20000 + RANDOM % 20000))
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null || break
  done
fi

echo "local-cluster: $workers worker(s), $users users for $run_time against $target; logs in $dir"
echo "+ ${master_cmd[*]}${master_set:+   (CPUs $master_set)}"
(
  export LOCUSTA_MASTER_BIND_HOST=127.0.0.1 LOCUSTA_MASTER_BIND_PORT=$port
  export LOCUSTA_WEB_HOST=127.0.0.1 LOCUSTA_WEB_PORT=0
  export LOCUSTA_HOST=$target LOCUSTA_EXPECT_WORKERS=$workers LOCUSTA_EXPECT_WORKERS_MAX_WAIT=30s
  export LOCUSTA_HEADLESS=true LOCUSTA_USERS=$users LOCUSTA_SPAWN_RATE=$users
  export LOCUSTA_RUN_TIME=$run_time LOCUSTA_ONLY_SUMMARY=true
  export LOCUSTA_CSV=$dir/run LOCUSTA_HTML=$dir/report.html LOCUSTA_JSON_FILE=$dir/stats.json
  # The demo target fails some requests on purpose (as `--demo` does, they
  # do not fail the rehearsal); a real target keeps the default.
  [[ -n ${LOCUSTA_LOCAL_TARGET:-} ]] || export LOCUSTA_EXIT_CODE_ON_ERROR=0
  mapfile -t pin < <(pin_prefix "$master_set")
  exec "${pin[@]}" "${master_cmd[@]}"
) >"$dir/master.out" 2>"$dir/master.err" </dev/null &
master=$!
pids+=("$master")
wait_line "$dir/master.err" 'Waiting for workers' 10 "$master" >/dev/null

worker_pids=()
for ((i = 0; i < workers; i++)); do
  set=${worker_sets[i]:-}
  echo "+ ${worker_cmd[*]}${set:+   (CPUs $set)}"
  (
    export LOCUSTA_MASTER_HOST=127.0.0.1 LOCUSTA_MASTER_PORT=$port
    mapfile -t pin < <(pin_prefix "$set")
    exec "${pin[@]}" "${worker_cmd[@]}"
  ) >"$dir/worker$i.out" 2>"$dir/worker$i.err" </dev/null &
  pids+=($!)
  worker_pids+=($!)
done

# Where to watch it while it runs (Prometheus' view: <url>metrics).
for _ in $(seq 100); do
  url=$(grep -m1 -oE 'Web UI and API on http://[^ ]+' "$dir/master.err" 2>/dev/null) && break
  kill -0 "$master" 2>/dev/null || break
  sleep 0.1
done
[[ -z ${url:-} ]] || echo "local-cluster: ${url#Web UI and API on }metrics while it runs"

code=0
wait "$master" || code=$?
grep -E 'All users spawned' "$dir/master.err" | sed 's/^/master: /' || true
cat "$dir/master.out"
for ((i = 0; i < workers; i++)); do
  # Workers quit when the master does; a stuck one is stopped by cleanup.
  for _ in $(seq 100); do kill -0 "${worker_pids[i]}" 2>/dev/null || break; sleep 0.1; done
  line=$(grep -m1 -oE 'reported [0-9]+ requests \([0-9]+ failures\)' "$dir/worker$i.err" ||
    echo "reported nothing (see $dir/worker$i.err)")
  echo "local-cluster: worker $i on CPUs ${worker_sets[i]:-any}: $line"
done
echo "local-cluster: master exit code $code; reports in $dir"
exit "$code"
