"""The series table: every (device, metric) pair as one integer id, with its metadata as arrays.

Processors and rules index these arrays with ``TelemetryBatch.series`` so that per-series
metadata (calibration, valid range, units) applies to a whole batch at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from devices.registry import Device, Registry


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

    def __len__(self) -> int:
        return len(self.metric)

    def key(self, series: int) -> tuple[str, str]:
        """(device id, metric) of one series id, for messages and tests."""
        return self.devices[int(self.device_index[series])].id, self.metric[series]
