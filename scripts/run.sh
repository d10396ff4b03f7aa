#!/usr/bin/env bash
# Pantau's main job on one machine, from a fresh Debian checkout to data flowing:
#   .venv + pip install (when needed) -> Debian mosquitto + influxdb (installed if missing)
#   -> a local stack on free loopback ports (authenticated broker, per-device ACL,
#      InfluxDB with auth) -> `pantau run` -> `pantau sample` (sample traffic for every device)
# Ctrl-C stops everything; data and credentials stay in var/devstack for the next run.
set -uo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

ensure_venv
"$PY" -m pantau.devstack ensure || fail "python -m pantau.devstack ensure"

STACK=${PANTAU_DEVSTACK_DIR:-var/devstack}
HTTP=${PANTAU_HTTP_LISTEN:-127.0.0.1:8080}
mkdir -p "$STACK"
rm -f "$STACK/env.sh"
pids=()
cleanup() {
    trap - INT TERM EXIT
    step "stopping"
    # Pantau first, so it drains into InfluxDB before the stack goes away.
    for ((i=${#pids[@]}-1; i>=0; i--)); do kill -TERM "${pids[i]}" 2>/dev/null; wait "${pids[i]}" 2>/dev/null; done
}
trap cleanup INT TERM EXIT

step "local stack (Mosquitto + InfluxDB) in $STACK"
"$PY" -m pantau.devstack up --dir "$STACK" > "$STACK/devstack.out" 2>&1 &
pids+=($!)
for _ in $(seq 1 120); do [ -f "$STACK/env.sh" ] && break; sleep 0.5; kill -0 "${pids[0]}" 2>/dev/null || break; done
[ -f "$STACK/env.sh" ] || { cat "$STACK/devstack.out"; fail "the local stack did not start"; }
cat "$STACK/devstack.out"
# shellcheck disable=SC1091
. "$STACK/env.sh"
export PANTAU_HTTP_LISTEN=$HTTP PANTAU_STATE_DIR=${PANTAU_STATE_DIR:-var}

step "pantau run (HTTP on http://$HTTP)"
.venv/bin/pantau run &
pids+=($!)
ready() { "$PY" -c 'import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1]).read().decode())' "http://$HTTP/readyz"; }
for _ in $(seq 1 60); do ready >/dev/null 2>&1 && break; sleep 0.5; done
ready || fail "pantau did not become ready (see the log above)"
echo

step "pantau sample (sample telemetry from every registry device, 60x real time)"
.venv/bin/pantau sample --credentials "$STACK/devices.json" --speed 60 &
pids+=($!)

cat <<TXT

Pantau is running. Look at:
  http://$HTTP/api/devices        the registry's devices and their LWT status
  http://$HTTP/metrics            received / written / rejected-by-reason / unacked ...
  http://$HTTP/readyz             broker and database checks
  ${PANTAU_STATE_DIR}/deadletter.jsonl          every rejected message, with its reason
  InfluxDB (InfluxQL), e.g.:
    curl -sG "\$PANTAU_INFLUX_URL/query" -u "\$DEVSTACK_INFLUX_READER_USER:\$DEVSTACK_INFLUX_READER_PASSWORD" \\
      --data-urlencode db=$PANTAU_INFLUX_DATABASE --data-urlencode "q=SELECT last(*) FROM river_gauge GROUP BY device"
    (variables: . $STACK/env.sh)
Ctrl-C stops everything.
TXT
wait -n "${pids[@]}"
