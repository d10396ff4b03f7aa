"""`Stored`: what one write of the pipeline stored, for the components that act on it.

The pipeline hands every `StoredListener` a `Stored` after the batch's readings and derived
rows were written and its rejections dead-lettered, and before the batch's messages are
acknowledged. The device status store (last seen, last values) and the alert rules listen.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from core.batch import I64, TelemetryBatch


@dataclass(frozen=True, slots=True)
class Stored:
    """One write's outcome. Frozen; listeners must not modify its arrays.

    - ``batch``: every reading of the sealed batch with its final status: OK rows were written,
      the others dead-lettered (or dropped as duplicates); ``batch.origin`` indexes
      ``received_ns``.
    - ``derived``: the derived rows written beside the readings (flood stage, air-quality
      index, z-scores, ``<metric>_q`` quality bits), without those the database refused; their
      ``series`` index the chain's table (`processors.Chain.table`), where derived metrics
      follow the raw series.
    - ``received_ns``: per message of the batch, when it arrived (the pipeline's clock).
    - ``now_ns``: the pipeline's clock when the batch was stored.
    """

    batch: TelemetryBatch
    derived: TelemetryBatch
    received_ns: I64
    now_ns: int

    @property
    def readings(self) -> TelemetryBatch:
        """The readings that were written (status OK)."""
        return self.batch.take(self.batch.ok & (self.batch.origin >= 0))

    @staticmethod
    def of(batch: TelemetryBatch, received_ns: list[int] | I64, now_ns: int,
           derived: TelemetryBatch | None = None) -> Stored:
        """A `Stored` from plain lists (tests, callers outside the pipeline)."""
        return Stored(batch, TelemetryBatch.empty() if derived is None else derived,
                      np.asarray(received_ns, np.int64), now_ns)


class StoredListener(Protocol):
    """Acts on what was stored. Called on the event loop by the pipeline's single writer,
    never concurrently, once per stored batch in order; it must return quickly (the acks wait
    for it) and should not raise: an exception is logged, counted
    (``pantau_listener_errors_total``) and ingest goes on, since the data is already stored."""

    def on_stored(self, stored: Stored) -> None: ...
