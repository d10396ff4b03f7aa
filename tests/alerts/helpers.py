"""Building blocks for the alert tests: the shipped registry through the default chain."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from ruamel.yaml import YAML

from alerts.compile import compile_rules
from alerts.evaluate import Evaluator
from alerts.lifecycle import Book
from alerts.rules import RuleSet
from alerts.rules_yaml import default_rules_path, load_rules, parse_rules
from alerts.store import AlertDB
from core.batch import TelemetryBatch
from core.stored import Stored
from devices.registry import default_registry_path, load_registry
from devices.series import SeriesTable
from ingest.settings import IngestSettings
from processors import Chain, ProcessorContext, build_chain

S = 1_000_000_000
T0 = 1_795_836_000 * S


def one_kind(tmp: Path, kind: str) -> Path:
    """The shipped registry with only its devices of ``kind`` (and that kind), written in
    ``tmp``: a `pantau run` of one team's devices, for end-to-end tests."""
    yaml = YAML(typ="safe")
    doc = yaml.load(default_registry_path().read_text())
    doc["kinds"] = {kind: doc["kinds"][kind]}
    doc["devices"] = [d for d in doc["devices"] if d["kind"] == kind]
    path = tmp / f"{kind}.yaml"
    with path.open("w") as f:
        yaml.dump(doc, f)
    return path


def chain() -> Chain:
    table = SeriesTable.from_registry(load_registry(default_registry_path()))
    return build_chain(IngestSettings().processors, ProcessorContext(table))


def rules(doc: dict[str, object] | None = None) -> RuleSet:
    return load_rules(default_rules_path()) if doc is None else parse_rules(doc)


def evaluator(tmp: Path, ch: Chain, rs: RuleSet | None = None, now_ns: int = T0) -> Evaluator:
    book = Book(AlertDB(tmp / "alerts.sqlite"))
    book.open(now_ns)
    ev = Evaluator(compile_rules(rs or rules(), ch.table), ch.table, book)
    ev.restore(now_ns)
    return ev


def stored(ch: Chain, device: str | Sequence[str], metric: str, ts_ns: Sequence[int],
           values: Sequence[float]) -> Stored:
    """Readings of one series (or the same readings for several devices) run through the
    chain, as the pipeline would hand them over."""
    devices = [device] if isinstance(device, str) else list(device)
    sids = [ch.table.lookup[d][metric] for d in devices]
    n = len(ts_ns)
    batch = TelemetryBatch.from_arrays(np.tile(np.asarray(ts_ns), len(sids)),
                                       np.repeat(sids, n), np.tile(values, len(sids)),
                                       origin=np.zeros(n * len(sids)))
    out = ch.run(batch)
    now = time.time_ns()  # the pipeline's clock, whatever the device timestamps
    return Stored(out.batch, out.derived, np.asarray([now]), now)
