"""A corrupt processors snapshot never stops start-up (issue #9): `Checkpoints.restore` sets it
aside as ``processors.npz.stale`` with a warning and returns False (the warm-up rebuilds the
state), whatever the damage, even when it cannot be set aside (a read-only directory)."""

from __future__ import annotations

import io
import random
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from core.batch import TelemetryBatch
from core.metrics import Metrics
from devices.registry import default_registry_path, load_registry
from devices.series import SeriesTable
from ingest.checkpoint import Checkpoints
from ingest.rejections import RateLimitedLog
from ingest.snapshot import StateFile
from ingest.writer import Writer
from processors import ProcessorContext, build_chain
from processors.settings import ProcessorSettings
from tests.ingest.smallfs import small_fs

TABLE = SeriesTable.from_registry(load_registry(default_registry_path()))
NAMES = ("calibration", "range_check", "dedupe", "quality", "flood", "aqi", "anomaly", "tiers")


class NoSink:
    async def write(self, batch: TelemetryBatch) -> None: ...


def checkpoints(path: Path) -> Checkpoints:
    chain = build_chain(NAMES, ProcessorContext(TABLE, "reject", ProcessorSettings()))
    metrics, rlog = Metrics(), RateLimitedLog()
    return Checkpoints(chain, Writer(NoSink(), metrics, rlog), metrics, rlog,
                       StateFile(path), 5.0)


def saved(path: Path) -> bytes:
    chain = build_chain(NAMES, ProcessorContext(TABLE, "reject", ProcessorSettings()))
    StateFile(path).save(chain.state())
    return path.read_bytes()


def npy(_: bytes) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.arange(10))
    return buf.getvalue()


def scribble(data: bytes) -> bytes:
    out, rng = bytearray(data), random.Random(5)
    for _ in range(50):
        out[rng.randrange(len(out))] ^= 0xFF
    return bytes(out)


@pytest.mark.parametrize("damage", [
    pytest.param(lambda d: b"", id="empty"),
    pytest.param(lambda d: d[:30], id="truncated-header"),
    pytest.param(lambda d: d[:len(d) // 2], id="truncated-half"),
    pytest.param(lambda d: d[:-10], id="truncated-tail"),
    pytest.param(lambda d: random.Random(1).randbytes(20000), id="garbage"),
    pytest.param(lambda d: b"PK\x03\x04" + b"\xff" * 5000, id="zip-magic-garbage"),
    pytest.param(npy, id="one-array"),
    pytest.param(scribble, id="scribbled"),
])
def test_a_corrupt_snapshot_is_set_aside(tmp_path: Path, damage: Callable[[bytes], bytes],
                                          caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "processors.npz"
    damaged = damage(saved(path))
    path.write_bytes(damaged)
    assert checkpoints(path).restore() is False
    assert not path.exists()
    assert (tmp_path / "processors.npz.stale").read_bytes() == damaged
    assert "cannot restore processor state" in caplog.text


def test_a_sound_snapshot_is_restored(tmp_path: Path) -> None:
    path = tmp_path / "processors.npz"
    saved(path)
    assert checkpoints(path).restore() is True


def test_a_corrupt_snapshot_that_cannot_be_set_aside_still_starts(tmp_path: Path) -> None:
    with small_fs(tmp_path / "fs", 1024 * 1024) as fs:
        path = fs.path / "processors.npz"
        saved(path)
        path.write_bytes(b"garbage")
        with fs.read_only():
            assert checkpoints(path).restore() is False


def test_a_save_on_a_full_disk_leaves_no_half_snapshot(tmp_path: Path) -> None:
    chain = build_chain(NAMES, ProcessorContext(TABLE, "reject", ProcessorSettings()))
    with small_fs(tmp_path / "fs", 64 * 1024) as fs:
        path = fs.path / "processors.npz"
        with fs.full(), pytest.raises(OSError, match=r"No space|Permission"):
            StateFile(path).save(chain.state())
        assert sorted(p.name for p in fs.path.iterdir()) == []
