#!/usr/bin/env bash
# Pantau's main job on one machine, from a fresh Debian checkout to data flowing:
#   .venv + pip install (when needed) -> Debian mosquitto + influxdb (installed if missing)
#   -> a local stack on free loopback ports (authenticated broker, per-device ACL,
#      InfluxDB with auth) -> `pantau run` -> `pantau simulate` (the simulated Blitar regency:
#      the last hours replayed at once, then every device live at its real cadence)
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
    trap "" INT TERM; trap - EXIT  # a second Ctrl-C must not cut the stop order short
    step "stopping"
    # Pantau first, so it drains into InfluxDB before the stack goes away.
    for ((i=${#pids[@]}-1; i>=0; i--)); do kill -TERM "${pids[i]}" 2>/dev/null; wait "${pids[i]}" 2>/dev/null; done
}
trap cleanup INT TERM EXIT

step "local stack (Mosquitto + InfluxDB) in $STACK"
# Its own session: Ctrl-C must not reach the stack directly, or InfluxDB would stop while
# Pantau drains into it; `cleanup` stops it last.
setsid "$PY" -m pantau.devstack up --dir "$STACK" > "$STACK/devstack.out" 2>&1 &
pids+=($!)
for _ in $(seq 1 120); do [ -f "$STACK/env.sh" ] && break; sleep 0.5; kill -0 "${pids[0]}" 2>/dev/null || break; done
[ -f "$STACK/env.sh" ] || { cat "$STACK/devstack.out"; fail "the local stack did not start"; }
cat "$STACK/devstack.out"
# shellcheck disable=SC1091
. "$STACK/env.sh"
export PANTAU_HTTP_LISTEN=$HTTP PANTAU_STATE_DIR=${PANTAU_STATE_DIR:-var}

# The HTTP API answers 401 without a token: a fresh viewer one per run, kept 0600 in the stack.
step "a viewer token for the HTTP API in $STACK/api-token"
.venv/bin/pantau tokens revoke demo-viewer >/dev/null 2>&1
(umask 077; .venv/bin/pantau tokens create --role viewer --name demo-viewer > "$STACK/api-token" 2>/dev/null) \
    || fail "pantau tokens create"

# Alerts: Debian's Alertmanager with the configuration generated from the shipped rules
# (`pantau alerts config`), delivering to a local receiver that prints each notification.
step "Alertmanager (Debian) and a local receiver: notifications print here"
rm -f "$STACK/alertmanager/url"
setsid "$PY" -m pantau.devstack.alertmanager "$STACK/alertmanager" &
pids+=($!)
for _ in $(seq 1 60); do [ -s "$STACK/alertmanager/url" ] && break; sleep 0.5; done
[ -s "$STACK/alertmanager/url" ] || fail "Alertmanager did not start (see above)"
export PANTAU_ALERTS_ALERTMANAGER_URLS=$(cat "$STACK/alertmanager/url") PANTAU_ALERTS_PUBLIC_URL=http://$HTTP

step "pantau run (HTTP on http://$HTTP)"
.venv/bin/pantau run &
pids+=($!)
ready() { "$PY" -c 'import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1]).read().decode())' "http://$HTTP/readyz"; }
for _ in $(seq 1 60); do ready >/dev/null 2>&1 && break; sleep 0.5; done
ready || fail "pantau did not become ready (see the log above)"
echo

# Devices stamp readings with their own (simulated) clock, and Pantau rejects readings more
# than ingest.max_future_s (300 s) ahead: a simulation faster than real time would be refused
# within 300 / (speed - 1) s. So one simulator starts the past hours ago, replays them flat
# out (the dashboards have curves at once) and then goes on live at speed 1 with the same
# world: a second, fresh simulator would put every river back at its dry-season level, a
# step the anomaly z-score flags.
BACKFILL_H=${PANTAU_DEMO_BACKFILL_H:-24}
# Devices connect to the broker's devices listener, which binds each one's client id to its
# device id (Pantau uses the services listener of PANTAU_MQTT_URL).
step "pantau simulate: the last $BACKFILL_H h of Blitar replayed as fast as Pantau takes it, then every device live at its real cadence (own credentials and LWT)"
env PANTAU_MQTT_URL="$DEVSTACK_MQTT_DEVICES_URL" .venv/bin/pantau simulate \
    --credentials "$STACK/devices.json" --scenario normal --backfill "$BACKFILL_H" --speed 1 &
pids+=($!)

cat <<TXT

Pantau is running. The /api/ routes need the viewer token kept in $STACK/api-token, e.g.
  curl -H "Authorization: Bearer \$(cat $STACK/api-token)" http://$HTTP/api/devices
Look at:
  http://$HTTP/api/devices        every device: online/offline, last seen, battery
  http://$HTTP/api/devices?status=offline    filters: kind, site, status
  http://$HTTP/api/devices/wl-brantas-kanigoro           one device, its last values
  http://$HTTP/api/devices/wl-brantas-kanigoro/history   its online/offline history
  http://$HTTP/api/alerts         alerts (pending, firing, resolved); /api/alerts/history
  $STACK/alertmanager/notifications.jsonl   what Alertmanager delivered (also printed here)
  http://$HTTP/metrics            received / written / rejected-by-reason / unacked ...
  http://$HTTP/readyz             broker and database checks
  ${PANTAU_STATE_DIR}/deadletter.jsonl          every rejected message, with its reason
  InfluxDB (InfluxQL), e.g.:
    curl -sG "\$PANTAU_INFLUX_URL/query" -u "\$DEVSTACK_INFLUX_READER_USERNAME:\$DEVSTACK_INFLUX_READER_PASSWORD" \\
      --data-urlencode db=$PANTAU_INFLUX_DATABASE --data-urlencode "q=SELECT last(*) FROM river_gauge GROUP BY device"
    (variables: . $STACK/env.sh)
Ctrl-C stops everything.
TXT
wait -n "${pids[@]}"
