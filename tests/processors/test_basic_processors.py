"""Calibration, range check and dedupe: exact results on hand-made batches; chain registry."""

from __future__ import annotations

import numpy as np
import pytest

from core.batch import FLAG_OUT_OF_RANGE, TelemetryBatch
from core.reasons import Reason
from devices.registry import parse_registry
from devices.series import SeriesTable
from processors import PROCESSORS, ProcessorContext, ProcessorError, build_chain
from processors.calibration import Calibration
from processors.dedupe import Dedupe
from processors.range_check import RangeCheck

REGISTRY = parse_registry({
    "sites": [{"id": "s", "lat": -8.1, "lon": 112.2}],
    "devices": [
        {"id": "g1", "kind": "river_gauge", "site": "s", "metrics": {
            "level_cm": {"unit": "cm", "min": 0, "max": 1000, "gain": 2.0, "offset": -10.0},
            "battery_v": {"unit": "V", "min": 0, "max": 15}}},
    ],
})
TABLE = SeriesTable.from_registry(REGISTRY)
LEVEL, BATT = TABLE.lookup["g1"]["level_cm"], TABLE.lookup["g1"]["battery_v"]


def batch(*rows: tuple[int, int, float]) -> TelemetryBatch:
    ts, s, v = zip(*rows, strict=True)
    return TelemetryBatch.from_arrays(ts, s, v, origin=range(len(rows)))


def test_calibration_applies_gain_and_offset_per_series() -> None:
    out = Calibration(TABLE).process(batch((1, LEVEL, 100.0), (1, BATT, 12.5)))
    assert out.value.tolist() == [190.0, 12.5]


@pytest.mark.parametrize(("value", "bad"), [
    pytest.param(-0.001, True, id="below-min"),
    pytest.param(0.0, False, id="at-min"),
    pytest.param(1000.0, False, id="at-max"),
    pytest.param(1000.5, True, id="above-max"),
])
def test_range_check_reject_mode(value: float, bad: bool) -> None:
    out = RangeCheck(TABLE, mode="reject").process(batch((1, LEVEL, value), (1, BATT, 12.0)))
    assert out.status.tolist() == [Reason.OUT_OF_RANGE if bad else Reason.OK, Reason.OK]
    assert out.flags.tolist() == [0, 0]


def test_range_check_flag_mode_keeps_the_row() -> None:
    out = RangeCheck(TABLE, mode="flag").process(batch((1, LEVEL, 5000.0), (1, BATT, 12.0)))
    assert out.status.tolist() == [Reason.OK, Reason.OK]
    assert out.flags.tolist() == [int(FLAG_OUT_OF_RANGE), 0]


def test_earlier_verdict_is_never_overwritten() -> None:
    b = batch((1, LEVEL, 5000.0)).with_status(np.array([True]), Reason.NOT_FINITE)
    out = RangeCheck(TABLE).process(b)
    assert out.status.tolist() == [Reason.NOT_FINITE]


def test_dedupe_marks_only_exact_copies_after_the_first() -> None:
    b = batch((1, LEVEL, 5.0), (1, LEVEL, 5.0), (1, LEVEL, 6.0), (2, LEVEL, 5.0),
              (1, BATT, 5.0), (1, LEVEL, 5.0))
    out = Dedupe().process(b)
    assert out.status.tolist() == [0, Reason.DUPLICATE, 0, 0, 0, Reason.DUPLICATE]


def test_dedupe_ignores_rows_already_rejected() -> None:
    b = batch((1, LEVEL, 5.0), (1, LEVEL, 5.0)).with_status(np.array([True, False]),
                                                           Reason.OUT_OF_RANGE)
    out = Dedupe().process(b)
    assert out.status.tolist() == [Reason.OUT_OF_RANGE, Reason.OK]


def test_chain_runs_in_order_and_empty_batches_pass() -> None:
    chain = build_chain(["calibration", "range_check", "dedupe"], ProcessorContext(TABLE))
    out = chain.process(batch((1, LEVEL, 600.0), (1, LEVEL, 100.0), (1, LEVEL, 100.0)))
    # 600 * 2 - 10 = 1190 > max: rejected after calibration, not before.
    assert out.value.tolist() == [1190.0, 190.0, 190.0]
    assert out.status.tolist() == [Reason.OUT_OF_RANGE, Reason.OK, Reason.DUPLICATE]
    assert len(chain.process(TelemetryBatch.empty())) == 0


def test_unknown_processor_is_a_clear_error() -> None:
    with pytest.raises(ProcessorError, match=r"unknown processor.*nope"):
        build_chain(["calibration", "nope"], ProcessorContext(TABLE))


#: Modules of `processors` that are not processors: its settings section and the machinery.
SUPPORT = {"settings", "domain"}


def test_every_processor_module_is_registered_documented_and_tested() -> None:
    import pkgutil
    from pathlib import Path

    import processors
    modules = {m.name for m in pkgutil.iter_modules(processors.__path__)} - SUPPORT
    assert modules <= set(PROCESSORS), f"unregistered: {modules - set(PROCESSORS)}"
    tests = {p: p.read_text() for p in Path(__file__).parent.glob("test_*.py")}
    for name in PROCESSORS:
        mod = __import__(f"processors.{name}", fromlist=["x"])
        assert mod.__doc__ and len(mod.__doc__) > 20, f"processors/{name}.py needs a docstring"
        testing = [p.name for p, text in tests.items() if p.name != "test_chain.py"
                   and f"from processors.{name} import" in text]
        assert testing, f"processors/{name}.py has no test module in tests/processors/"


def test_batch_rejects_ragged_arrays() -> None:
    with pytest.raises(ValueError, match="series"):
        TelemetryBatch(np.zeros(2, np.int64), np.zeros(1, np.int32), np.zeros(2),
                       np.zeros(2, np.uint16), np.zeros(2, np.uint8), np.zeros(2, np.int32))
