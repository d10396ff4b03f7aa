"""Device timestamps to epoch nanoseconds: epoch s / ms / µs / ns by magnitude, or RFC 3339.

Total: every input either gives an ``int`` that fits numpy's ``int64`` nanoseconds (the years
1677..2262) or raises `TimestampError`; no input makes it raise anything else (a 400-digit
integer, ``1e300``, a year-1 date in a positive zone are all refused by range checks made
before any arithmetic that could overflow).
"""

from __future__ import annotations

import math
from datetime import datetime

# Magnitude bands of "now" (2001..2286): seconds ~1e9, ms ~1e12, µs ~1e15, ns ~1e18.
_S_MAX = 1e11
_MS_MAX = 1e14
_US_MAX = 1e17
NS_MIN, NS_MAX = -(2**63), 2**63 - 1  # what an int64 nanosecond column holds


class TimestampError(ValueError):
    """The value is not a timestamp Pantau understands; the message says why."""


def to_ns(ts: object) -> int:
    """Epoch nanoseconds of a JSON timestamp, within ``NS_MIN..NS_MAX``.

    Numbers are epoch seconds, milliseconds, microseconds or nanoseconds, told apart by their
    magnitude (any date between 1973 and 2286 is unambiguous); strings are RFC 3339 with a
    zone (``2026-11-28T04:16:00Z``, ``...+07:00``). Raises `TimestampError` (only).
    """
    if isinstance(ts, bool):
        raise TimestampError(f"{ts!r} is a boolean, not a timestamp")
    if isinstance(ts, int):
        if ts.bit_length() > 64:  # checked first: abs() and the bands below stay cheap
            raise TimestampError(f"an integer of {ts.bit_length()} bits is not a timestamp")
        a = abs(ts)
        mult = (1_000_000_000 if a < _S_MAX else 1_000_000 if a < _MS_MAX
                else 1_000 if a < _US_MAX else 1)
        ns = ts * mult
        return ns if NS_MIN <= ns <= NS_MAX else _checked(ns, ts)
    if isinstance(ts, float):
        if not math.isfinite(ts):
            raise TimestampError(f"{ts!r} is not a finite number")
        mag = abs(ts)
        if mag >= 2.0**63:
            raise TimestampError(f"{ts!r} is beyond any epoch timestamp")
        mult = (1_000_000_000 if mag < _S_MAX else 1_000_000 if mag < _MS_MAX
                else 1_000 if mag < _US_MAX else 1)
        # Whole and fractional parts separately: ts * 1e9 alone would lose ~100 ns to rounding.
        whole = int(ts)
        return _checked(whole * mult + round((ts - whole) * mult), ts)
    if isinstance(ts, str):
        return _rfc3339(ts)
    raise TimestampError(f"{type(ts).__name__} {_brief(ts)} is not a timestamp")


def _rfc3339(ts: str) -> int:
    text = ts.strip()
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        dt = None
    if dt is None or dt.tzinfo is None:
        raise TimestampError(f"{_brief(ts)} is not an RFC 3339 timestamp with a time zone")
    try:
        # Year 1 in a positive zone is year 0 in UTC: datetime cannot hold it.
        seconds = int(dt.timestamp())
    except (OverflowError, ValueError, OSError) as e:
        raise TimestampError(f"{_brief(ts)} is out of range: {e}") from None
    # datetime keeps microseconds; RFC 3339 fractions beyond that are rare on devices.
    return _checked(seconds * 1_000_000_000 + dt.microsecond * 1_000, ts)


def _checked(ns: int, ts: object) -> int:
    if not NS_MIN <= ns <= NS_MAX:
        raise TimestampError(f"{_brief(ts)} is outside the years 1677..2262 (64-bit "
                             "nanoseconds)")
    return ns


def _brief(ts: object) -> str:
    """A short repr for error text (a hostile value may be 60 kB long)."""
    try:
        text = repr(ts)
    except (RecursionError, ValueError):  # nested too deep; an int beyond 4300 digits
        return f"a {type(ts).__name__}"
    return text if len(text) <= 64 else f"{text[:48]}... ({len(text)} characters)"
