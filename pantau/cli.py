"""The ``pantau`` command line."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence

from core.errors import PantauError
from pantau import __version__
from pantau.config import load_settings, reference

EPILOG = """\
Settings come from the TOML file given with --config (see config/pantau.example.toml) and are
overridden by PANTAU_* environment variables, e.g. PANTAU_MQTT_URL, PANTAU_INFLUX_URL.
`pantau settings` lists every setting.
"""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="pantau", description="Pantau: IoT and sensor command-center backend "
        "(MQTT in, numpy processing, InfluxDB out).", epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action="version", version=f"pantau {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)
    run = sub.add_parser("run", help="run the ingest service (MQTT -> processors -> InfluxDB)",
                         description="Subscribe to device telemetry, process it and store it in "
                         "InfluxDB; serve /healthz, /readyz, /metrics and /api/devices.")
    run.add_argument("--config", metavar="FILE", help="settings TOML file")
    sub.add_parser("settings", help="print the reference of every setting (Markdown)")
    sub.add_parser("bench", help="end-to-end benchmark on a private local stack "
                   "(`pantau bench --help`)", add_help=False)
    sub.add_parser("faults", help="fault suite: kill, freeze and cut the broker and the "
                   "database under load, print the scoreboard (`pantau faults --help`)",
                   add_help=False)
    chk = sub.add_parser("check", help="validate the settings and the device registry, then exit")
    chk.add_argument("--config", metavar="FILE", help="settings TOML file")
    from pantau.devices_cli import add_parsers
    add_parsers(sub)  # `pantau devices ...`, `pantau simulate`
    from pantau.grafana_cli import add_parsers as add_grafana
    add_grafana(sub)  # `pantau grafana export`
    from pantau.tokens_cli import add_parser as add_tokens_parser
    add_tokens_parser(sub)  # `pantau tokens ...`
    from pantau.alerts_cli import add_parsers as add_alerts
    add_alerts(sub)  # `pantau alerts config|rules-doc`
    return p


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["bench"]:  # its own parser: `pantau bench --help`
        from pantau.bench import main as bench
        return bench(argv[1:])
    if argv[:1] == ["faults"]:  # its own parser: `pantau faults --help`
        from pantau.faults import main as faults
        return faults(argv[1:])
    args = _parser().parse_args(argv)
    try:
        if args.command == "settings":
            sys.stdout.write(reference())
            return 0
        settings = load_settings(getattr(args, "config", None))
        logging.basicConfig(level=settings.log_level.upper(),
                            format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        if args.command == "check":
            from devices.series import SeriesTable
            from pantau.app import load_configured_registry
            from processors import ProcessorContext, build_chain
            registry = load_configured_registry(settings)
            table = SeriesTable.from_registry(registry)
            ing = settings.ingest
            chain = build_chain(ing.processors, ProcessorContext(table, ing.range_mode,
                                                                 settings.processors))
            derived = len(chain.table or table) - len(table)
            print(f"ok: {len(registry.devices)} devices, {len(table)} series in "
                  f"{registry.source}; processors {', '.join(chain.names)} "
                  f"({derived} derived series)")
            from pantau.alerts_cli import check_rules
            print(f"ok: {check_rules(settings, chain.table)}")
            return 0
        if args.command == "run":
            from pantau.app import run
            asyncio.run(run(settings))
            return 0
        if args.command == "tokens":
            from pantau.tokens_cli import run_command as tokens_command
            return tokens_command(args, settings)
        if args.command == "alerts":
            from pantau.alerts_cli import run_command as alerts_command
            return alerts_command(args, settings)
        if args.command == "grafana":
            from pantau.grafana_cli import run_command as grafana_command
            return grafana_command(args, settings)
        if args.command in ("devices", "simulate"):
            from pantau.devices_cli import run_command
            return run_command(args, settings)
    except PantauError as e:
        print(f"pantau: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 1


if __name__ == "__main__":
    sys.exit(main())
