"""``pantau grafana export DIR``: the command center as Grafana provisioning files (see
`grafana.export`), generated from the configured registry, processor chain and settings."""

from __future__ import annotations

import argparse
from typing import Any

from pantau.settings import Settings


def add_parsers(sub: Any) -> None:
    """Add ``grafana`` to the ``pantau`` subparsers action ``sub``."""
    g = sub.add_parser("grafana", help="dashboards: export provisioning files")
    gsub = g.add_subparsers(dest="grafana_command", metavar="ACTION", required=True)
    exp = gsub.add_parser("export", help="write dashboards, folder, data sources and the "
                          "devices' gazetteer as Grafana provisioning files into DIR")
    exp.add_argument("directory", metavar="DIR")
    exp.add_argument("--config", metavar="FILE", help="settings TOML file")


def run_command(args: argparse.Namespace, settings: Settings) -> int:
    from grafana.export import export
    from grafana.sources import Sources
    from pantau.app import load_configured_registry

    src = Sources.build(load_configured_registry(settings), settings.ingest.processors,
                        settings.processors)
    paths = export(args.directory, src, settings.influx, settings.grafana)
    print(f"wrote {len(paths)} files to {args.directory} ({len(src.registry.devices)} devices)")
    return 0
