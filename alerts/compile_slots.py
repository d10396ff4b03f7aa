"""The per-slot columns of a compiled check (`alerts.compile.Check`), kept compact: which
slot watches a series or device (`SlotMap`), each slot's labels built when asked for
(`Labels`), and the alert ids as 64-bit numbers (`Ids`). Read-only after compilation."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, overload

import numpy as np
import numpy.typing as npt

from alerts.rules import Level, Rule
from devices.series import SeriesTable

I32 = npt.NDArray[np.int32]
SInt = npt.NDArray[np.signedinteger[Any]]


class SlotMap:
    """Per id (series or device) the slot of a check watching it, -1 for the others; kept only
    from the lowest to the highest watched id, in the narrowest integer type that holds the
    slots (a flood-stage check at 100,000 devices: 10 kB, not a 3.4 MB array over every
    series of the table)."""

    def __init__(self, ids: I32) -> None:
        watched = ids[ids >= 0]
        self.base = int(watched.min()) if len(watched) else 0
        size = int(watched.max()) - self.base + 1 if len(watched) else 0
        dtype = np.int16 if len(ids) < 2**15 else np.int32
        self.window: SInt = np.full(size, -1, dtype)
        self.window[watched - self.base] = np.flatnonzero(ids >= 0)

    @overload
    def __getitem__(self, ids: int | np.integer[Any]) -> int: ...
    @overload
    def __getitem__(self, ids: npt.NDArray[np.integer[Any]]) -> SInt: ...

    def __getitem__(self, ids: int | np.integer[Any] | npt.NDArray[np.integer[Any]]
                    ) -> int | SInt:
        if isinstance(ids, int | np.integer):
            k = int(ids) - self.base
            return int(self.window[k]) if 0 <= k < len(self.window) else -1
        i = np.asarray(ids, np.int64) - self.base
        if not len(self.window):
            return np.full(len(i), -1, self.window.dtype)
        inside = (i >= 0) & (i < len(self.window))
        out: SInt = np.where(inside, np.take(self.window, i, mode="clip"), -1).astype(
            self.window.dtype, copy=False)
        return out


class Labels(Sequence[dict[str, str]]):
    """The labels of each slot of a check, built on demand (see the module docstring)."""

    def __init__(self, rule: Rule, severity: str, level: Level | None, table: SeriesTable,
                 series: I32, device: I32, *, multi: bool) -> None:
        self.rule, self.severity, self.level, self.table = rule, severity, level, table
        self.series, self.device, self.multi = series, device, multi

    def __len__(self) -> int:
        return len(self.series)

    @overload
    def __getitem__(self, i: int) -> dict[str, str]: ...
    @overload
    def __getitem__(self, i: slice) -> list[dict[str, str]]: ...

    def __getitem__(self, i: int | slice) -> dict[str, str] | list[dict[str, str]]:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        di, s = int(self.device[i]), int(self.series[i])
        rule, d = self.rule, self.table.devices[di] if di >= 0 else None
        out = {"alertname": rule.name, "severity": self.severity, "team": rule.team}
        if d is not None:
            out |= {"device": d.id, "site": d.site, "kind": d.kind}
            if d.tags.get("river"):
                out["river"] = d.tags["river"]
        if self.level is not None:
            out["stage"] = self.level.label
        if self.multi:
            out["metric"] = self.table.metric[s]
        return out


class Ids(Sequence[str]):
    """The alert id of each slot (`alert_id` of its labels), kept as 64-bit numbers."""

    def __init__(self, numbers: npt.NDArray[np.uint64]) -> None:
        self.numbers = numbers
        self._order = np.argsort(numbers, kind="stable").astype(np.int32)

    def __len__(self) -> int:
        return len(self.numbers)

    @overload
    def __getitem__(self, i: int) -> str: ...
    @overload
    def __getitem__(self, i: slice) -> list[str]: ...

    def __getitem__(self, i: int | slice) -> str | list[str]:
        if isinstance(i, slice):
            return [f"{n:016x}" for n in self.numbers[i].tolist()]
        return f"{int(self.numbers[i]):016x}"

    def __iter__(self) -> Iterator[str]:
        return (f"{n:016x}" for n in self.numbers.tolist())

    def slot_of(self, aid: str) -> int:
        """The slot whose alert id is ``aid``, -1 when none (no dict of every id needed)."""
        try:
            n = np.uint64(int(aid, 16))
        except (ValueError, OverflowError):
            return -1
        k = int(np.searchsorted(self.numbers, n, sorter=self._order))
        if k < len(self._order) and self.numbers[self._order[k]] == n:
            return int(self._order[k])
        return -1
