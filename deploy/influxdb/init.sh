#!/bin/bash
# Runs once, after InfluxDB's own setup (docker-entrypoint-initdb.d). Creates the
# least-privilege tokens Pantau and Grafana use, Pantau's read-only v1 user, and the DBRP
# mappings InfluxQL needs (Pantau's warm-up and every Grafana panel speak InfluxQL: the raw
# bucket as retention policy `autogen`, the tiers as `tier_1m` / `tier_1h` of database
# `$DOCKER_INFLUXDB_INIT_BUCKET`, the names InfluxDB 1.x gives them too).
# Each service's secrets go to a volume only that service mounts (docker-compose.yml).
set -euo pipefail
out=/run/pantau-secrets
grafana_out=/run/grafana-secrets
# Each secret is born with its final mode 0644 (the consumer runs as another uid, and this
# script cannot chown: the volume, mounted by that service only, is what keeps it private),
# under a temporary name, and renamed into place once complete: never wider than that, never
# read half-written. Whatever umask the image sets, nothing is group- or world-writable.
umask 022
mkdir -p "$out" "$grafana_out"
put() {  # put FILE: stdin -> FILE
    cat > "$1.tmp.$$" && mv -f "$1.tmp.$$" "$1"
}
bucket_id=$(influx bucket list --name "$DOCKER_INFLUXDB_INIT_BUCKET" --hide-headers | cut -f1)
influx v1 dbrp create --db "$DOCKER_INFLUXDB_INIT_BUCKET" --rp autogen \
    --bucket-id "$bucket_id" --default
# The downsampled tiers Pantau writes beside the raw data (1 minute, 1 hour), kept longer.
tier_ids=()
for tier in 1m:730d 1h:0; do
    name="${DOCKER_INFLUXDB_INIT_BUCKET}_${tier%%:*}"
    influx bucket create --name "$name" --retention "${tier#*:}"
    id=$(influx bucket list --name "$name" --hide-headers | cut -f1)
    influx v1 dbrp create --db "$DOCKER_INFLUXDB_INIT_BUCKET" --rp "tier_${tier%%:*}" --bucket-id "$id"
    tier_ids+=("$id")
done
# Pantau: write to its buckets, nothing else.
influx auth create --description pantau-write --write-bucket "$bucket_id" \
    --write-bucket "${tier_ids[0]}" --write-bucket "${tier_ids[1]}" --hide-headers \
    | cut -f3 | put "$out/pantau-write.token"
# Grafana: read them, nothing else.
influx auth create --description grafana-read --read-bucket "$bucket_id" \
    --read-bucket "${tier_ids[0]}" --read-bucket "${tier_ids[1]}" --hide-headers \
    | cut -f3 | put "$grafana_out/grafana-influx-read"
# Pantau's warm-up (rebuilding processor state after a lost snapshot) reads its raw bucket
# back with InfluxQL through the v1 compatibility API: a v1 user that can read, nothing else.
head -c 24 /dev/urandom | base64 | tr -d '/+=' | put "$out/pantau-read.password"
influx v1 auth create --username pantau-read --password "$(cat "$out/pantau-read.password")" \
    --read-bucket "$bucket_id" --description pantau-read
