"""Property-based fuzzing of the decoder (issue #9): on any payload, `Decoder.decode` returns,
and every reading it appends is finite and dated within the accepted window (so it fits an
int64 column), or it carries a reason; what it refuses can always be dead-lettered.

Strategies: arbitrary bytes, arbitrary JSON, JSON built from the real schema with hostile
leaves, SenML, line protocol, and the fixed hostile payloads of `tests.ingest.hostile`.
"""

from __future__ import annotations

import json
import math
import random
from datetime import UTC, datetime, timedelta, timezone

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.reasons import Reason
from devices.registry import default_registry_path, load_registry
from devices.series import SeriesTable
from ingest.deadletter import DeadLetterRecord, Rejected
from ingest.decode import Decoder, RowBuffer
from ingest.decode_senml import KEYS
from tests.ingest.hostile import hostile_payloads

NOW_S = 1_795_836_000
NOW = NOW_S * 10**9
TOPIC = "pantau/kanigoro/wl-brantas-kanigoro/telemetry"
LIGHT = "pantau/kanigoro/sl-kanigoro-001/telemetry"
TABLE = SeriesTable.from_registry(load_registry(default_registry_path()))
DECODER = Decoder(TABLE)
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

METRICS = ["level_cm", "battery_v", "on", "fault", "power_w", "", "x" * 200, "\ud800"]
EDGE_INTS = [2**63 - 1, 2**63, -(2**63), -(2**63) - 1, 2**64, 10**400, -(10**400), 2**28,
             NOW_S, NOW_S * 1000, NOW_S * 10**6, NOW, 0, -1]
edge_ints = st.sampled_from(EDGE_INTS) | st.integers() | st.integers(-(10**500), 10**500)
floats = st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from(
    [1e300, -1e300, 9.3e18, 1.5e10, float(NOW_S), NOW_S + 0.5, 5e-324])
dates = st.datetimes(timezones=st.sampled_from([UTC, timezone(timedelta(hours=14)),
                                                timezone(-timedelta(hours=23, minutes=59))]))
stamps = (dates.map(lambda d: d.isoformat()) | st.datetimes().map(lambda d: d.isoformat())
          | st.sampled_from(["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-14:00", "", "Z"]))
leaves = (st.none() | st.booleans() | edge_ints | floats | st.text(max_size=30) | stamps
          | st.integers(NOW_S - 40 * 86400, NOW_S + 3600))
hostile = st.recursive(leaves, lambda kids: st.lists(kids, max_size=4)
                       | st.dictionaries(st.text(max_size=8), kids, max_size=4), max_leaves=12)
reading_set = st.fixed_dictionaries(
    {"ts": hostile, "values": st.dictionaries(st.sampled_from(METRICS) | st.text(max_size=12),
                                              hostile, max_size=5)},
    optional={"extra": hostile})
senml_leaf = hostile | st.sampled_from(["urn:dev:x:", "level_cm", "cm", "V", NOW_S, 1.5])
senml_record = st.fixed_dictionaries(
    {"n": st.sampled_from(["level_cm", "battery_v", "on"]) | hostile},
    optional={"bt": edge_ints | floats, "t": edge_ints | floats,
              **{k: senml_leaf for k in sorted(KEYS - {"n", "bt", "t"})}})
numbers_text = st.one_of(edge_ints.map(str), floats.map(repr), st.text(max_size=12),
                         st.sampled_from(["t", "false", "nan", "inf", "12i", "1e999", "-0"]))
line = st.tuples(st.text(max_size=10), st.lists(st.tuples(st.sampled_from(METRICS[:5]),
                                                          numbers_text), min_size=1, max_size=4),
                 numbers_text | st.integers(-(10**30), 10**30).map(str))


def check(payload: bytes, topic: str = TOPIC) -> None:
    """The property: decode returns; rows are sane or the message carries reasons; every
    refusal can be written as a dead-letter record."""
    out = RowBuffer()
    note = DECODER.decode(topic, payload, NOW, out, 3)
    ts = np.array(out.ts_ns, dtype=np.int64)  # raises if a timestamp escaped int64
    assert len(ts) == len(out.value) == len(out.series) == len(out.origin)
    assert all(math.isfinite(v) for v in out.value)
    assert ((ts >= NOW - DECODER.max_age_ns) & (ts <= NOW + DECODER.max_future_ns)).all()
    notes = out.notes.get(3, [])
    if note is not None:
        assert len(out) == 0 and not notes and note.reason.is_rejection and note.detail
        assert note.reason is not Reason.INTERNAL_ERROR
    else:
        assert len(out) or notes, "an accepted message carries readings or reasons"
    assert all(n.reason.is_rejection and n.detail for n in notes)
    reason = note.reason if note is not None else (notes[0].reason if notes else Reason.OK)
    record = DeadLetterRecord(topic, payload, NOW, reason, note.detail if note else "",
                              [Rejected(n.metric, n.reason, n.detail) for n in notes])
    json.loads(record.to_json())


@FUZZ
@given(st.binary(max_size=3000))
def test_arbitrary_bytes(payload: bytes) -> None:
    check(payload)


@FUZZ
@given(hostile)
def test_arbitrary_json(doc: object) -> None:
    try:
        text = json.dumps(doc)
    except ValueError:  # an int beyond Python's 4300-digit str limit cannot be sent as JSON
        return
    check(text.encode("utf-8", "surrogatepass"))


@FUZZ
@given(reading_set | st.lists(reading_set, max_size=4), st.sampled_from([TOPIC, LIGHT]))
def test_schema_with_hostile_leaves(doc: object, topic: str) -> None:
    try:
        text = json.dumps(doc)
    except ValueError:
        return
    check(text.encode(), topic)


@FUZZ
@given(st.lists(senml_record, min_size=1, max_size=5))
def test_senml(records: list[dict[str, object]]) -> None:
    try:
        text = json.dumps(records)
    except ValueError:
        return
    check(text.encode())


@FUZZ
@given(st.lists(line, min_size=1, max_size=3), st.sampled_from([TOPIC, LIGHT]))
def test_line_protocol(lines: list[tuple[str, list[tuple[str, str]], str]], topic: str) -> None:
    text = "\n".join(f"{m} {','.join(f'{k}={v}' for k, v in fields)} {ts}"
                     for m, fields, ts in lines)
    check(text.encode("utf-8", "surrogatepass"), topic)


def test_the_fixed_hostile_payloads() -> None:
    for payload in hostile_payloads(NOW_S, 2000, random.Random(1)):
        out = RowBuffer()
        note = DECODER.decode(TOPIC, payload, NOW, out, 0)
        assert len(out) == 0 and (note is not None or out.notes), payload[:200]
        check(payload)


def test_a_400_digit_timestamp_is_a_bad_timestamp() -> None:
    out = RowBuffer()
    note = DECODER.decode(TOPIC, b'{"ts": %s, "values": {"level_cm": 1}}' % (b"9" * 400), NOW,
                          out, 0)
    assert note is not None and note.reason is Reason.BAD_TIMESTAMP, note
    assert "bits" in note.detail and len(note.detail) < 200


def test_booleans_are_numbers_only_for_boolean_metrics() -> None:
    out = RowBuffer()
    assert DECODER.decode(LIGHT, b'{"ts": %d, "values": {"on": true, "power_w": true}}' % NOW_S,
                          NOW, out, 0) is None
    assert out.value == [1.0]
    assert [(n.metric, n.reason) for n in out.notes[0]] == [("power_w", Reason.NOT_A_NUMBER)]


def test_rfc3339_edges_are_refused_not_raised() -> None:
    for ts in ("0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-14:00"):
        out = RowBuffer()
        note = DECODER.decode(TOPIC, json.dumps({"ts": ts, "values": {"level_cm": 1}}).encode(),
                              NOW, out, 0)
        assert note is not None and note.reason is Reason.BAD_TIMESTAMP, (ts, note)
    assert datetime.fromisoformat("9999-12-31T23:59:59-14:00")  # parses; the range refuses it
