"""Rolling statistics per series over time windows: mean, min, max, count and last.

For every new reading at time ``t``, each configured window ``w`` yields the statistic over the
readings of that series with timestamps in ``(T - w, t]`` (the reading itself included), as
derived values named ``<stat>_<window>`` (``level_cm`` -> ``level_cm_mean_5m``), where ``T`` is
``t`` rounded up to the window's resolution, ``w / buckets`` (10 s for 5 minutes, 2 minutes for
an hour, with the default 30): for a reading on that grid the window is exactly ``(t - w, t]``,
otherwise its start is rounded up, at most ``w / buckets`` later. Only OK rows count; a reading
at or before the series' latest seen timestamp is ignored (redelivery), so the result does not
depend on how readings are split into batches. ``metrics`` limits the series.
State per series and window: count, sum, min and max per bucket (`processors.domain.rolling`),
``buckets`` x 32 bytes whatever the reading rate (an exact ``(t - w, t]`` would have to keep
every reading of the window: a device reporting 100 times too fast would cost 100 times more).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

import numpy as np

from core.batch import TelemetryBatch
from core.state import State
from devices.series import DerivedMetric, SeriesTable
from processors.domain.derived import Derived, Output, derived
from processors.domain.rolling import COUNT, Rings
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
                 metrics: Collection[str] | None = None, buckets: int = 30) -> None:
        bad = [s for s in stats if s not in STATS]
        if bad or not windows_s or min(windows_s) <= 0:
            raise ValueError(f"windows: stats must be among {STATS} (got {bad}) and windows_s "
                             f"positive (got {list(windows_s)})")
        self.windows_s = tuple(int(w) for w in windows_s)
        self.stats = tuple(stats)
        self.selected = np.array([metrics is None or m in metrics for m in table.metric], bool)
        self.buckets = buckets
        self.rings = [Rings(self.selected, max(w * 1_000_000_000 // buckets, 1), buckets,
                            sums=("value",), mins=("min",), maxs=("max",))
                      for w in self.windows_s]

    def derives(self) -> list[DerivedMetric]:
        return [DerivedMetric(f"{stat}_{window_label(w)}", True, self.selected)
                for w in self.windows_s for stat in self.stats]

    @property
    def last_ts(self) -> I64:
        """Per series, the newest timestamp the state includes (`Replayable`)."""
        return self.rings[0].last_ts

    def lookback_s(self) -> F64:
        """Per series, the history a replay needs: the longest window."""
        return np.where(self.selected, float(max(self.windows_s)), 0.0)

    def process(self, batch: TelemetryBatch) -> TelemetryBatch:
        return self.step(batch).batch

    def step(self, batch: TelemetryBatch, order: IP | None = None) -> Output:
        rows = fresh_rows(batch, self.rings[0].last_ts, order, self.selected)
        if len(rows) == 0:
            return Output(batch)
        s, t, v = batch.series[rows], batch.ts_ns[rows], batch.value[rows]
        out: list[Derived] = []
        for w, rings in zip(self.windows_s, self.rings, strict=True):
            f = rings.frame(s, t)
            lo = f.b - self.buckets
            upto = f.upto(COUNT, np.stack([f.b, lo], axis=1))
            count = upto[:, 0] - upto[:, 1]
            values = {"count": count, "last": v}
            if "mean" in self.stats:
                total = f.upto("value", np.stack([f.b, lo], axis=1), v)
                values["mean"] = (total[:, 0] - total[:, 1]) / count
            if "min" in self.stats or "max" in self.stats:
                values["min"], values["max"] = f.after("min", lo, v), f.after("max", lo, v)
            rings.fold(f, {"value": v, "min": v, "max": v})
            out += [derived(f"{stat}_{window_label(w)}", t, s, values[stat]) for stat in self.stats]
        return Output(batch, tuple(out))

    def state(self) -> State:
        return {k: a for w, r in zip(self.windows_s, self.rings, strict=True)
                for k, a in r.state(f"w{w}_").items()}

    def restore(self, state: State) -> None:
        for w, r in zip(self.windows_s, self.rings, strict=True):
            r.restore(state, f"w{w}_")
