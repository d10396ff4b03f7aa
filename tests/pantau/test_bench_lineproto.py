"""``pantau bench --lineproto``: the encoder benchmark runs and prints its figures."""

from __future__ import annotations

import pytest

from core.batch import TelemetryBatch
from core.reasons import Reason
from devices.registry import default_registry_path, load_registry
from devices.series import SeriesTable
from pantau.bench import main
from pantau.bench.lineproto import bench, encode_naive


def test_bench_runs_and_is_faster_than_naive() -> None:
    report = bench(20_000, repeat=2)
    assert "speedup x" in report
    assert float(report.rsplit("x", 1)[1]) > 1.0, report


def test_the_naive_baseline_writes_one_line_per_ok_reading() -> None:
    table = SeriesTable.from_registry(load_registry(default_registry_path()))
    d = table.devices[int(table.device_index[0])]
    batch = TelemetryBatch.from_arrays([5, 5, 6], [0, 0, 0], [1.5, 2.0, 3.0])
    batch = batch.with_status(batch.ts_ns == 6, Reason.OUT_OF_RANGE)
    assert encode_naive(table, batch) == (
        f"{d.kind},device={d.id},site={d.site} {table.metric[0]}=1.5 5\n"
        f"{d.kind},device={d.id},site={d.site} {table.metric[0]}=2.0 5\n").encode()


def test_pantau_bench_lineproto_prints_both_precisions(capsys: pytest.CaptureFixture[str]
                                                       ) -> None:
    assert main(["--lineproto", "-n", "2000", "--repeat", "1"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in out] == ["2000 readings, 2 decimals",
                                                    "2000 readings, full precision"]
