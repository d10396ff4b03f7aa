"""The series table: every (device, metric) pair as one integer id, with its metadata as arrays.

Processors and rules index these arrays with ``TelemetryBatch.series`` so that per-series
metadata (calibration, valid range, units) applies to a whole batch at once.

Derived series: processors compute values that are stored beside the raw readings (a gauge's
``flood_stage``, a station's ``ispu``, a reading's ``<metric>_zscore``). `with_derived` gives
each of them a series id after the raw ones (``raw`` of them), so that derived values travel
as ordinary `TelemetryBatch` rows (origin -1) and are written as fields of the device's line.
``derived[(name, per_series)]`` maps a *source* series id to the derived series' id (-1 where
that source derives nothing). Derived metrics are not in ``lookup``: a device that sends one
has it rejected as ``unknown_metric``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from devices.registry import Device, Registry

I32 = npt.NDArray[np.int32]


@dataclass(frozen=True, slots=True)
class DerivedMetric:
    """A processor's promise: for each source series in ``sources`` (a mask over the raw
    series) it may derive ``<source metric>_<name>`` (``per_series``) or the device-level
    metric ``<name>`` (several sources of one device then share that series)."""

    name: str
    per_series: bool
    sources: npt.NDArray[np.bool_]
    unit: str = ""


@dataclass(frozen=True, slots=True)
class SeriesTable:
    """Column arrays indexed by series id; ``lookup[device][metric] -> series id``."""

    devices: tuple[Device, ...]
    device_index: npt.NDArray[np.int32]      # series -> index into `devices`
    metric: tuple[str, ...]                  # series -> metric name
    unit: tuple[str, ...]
    gain: npt.NDArray[np.float64]
    offset: npt.NDArray[np.float64]
    vmin: npt.NDArray[np.float64]
    vmax: npt.NDArray[np.float64]
    lookup: dict[str, dict[str, int]] = field(repr=False)
    raw: int = -1                            # ids below are raw series, the rest derived
    derived: Mapping[tuple[str, bool], I32] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if self.raw < 0:
            object.__setattr__(self, "raw", len(self.metric))

    @classmethod
    def from_registry(cls, registry: Registry) -> SeriesTable:
        dev_idx: list[int] = []
        metric: list[str] = []
        unit: list[str] = []
        gain: list[float] = []
        offset: list[float] = []
        vmin: list[float] = []
        vmax: list[float] = []
        lookup: dict[str, dict[str, int]] = {}
        for di, d in enumerate(registry.devices):
            per = lookup.setdefault(d.id, {})
            for m in d.metrics:
                per[m.name] = len(metric)
                dev_idx.append(di)
                metric.append(m.name)
                unit.append(m.unit)
                gain.append(m.gain)
                offset.append(m.offset)
                vmin.append(m.min)
                vmax.append(m.max)
        return cls(
            devices=registry.devices,
            device_index=np.asarray(dev_idx, dtype=np.int32),
            metric=tuple(metric), unit=tuple(unit),
            gain=np.asarray(gain, dtype=np.float64), offset=np.asarray(offset, dtype=np.float64),
            vmin=np.asarray(vmin, dtype=np.float64), vmax=np.asarray(vmax, dtype=np.float64),
            lookup=lookup,
        )

    def with_derived(self, metrics: Sequence[DerivedMetric]) -> SeriesTable:
        """This table plus a series for every derived metric (see the module docstring).

        Raises ValueError when a derived name is already a raw metric of the device.
        """
        dev_idx, metric, unit = list(self.device_index.tolist()), list(self.metric), \
            list(self.unit)
        ids: dict[tuple[int, str], int] = {}
        derived = {k: v.copy() for k, v in self.derived.items()}
        for dm in metrics:  # once at start-up, over each promise's source series
            out = derived.setdefault((dm.name, dm.per_series), np.full(self.raw, -1, np.int32))
            for s in np.flatnonzero(dm.sources[:self.raw]).tolist():
                d = int(self.device_index[s])
                name = f"{self.metric[s]}_{dm.name}" if dm.per_series else dm.name
                if name in self.lookup[self.devices[d].id]:
                    raise ValueError(f"device {self.devices[d].id!r}: derived metric {name!r} "
                                     "is also a metric the device sends; rename one of them")
                sid = ids.get((d, name))
                if sid is None:
                    sid = ids[(d, name)] = len(metric)
                    dev_idx.append(d)
                    metric.append(name)
                    unit.append(dm.unit)
                out[s] = sid
        extra = len(metric) - len(self.metric)
        return SeriesTable(
            devices=self.devices, device_index=np.asarray(dev_idx, dtype=np.int32),
            metric=tuple(metric), unit=tuple(unit),
            gain=np.r_[self.gain, np.ones(extra)], offset=np.r_[self.offset, np.zeros(extra)],
            vmin=np.r_[self.vmin, np.full(extra, -np.inf)],
            vmax=np.r_[self.vmax, np.full(extra, np.inf)],
            lookup=self.lookup, raw=self.raw, derived=derived)

    def derived_names(self, device_id: str) -> list[str]:
        """The derived metrics of one device, in series order (for docs, dashboards, tests)."""
        di = next(i for i, d in enumerate(self.devices) if d.id == device_id)
        return [self.metric[s] for s in range(self.raw, len(self))
                if int(self.device_index[s]) == di]

    def __len__(self) -> int:
        return len(self.metric)

    def interval_s(self) -> npt.NDArray[np.float64]:
        """Per series, its device's reporting interval in seconds (computed on each call:
        processors take it once, at construction)."""
        per_device = np.array([d.interval_s for d in self.devices], np.float64)
        return per_device[self.device_index] if len(self.device_index) else np.empty(0)

    def key(self, series: int) -> tuple[str, str]:
        """(device id, metric) of one series id, for messages and tests."""
        return self.devices[int(self.device_index[series])].id, self.metric[series]
