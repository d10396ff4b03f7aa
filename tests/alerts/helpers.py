"""Building blocks for the alert tests: the shipped registry through the default chain."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

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


def stored(ch: Chain, device: str, metric: str, ts_ns: Sequence[int],
           values: Sequence[float]) -> Stored:
    """Readings of one series run through the chain, as the pipeline would hand them over."""
    sid = ch.table.lookup[device][metric]
    batch = TelemetryBatch.from_arrays(np.asarray(ts_ns), np.full(len(ts_ns), sid), values,
                                       origin=np.zeros(len(ts_ns)))
    out = ch.run(batch)
    return Stored(out.batch, out.derived, np.asarray([int(ts_ns[-1])]), int(ts_ns[-1]))
