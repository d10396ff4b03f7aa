"""Payload decoding: one MQTT message -> rows appended to a `RowBuffer`, or a rejection reason.

Topics are ``<prefix>/<site>/<device>/telemetry``. Payloads may be

- JSON: ``{"ts": 1764300000, "values": {"level_cm": 123.4, "battery_v": 3.9}}`` or a list of
  such objects (`ingest.decode_json`);
- SenML JSON (RFC 8428, `ingest.decode_senml`);
- InfluxDB line protocol: ``anything[,tags] level_cm=123.4,battery_v=3.9 <ts>``
  (`ingest.decode_line`).

Timestamps are the device's (see `ingest.timestamps`). A problem with the message as a whole
returns its `Reason`; a problem with one reading (unknown metric, not a number, NaN/Inf, an
integer beyond 64 bits, unit mismatch) drops only that reading, noted in ``RowBuffer.notes``;
the rest is stored. The checks shared by every format live in `ingest.decode_rows`.

`Decoder.decode` never raises on any payload: the fuzz tests (``tests/ingest/
test_decode_fuzz.py``) hold it to that, and the pipeline still catches what a bug might raise.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from core.reasons import Reason
from devices import topics
from devices.series import SeriesTable
from ingest import decode_json, decode_line, decode_senml
from ingest.decode_rows import Message, Note, Reject, RowBuffer

__all__ = ["Decoder", "Note", "RowBuffer"]

_json_decode = json.JSONDecoder().decode
_JSON_START = b'{["-0123456789'


@dataclass(slots=True)
class Decoder:
    """Decodes telemetry messages against a series table; holds no state between messages."""

    table: SeriesTable
    topic_prefix: str = "pantau"
    max_payload_bytes: int = 65536
    max_future_ns: int = 300 * 1_000_000_000
    max_age_ns: int = 30 * 86400 * 1_000_000_000
    _devices: dict[str, tuple[str, dict[str, int]]] = field(init=False, repr=False)
    _msg: Message = field(init=False, repr=False)  # scratch: refilled for every message

    def __post_init__(self) -> None:
        sites = {d.id: d.site for d in self.table.devices}
        self._devices = {dev: (sites[dev], per) for dev, per in self.table.lookup.items()}
        self._msg = Message("", {}, self.table.unit, 0, self.max_future_ns, self.max_age_ns,
                            RowBuffer(), 0)

    def device_of(self, topic: str) -> topics.Topic:
        """The topic's site, device and channel, or raise `Reject` (BAD_TOPIC)."""
        parsed = topics.parse(topic, self.topic_prefix)
        if parsed is None:
            raise Reject(Reason.BAD_TOPIC, f"topic {topic[:200]!r} is not "
                         f"{self.topic_prefix}/<site>/<device>/telemetry")
        return parsed

    def decode(self, topic: str, payload: bytes, now_ns: int, out: RowBuffer,
               origin: int) -> Note | None:
        """Append the message's readings to ``out``; return a `Note` when the whole message is
        rejected (nothing appended then). Never raises on bad input."""
        start = len(out.ts_ns)
        try:
            self._decode(topic, payload, now_ns, out, origin)
        except Reject as r:
            out.truncate(start, origin)
            return Note(r.reason, r.detail)
        return None

    def _decode(self, topic: str, payload: bytes, now_ns: int, out: RowBuffer,
                origin: int) -> None:
        where = self.device_of(topic)
        site, device = where.site, where.device
        known = self._devices.get(device)
        if known is None:
            raise Reject(Reason.UNKNOWN_DEVICE, f"device {device[:200]!r} is not in the "
                         "registry")
        home, per = known
        if home != site:
            raise Reject(Reason.BAD_TOPIC, f"device {device!r} belongs to site {home!r}, "
                         f"not {site[:200]!r}")
        if len(payload) > self.max_payload_bytes:
            raise Reject(Reason.PAYLOAD_TOO_LARGE, f"{len(payload)} bytes > "
                         f"{self.max_payload_bytes}")
        msg = self._msg  # cheaper than a new one per message (decoding is single-threaded)
        msg.device, msg.per, msg.now_ns, msg.out, msg.origin = device, per, now_ns, out, origin
        head = payload.lstrip()[:1]
        if head and head in _JSON_START:
            try:
                doc = _json_decode(payload.decode("utf-8"))
            except (ValueError, RecursionError) as e:  # UnicodeDecodeError is a ValueError
                raise Reject(Reason.NOT_JSON, f"invalid JSON: {str(e)[:200]}") from None
            if decode_senml.is_senml(doc):
                decode_senml.records(doc, msg)
            else:
                decode_json.reading_sets(doc, msg)
        else:
            decode_line.lines(payload, msg)
        if (not out.origin or out.origin[-1] != origin) and origin not in out.notes:
            raise Reject(Reason.BAD_SCHEMA, "the message carries no readings")
