"""The processors' side of the pipeline's writer: their counters on ``/metrics``, the tier
rows written at each checkpoint, and the state snapshot saved there and restored on start.

A checkpoint comes at most every ``snapshot_interval_s`` (0: after every batch) and after
the drain, after the batch's writes and before its acks: first the tiers of the batches since
the last one (aggregated there in one pass, `processors.Chain.flush_tiers`), then the state
(`ingest.snapshot.StateFile`). Tiers go with the state because a tier row is a bucket's
aggregate so far: whatever a crash loses of them comes back from the restored state (and the
warm-up's catch-up, `ingest.warmup`) with the bucket's next reading.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

from core.metrics import Metrics
from ingest.rejections import RateLimitedLog
from ingest.snapshot import StateFile
from ingest.writer import Writer
from processors import Chain, ProcessorError
from processors.domain.derived import Tier

HELP: dict[str, tuple[str, str]] = {  # this module's metrics (`Metrics.describe`)
    "pantau_aqi_incomplete_total": ("counter", "Air-quality readings left without a sub-index "
                                    "(average=subindex) or NowCast because the averaging window "
                                    "was incomplete, by pollutant."),
    "pantau_quality_flags_total": ("counter", "Readings flagged by the quality processor, by "
                                   "kind (stuck, spike, gap; missed = reports counted missing)."),
    "pantau_state_snapshots_total": ("counter", "Processor state snapshots saved."),
    "pantau_state_snapshot_errors_total": ("counter", "Processor state snapshots that failed "
                                           "(logged; ingest goes on)."),
    "pantau_state_snapshot_seconds": ("histogram", "Duration of a state snapshot."),
    "pantau_state_snapshot_bytes": ("gauge", "Size of the last state snapshot."),
}

log = logging.getLogger("pantau.pipeline")
AQI_INCOMPLETE = "aqi_incomplete_"  # `processors.aqi.AirQuality.counts` keys


class Checkpoints:
    """Owned by the pipeline's single writer: not for concurrent use."""

    def __init__(self, chain: Chain, writer: Writer, metrics: Metrics, rlog: RateLimitedLog,
                 state_file: StateFile | None, snapshot_interval_s: float) -> None:
        self._chain, self._writer, self._m, self._rlog = chain, writer, metrics, rlog
        metrics.describe(HELP)
        self._file, self._snapshot_s = state_file, snapshot_interval_s
        self._dirty = False
        self._last_snapshot = time.monotonic()
        self._pending_tiers: list[Tier] = []

    def processed(self, tiers: tuple[Tier, ...]) -> None:
        """A batch went through the chain (and was written): its tiers wait for the next
        checkpoint, the state has changed, the counters are published."""
        self._dirty = True
        self._pending_tiers += tiers
        self.publish_counts()

    def restore(self) -> bool:
        """Load the processors' state snapshot, if any (before the first batch); whether one
        was restored. A snapshot of other series or another chain is set aside (renamed
        ``*.stale``), not used."""
        if self._file is None or not self._chain.stateful:
            return False
        path = self._file.path
        try:
            state = self._file.load()
            if state is None:
                log.info("no processor state in %s", path)
                return False
            restored = self._chain.restore(state)
        except Exception as e:  # corrupt, foreign or unreadable: never a reason not to start
            if not isinstance(e, OSError | ValueError | KeyError | ProcessorError):
                log.exception("restoring processor state from %s failed unexpectedly", path)
            self._set_aside(path, e)
            return False
        self.publish_counts()
        log.info("restored processor state (%s) from %s", ", ".join(restored), path)
        return True

    @staticmethod
    def _set_aside(path: Path, why: Exception) -> None:
        """Rename an unusable snapshot ``*.stale`` (the warm-up rebuilds the state), keeping
        it for inspection; when even that fails, the next checkpoint overwrites it."""
        stale = path.with_name(path.name + ".stale")
        try:
            if path.exists():
                path.replace(stale)
        except OSError as e:
            log.warning("cannot restore processor state from %s (%s), nor set it aside (%s): "
                        "starting fresh", path, why, e)
            return
        log.warning("cannot restore processor state from %s (%s): starting fresh, rebuilt by "
                    "the warm-up; the old file is kept as %s", path, why, stale)

    async def checkpoint(self, *, force: bool = False, all_open: bool = False) -> None:
        """When due (every ``snapshot_interval_s``, or ``force``): write the pending tiers
        (``all_open``: every open bucket too, see `processors.tiers`), then save the
        processors' state. Tiers go with the state because a tier row is a
        bucket's aggregate so far: coalescing batches writes each touched bucket once per
        checkpoint instead of once per batch, and whatever a crash loses of them comes back
        from the restored state with the bucket's next reading."""
        now = time.monotonic()
        if not force and now - self._last_snapshot < self._snapshot_s:
            return
        self._last_snapshot = now
        self._pending_tiers += self._chain.flush_tiers(all_open=all_open)
        if self._pending_tiers:
            pending, self._pending_tiers = self._pending_tiers, []
            await self._writer.tiers(pending)
        if self._file is None or not self._dirty:
            return
        t0 = time.perf_counter()
        try:
            # The writer awaits the save, so no batch mutates the arrays meanwhile.
            size = await asyncio.to_thread(self._file.save, self._chain.state())
        except (OSError, ValueError) as e:
            self._m.counter("pantau_state_snapshot_errors_total").inc()
            self._rlog.warning("state", "cannot save processor state to %s: %s",
                               self._file.path, e)
            return
        self._dirty = False
        self._m.counter("pantau_state_snapshots_total").inc()
        self._m.histogram("pantau_state_snapshot_seconds").observe(time.perf_counter() - t0)
        self._m.gauge("pantau_state_snapshot_bytes").set(size)

    def publish_counts(self) -> None:
        """Publish the processors' counters (after each batch, a restore or a warm-up)."""
        for key, n in self._chain.counts().items():
            if key.startswith(AQI_INCOMPLETE):  # aqi_incomplete_<pollutant>[_nowcast]
                pollutant = key.removeprefix(AQI_INCOMPLETE)
                average = "nowcast" if pollutant.endswith("_nowcast") else "subindex"
                self._m.counter("pantau_aqi_incomplete_total", average=average,
                                pollutant=pollutant.removesuffix("_nowcast")).value = n
            else:
                self._m.counter("pantau_quality_flags_total", kind=key).value = n
