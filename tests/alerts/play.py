"""Play a simulator scenario through the real processor chain and the shipped rules, in this
process (no broker, no database): what the rules make of a day of the simulated regency."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from alerts.compile import compile_rules
from alerts.evaluate import Evaluator
from alerts.lifecycle import Book
from alerts.store import AlertDB
from core.batch import TelemetryBatch
from core.stored import Stored
from devices.catalogue import load_rivers
from devices.registry import default_registry_path, load_registry
from devices.simulator import Message, Simulator
from devices.simulator.publish import run
from devices.status import Transition
from tests.alerts.helpers import chain, rules

BATCH = 2000


def play(tmp: Path, scenario: str, start_s: float, hours: float, seed: int = 0) -> Evaluator:
    """The evaluator (with its book) after ``hours`` of ``scenario`` from ``start_s``."""
    path = default_registry_path()
    registry = load_registry(path)
    ch = chain()
    table = ch.table
    book = Book(AlertDB(tmp / "alerts.sqlite"))
    book.open(int(start_s * 1e9))
    ev = Evaluator(compile_rules(rules(), table), table, book)
    sim = Simulator(registry, scenario_name=scenario, seed=seed, start_s=start_s,
                    rivers=load_rivers(path, registry))
    rows: list[tuple[int, int, float]] = []

    def flush() -> None:
        if not rows:
            return
        ts, series, value = (np.array(c) for c in zip(*rows, strict=True))
        rows.clear()
        out = ch.run(TelemetryBatch.from_arrays(ts, series, value, origin=np.zeros(len(ts))))
        now = int(ts.max())
        ev.on_stored(Stored(out.batch, out.derived, np.array([now]), now))
        ev.sweep(now, {})

    def publish(m: Message) -> None:
        _, _, device, what = m.topic.split("/")
        if what == "status":
            ev.on_transition(Transition(device, int(sim.now_s * 1e9), m.payload.decode(), "lwt"))
            return
        doc = json.loads(m.payload)
        for rec in doc if isinstance(doc, list) else [doc]:
            ts = int(rec["ts"] * 1e9) if rec["ts"] < 1e11 else int(rec["ts"] * 1e6)
            rows.extend((ts, table.lookup[device][k], float(v))
                        for k, v in rec["values"].items() if k in table.lookup[device])
        if len(rows) >= BATCH:
            flush()

    run(sim, publish, flat_out=True, duration_s=hours * 3600, report=lambda _: None)
    flush()
    return ev
