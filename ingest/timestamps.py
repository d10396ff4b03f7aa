"""Device timestamps to epoch nanoseconds: epoch s / ms / µs / ns by magnitude, or RFC 3339."""

from __future__ import annotations

import math
from datetime import datetime

# Magnitude bands of "now" (2001..2286): seconds ~1e9, ms ~1e12, µs ~1e15, ns ~1e18.
_S_MAX = 1e11
_MS_MAX = 1e14
_US_MAX = 1e17


class TimestampError(ValueError):
    """The value is not a timestamp Pantau understands; the message says why."""


def to_ns(ts: object) -> int:
    """Epoch nanoseconds of a JSON timestamp.

    Numbers are epoch seconds, milliseconds, microseconds or nanoseconds, told apart by their
    magnitude (any date between 1973 and 2286 is unambiguous); strings are RFC 3339 with a
    zone (``2026-11-28T04:16:00Z``, ``...+07:00``). Raises `TimestampError`.
    """
    if isinstance(ts, bool):
        raise TimestampError(f"{ts!r} is a boolean, not a timestamp")
    if isinstance(ts, int):
        a = abs(ts)
        if a < _S_MAX:
            return ts * 1_000_000_000
        if a < _MS_MAX:
            return ts * 1_000_000
        if a < _US_MAX:
            return ts * 1_000
        return ts
    if isinstance(ts, float):
        if not math.isfinite(ts):
            raise TimestampError(f"{ts!r} is not a finite number")
        mag = abs(ts)
        mult = (1_000_000_000 if mag < _S_MAX else 1_000_000 if mag < _MS_MAX
                else 1_000 if mag < _US_MAX else 1)
        # Whole and fractional parts separately: ts * 1e9 alone would lose ~100 ns to rounding.
        whole = int(ts)
        return whole * mult + round((ts - whole) * mult)
    if isinstance(ts, str):
        text = ts.strip()
        try:
            dt = datetime.fromisoformat(text)
        except ValueError:
            dt = None
        if dt is None or dt.tzinfo is None:
            raise TimestampError(f"{ts!r} is not an RFC 3339 timestamp with a time zone")
        # datetime keeps microseconds; RFC 3339 fractions beyond that are rare on devices.
        return (int(dt.timestamp()) * 1_000_000_000) + dt.microsecond * 1_000
    raise TimestampError(f"{type(ts).__name__} {ts!r} is not a timestamp")
