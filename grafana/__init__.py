"""Grafana: the command center's dashboards, generated from the device registry and the write
schema, exported as provisioning files or pushed to a running Grafana.

- `sources.Sources`: what the dashboards may read (registry + `ingest.schema` + chain);
- `influxql`: Pantau's InfluxQL query type for grafana-foundation-sdk (`Select`, `InfluxQL`);
- `panels`, `board`: the shared look, ids and layout; `dashboards.*`: one module each;
- `dashboards.build_all`: every dashboard as Grafana JSON, in a fixed order;
- `export`: provisioning files (dashboards, folder, data sources, the devices' gazetteer);
- `sync`: the same through Grafana's HTTP API (grafana-client);
- `validate`: the offline checks every dashboard passes; `render.expand`: a query with
  Grafana's macros and variables replaced as Grafana would.
"""
