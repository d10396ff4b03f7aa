"""Exact-duplicate removal: rows with the same series, timestamp and value as an earlier OK row
in the batch are marked `Reason.DUPLICATE` (stored once, counted, not dead-lettered).

Readings of one series at one timestamp with *different* values are not duplicates: both are
kept and the database keeps the later one, as it would across batches.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.batch import TelemetryBatch
from core.reasons import Reason


@dataclass(frozen=True, slots=True)
class Dedupe:
    def process(self, batch: TelemetryBatch) -> TelemetryBatch:
        ok = np.flatnonzero(batch.ok)
        if len(ok) < 2:
            return batch
        s, t, v = batch.series[ok], batch.ts_ns[ok], batch.value[ok]
        # Stable sort keeps the first occurrence first within each equal group.
        order = np.lexsort((v, t, s))
        same = ((s[order][1:] == s[order][:-1]) & (t[order][1:] == t[order][:-1])
                & (v[order][1:] == v[order][:-1]))
        if not same.any():
            return batch
        dup = np.zeros(len(batch), dtype=bool)
        dup[ok[order[1:][same]]] = True
        return batch.with_status(dup, Reason.DUPLICATE)
