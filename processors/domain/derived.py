"""What stateful processors return beside the batch: derived values and downsampled tiers.

A processor stays ``process(batch) -> batch`` for the chain; the ones that compute new values
are `processors.domain.capabilities.Stateful`: ``step(batch) -> Output`` returns the same batch
plus what they derived.

Derived values are keyed by the series they come from (``source``) and a ``name``:

- ``per_series=True``: stored as metric ``<source metric>_<name>`` of the source's device
  (e.g. ``level_cm`` + ``mean_5m`` -> ``level_cm_mean_5m``);
- ``per_series=False``: stored as metric ``<name>`` of the source's device (e.g. ``ispu``), any
  series of the device serving as the anchor.

Until the series table gives derived metrics ids, `metric_names` names them for messages/tests.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from core.batch import TelemetryBatch
from devices.series import SeriesTable
from processors.domain.segments import F64, I32, I64


@dataclass(frozen=True, slots=True)
class Derived:
    name: str
    ts_ns: I64
    source: I32
    value: F64
    per_series: bool = True

    def __len__(self) -> int:
        return len(self.ts_ns)

    def metric_names(self, table: SeriesTable) -> list[str]:
        if not self.per_series:
            return [self.name] * len(self)
        return [f"{table.metric[int(s)]}_{self.name}" for s in self.source]

    def to_batch(self, derived_series: I32) -> TelemetryBatch:
        """Rows for the derived series (``derived_series[source]``, -1 = not declared: dropped)."""
        ids = derived_series[self.source]
        keep = ids >= 0
        return TelemetryBatch.from_arrays(self.ts_ns[keep], ids[keep], self.value[keep])


@dataclass(frozen=True, slots=True)
class Tier:
    """Downsampled readings: one row per (series, bucket) touched by the batch.

    Each row is the bucket's aggregate so far (including earlier batches), so writing it again
    with the bucket's start as timestamp overwrites the previous version: the last write of a
    bucket is its final value, and a redelivered batch changes nothing.
    """

    resolution_s: int
    ts_ns: I64
    series: I32
    mean: F64
    min: F64
    max: F64
    count: I64

    def __len__(self) -> int:
        return len(self.ts_ns)

    def take(self, rows: npt.NDArray[np.intp]) -> Tier:
        return Tier(self.resolution_s, *(getattr(self, f)[rows] for f in TIER_COLUMNS))

    @staticmethod
    def concat(resolution_s: int, parts: Sequence[Tier]) -> Tier:
        """The rows of ``parts`` (all of ``resolution_s``) in order, as one `Tier`."""
        if len(parts) == 1:
            return parts[0]
        return Tier(resolution_s, *(np.concatenate([getattr(t, f) for t in parts])
                                    for f in TIER_COLUMNS))


TIER_COLUMNS = ("ts_ns", "series", "mean", "min", "max", "count")


@dataclass(frozen=True, slots=True)
class Output:
    batch: TelemetryBatch
    derived: tuple[Derived, ...] = ()
    tiers: tuple[Tier, ...] = field(default=())

    def by_name(self) -> dict[str, Derived]:
        """Derived outputs by name (a device-level name wins over the same per-series one)."""
        return {d.name: d for d in sorted(self.derived, key=lambda d: not d.per_series)}

    def get(self, name: str, *, per_series: bool) -> Derived:
        return next(d for d in self.derived if d.name == name and d.per_series == per_series)


def derived(name: str, ts_ns: I64, source: I32, value: F64, *, per_series: bool = True
            ) -> Derived:
    return Derived(name, np.asarray(ts_ns, np.int64), np.asarray(source, np.int32),
                   np.asarray(value, np.float64), per_series)
