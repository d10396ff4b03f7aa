"""Decoder table tests: every payload format, every rejection reason, exact values and times."""

from __future__ import annotations

import json

import pytest

from core.reasons import Reason
from devices.registry import default_registry_path, load_registry
from devices.series import SeriesTable
from ingest.decode import Decoder, RowBuffer

NOW_S = 1_795_836_000  # 2026-11-28T03:20:00Z
NOW = NOW_S * 1_000_000_000
TOPIC = "pantau/kanigoro/wl-brantas-kanigoro/telemetry"
TABLE = SeriesTable.from_registry(load_registry(default_registry_path()))
LEVEL = TABLE.lookup["wl-brantas-kanigoro"]["level_cm"]
BATT = TABLE.lookup["wl-brantas-kanigoro"]["battery_v"]


def decode(payload: bytes | str, topic: str = TOPIC) -> tuple[object, RowBuffer]:
    out = RowBuffer()
    raw = payload.encode() if isinstance(payload, str) else payload
    note = Decoder(TABLE, max_payload_bytes=2048).decode(topic, raw, NOW, out, 7)
    return note, out


def rows(out: RowBuffer) -> list[tuple[int, int, float]]:
    return list(zip(out.ts_ns, out.series, out.value, strict=True))


@pytest.mark.parametrize(("payload", "expected"), [
    pytest.param(json.dumps({"ts": NOW_S, "values": {"level_cm": 123.4, "battery_v": 3.9}}),
                 [(NOW, LEVEL, 123.4), (NOW, BATT, 3.9)], id="json-epoch-s"),
    pytest.param(json.dumps({"ts": NOW_S * 1000 + 250, "values": {"level_cm": 1}}),
                 [(NOW + 250_000_000, LEVEL, 1.0)], id="json-epoch-ms-int-value"),
    pytest.param(json.dumps({"ts": NOW + 5, "values": {"level_cm": 1.5}}),
                 [(NOW + 5, LEVEL, 1.5)], id="json-epoch-ns"),
    pytest.param(json.dumps({"ts": "2026-11-28T10:20:00.5+07:00", "values": {"level_cm": 2.0}}),
                 [(NOW + 500_000_000, LEVEL, 2.0)], id="json-rfc3339-offset"),
    pytest.param(json.dumps([{"ts": NOW_S, "values": {"level_cm": 1.0}},
                             {"ts": NOW_S + 60, "values": {"level_cm": 2.0}}]),
                 [(NOW, LEVEL, 1.0), (NOW + 60 * 10**9, LEVEL, 2.0)], id="json-list"),
    pytest.param(json.dumps([{"bn": "urn:dev:wl-brantas-kanigoro:", "bt": NOW_S,
                              "n": "level_cm", "u": "cm", "v": 150.25},
                             {"n": "battery_v", "t": 1, "v": 12.5}]),
                 [(NOW, LEVEL, 150.25), (NOW + 10**9, BATT, 12.5)], id="senml"),
    pytest.param(f"river,x=y level_cm=10.5,battery_v=12i {NOW + 1}",
                 [(NOW + 1, LEVEL, 10.5), (NOW + 1, BATT, 12.0)], id="line-protocol"),
])
def test_formats_decode_exactly(payload: str, expected: list[tuple[int, int, float]]) -> None:
    note, out = decode(payload)
    assert note is None
    assert rows(out) == expected
    assert set(out.origin) == {7}
    assert out.notes == {}


@pytest.mark.parametrize(("payload", "topic", "reason"), [
    pytest.param(b"\xff\xfe{", TOPIC, Reason.NOT_JSON, id="binary"),
    pytest.param("{not json", TOPIC, Reason.NOT_JSON, id="broken-json"),
    pytest.param("hello world", TOPIC, Reason.NOT_JSON, id="plain-text"),
    pytest.param('{"ts": 1, "value": 3}', TOPIC, Reason.BAD_SCHEMA, id="no-values"),
    pytest.param('"just a string"', TOPIC, Reason.BAD_SCHEMA, id="json-scalar"),
    pytest.param("42", TOPIC, Reason.BAD_SCHEMA, id="json-number"),
    pytest.param(f'{{"ts": {NOW_S}, "values": {{}}}}', TOPIC, Reason.BAD_SCHEMA,
                 id="empty-values"),
    pytest.param('{"ts": 1, "values": {"level_cm": 1}}', "pantau/x/nope/telemetry",
                 Reason.UNKNOWN_DEVICE, id="unknown-device"),
    pytest.param('{"ts": 1, "values": {"level_cm": 1}}', "pantau/srengat/wl-brantas-kanigoro/"
                 "telemetry", Reason.BAD_TOPIC, id="wrong-site"),
    pytest.param('{"ts": 1, "values": {"level_cm": 1}}', "other/kanigoro/x/telemetry",
                 Reason.BAD_TOPIC, id="wrong-prefix"),
    pytest.param("x" * 3000, TOPIC, Reason.PAYLOAD_TOO_LARGE, id="too-large"),
    pytest.param('{"ts": "yesterday", "values": {"level_cm": 1}}', TOPIC, Reason.BAD_TIMESTAMP,
                 id="bad-ts-string"),
    pytest.param('{"ts": true, "values": {"level_cm": 1}}', TOPIC, Reason.BAD_TIMESTAMP,
                 id="bool-ts"),
    pytest.param('{"ts": "2026-11-28T03:20:00", "values": {"level_cm": 1}}', TOPIC,
                 Reason.BAD_TIMESTAMP, id="ts-without-zone"),
    pytest.param('{"values": {"level_cm": 1}}', TOPIC, Reason.MISSING_TIMESTAMP, id="no-ts"),
    pytest.param('[{"n": "level_cm", "v": 1}]', TOPIC, Reason.MISSING_TIMESTAMP,
                 id="senml-relative-time"),
    pytest.param(f'{{"ts": {NOW_S + 3600}, "values": {{"level_cm": 1}}}}', TOPIC,
                 Reason.TS_IN_FUTURE, id="future"),
    pytest.param(f'{{"ts": {NOW_S - 40 * 86400}, "values": {{"level_cm": 1}}}}', TOPIC,
                 Reason.TS_TOO_OLD, id="too-old"),
    pytest.param("m level_cm=1.0", TOPIC, Reason.NOT_JSON, id="line-protocol-no-timestamp"),
    pytest.param("m level_cm=1.0 soon", TOPIC, Reason.BAD_TIMESTAMP, id="line-protocol-bad-ts"),
])
def test_whole_message_rejections(payload: str | bytes, topic: str, reason: Reason) -> None:
    note, out = decode(payload, topic)
    assert note is not None
    assert note.reason is reason, note.detail
    assert note.detail
    assert len(out) == 0 and out.notes == {}


@pytest.mark.parametrize(("values", "reason", "metric"), [
    pytest.param('{"level_cm": "abc"}', Reason.NOT_A_NUMBER, "level_cm", id="string"),
    pytest.param('{"level_cm": null}', Reason.NOT_A_NUMBER, "level_cm", id="null"),
    pytest.param('{"level_cm": NaN}', Reason.NOT_FINITE, "level_cm", id="nan"),
    pytest.param('{"level_cm": Infinity}', Reason.NOT_FINITE, "level_cm", id="inf"),
    pytest.param('{"level_cm": -1e999}', Reason.NOT_FINITE, "level_cm", id="overflow"),
    pytest.param('{"depth_m": 1}', Reason.UNKNOWN_METRIC, "depth_m", id="unknown-metric"),
])
def test_reading_rejections_keep_the_rest(values: str, reason: Reason, metric: str) -> None:
    payload = f'{{"ts": {NOW_S}, "values": {{"battery_v": 12.5, {values[1:-1]}}}}}'
    note, out = decode(payload)
    assert note is None
    assert rows(out) == [(NOW, BATT, 12.5)]
    [n] = out.notes[7]
    assert (n.reason, n.metric) == (reason, metric)


def test_line_protocol_bad_field_rejects_that_reading() -> None:
    note, out = decode(f"m level_cm=abc,battery_v=12.5 {NOW}")
    assert note is None
    assert rows(out) == [(NOW, BATT, 12.5)]
    assert [n.reason for n in out.notes[7]] == [Reason.NOT_A_NUMBER]


def test_senml_unit_mismatch_rejects_the_reading() -> None:
    payload = json.dumps([{"bn": "wl:", "bt": NOW_S, "n": "level_cm", "u": "m", "v": 1.2},
                          {"n": "battery_v", "u": "V", "v": 12.0}])
    note, out = decode(payload)
    assert note is None
    assert rows(out) == [(NOW, BATT, 12.0)]
    assert [n.reason for n in out.notes[7]] == [Reason.UNIT_MISMATCH]


def test_rejected_message_leaves_earlier_rows_alone() -> None:
    out = RowBuffer()
    d = Decoder(TABLE)
    ok = json.dumps({"ts": NOW_S, "values": {"level_cm": 5.0}}).encode()
    bad = json.dumps([{"ts": NOW_S, "values": {"level_cm": 6.0}}, {"values": {}}]).encode()
    assert d.decode(TOPIC, ok, NOW, out, 0) is None
    note = d.decode(TOPIC, bad, NOW, out, 1)
    assert note is not None and note.reason is Reason.MISSING_TIMESTAMP
    assert rows(out) == [(NOW, LEVEL, 5.0)]
    assert out.origin == [0]
