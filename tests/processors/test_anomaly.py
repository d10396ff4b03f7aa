"""EWMA z-score: equals a naive sequential reference in any batch split; flags outliers."""

from __future__ import annotations

import math
from itertools import pairwise

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.batch import TelemetryBatch
from devices.registry import parse_registry
from devices.series import SeriesTable
from processors.anomaly import FLAG_ANOMALY, Anomaly

REGISTRY = parse_registry({
    "sites": [{"id": "s", "lat": -8.1, "lon": 112.2}],
    "devices": [{"id": "d", "kind": "k", "site": "s",
                 "metrics": {"a": {"unit": "x"}, "b": {"unit": "x"}, "c": {"unit": "x"}}}],
})
TABLE = SeriesTable.from_registry(REGISTRY)


def naive(rows: list[tuple[int, float]], alpha: float, warmup: int) -> list[float]:
    mean: dict[int, float] = {}
    var: dict[int, float] = {}
    n: dict[int, int] = {}
    out = []
    for s, x in rows:
        m, v, k = mean.get(s, x), var.get(s, 0.0), n.get(s, 0)
        d = x - m
        spread = math.sqrt(v) > 1e-9 * max(1.0, abs(m))
        out.append(d / math.sqrt(v) if k >= warmup and spread else math.nan)
        mean[s], var[s], n[s] = m + alpha * d, (1 - alpha) * (v + alpha * d * d), k + 1
    return out


def run(a: Anomaly, rows: list[tuple[int, float]], cuts: list[int], t0: int = 0
        ) -> dict[tuple[int, int], float]:
    b = TelemetryBatch.from_arrays(np.arange(len(rows)) + t0, [r[0] for r in rows],
                                   [r[1] for r in rows])
    edges = [0, *sorted(c % (len(b) + 1) for c in cuts), len(b)]
    got: dict[tuple[int, int], float] = {}
    for lo, hi in pairwise(edges):
        for d in a.step(b.take(np.arange(lo, hi))).derived:
            got.update(zip(zip(d.source.tolist(), d.ts_ns.tolist(), strict=True),
                           d.value.tolist(), strict=True))
    return got


rows_st = st.lists(st.tuples(st.integers(0, 2), st.floats(-100, 100)), min_size=1,
                   max_size=120)


@settings(max_examples=100, deadline=None)
@given(rows_st, st.lists(st.integers(0, 120), max_size=6))
def test_matches_sequential_reference_in_any_split(rows: list[tuple[int, float]],
                                                   cuts: list[int]) -> None:
    got = run(Anomaly(TABLE, alpha=0.2, warmup=3), rows, cuts)
    want = naive(rows, 0.2, 3)
    assert [got[(s, i)] for i, (s, _) in enumerate(rows)] == pytest.approx(
        want, rel=1e-7, abs=1e-9, nan_ok=True)


@settings(max_examples=50, deadline=None)
@given(rows_st, rows_st)
def test_state_round_trip(first: list[tuple[int, float]], second: list[tuple[int, float]]) -> None:
    a = Anomaly(TABLE, alpha=0.2, warmup=3)
    run(a, first, [])
    b = Anomaly(TABLE, alpha=0.2, warmup=3)
    b.restore({k: v.copy() for k, v in a.state().items()})
    assert run(a, second, [], t0=1000) == pytest.approx(run(b, second, [], t0=1000),
                                                         nan_ok=True)


def test_outlier_is_flagged_after_warmup() -> None:
    x = 20 + np.sin(np.arange(60))
    x[50] = 40.0
    b = TelemetryBatch.from_arrays(np.arange(60), [0] * 60, x)
    out = Anomaly(TABLE, alpha=0.1, warmup=20).step(b)
    assert np.flatnonzero(out.batch.flags & FLAG_ANOMALY).tolist() == [50]
    assert out.derived[0].metric_names(TABLE)[0] == "a_zscore"
    with pytest.raises(ValueError, match="alpha"):
        Anomaly(TABLE, alpha=1.5)
