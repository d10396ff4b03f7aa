"""Data completeness of air-quality averages: hourly means, and when an average may be used.

Every average behind an index is built from *hourly means ending at the reading*: hour ``k`` of
a reading at ``t`` is ``(T - (k+1) h, T - k h]`` with ``T`` the reading's time rounded up to the
processor's resolution (5 minutes by default; readings after ``t`` never count), so "the last
hour" is a full hour, less at most one resolution step, whatever the minute (a clock hour would
be a partial hour for most of every hour). For a reading at a multiple of the resolution ``T``
is ``t`` itself: ``(t - (k+1) h, t - k h]``. The rounding is what keeps the state bounded: the
readings are kept as counts and sums per 5 minutes (`processors.domain.rolling`), not one by
one, so a device reporting 100 times too fast costs no more memory than one on time. An n-hour
average is the mean of its valid hourly means, and it exists only when enough of them are valid;
otherwise it is NaN and no sub-index is derived from it (nothing is better than a wrong number).

Rules, and where they come from:

- 1-hour mean: at least 75 % of the readings the device's ``interval_s`` promises for an hour,
  ``ceil(0.75 * 3600 / interval_s)`` and at least 1 (``interval_s`` 60 s: 45, 300 s: 9, 900 s:
  3). Pantau's rule, after the 45-of-60-minutes rule for an hourly mean in EU practice (AQD
  vocabulary ``primaryObservation/hour``; UK SI 2007/64, Schedule 12: "1 hour values 75 %").
- 8-hour average (EPA O3, CO): 6 of its 8 hourly means (75 %). EPA TAD EPA-454/B-24-002
  (May 2024); 40 CFR Part 50 App. U and EPA-454/R-98-017 (8-hour O3 data handling).
- 24-hour average (EPA PM, EPA SO2 above AQI 200): 18 of 24 (75 %). EPA TAD; AirNow,
  "Daily and Hourly AQI - Other Pollutants" ("75 %, or 18/24 hours" for the daily SO2).
- 24-hour average (ISPU, every parameter): 18 of 24. Pantau's rule: P.14/2020 asks for 24-hour
  averages of continuous measurement ("Data pengukuran selama 24 jam secara terus-menerus";
  the station must run 24 hours a day) but names no minimum share of hours, so the EPA's 75 %
  is applied rather than a mean of whatever few readings there are.
- NowCast (EPA PM): 2 of the 3 most recent hourly means, and nothing else. AirNow, "The
  NowCast for PM2.5 and PM10" ("only 1 requirement"); TAD, "How the NowCast is calculated".

A device reporting less often than every 80 minutes can never fill 18 of 24 hours: such a
station gets no 24-hour index, by design.
"""

from __future__ import annotations

import math

import numpy as np

from processors.domain.rolling import COUNT, Frame
from processors.domain.segments import F64, I64

H = 3_600_000_000_000
SHARE = 0.75  # of the readings in an hour, and of the hours in an n-hour average
NOWCAST_HOURS = 12


def readings_needed(interval_s: F64) -> I64:
    """Readings an hour must hold for a valid hourly mean, per device reporting interval (s)."""
    need = np.ceil(np.round(SHARE * 3600.0 / np.asarray(interval_s, np.float64), 9))
    out: I64 = np.maximum(need, 1).astype(np.int64)
    return out


def hours_needed(hours: int) -> int:
    """Valid hourly means an ``hours``-hour average needs: 1 of 1, 6 of 8, 18 of 24."""
    return max(math.ceil(round(SHARE * hours, 9)), 1)


def hourly_means(frame: Frame, values: F64, need: I64, hours: int, per_hour: int) -> F64:
    """Shape (rows, ``hours``): column ``k`` the mean of the row's series over its hour ``k``
    (``per_hour`` buckets of the frame each), NaN where that hour holds fewer than
    ``need[row]`` readings. ``values``: the rows' own values (the frame's ``value`` column)."""
    # Only the last hour depends on the row itself; the earlier edges are those of its bucket,
    # asked once per (series, bucket): a device reporting 100 times too fast adds one search.
    gs, group = frame.groups()
    edge = frame.b[gs, None] - np.arange(1, hours + 1, dtype=np.int64) * per_hour
    upto_n = np.concatenate([frame.upto(COUNT, frame.b)[:, None],
                             frame.upto(COUNT, edge, rows=gs)[group]], axis=1)
    upto_v = np.concatenate([frame.upto("value", frame.b, values)[:, None],
                             frame.upto("value", edge, values, rows=gs)[group]], axis=1)
    n = upto_n[:, :-1] - upto_n[:, 1:]
    total = upto_v[:, :-1] - upto_v[:, 1:]
    out: F64 = np.where(n >= np.asarray(need)[:, None], total / np.maximum(n, 1), np.nan)
    return out


def window_mean(hourly: F64, hours: int) -> F64:
    """Mean of the valid hourly means among the first ``hours`` columns, NaN when fewer than
    `hours_needed` of them are valid."""
    h = np.asarray(hourly, np.float64)[:, :hours]
    valid = ~np.isnan(h)
    k = valid.sum(axis=1)
    out: F64 = np.where(k >= hours_needed(hours),
                        np.where(valid, h, 0.0).sum(axis=1) / np.maximum(k, 1), np.nan)
    return out
