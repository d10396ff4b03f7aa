"""``pantau grafana export DIR`` and ``pantau grafana sync``: the command center, generated
from the configured registry, processor chain and settings, as Grafana provisioning files
(`grafana.export`) or pushed to a running Grafana over its HTTP API (`grafana.sync`).
Errors are `PantauError` (the CLI prints them, exit status 2)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from devices.registry import Registry
    from grafana.sources import Sources
    from pantau.settings import Settings

GRAFANA_HELP = """\
The command center's Grafana dashboards are generated from the device registry and what
Pantau writes to InfluxDB; nothing is edited by hand. Two ways to get them into Grafana:

  export DIR  write provisioning files; Grafana loads them at start (docker compose mounts
              deploy/grafana, see docker-compose.yml and the README)
  sync        push the same to a running Grafana over its HTTP API (a service-account token)

Run either again after a registry change: only what changed is rewritten.
"""

EXPORT_HELP = """\
Write into DIR (created if needed; dashboards no longer generated are removed from it):

  DIR/provisioning/datasources/pantau.yaml  InfluxDB (InfluxQL) and Alertmanager
  DIR/provisioning/dashboards/pantau.yaml   loads DIR/dashboards into the folder "Pantau"
  DIR/dashboards/<uid>.json                 one file per dashboard
  DIR/gazetteer/pantau-devices.json         every device's coordinates, for the map

To load them, mount DIR/provisioning at /etc/grafana/provisioning, DIR/dashboards at
/var/lib/grafana/dashboards/pantau and the gazetteer at
/usr/share/grafana/public/gazetteer/pantau-devices.json, as docker-compose.yml does with
deploy/grafana. Grafana picks up changed dashboards within a minute, data sources when it
restarts.

No secret is written: the InfluxDB data source reads its password or token inside Grafana's
container from grafana.influx_read_secret_file ($__file{...}). Where Grafana reaches InfluxDB
and Alertmanager: grafana.influx_url, grafana.alertmanager_url (`pantau settings`). For the
compose stack:

  PANTAU_INFLUX_API=v2 PANTAU_GRAFANA_INFLUX_URL=http://influxdb:8086 \\
  PANTAU_GRAFANA_ALERTMANAGER_URL=http://alertmanager:9093 pantau grafana export deploy/grafana
"""

SYNC_HELP = """\
Create or update, by uid, the folder "Pantau", the InfluxDB and Alertmanager data sources and
every dashboard in the Grafana at grafana.url (PANTAU_GRAFANA_URL), authenticated with a
service-account token of role Editor or Admin (PANTAU_GRAFANA_TOKEN or
PANTAU_GRAFANA_TOKEN_FILE; in Grafana: Administration > Users and access > Service
accounts). Only what differs is written: a second run changes nothing; --dry-run shows what
would change.

The data source's InfluxDB read-only password (1.x) or token (2.x) is
grafana.influx_read_secret (PANTAU_GRAFANA_INFLUX_READ_SECRET[_FILE]); it is needed when the
data source is created, and sent again only with --rotate-secrets (Grafana never returns it,
so a changed one cannot be detected). Data sources or dashboards Grafana provisioned from
files cannot be changed over the API: use `export` for those.

The map looks devices up in a gazetteer file Grafana serves, which the API cannot upload:
copy gazetteer/pantau-devices.json from `pantau grafana export` to Grafana's
public/gazetteer/.
"""


def add_parsers(sub: Any) -> None:
    """Add ``grafana`` to the ``pantau`` subparsers action ``sub``."""
    raw = argparse.RawDescriptionHelpFormatter
    g = sub.add_parser("grafana", help="the command-center dashboards: export them as "
                       "provisioning files or sync them into a running Grafana",
                       description=GRAFANA_HELP, formatter_class=raw)
    gsub = g.add_subparsers(dest="grafana_command", metavar="ACTION", required=True)
    exp = gsub.add_parser("export", help="write dashboards, data sources, folder and the map's "
                          "gazetteer as Grafana provisioning files into DIR",
                          description=EXPORT_HELP, formatter_class=raw)
    exp.add_argument("directory", metavar="DIR", help="where to write (deploy/grafana for the "
                     "compose stack)")
    exp.add_argument("--config", metavar="FILE", help="settings TOML file")
    syn = gsub.add_parser("sync", help="create or update the same in a running Grafana over "
                          "its HTTP API", description=SYNC_HELP, formatter_class=raw)
    syn.add_argument("--config", metavar="FILE", help="settings TOML file")
    syn.add_argument("--dry-run", action="store_true",
                     help="only read Grafana and print what would change")
    syn.add_argument("--rotate-secrets", action="store_true",
                     help="send the InfluxDB read credential again even if Grafana holds one")


def sources(settings: Settings, registry: Registry | None = None) -> Sources:
    """What the dashboards may read with these settings (``registry``: instead of the
    configured one): the registry, the chain's fields and every metric Pantau writes about
    itself, the alerts package's included (the grafana layer cannot import alerts/)."""
    import alerts
    from core.metrics import collect_help
    from grafana.sources import Sources
    from pantau.app import load_configured_registry
    return Sources.build(registry or load_configured_registry(settings),
                         settings.ingest.processors, settings.processors,
                         more_metrics=collect_help(alerts))


def run_command(args: argparse.Namespace, settings: Settings) -> int:
    src = sources(settings)
    if args.grafana_command == "sync":
        from grafana.sync import sync
        result = sync(src, settings.influx, settings.grafana, dry_run=args.dry_run,
                      rotate_secrets=args.rotate_secrets)
        done = {"create": "created", "update": "updated"}
        for step in result.changed:
            verb = "would " + step.action if args.dry_run else done[step.action]
            print(f"{step.kind} {step.uid}: {verb}" + (f" ({step.why})" if step.why else ""))
        n = {a: sum(s.action == a for s in result.steps) for a in ("create", "update", "keep")}
        create, update = ("would create", "would update") if args.dry_run else (
            "created", "updated")
        print(f"Grafana {result.version} at {result.url}: {create} {n['create']}, {update} "
              f"{n['update']}, unchanged {n['keep']} (folder, data sources, dashboards; "
              f"{len(src.registry.devices)} devices)")
        if result.gazetteer_needed:
            print("the map needs the devices' gazetteer: copy gazetteer/pantau-devices.json "
                  "of `pantau grafana export` to Grafana's public/gazetteer/")
        return 0
    from grafana.export import export
    paths = export(args.directory, src, settings.influx, settings.grafana)
    print(f"wrote {len(paths)} files to {args.directory} ({len(src.registry.devices)} devices)")
    return 0
