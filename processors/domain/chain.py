"""`Chain`: processors applied in order, with what the stateful ones add (derived rows, tiers,
state snapshots, the warm-up's replay). Built by `processors.build_chain`; which processor
offers what is stated by the Protocols of `processors.domain.capabilities`."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from core.batch import TelemetryBatch
from core.errors import PantauError
from core.state import State
from devices.series import SeriesTable
from processors.domain.capabilities import (
    Counting,
    Deferring,
    Processor,
    Replayable,
    ReplayAware,
    Seeded,
    Stateful,
)
from processors.domain.derived import Derived, Tier
from processors.domain.segments import IP, sort_order

QUALITY = "q"  # every raw series may carry `<metric>_q`: its quality flags, when any is set

class ProcessorError(PantauError):
    """A processor chain names an unknown processor, or its state cannot be restored."""


@dataclass(frozen=True, slots=True)
class Processed:
    """What a chain made of a batch: the readings (flags and status set), the derived rows
    (origin -1, finite, OK; series ids from the chain's table) and the tiers."""

    batch: TelemetryBatch
    derived: TelemetryBatch
    tiers: tuple[Tier, ...] = ()


class Chain:
    """Processors applied in order; itself a `Processor`.

    ``table`` is the series table extended with every derived metric the steps promise (and
    ``<metric>_q`` for each raw series): the one the sink encodes with. ``names`` name the
    steps in state snapshots (default: their class names). Not thread-safe: one writer calls
    `run` (or `process`), `state` and `restore`.
    """

    def __init__(self, steps: Sequence[Processor], table: SeriesTable,
                 names: Sequence[str] = ()) -> None:
        self.steps = tuple(steps)
        self.names = tuple(names) or tuple(type(p).__name__.lower() for p in self.steps)
        self.table = table
        # each step once as what it offers: (plain, stateful, deferring), one of them set
        self._plan = tuple((p, p if isinstance(p, Stateful) else None,
                            p if isinstance(p, Deferring) else None) for p in self.steps)
        self.stateful = {n: p for n, p in zip(self.names, self.steps, strict=True)
                         if isinstance(p, Stateful)}
        self._replayable = [p for p in self.steps if isinstance(p, Replayable)]
        self._fingerprint: str | None = None

    def process(self, batch: TelemetryBatch) -> TelemetryBatch:
        for step in self.steps:
            batch = step.process(batch)
        return batch

    def run(self, batch: TelemetryBatch, *, defer_tiers: bool = False) -> Processed:
        """Every step over ``batch``; derived values become rows of the chain's table.

        ``defer_tiers``: steps that can (`processors.tiers.Tiers`) only set the batch's rows
        aside, and `flush_tiers` returns their tiers later, for all those batches at once (what
        the pipeline does, writing tiers at checkpoints); otherwise each batch's tiers are in
        ``Processed.tiers``. Use one way for the life of a chain."""
        derived: list[Derived] = []
        tiers: list[Tier] = []
        order: IP | None = None  # the batch sorted by (series, ts), shared by the steps
        sorted_by: tuple[object, object] = (None, None)
        for p, stateful, deferring in self._plan:
            if stateful is not None:
                if sorted_by[0] is not batch.ts_ns or sorted_by[1] is not batch.series:
                    order, sorted_by = sort_order(batch), (batch.ts_ns, batch.series)
                if defer_tiers and deferring is not None:
                    batch = deferring.defer(batch, order)
                    continue
                out = stateful.step(batch, order)
                batch = out.batch
                derived += out.derived
                tiers += out.tiers
            else:
                batch = p.process(batch)
        return Processed(batch, self._rows(batch, derived), tuple(tiers))

    def flush_tiers(self, *, all_open: bool = False) -> list[Tier]:
        """The tier rows due after the batches run with ``defer_tiers`` since the last call
        (`processors.tiers.Tiers.flush`: closed buckets, open ones due for a rewrite, or with
        ``all_open`` every open bucket not yet written in full)."""
        out: list[Tier] = []
        for _, _, deferring in self._plan:
            if deferring is not None:
                out += deferring.flush(all_open=all_open)
        return out

    def _rows(self, batch: TelemetryBatch, derived: list[Derived]) -> TelemetryBatch:
        ts, series, value = [], [], []
        for d in derived:  # one array operation per derived output, never per row
            ids = self.table.derived.get((d.name, d.per_series))
            if ids is None or not len(d):
                continue
            sid = ids[d.source]
            keep = (sid >= 0) & np.isfinite(d.value)
            ts.append(d.ts_ns[keep])
            series.append(sid[keep])
            value.append(d.value[keep])
        q = self.table.derived.get((QUALITY, True))
        if q is not None and len(batch):
            flagged = np.flatnonzero((batch.flags != 0) & batch.ok & (batch.origin >= 0))
            ts.append(batch.ts_ns[flagged])
            series.append(q[batch.series[flagged]])
            value.append(batch.flags[flagged].astype(np.float64))
        if not ts:
            return TelemetryBatch.empty()
        return TelemetryBatch.from_arrays(np.concatenate(ts), np.concatenate(series),
                                          np.concatenate(value))

    # -- warm-up from stored readings (`ingest.warmup`) ---------------------------------------
    def lookback_s(self) -> npt.NDArray[np.float64]:
        """Per raw series, how far back a replay must start to rebuild the steps' state
        (0: no step keeps state for it)."""
        raw = self.table.raw
        need = np.zeros(raw)
        for p in self._replayable:
            need = np.maximum(need, np.asarray(p.lookback_s(), np.float64)[:raw])
        return need

    def seen_ts(self) -> npt.NDArray[np.int64]:
        """Per raw series, the oldest of the latest timestamps the steps that keep state for it
        have seen (`processors.domain.segments.NEVER` when one has seen none): a reading the
        state does not include yet is newer than this (`Replayable.last_ts`)."""
        raw = self.table.raw
        seen = np.full(raw, np.iinfo(np.int64).max, np.int64)
        for p in self._replayable:
            mine = np.asarray(p.lookback_s())[:raw] > 0
            seen[mine] = np.minimum(seen[mine], np.asarray(p.last_ts)[:raw][mine])
        return seen

    def seeds(self) -> dict[str, list[Seeded]]:
        """Derived field -> the steps seeded from its last stored value before a replay."""
        out: dict[str, list[Seeded]] = {}
        for p in self.steps:
            if isinstance(p, Seeded):
                for name in p.seeds():
                    out.setdefault(name, []).append(p)
        return out

    def replay(self, batch: TelemetryBatch) -> None:
        """Advance the stateful steps over stored readings (already calibrated and checked,
        so the stateless steps are skipped); what they derive is not kept (it is stored)."""
        order = sort_order(batch)
        for _, stateful, deferring in self._plan:
            if deferring is not None:
                deferring.defer(batch, order)
            elif stateful is not None:  # flags flow on, as in `run` (flood leaves spikes out)
                batch = stateful.step(batch, order).batch

    def replayed(self, *, catch_up: bool) -> None:
        """End of a replay: steps drop what they produced (tiers, but for the buckets a
        catch-up closed whole) and, unless it caught up after a restored snapshot
        (``catch_up``), what they counted (quality)."""
        for p in self.steps:
            if isinstance(p, ReplayAware):
                p.replayed(catch_up=catch_up)

    def counts(self) -> dict[str, int]:
        """Counters kept by the steps (e.g. `Quality.counts`), for ``/metrics``."""
        out: dict[str, int] = {}
        for p in self.steps:
            if isinstance(p, Counting):
                out.update(p.counts())
        return out

    # -- state ---------------------------------------------------------------------------
    def fingerprint(self) -> str:
        """Identifies what a snapshot's arrays are indexed by: the raw series and the chain."""
        if self._fingerprint is None:  # the table and steps never change: hash them once
            self._fingerprint = self._hash()
        return self._fingerprint

    def _hash(self) -> str:
        h = hashlib.sha256()
        for s in range(self.table.raw):
            h.update("/".join(self.table.key(s)).encode() + b"\n")
        h.update(",".join(self.names).encode())
        return h.hexdigest()

    def state(self) -> State:
        """Every stateful step's arrays, as ``<step>/<key>`` (the arrays are not copied)."""
        out: State = {"fingerprint": np.array(self.fingerprint())}
        for name, p in self.stateful.items():
            for k, a in p.state().items():
                out[f"{name}/{k}"] = a
        return out

    def restore(self, state: State) -> list[str]:
        """Restore the steps found in ``state``; returns the names of those restored.

        Raises `ProcessorError` when the snapshot was taken for other series or another
        chain, and re-raises what a step raised on a part it cannot take; either way nothing
        was restored and every step keeps the state it had."""
        found = str(state.get("fingerprint", np.array("")))
        if found != self.fingerprint():
            raise ProcessorError("the state snapshot belongs to another registry or processor "
                                 "chain (series or steps changed)")
        before = {name: p.state() for name, p in self.stateful.items()}
        restored = []
        try:
            for name, p in self.stateful.items():
                prefix = f"{name}/"
                part: State = {k[len(prefix):]: v for k, v in state.items()
                               if k.startswith(prefix)}
                if part:
                    p.restore(part)
                    restored.append(name)
        except Exception:
            # All or nothing: a step that cannot take its part (a snapshot from older code)
            # must not leave the steps before it restored, or the warm-up would replay the
            # stored readings on top of state that already holds them.
            for name in restored:
                self.stateful[name].restore(before[name])
            raise
        return restored
