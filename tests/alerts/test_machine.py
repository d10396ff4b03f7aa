"""The per-slot alert state machine: for, keep_firing_for, hysteresis, redelivery."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from alerts.machine import FIRING, INACTIVE, PENDING, Machine

S = 1_000_000_000


def feed(m: Machine, slot: list[int], ts_s: list[float], cond: list[int]) -> list[tuple]:
    out = m.advance(np.asarray(slot, np.intp), (np.asarray(ts_s) * S).astype(np.int64),
                    np.asarray(cond, np.int8), np.arange(len(slot), dtype=np.float64))
    return [(c.slot, c.ts_ns // S, c.old, c.new) for c in out]


def test_for_makes_pending_then_firing_then_resolved() -> None:
    m = Machine(2, for_ns=60 * S)
    assert feed(m, [0, 0, 0, 0], [0, 30, 60, 90], [1, 1, 1, 0]) == [
        (0, 0, INACTIVE, PENDING), (0, 60, PENDING, FIRING), (0, 90, FIRING, INACTIVE)]
    assert m.state.tolist() == [INACTIVE, INACTIVE]


def test_pending_that_clears_never_fires() -> None:
    m = Machine(1, for_ns=60 * S)
    assert feed(m, [0, 0, 0], [0, 30, 50], [1, 1, 0]) == [
        (0, 0, INACTIVE, PENDING), (0, 50, PENDING, INACTIVE)]


def test_state_carries_across_batches_and_slots_are_independent() -> None:
    m = Machine(2, for_ns=60 * S)
    assert feed(m, [1, 0], [0, 0], [1, 0]) == [(1, 0, INACTIVE, PENDING)]
    assert feed(m, [1], [61], [1]) == [(1, 61, PENDING, FIRING)]
    assert m.state.tolist() == [INACTIVE, FIRING]


def test_hold_rows_keep_the_condition() -> None:
    m = Machine(1)
    assert feed(m, [0, 0, 0, 0], [0, 1, 2, 3], [1, -1, -1, 0]) == [
        (0, 0, INACTIVE, FIRING), (0, 3, FIRING, INACTIVE)]


def test_keep_firing_for_bridges_a_short_clear() -> None:
    m = Machine(1, keep_ns=100 * S)
    assert feed(m, [0, 0, 0, 0], [0, 10, 50, 60], [1, 0, 0, 1]) == [(0, 0, INACTIVE, FIRING)]
    assert feed(m, [0], [200], [0]) == [(0, 200, FIRING, INACTIVE)]


def test_expire_resolves_on_the_clock() -> None:
    m = Machine(1, keep_ns=100 * S)
    feed(m, [0, 0], [0, 10], [1, 0])
    assert m.expire(50 * S) == []
    assert [(c.old, c.new) for c in m.expire(100 * S)] == [(FIRING, INACTIVE)]


def test_a_redelivered_batch_changes_nothing() -> None:
    m = Machine(1, for_ns=10 * S)
    first = feed(m, [0, 0, 0], [0, 10, 20], [1, 1, 0])
    assert first
    assert feed(m, [0, 0, 0], [0, 10, 20], [1, 1, 0]) == []


def test_rows_in_any_order_are_taken_in_time_order() -> None:
    m = Machine(1, for_ns=10 * S)
    assert feed(m, [0, 0, 0], [20, 0, 10], [0, 1, 1]) == [
        (0, 0, INACTIVE, PENDING), (0, 10, PENDING, FIRING), (0, 20, FIRING, INACTIVE)]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(min_value=-4.9, max_value=4.9), min_size=1, max_size=200),
       st.integers(min_value=1, max_value=7))
def test_a_signal_inside_the_hysteresis_band_never_flaps(noise: list[float], chunks: int) -> None:
    """Fire at 100, clear below 90: once firing, a signal wandering within 95 +- 4.9 (inside
    the band) in batches of any size gives no further change."""
    m = Machine(1)
    feed(m, [0], [0], [1])  # the level crossed 100: firing
    values = 95.0 + np.asarray(noise)
    cond = np.where(values >= 100, 1, np.where(values < 90, 0, -1))
    ts = np.arange(1, len(values) + 1)
    changes = []
    for part in np.array_split(np.arange(len(values)), chunks):
        changes += feed(m, [0] * len(part), ts[part].tolist(), cond[part].tolist())
    assert changes == []
    assert m.state[0] == FIRING
