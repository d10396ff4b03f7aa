#!/bin/bash
# Runs once, after InfluxDB's own setup (docker-entrypoint-initdb.d). Creates the
# least-privilege tokens Pantau and Grafana use, and the DBRP mapping InfluxQL needs.
set -euo pipefail
out=/run/pantau-secrets
mkdir -p "$out"
bucket_id=$(influx bucket list --name "$DOCKER_INFLUXDB_INIT_BUCKET" --hide-headers | cut -f1)
influx v1 dbrp create --db "$DOCKER_INFLUXDB_INIT_BUCKET" --rp autogen \
    --bucket-id "$bucket_id" --default
# Pantau: write to its bucket, nothing else.
influx auth create --description pantau-write --write-bucket "$bucket_id" --hide-headers \
    | cut -f3 > "$out/pantau-write.token"
# Grafana: read its bucket, nothing else.
influx auth create --description grafana-read --read-bucket "$bucket_id" --hide-headers \
    | cut -f3 > "$out/grafana-read.token"
chmod 0644 "$out"/*.token
