"""Writing to the sink, once and for all: retries with jittered exponential backoff (honouring
Retry-After, capped by ``retry_max_s``) for retryable errors, splitting a refused batch until
the refused readings are isolated, and the tier rows (coalesced to one per bucket, skipped and
counted when their retention policy or bucket is missing: tiers can be rebuilt, held-back
readings cannot).

The sink makes one attempt per call and says whether an error is retryable (`SinkError`);
the policy lives here, in one place.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import time
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Protocol

import numpy as np
import numpy.typing as npt

from core.batch import TelemetryBatch
from core.metrics import SIZE_BUCKETS, Metrics
from ingest.errors import SinkError
from ingest.rejections import RateLimitedLog
from processors.domain.derived import Tier

HELP: dict[str, tuple[str, str]] = {  # this module's metrics (`Metrics.describe`)
    "pantau_batch_readings": ("histogram", "Readings per write batch."),
    "pantau_write_seconds": ("histogram", "Duration of successful database writes."),
    "pantau_write_retries_total": ("counter", "Retryable write failures (retried), by kind."),
    "pantau_write_splits_total": ("counter", "Batches split to isolate points the database "
                                  "refused."),
    "pantau_tier_points_written_total": ("counter", "Downsampled tier rows written, by "
                                         "resolution."),
    "pantau_tier_writes_skipped_total": ("counter", "Tier writes skipped because the database "
                                         "refused them or the tier's retention policy or bucket "
                                         "is missing, by resolution."),
}

log = logging.getLogger("pantau.pipeline")


class Sink(Protocol):
    """Used as ``async with``; `write` and `write_tier` are never called concurrently and make
    one attempt each, raising `SinkError` (``retryable`` says whether to try again)."""

    async def write(self, batch: TelemetryBatch) -> None: ...
    async def write_tier(self, tier: Tier) -> None: ...


def coalesce(tiers: list[Tier]) -> list[Tier]:
    """One row per (resolution, series, bucket): the latest, i.e. the bucket's aggregate over
    every batch so far (`Tier` rows carry running aggregates)."""
    out = []
    tiers = [t for t in tiers if len(t)]
    for res in sorted({t.resolution_s for t in tiers}):
        parts = [t for t in tiers if t.resolution_s == res]
        if len(parts) == 1:
            out.append(parts[0])
            continue
        every = Tier.concat(res, parts)
        ts, series = every.ts_ns, every.series
        width = res * 1_000_000_000
        bucket = (ts - ts.min()) // width
        span = int(bucket.max()) + 1
        if (int(series.max()) + 1) * span < 2**62 and not (ts % width).any():
            # bucket starts, as `Tier` rows have: one int64 key (series, bucket)
            key = series.astype(np.int64) * span + bucket
            order = np.argsort(key, kind="stable")  # stable: later batches last
            k = key[order]
            last = np.ones(len(order), bool)
            last[:-1] = k[1:] != k[:-1]
        else:
            order = np.lexsort((np.arange(len(ts)), ts, series))
            last = np.ones(len(order), bool)
            last[:-1] = ((series[order][1:] != series[order][:-1])
                         | (ts[order][1:] != ts[order][:-1]))
        out.append(every.take(order[last]))
    return out


class Writer:
    """Writes through a `Sink` with the retry and split policy (see the module docstring).
    ``sink_ok`` / ``last_sink_error``: whether the last attempt succeeded, for readiness."""

    def __init__(self, sink: Sink, metrics: Metrics, rlog: RateLimitedLog, *,
                 retry_min_s: float = 0.2, retry_max_s: float = 15.0) -> None:
        self._sink, self._m, self._rlog = sink, metrics, rlog
        metrics.describe(HELP)
        self._retry_min, self._retry_max = retry_min_s, retry_max_s
        self.sink_ok = True
        self.last_sink_error = ""
        self._h_batch = metrics.histogram("pantau_batch_readings", SIZE_BUCKETS)
        self._h_write = metrics.histogram("pantau_write_seconds")

    async def tiers(self, tiers: list[Tier]) -> None:
        """Write ``tiers``, one row per (resolution, series, bucket): the latest."""
        for tier in coalesce(tiers):
            await self._tier(tier)

    async def _tier(self, tier: Tier) -> None:
        if len(tier) == 0:
            return
        res = str(tier.resolution_s)
        try:
            await self._retrying(lambda: self._sink.write_tier(tier))
        except SinkError as e:
            self._m.counter("pantau_tier_writes_skipped_total", resolution=res).inc()
            self._rlog.warning(f"tier-{res}", "tier not written: %s", e)
            return
        self._m.counter("pantau_tier_points_written_total", resolution=res).inc(len(tier))

    async def write(self, batch: TelemetryBatch) -> npt.NDArray[np.bool_]:
        """Write with retries; split on refusal. Returns the mask of refused rows."""
        refused = np.zeros(len(batch), dtype=bool)
        if len(batch) == 0:
            return refused
        self._h_batch.observe(len(batch))
        stack = [np.arange(len(batch))]
        while stack:
            idx = stack.pop()
            part = batch if len(idx) == len(batch) else batch.take(idx)
            try:
                await self._retrying(partial(self._sink.write, part))
            except SinkError as e:
                if len(idx) == 1:
                    refused[idx] = True
                    log.warning("database refused a reading: %s", e)
                else:
                    self._m.counter("pantau_write_splits_total").inc()
                    half = len(idx) // 2
                    stack.extend((idx[half:], idx[:half]))
        return refused

    def _honoured(self, retry_after: float | None) -> float:
        """The server's Retry-After, capped by ``retry_max_s``: a server asking for an hour
        (or ``inf``) must not hold ingest longer than Pantau's own longest backoff."""
        if retry_after is None or not math.isfinite(retry_after):
            return self._retry_max if retry_after == math.inf else 0.0
        return min(max(retry_after, 0.0), self._retry_max)

    async def _retrying(self, attempt: Callable[[], Awaitable[None]]) -> None:
        """Make ``attempt`` until it succeeds; re-raise a non-retryable `SinkError`."""
        delay = self._retry_min
        while True:
            t0 = time.perf_counter()
            try:
                await attempt()
            except SinkError as e:
                if not e.retryable:
                    raise
                self.sink_ok = False
                self.last_sink_error = str(e)
                kind = str(e.status) if e.status else "network"
                self._m.counter("pantau_write_retries_total", kind=kind).inc()
                wait = max(random.uniform(delay / 2, delay), self._honoured(e.retry_after))
                self._rlog.warning("sink", "write failed (%s); retrying in %.1f s", e, wait)
                await asyncio.sleep(wait)
                delay = min(delay * 2, self._retry_max)
                continue
            self._h_write.observe(time.perf_counter() - t0)
            self.sink_ok = True
            self.last_sink_error = ""
            return
