"""Dead letters on a full or read-only filesystem (issue #9): the write fails with `OSError`,
leaves the file exactly as it was (no torn line), is counted and kept in ``last_error`` for
readiness, and succeeds once there is room again. A real size-limited tmpfs (root), else an
unwritable directory (`tests.ingest.smallfs`)."""

from __future__ import annotations

import json
from pathlib import Path

from core.metrics import Metrics
from core.reasons import Reason
from ingest.deadletter import DeadLetter, DeadLetterRecord
from tests.ingest.smallfs import small_fs

NOW = 1_795_836_000 * 10**9
TOPIC = "pantau/kanigoro/wl-brantas-kanigoro/telemetry"


def record(i: int) -> DeadLetterRecord:
    # 12 kB: more than a tmpfs page, so a full disk cannot hide it in an allocated page.
    return DeadLetterRecord(TOPIC, b"%04d" % i + b"z" * 12_000, NOW, Reason.NOT_JSON, "no")


async def test_a_full_disk_fails_the_write_whole_and_it_recovers(tmp_path: Path) -> None:
    published: list[bytes] = []
    metrics = Metrics()
    with small_fs(tmp_path / "fs", 256 * 1024) as fs:
        dl = DeadLetter(fs.path / "dl.jsonl", lambda t, b: published.append(b), "dl",
                        metrics=metrics)
        await dl.write([record(0)])
        before = dl.path.read_bytes()
        for fault in (fs.full, fs.read_only):
            with fault():
                for _attempt in range(3):
                    try:
                        await dl.write([record(1), record(2)])
                    except OSError:
                        pass
                    else:
                        raise AssertionError(f"{fault.__name__}: the write succeeded")
                    assert dl.path.read_bytes() == before  # nothing torn, nothing half-written
                    assert dl.last_error.startswith("cannot write the dead-letter file: ")
            print(f"{fault.__name__} ({'tmpfs' if fs.mounted else 'unwritable dir'}): "
                  f"{dl.last_error}")
        assert metrics.value("pantau_deadletter_write_errors_total") == 6
        assert len(published) == 1  # nothing published for what was not written
        await dl.write([record(1), record(2)])
        assert dl.last_error == ""
        kept = [json.loads(line)["payload"][:4] for line in dl.path.read_bytes().splitlines()]
    assert kept == ["0000", "0001", "0002"]
    assert len(published) == 3
