"""``Retry-After`` is honoured but capped by ``influx.retry_max_s`` (issue #9): a database (or a
proxy) asking for an hour, or for ``inf``, cannot hold ingest longer than Pantau's own longest
backoff. The waits the writer asks for are recorded, not timed."""

from __future__ import annotations

import asyncio
import math

import numpy as np
import pytest

from core.batch import TelemetryBatch
from core.metrics import Metrics
from ingest.errors import SinkError
from ingest.rejections import RateLimitedLog
from ingest.writer import Writer


class Busy:
    """Answers 429 with ``retry_after`` twice, then accepts."""

    def __init__(self, retry_after: float | None) -> None:
        self.retry_after, self.calls = retry_after, 0

    async def write(self, batch: TelemetryBatch) -> None:
        self.calls += 1
        if self.calls <= 2:
            raise SinkError("429 too many requests", retryable=True, status=429,
                            retry_after=self.retry_after)


@pytest.mark.parametrize(("retry_after", "first"), [
    pytest.param(3600.0, 2.0, id="an-hour"),
    pytest.param(math.inf, 2.0, id="inf"),
    pytest.param(1.5, 1.5, id="within"),
    pytest.param(math.nan, None, id="nan"),
    pytest.param(None, None, id="none"),
])
async def test_retry_after_is_capped(retry_after: float | None, first: float | None,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """``first``: the first wait (Retry-After, capped); None: the jittered backoff alone."""
    waits: list[float] = []
    real_sleep = asyncio.sleep

    async def sleep(s: float) -> None:
        waits.append(s)
        await real_sleep(0)
    monkeypatch.setattr(asyncio, "sleep", sleep)
    sink = Busy(retry_after)
    w = Writer(sink, Metrics(), RateLimitedLog(), retry_min_s=0.5, retry_max_s=2.0)
    batch = TelemetryBatch.from_arrays(np.array([1], np.int64), np.array([0], np.int32),
                                       np.array([1.0]))
    assert not (await w.write(batch)).any()
    assert sink.calls == 3 and len(waits) == 2
    assert all(0 < s <= 2.0 for s in waits), waits
    if first is None:
        assert waits[0] <= 0.5  # retry_min_s, jittered
    else:
        assert waits[0] == first
