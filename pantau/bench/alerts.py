"""``pantau bench --alerts``: what the shipped alert rules cost per reading, on ~10,000 series.

In process, no broker or database: the Blitar registry grown to ``--devices`` devices (the
simulator's fleet clones: river gauges, air-quality stations, ... in the Blitar proportions),
``--minutes`` of the normal scenario from the simulator, in batches of ``--batch`` readings.
Each batch goes through the spine chain (calibration, range check, dedupe) and the default
domain chain, timed with the process CPU clock, and then the domain chain's output (readings and
derived rows, as the pipeline hands it over) through the rules (`alerts.evaluate.Evaluator`,
SQLite in a temporary directory). Prints the CPU per reading of each and the rules' share of the
spine's and of the domain chain's, and the cost of one periodic sweep over every slot.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from alerts.compile import compile_rules
from alerts.evaluate import Evaluator
from alerts.lifecycle import Book
from alerts.rules_yaml import default_rules_path, load_rules
from alerts.store import AlertDB
from core.batch import TelemetryBatch
from core.stored import Stored
from devices.catalogue import load_rivers
from devices.registry import default_registry_path, load_registry
from devices.series import SeriesTable
from devices.simulator import Message, Simulator
from devices.simulator.fleet import grow
from devices.simulator.publish import run
from pantau.settings import Settings
from processors import ProcessorContext, build_chain

SPINE = ("calibration", "range_check", "dedupe")


def _rows(sim: Simulator, table: SeriesTable, minutes: float) -> list[TelemetryBatch]:
    ts: list[int] = []
    series: list[int] = []
    values: list[float] = []

    def take(m: Message) -> None:
        parts = m.topic.split("/")
        if parts[-1] != "telemetry":
            return
        per = table.lookup[parts[2]]
        doc = json.loads(m.payload)
        for rec in doc if isinstance(doc, list) else [doc]:
            t = int(rec["ts"] * 1e9) if rec["ts"] < 1e11 else int(rec["ts"] * 1e6)
            for k, v in rec["values"].items():
                if k in per:
                    ts.append(t)
                    series.append(per[k])
                    values.append(float(v))

    run(sim, take, flat_out=True, duration_s=minutes * 60, report=lambda _: None)
    order = np.argsort(np.asarray(ts), kind="stable")
    return [TelemetryBatch.from_arrays(np.asarray(ts)[order], np.asarray(series)[order],
                                       np.asarray(values)[order], origin=np.zeros(len(ts)))]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="pantau bench --alerts", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--devices", type=int, default=3050, help="default 3050 (~10,000 series)")
    p.add_argument("--minutes", type=float, default=30.0, help="simulated minutes (default 30)")
    p.add_argument("--batch", type=int, default=5000, help="readings per batch (default 5000)")
    args = p.parse_args(argv)
    path = default_registry_path()
    registry, rivers = grow(*(lambda r: (r, load_rivers(path, r)))(load_registry(path)),
                            args.devices)
    table = SeriesTable.from_registry(registry)
    ctx = ProcessorContext(table)
    spine, domain = build_chain(SPINE, ctx), build_chain(Settings().ingest.processors, ctx)
    checks = compile_rules(load_rules(default_rules_path()), domain.table)
    start = time.time() - args.minutes * 60 - 60
    sim = Simulator(registry, scenario_name="normal", seed=0, start_s=start, rivers=rivers)
    every = _rows(sim, table, args.minutes)[0]
    batches = [every.take(np.arange(i, min(i + args.batch, len(every))))
               for i in range(0, len(every), args.batch)]
    with tempfile.TemporaryDirectory() as tmp:
        book = Book(AlertDB(Path(tmp) / "alerts.sqlite"))
        book.open(time.time_ns())
        ev = Evaluator(checks, domain.table, book)
        cpu = {"spine": 0.0, "domain": 0.0, "rules": 0.0}
        for b in batches:
            t0 = time.process_time()
            spine.run(b)
            t1 = time.process_time()
            out = domain.run(b)
            t2 = time.process_time()
            ev.on_stored(Stored(out.batch, out.derived, np.array([0]), time.time_ns()))
            t3 = time.process_time()
            cpu["spine"] += t1 - t0
            cpu["domain"] += t2 - t1
            cpu["rules"] += t3 - t2
        t0 = time.process_time()
        ev.sweep(time.time_ns(), {"writes_failing": 0.0, "broker_disconnected": 0.0,
                                  "deadletter_per_min": 0.0})
        sweep = time.process_time() - t0
        book.db.close()
    n = len(every)
    slots = sum(len(c.ids) for c in checks)
    us = {k: v / n * 1e6 for k, v in cpu.items()}
    print(f"{len(registry.devices)} devices, {table.raw} series, {len(checks)} checks over "
          f"{slots} alert slots; {n} readings in {len(batches)} batches of {args.batch}")
    for k, v in us.items():
        print(f"  {k:6s} {v:6.3f} µs per reading")
    print(f"  rules / spine chain {us['rules'] / us['spine']:.0%}, rules / domain chain "
          f"{us['rules'] / us['domain']:.0%}; one sweep over every slot {sweep * 1e3:.1f} ms")
    return 0
