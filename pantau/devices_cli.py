"""``pantau devices ...`` and ``pantau simulate``: argparse wiring over `devices` functions.

`add_parsers()` registers both subcommands on the ``pantau`` parser; `run_command()` runs one
and returns the exit status. Errors are `PantauError` (the CLI prints them, exit status 2).
The registry edited or read is ``--registry`` when given, else the configured one.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.errors import PantauError
from devices import topics
from devices.calibration import CalibrationPeriod
from devices.catalogue import NewDevice, add_device, remove_device
from devices.registry import Device, Registry, default_registry_path, load_registry
from devices.simulator.scenarios import SCENARIOS

if TYPE_CHECKING:
    from devices.simulator import Message
    from pantau.settings import Settings

COMMANDS = ("devices", "simulate")


def _param(text: str) -> tuple[str, float]:
    name, sep, value = text.partition("=")
    try:
        if not sep:
            raise ValueError
        return name, float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not NAME=NUMBER") from None


def add_parsers(sub: Any) -> None:
    """Add ``devices`` and ``simulate`` to the ``pantau`` subparsers action ``sub``."""
    dev = sub.add_parser("devices", help="list, show, add and remove registry devices; "
                         "generate their MQTT credentials and ACL")
    dev.add_argument("--config", metavar="FILE", help="settings TOML file (registry)")
    dev.add_argument("--registry", metavar="YAML", help="registry file (default: configured)")
    dsub = dev.add_subparsers(dest="devices_command", metavar="ACTION", required=True)
    lst = dsub.add_parser("list", help="one line per device")
    lst.add_argument("--kind")
    lst.add_argument("--site")
    dsub.add_parser("show", help="one device as JSON").add_argument("id")
    add = dsub.add_parser("add", help="add a device (comments and layout are kept)")
    add.add_argument("id")
    add.add_argument("--kind", required=True)
    add.add_argument("--site", required=True)
    add.add_argument("--lat", type=float, help="default: the site's")
    add.add_argument("--lon", type=float, help="default: the site's")
    add.add_argument("--name", default="")
    add.add_argument("--interval", type=float, dest="interval_s", help="default: the kind's")
    add.add_argument("--river", help="the river a gauge stands on (see --param river_km=)")
    add.add_argument("--param", type=_param, action="append", default=[], metavar="NAME=NUM")
    dsub.add_parser("remove", help="remove a device").add_argument("id")
    rec = dsub.add_parser("recalibrate", help="re-apply a corrected calibration to the data "
                          "already stored for a period", description=RECALIBRATE_HELP,
                          formatter_class=argparse.RawDescriptionHelpFormatter)
    rec.add_argument("id", metavar="DEVICE")
    rec.add_argument("--metric", action="append", default=[], metavar="M",
                     help="repeatable (default: every metric whose calibration differs)")
    rec.add_argument("--since", required=True, metavar="ISO",
                     help="YYYY-MM-DD (UTC), a date-time with a zone, or epoch ns")
    rec.add_argument("--until", metavar="ISO", help="exclusive (default: now)")
    rec.add_argument("--old-registry", required=True, metavar="YAML",
                     help="the registry the stored data was calibrated with ('-': stdin)")
    rec.add_argument("--dry-run", action="store_true", help="read and compute, write nothing")
    rec.add_argument("--page-size", type=int, default=5000, metavar="N",
                     help="points per query and per write")
    prov = dsub.add_parser("provision", help="write credentials.json, passwd and acl for "
                           "Mosquitto (existing passwords kept); SIGHUP the broker to reload")
    prov.add_argument("--out", required=True, type=Path, metavar="DIR")
    prov.add_argument("--reload-pid", type=int, metavar="PID", help="SIGHUP this broker")

    sim = sub.add_parser("simulate", help="simulate the regency's devices over MQTT",
                         description="Every device of the registry behaves like the real "
                         "thing; see devices/simulator/__init__.py.")
    sim.add_argument("--config", metavar="FILE", help="settings TOML file (registry, mqtt.url)")
    sim.add_argument("--registry", metavar="YAML", help="registry file (default: configured)")
    sim.add_argument("--credentials", metavar="JSON",
                     help="username -> password (from `pantau devices provision`)")
    sim.add_argument("--scenario", default="normal", choices=tuple(SCENARIOS))
    sim.add_argument("--seed", type=int, default=0)
    sim.add_argument("--speed", type=float, default=1.0,
                     help="simulated seconds per real second (default 1: real cadences)")
    sim.add_argument("--flat-out", action="store_true", help="no pacing: publish as fast as "
                     "the broker acknowledges (benchmarks)")
    sim.add_argument("--duration", type=float, default=0.0,
                     help="simulated seconds to run (default: until Ctrl-C)")
    sim.add_argument("--start", help="simulated start time, ISO 8601 (default: now)")
    sim.add_argument("--backfill", type=float, default=0.0, metavar="HOURS",
                     help="start HOURS before now, replay them flat out, then go on live at "
                     "--speed (--duration counts from then) with the same world: no step "
                     "between the replay and the live feed, as two runs would make")
    sim.add_argument("--fleet", type=int, default=0, metavar="N",
                     help="grow the registry to N devices (clones near the originals)")
    sim.add_argument("--write-registry", type=Path, metavar="YAML",
                     help="write the (grown) registry here and exit: Pantau must load it")
    sim.add_argument("--mux", metavar="USER", help="one connection as USER publishes for "
                     "every device (large fleets); USER needs write on <prefix>/#")
    sim.add_argument("--fault", action="append", default=[], metavar="KIND[=FRACTION]",
                     help="stuck, spikes, dropouts, offline, skew, malformed (repeatable)")
    sim.add_argument("--dry-run", action="store_true", help="print messages, no MQTT")


RECALIBRATE_HELP = """\
Stored values are calibrated (raw * gain + offset, the factors in force at each reading's
time). After a calibration period was added or corrected in the registry, this rewrites the
points of DEVICE stored between --since and --until with the new factors: it compares the
calibration of --old-registry (what the data was written with) with the current registry,
refuses when they agree over the period, reads the points that differ (as
influx.read_username), and overwrites them in place (as influx.username; same measurement,
tags, timestamps). With the registry in git:

  git show HEAD~1:devices/data/blitar.yaml | pantau devices recalibrate wl-1 \\
      --since 2026-03-01 --until 2026-03-20T09:00:00+07:00 --old-registry - --dry-run

Running it twice corrects twice. Points ingested after `pantau run` loaded the new registry
already carry the new factors: end --until at that moment. Derived fields (flags, flood
stage, z-scores) and tiers are not recomputed.
"""


def _registry_path(args: argparse.Namespace, settings: Settings) -> Path:
    return Path(args.registry or settings.registry or default_registry_path())


def _row(d: Device) -> str:
    return f"{d.id:<28} {d.kind:<16} {d.site:<12} {d.lat:>9.4f} {d.lon:>9.4f} {d.interval_s:>6g}"


def describe(d: Device, prefix: str = "pantau") -> dict[str, Any]:
    """One device as a JSON-ready mapping (what ``pantau devices show`` prints); a metric's
    ``calibration`` lists its dated periods (empty: ``gain``/``offset`` at all times)."""
    return {"id": d.id, "name": d.name, "kind": d.kind, "site": d.site, "lat": d.lat,
            "lon": d.lon, "interval_s": d.interval_s, "owner": d.owner, "contact": d.contact,
            "tags": dict(d.tags), "params": dict(d.params),
            "topics": dict(zip(topics.CHANNELS, topics.device_topics(prefix, d.site, d.id),
                               strict=True)),
            "metrics": {m.name: {"unit": m.unit, "min": m.min, "max": m.max, "gain": m.gain,
                                 "offset": m.offset, "calibration": [_period(p)
                                                                     for p in m.calibration]}
                        for m in d.metrics}}


def _period(p: CalibrationPeriod) -> dict[str, Any]:
    return {"from": p.start.isoformat().replace("+00:00", "Z"), "gain": p.gain,
            "offset": p.offset, "note": p.note}


def _recalibrate(args: argparse.Namespace, path: Path, settings: Settings) -> int:
    import asyncio

    from devices.recalibrate_plan import iso as t
    from devices.recalibrate_plan import load_old_registry, make_plan, parse_instant
    from ingest.recalibrate import run

    until = parse_instant(args.until) if args.until else time.time_ns()
    plan = make_plan(load_old_registry(args.old_registry), load_registry(path), args.id,
                     args.metric, parse_instant(args.since), until)
    verb = "would recalibrate" if args.dry_run else "recalibrating"
    print(f"{verb} {plan.device.id} ({plan.device.kind}) from {t(plan.since_ns)} to {t(until)}:")
    for mp in plan.metrics:
        for s in mp.segments:
            print(f"  {mp.metric.name} {t(s.start_ns)} .. {t(s.end_ns)}: gain {s.old[0]:g} "
                  f"offset {s.old[1]:g} -> gain {s.new[0]:g} offset {s.new[1]:g}")

    def progress(done: int, total: int) -> None:
        print(f"  {done}/{total} points", flush=True)

    summary = asyncio.run(run(plan, settings.influx, dry_run=args.dry_run,
                              page_size=args.page_size, progress=progress))
    for line in summary.examples:
        print(f"  e.g. {line}")
    counts = ", ".join(f"{m} {n}" for m, n in summary.per_metric.items())
    print(f"{'would rewrite' if args.dry_run else 'rewrote'} {summary.done} points of "
          f"{plan.device.id} ({counts}) in {summary.writes} writes")
    for m, n in summary.out_of_range.items():
        if n:
            print(f"warning: {n} new {m} values are outside its valid range")
    if summary.done and not args.dry_run:
        print("derived fields (flags, flood stage, z-scores) and tiers were not recomputed")
    return 0


def _devices(args: argparse.Namespace, settings: Settings) -> int:
    path = _registry_path(args, settings)
    action = args.devices_command
    if action == "add":
        d = add_device(path, NewDevice(args.id, args.kind, args.site, args.lat, args.lon,
                                       args.name, args.interval_s, args.river,
                                       dict(args.param)))
        print(f"added {d.id} ({d.kind} at {d.site}) to {path}")
        return 0
    if action == "remove":
        remove_device(path, args.id)
        print(f"removed {args.id} from {path}")
        return 0
    if action == "recalibrate":
        return _recalibrate(args, path, settings)
    registry: Registry = load_registry(path)
    prefix = settings.mqtt.topic_prefix
    if action == "list":
        rows = [d for d in registry.devices if args.kind in (None, d.kind)
                and args.site in (None, d.site)]
        print(f"{'id':<28} {'kind':<16} {'site':<12} {'lat':>9} {'lon':>9} {'every':>6}")
        print("\n".join(_row(d) for d in rows))
        return 0
    if action == "show":
        found = registry.device(args.id)
        if found is None:
            raise PantauError(f"{path}: device {args.id!r} is not in the registry")
        print(json.dumps(describe(found, prefix), indent=2, default=str))
        return 0
    from devices.provision import provision, reload_broker

    done = provision(registry, args.out, prefix=prefix)
    if args.reload_pid:
        reload_broker(args.reload_pid)
    print(f"wrote {done.credentials}, {done.passwd}, {done.acl}: "
          f"{len(done.new_users)} new users, {len(done.removed_users)} removed")
    return 0


def run_command(args: argparse.Namespace, settings: Settings) -> int:
    """Run ``pantau devices ...`` or ``pantau simulate``; return the exit status."""
    if args.command == "devices":
        return _devices(args, settings)
    return _simulate(args, settings)


def _simulate(args: argparse.Namespace, settings: Settings) -> int:
    from datetime import datetime

    from devices.catalogue import load_rivers
    from devices.provision import load_credentials
    from devices.simulator import Simulator, parse_faults
    from devices.simulator.fleet import grow, write_registry
    from devices.simulator.publish import DevicePublisher, MuxPublisher, catch_up, run

    path = _registry_path(args, settings)
    registry = load_registry(path)
    rivers: Mapping[str, tuple[str, ...]] = load_rivers(path, registry)
    if args.fleet:
        registry, rivers = grow(registry, rivers, args.fleet, seed=args.seed)
    if args.write_registry:
        write_registry(registry, args.write_registry)
        print(f"wrote {len(registry.devices)} devices to {args.write_registry}")
        return 0
    if args.backfill and (args.start or args.flat_out):
        raise PantauError("pantau simulate: --backfill starts HOURS before now and then runs "
                          "live; it takes neither --start nor --flat-out")
    start = (datetime.fromisoformat(args.start).timestamp() if args.start
             else float(int(time.time())) - args.backfill * 3600)
    sim = Simulator(registry, scenario_name=args.scenario, seed=args.seed, start_s=start,
                    faults=parse_faults(args.fault), rivers=rivers,
                    prefix=settings.mqtt.topic_prefix)
    opts = {"speed": args.speed, "flat_out": args.flat_out, "duration_s": args.duration}

    def go(publish: Callable[[Message], None], pump: Callable[[], None] = lambda: None
           ) -> dict[str, int]:
        if args.backfill:  # the past flat out, then the same world live
            catch_up(sim, publish, pump=pump)
        return run(sim, publish, pump=pump, **opts)

    if args.dry_run:
        def show(m: Message) -> None:
            print(m.topic, m.payload.decode("utf-8", "replace"))
        go(show)
        return 0
    if not args.credentials:
        raise PantauError("pantau simulate: --credentials is required (or --dry-run)")
    creds = load_credentials(args.credentials)
    host, port = settings.mqtt.host, settings.mqtt.port
    pub: MuxPublisher | DevicePublisher
    if args.mux:
        if args.mux not in creds:
            raise PantauError(f"{args.credentials}: no password for {args.mux!r}")
        pub = MuxPublisher(host, port, args.mux, creds[args.mux])
    else:
        pub = DevicePublisher(host, port, sim, creds)
    try:
        counts = go(pub.publish, pub.pump)
    finally:
        pub.close()
    print(f"simulate: done, {counts}")
    return 0
