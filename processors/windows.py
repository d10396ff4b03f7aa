"""Rolling statistics per series over time windows: mean, min, max, count and last.

For every new reading at time ``t``, each configured window ``w`` yields the statistic over the
readings of that series with timestamps in ``(t - w, t]`` (the reading itself included), as
derived values named ``<stat>_<window>`` (``level_cm`` -> ``level_cm_mean_5m``). Only OK rows
count; a reading at or before the series' latest seen timestamp is ignored (redelivery), so the
result does not depend on how readings are split into batches. ``metrics`` limits the series.
State: the readings within the longest window (`processors.domain.rolling.History`).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

import numpy as np

from core.batch import TelemetryBatch
from core.state import State
from devices.series import DerivedMetric, SeriesTable
from processors.domain.derived import Derived, Output, derived
from processors.domain.rolling import History
from processors.domain.segments import F64, I64, IP, fresh_rows

STATS = ("mean", "min", "max", "count", "last")


def window_label(seconds: int) -> str:
    """300 -> '5m', 3600 -> '1h', 45 -> '45s'."""
    if seconds % 3600 == 0:
        return f"{seconds // 3600}h"
    return f"{seconds // 60}m" if seconds % 60 == 0 else f"{seconds}s"


class Windows:
    def __init__(self, table: SeriesTable, *, windows_s: Sequence[int] = (300, 3600),
                 stats: Sequence[str] = ("mean", "min", "max"),
                 metrics: Collection[str] | None = None) -> None:
        bad = [s for s in stats if s not in STATS]
        if bad or not windows_s or min(windows_s) <= 0:
            raise ValueError(f"windows: stats must be among {STATS} (got {bad}) and windows_s "
                             f"positive (got {list(windows_s)})")
        self.windows_s = tuple(int(w) for w in windows_s)
        self.stats = tuple(stats)
        self.selected = np.array([metrics is None or m in metrics for m in table.metric], bool)
        self.history = History(len(table), max(self.windows_s) * 1_000_000_000)

    def derives(self) -> list[DerivedMetric]:
        return [DerivedMetric(f"{stat}_{window_label(w)}", True, self.selected)
                for w in self.windows_s for stat in self.stats]

    @property
    def last_ts(self) -> I64:
        """Per series, the newest timestamp the state includes (`Replayable`)."""
        return self.history.last_ts

    def lookback_s(self) -> F64:
        """Per series, the history a replay needs: the longest window."""
        return np.where(self.selected, float(max(self.windows_s)), 0.0)

    def process(self, batch: TelemetryBatch) -> TelemetryBatch:
        return self.step(batch).batch

    def step(self, batch: TelemetryBatch, order: IP | None = None) -> Output:
        rows = fresh_rows(batch, self.history.last_ts, order, self.selected)
        if len(rows) == 0:
            return Output(batch)
        s, t = batch.series[rows], batch.ts_ns[rows]
        span = self.history.add(s, t, batch.value[rows])
        out: list[Derived] = []
        for w in self.windows_s:
            label = window_label(w)
            lo = span.lower(w * 1_000_000_000)
            values = {"count": (span.pos + 1 - lo).astype(np.float64),
                      "last": span.value[span.pos]}
            if "mean" in self.stats:
                values["mean"] = span.mean(lo)
            if "min" in self.stats or "max" in self.stats:
                values["min"], values["max"] = span.minmax(lo)
            out += [derived(f"{stat}_{label}", t, s, values[stat]) for stat in self.stats]
        return Output(batch, tuple(out))

    def state(self) -> State:
        return self.history.state("")

    def restore(self, state: State) -> None:
        self.history.restore(state, "")
