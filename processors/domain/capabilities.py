"""What a processor may offer beyond ``process``, as small Protocols that processors implement
and `processors.domain.chain.Chain` recognises once, when it is built.

Every processor is a `Processor`. The optional capabilities:

=============  ============================================  ==============================
capability     methods                                       implemented by
=============  ============================================  ==============================
`Deriving`     ``derives()``                                 processors that write derived
                                                             fields (flood, aqi, anomaly,
                                                             windows)
`Stateful`     ``step(batch, order)``, ``state()``,          every processor with per-series
               ``restore(state)``                            state
`Deferring`    ``defer(batch, order)``, ``flush(all_open)``  tiers
`Replayable`   ``lookback_s()``, ``last_ts``                 every stateful one: the warm-up
                                                             rebuilds its state from stored
                                                             readings
`ReplayAware`  ``replayed(catch_up=...)``                    those that drop what a replay
                                                             produced (tiers, quality, aqi)
`Seeded`       ``seeds()``, ``seed(name, device, value)``    flood (a latched stage)
`Counting`     ``counts()``                                  quality, aqi (for ``/metrics``)
=============  ============================================  ==============================

Lifecycle: the chain calls them from one task, never concurrently; none does I/O. Call either
``step`` or ``process`` for a batch, never both: each advances the state. ``order`` is the
batch sorted by (series, time) (`processors.domain.segments.sort_order`), shared by the steps
so that each does not sort again; ``None`` lets the step sort itself.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from core.batch import TelemetryBatch
from core.state import State
from devices.series import DerivedMetric
from processors.domain.derived import Output, Tier
from processors.domain.segments import F64, I32, I64, IP


@runtime_checkable
class Processor(Protocol):
    """A pure, vectorised step: ``process(batch) -> batch`` (see `processors`)."""

    def process(self, batch: TelemetryBatch) -> TelemetryBatch: ...


@runtime_checkable
class Deriving(Protocol):
    """Promises the derived metrics it may produce, so the series table gives them ids (and
    field names) before the first batch."""

    def derives(self) -> list[DerivedMetric]: ...


@runtime_checkable
class Stateful(Processor, Protocol):
    """Per-series state, pure apart from that state, which only advances.

    ``step`` is ``process`` plus what it derived (`Output`: derived values, tiers); ``state``
    returns the arrays to snapshot (not copies) and ``restore`` takes them back."""

    def step(self, batch: TelemetryBatch, order: IP | None = None) -> Output: ...
    def state(self) -> State: ...
    def restore(self, state: State) -> None: ...


@runtime_checkable
class Deferring(Protocol):
    """Can set a batch's rows aside (``defer``) and aggregate everything set aside at once
    (``flush``, at the pipeline's checkpoint), instead of one ``step`` per batch."""

    def defer(self, batch: TelemetryBatch, order: IP | None = None) -> TelemetryBatch: ...
    def flush(self, *, all_open: bool = False) -> tuple[Tier, ...]: ...


@runtime_checkable
class Replayable(Protocol):
    """State that a replay of stored readings rebuilds (`ingest.warmup`).

    ``lookback_s()``: per series, how far back the replay must start (0: no state for it);
    ``last_ts``: per series, the newest timestamp the state includes (a reading at or before
    it never advances the state again)."""

    def lookback_s(self) -> F64: ...
    @property
    def last_ts(self) -> I64: ...


@runtime_checkable
class ReplayAware(Protocol):
    """Told when a replay ends: drops what it produced (tiers of a partial bucket) and, unless
    it ``catch_up`` after a restored snapshot, what it counted."""

    def replayed(self, *, catch_up: bool) -> None: ...


@runtime_checkable
class Seeded(Protocol):
    """Before a replay, seeded from the last stored value of the device-level derived fields
    ``seeds()`` names (``device``: indices into the table's devices)."""

    def seeds(self) -> tuple[str, ...]: ...
    def seed(self, name: str, device: I32, value: F64) -> None: ...


@runtime_checkable
class Counting(Protocol):
    """Keeps counters (e.g. quality flags by kind) that ``/metrics`` publishes."""

    def counts(self) -> dict[str, int]: ...
