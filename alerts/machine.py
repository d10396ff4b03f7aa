"""The alert state machine of one compiled check, over all its slots at once (numpy).

A *slot* is one alert a check may raise (one series, one device, or one of Pantau's own
checks). Per slot the machine keeps arrays: state (`INACTIVE`, `PENDING`, `FIRING`), the
current condition, when the current run of a true condition started, when it was last true,
the newest timestamp taken (a row at or before it is a redelivery and changes nothing) and
the value at the latest change.

`Machine.advance` takes rows ``(slot, ts, cond, value)`` where ``cond`` is 1 (true), 0 (false)
or -1 (inside the hysteresis band, or unknown: the condition holds what it was). Per row:

- the effective condition is the last known one of its slot (rows in time order);
- *pending* while it is true for less than ``for``; *firing* once a row finds it true for
  ``for`` (measured on the rows' own timestamps);
- a firing alert stays firing after the condition turns false until a row comes
  ``keep_firing_for`` after the last true one (with 0: the first false row resolves it);
  during that time a true condition keeps it firing without a new ``for``.

Every state change of every row is returned as a `Change` (few: the work per row is array
operations, the Python work is per change). Time is passed in, never read.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

INACTIVE, PENDING, FIRING = 0, 1, 2
STATES = ("inactive", "pending", "firing")
NEVER = -(2**62)  # far in the past, yet `ts - NEVER` cannot overflow int64
I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class Change:
    """Slot ``slot`` went from state ``old`` to ``new`` at ``ts_ns`` with ``value``."""

    slot: int
    ts_ns: int
    old: int
    new: int
    value: float


class Machine:
    """State arrays of ``n`` slots with one ``for`` and ``keep_firing_for`` (ns)."""

    def __init__(self, n: int, *, for_ns: int = 0, keep_ns: int = 0) -> None:
        self.for_ns, self.keep_ns = for_ns, keep_ns
        self.state = np.zeros(n, np.int8)
        self.cond = np.zeros(n, bool)
        self.run_start = np.full(n, NEVER, np.int64)
        self.last_true = np.full(n, NEVER, np.int64)
        self.last_ts = np.full(n, NEVER, np.int64)
        self.value = np.full(n, np.nan)

    def __len__(self) -> int:
        return len(self.state)

    def fresh(self, slot: npt.NDArray[np.intp], ts: I64) -> npt.NDArray[np.bool_]:
        """Mask of the rows newer than what their slot has taken (the rest are redeliveries)."""
        out: npt.NDArray[np.bool_] = ts > self.last_ts[slot]
        return out

    def advance(self, slot: npt.NDArray[np.intp], ts: I64, cond: npt.NDArray[np.int8],
                value: F64) -> list[Change]:
        """Take rows (any order; rows not `fresh` are ignored); return the state changes in
        time order per slot."""
        keep = self.fresh(slot, ts)
        if not keep.all():
            slot, ts, cond, value = slot[keep], ts[keep], cond[keep], value[keep]
        n = len(slot)
        if n == 0 or self._quiet(slot, ts, cond):
            return []
        order = np.lexsort((ts, slot))
        s, t, c, v = slot[order], ts[order], cond[order], value[order]
        ar = np.arange(n)
        first = np.ones(n, bool)
        first[1:] = s[1:] != s[:-1]
        start = np.maximum.accumulate(np.where(first, ar, 0))

        def last_where(mask: npt.NDArray[np.bool_]) -> npt.NDArray[np.intp]:
            """Per row, the index of the latest row of its slot (up to it) where ``mask``; -1
            when none."""
            idx = np.maximum.accumulate(np.where(mask, ar, -1))
            return np.where(idx >= start, idx, -1)

        known = last_where(c >= 0)
        on = np.where(known >= 0, c[np.maximum(known, 0)] == 1, self.cond[s])
        off_at = last_where(~on)
        run_start = np.where(off_at >= 0, t[np.minimum(off_at + 1, n - 1)],
                             np.where(self.cond[s], self.run_start[s], t[start]))
        true_at = last_where(on)
        last_true = np.where(true_at >= 0, t[np.maximum(true_at, 0)], self.last_true[s])
        fire = on & (t - run_start >= self.for_ns)
        stop = ~on & (t - last_true >= self.keep_ns)
        event = np.where(fire, 1, np.where(stop, 0, -1))
        ev_at = last_where(event >= 0)
        firing = np.where(ev_at >= 0, event[np.maximum(ev_at, 0)] == 1, self.state[s] == FIRING)
        state = np.where(firing, FIRING, np.where(on, PENDING, INACTIVE)).astype(np.int8)
        before = np.empty(n, np.int8)
        before[1:] = state[:-1]
        before[first] = self.state[s[first]]
        changed = np.flatnonzero(state != before)
        changes = [Change(int(s[i]), int(t[i]), int(before[i]), int(state[i]), float(v[i]))
                   for i in changed.tolist()]
        last = np.r_[first[1:], True]
        ls = s[last]
        self.state[ls], self.cond[ls] = state[last], on[last]
        self.run_start[ls] = np.where(on[last], run_start[last], NEVER)
        self.last_true[ls], self.last_ts[ls], self.value[ls] = last_true[last], t[last], v[last]
        return changes

    def _quiet(self, slot: npt.NDArray[np.intp], ts: I64, cond: npt.NDArray[np.int8]) -> bool:
        """The common case, in a few passes: every row only confirms its slot's state (true
        for a firing slot whose condition holds, false or in the band for an inactive one).
        Then only the times move on; ``value`` keeps the one of the last change."""
        state, on = self.state[slot], self.cond[slot]
        true = cond == 1
        if not (np.where(true, (state == FIRING) & on, (state == INACTIVE) & ~on)).all():
            return False
        np.maximum.at(self.last_ts, slot, ts)
        np.maximum.at(self.last_true, slot[true], ts[true])
        return True

    def expire(self, now_ns: int) -> list[Change]:
        """Resolve firing slots whose condition has been false ``keep_firing_for`` by
        ``now_ns`` although no row came to say so (the periodic sweep)."""
        if self.keep_ns <= 0:
            return []
        due = np.flatnonzero((self.state == FIRING) & ~self.cond
                             & (now_ns - self.last_true >= self.keep_ns))
        self.state[due] = INACTIVE
        return [Change(int(i), now_ns, FIRING, INACTIVE, float(self.value[i]))
                for i in due.tolist()]

    def restore(self, slot: int, *, state: int, cond: bool, run_start: int, last_true: int,
                last_ts: int, value: float) -> None:
        """Put back one slot's state (from the alert store, after a restart)."""
        self.state[slot], self.cond[slot], self.run_start[slot] = state, cond, run_start
        self.last_true[slot], self.last_ts[slot], self.value[slot] = last_true, last_ts, value
