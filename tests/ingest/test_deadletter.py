"""Dead letters bounded by bytes (issue #9): an oversized payload keeps a prefix, its length and
its SHA-256; no line exceeds the rotation size; rotation keeps several generations; the MQTT
copy stays under its limit; a torn tail left by a crash is cut."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import pytest

from core.reasons import Reason
from ingest.deadletter import DeadLetter, DeadLetterRecord, Rejected
from ingest.deadletter_record import MIN_LIMIT, PREFIX_BYTES, encode

NOW = 1_795_836_000 * 10**9
TOPIC = "pantau/kanigoro/wl-brantas-kanigoro/telemetry"


def record(payload: bytes, reason: Reason = Reason.PAYLOAD_TOO_LARGE,
           readings: int = 0) -> DeadLetterRecord:
    rejected = [Rejected(f"m{i}", Reason.UNKNOWN_METRIC, "x" * 300) for i in range(readings)]
    return DeadLetterRecord(TOPIC, payload, NOW, reason, "d" * 10_000, rejected)


def lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_bytes().splitlines()]


def test_an_oversized_payload_keeps_a_prefix_its_length_and_its_sha256() -> None:
    payload = "é".encode() * 50_000  # 100 kB of two-byte characters
    doc = json.loads(encode(record(payload), keep_payload=65536, limit=1 << 20))
    assert doc["payload_truncated"] is True
    assert doc["payload_bytes"] == len(payload)
    assert doc["payload_sha256"] == hashlib.sha256(payload).hexdigest()
    kept = str(doc["payload"]).encode()
    assert payload.startswith(kept) and PREFIX_BYTES - 1 <= len(kept) <= PREFIX_BYTES
    assert len(str(doc["detail"])) <= 2000


def test_a_payload_within_the_limit_is_kept_whole() -> None:
    payload = b"\xff\x00" * 1000
    doc = json.loads(encode(record(payload), keep_payload=65536, limit=1 << 20))
    assert base64.b64decode(str(doc["payload_b64"])) == payload
    assert "payload_truncated" not in doc


@pytest.mark.parametrize("limit", [MIN_LIMIT, 10_000, 70_000])
def test_no_line_exceeds_the_limit(limit: int) -> None:
    # A 64 kB payload of control characters escapes to six times its size in JSON.
    r = record(b"\x01" * 65536, Reason.UNKNOWN_METRIC, readings=5000)
    line = encode(r, keep_payload=65536, limit=limit)
    assert len(line) <= limit
    doc = json.loads(line)
    assert doc["payload_bytes"] == 65536 and doc["reason"] == "unknown_metric"


async def test_rotation_keeps_generations_and_every_line_whole(tmp_path: Path) -> None:
    published: list[tuple[str, bytes]] = []
    path = tmp_path / "dl.jsonl"
    dl = DeadLetter(path, lambda t, b: published.append((t, b)), "pantau/deadletter",
                    max_bytes=20_000, generations=3, keep_payload=8000, max_publish_bytes=5000)
    for i in range(40):
        await dl.write([record(b"%05d" % i + b"x" * 7000, Reason.NOT_JSON)])
    files = [path, *(dl.generation(i) for i in (1, 2, 3))]
    assert [f.exists() for f in files] == [True, True, True, True]
    assert not dl.generation(4).exists()
    kept = [doc for f in reversed(files) for doc in lines(f)]
    assert all(f.stat().st_size <= 20_000 for f in files)
    numbers = [int(str(d["payload"])[:5]) for d in kept]
    assert numbers == list(range(40 - len(numbers), 40))  # the newest, in order, none torn
    assert len(published) == 40
    assert all(len(b) <= 5000 and t == "pantau/deadletter/not_json" for t, b in published)
    assert json.loads(published[-1][1])["payload_truncated"] is True


async def test_a_torn_tail_is_cut_before_the_next_record(tmp_path: Path) -> None:
    path = tmp_path / "dl.jsonl"
    path.write_bytes(b'{"reason": "not_json"}\n{"reason": "bad_sch')  # a crash mid-write
    dl = DeadLetter(path, lambda t, b: None, "dl")
    await dl.write([record(b"x", Reason.BAD_SCHEMA)])
    assert [d["reason"] for d in lines(path)] == ["not_json", "bad_schema"]


async def test_a_lone_surrogate_is_written_escaped(tmp_path: Path) -> None:
    path = tmp_path / "dl.jsonl"
    r = DeadLetterRecord(TOPIC, b'{"values": {"\\ud800": 1}}', NOW, Reason.UNKNOWN_METRIC, "",
                         [Rejected("\ud800", Reason.UNKNOWN_METRIC, "no such metric")])
    await DeadLetter(path, lambda t, b: None, "dl").write([r])
    assert lines(path)[0]["readings"] == [{"metric": "\ud800", "reason": "unknown_metric",
                                           "detail": "no such metric"}]
