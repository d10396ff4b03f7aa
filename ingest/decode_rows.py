"""What the payload parsers share: the row buffer they fill, the per-message context that
checks a timestamp and a value before anything is appended, and the rejection they raise.

Every check here is total: a value of any JSON type (or any text) yields a row or a reason,
never an exception other than `Reject`. Ranges are checked before arithmetic, so integers
beyond 64 bits, floats beyond range and dates beyond int64 nanoseconds are refused, not
overflowed.
"""

from __future__ import annotations

import math
import reprlib
from dataclasses import dataclass, field

from core.reasons import Reason
from ingest.timestamps import TimestampError, to_ns

_INT64 = 2**63
# Epoch seconds up to the year 2255: their nanoseconds fit int64 without `to_ns`'s checks.
_EPOCH_S_FAST = 9 * 10**9
_MAX_METRIC_CHARS = 100  # a metric name quoted in a note: the registry's are far shorter


@dataclass(slots=True)
class Note:
    """A reading dropped during decoding, or the reason a whole message was rejected."""

    reason: Reason
    detail: str
    metric: str = ""


@dataclass(slots=True)
class RowBuffer:
    """Column lists filled by the decoder; the batcher turns them into numpy arrays at once."""

    ts_ns: list[int] = field(default_factory=list)
    series: list[int] = field(default_factory=list)
    value: list[float] = field(default_factory=list)
    origin: list[int] = field(default_factory=list)
    # origin (message index) -> readings dropped while decoding it
    notes: dict[int, list[Note]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.ts_ns)

    def note(self, origin: int, reason: Reason, detail: str, metric: str = "") -> None:
        self.notes.setdefault(origin, []).append(Note(reason, detail, metric))

    def truncate(self, rows: int, origin: int) -> None:
        """Forget the rows from index ``rows`` on and the notes of message ``origin``."""
        del self.ts_ns[rows:], self.series[rows:], self.value[rows:], self.origin[rows:]
        self.notes.pop(origin, None)


class Reject(Exception):
    """The whole message is refused with ``reason``; raised by the parsers only."""

    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(reason, detail)
        self.reason, self.detail = reason, detail


def _short_repr() -> reprlib.Repr:
    r = reprlib.Repr()
    r.maxstring, r.maxother, r.maxlong, r.maxlevel = 60, 60, 40, 3
    r.maxlist = r.maxdict = r.maxtuple = 4
    return r


_REPR = _short_repr()


def show(value: object) -> str:
    """A short repr of a payload value for error text: a hostile one may be 60 kB long,
    nested a thousand deep or an integer of 4,000 digits."""
    if type(value) is int and value.bit_length() > 128:
        return f"<an integer of {value.bit_length()} bits>"
    try:
        return _REPR.repr(value)
    except (RecursionError, ValueError):
        return f"<a {type(value).__name__}>"


@dataclass(slots=True)
class Message:
    """One message being decoded: its device, the receiver's clock and the buffer it fills."""

    device: str
    per: dict[str, int]  # metric -> series id
    units: tuple[str, ...]  # series id -> unit
    now_ns: int
    max_future_ns: int
    max_age_ns: int
    out: RowBuffer
    origin: int

    def timestamp(self, ts: object) -> int:
        """Epoch ns of a device timestamp within the accepted window, or raise `Reject`."""
        if type(ts) is int and 0 < ts < _EPOCH_S_FAST:  # the common case: epoch seconds
            ns = ts * 1_000_000_000
        elif ts is None:
            raise Reject(Reason.MISSING_TIMESTAMP, "no 'ts': Pantau stores the device's time")
        else:
            try:
                ns = to_ns(ts)
            except TimestampError as e:
                raise Reject(Reason.BAD_TIMESTAMP, str(e)) from None
        ahead = ns - self.now_ns  # both int64: exact, no float conversion
        if ahead > self.max_future_ns:
            raise Reject(Reason.TS_IN_FUTURE, f"ts {show(ts)} is {ahead // 10**9} s ahead")
        if -ahead > self.max_age_ns:
            raise Reject(Reason.TS_TOO_OLD, f"ts {show(ts)} is {-ahead // 10**9} s old")
        return ns

    def add(self, ts: int, name: str, v: object) -> None:
        """Append one reading, or note why it is dropped (the rest of the message stays)."""
        sid = self.per.get(name)
        if sid is None:
            self.drop(Reason.UNKNOWN_METRIC, f"has no metric {show(name)}", name)
            return
        kind = type(v)
        if type(v) is int:
            if not -_INT64 <= v < _INT64:
                self.drop(Reason.OUT_OF_RANGE, f"value {show(v)} for {name!r} is an integer "
                           "beyond 64 bits", name)
                return
            number = float(v)
        elif type(v) is float:
            number = v
        elif kind is bool and self.units[sid] == "bool":
            number = 1.0 if v else 0.0
        else:  # a boolean where a number belongs, a string, null, a list or an object
            self.drop(Reason.NOT_A_NUMBER, f"value {show(v)} for {name!r} is not a number",
                       name)
            return
        if not math.isfinite(number):
            self.drop(Reason.NOT_FINITE, f"value {show(v)} for {name!r} is not finite", name)
            return
        out = self.out
        out.ts_ns.append(ts)
        out.series.append(sid)
        out.value.append(number)
        out.origin.append(self.origin)

    def drop(self, reason: Reason, what: str, name: str) -> None:
        """Note that reading ``name`` is dropped: ``what`` is said of device ``device``."""
        self.out.note(self.origin, reason, f"device {self.device!r}: {what}",
                      name[:_MAX_METRIC_CHARS])
