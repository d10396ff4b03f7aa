"""Payload decoding: one MQTT message -> rows appended to a `RowBuffer`, or a rejection reason.

Topics are ``<prefix>/<site>/<device>/telemetry``. Payloads may be

- JSON: ``{"ts": 1764300000, "values": {"level_cm": 123.4, "battery_v": 3.9}}`` or a list of
  such objects;
- SenML JSON (RFC 8428): a list of records with ``bn``/``bt``/``n``/``t``/``v``/``vb``/``u``;
  the metric is the resolved name's last ``:`` or ``/`` segment;
- InfluxDB line protocol: ``anything[,tags] level_cm=123.4,battery_v=3.9 <ts>``, one reading
  set per line; the measurement and tags are ignored (the topic names the device).

Timestamps are the device's (see `ingest.timestamps`). A problem with the message as a whole
returns its `Reason`; a problem with one reading (unknown metric, not a number, NaN/Inf, unit
mismatch) drops only that reading, noted in ``RowBuffer.notes``; the rest is stored.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

from core.reasons import Reason
from devices import topics
from devices.series import SeriesTable
from ingest.timestamps import TimestampError, to_ns

_json_decode = json.JSONDecoder().decode
_SENML_KEYS = frozenset(("bn", "bt", "bu", "bv", "bver", "n", "u", "v", "vs", "vb", "vd", "s",
                         "t", "ut"))


@dataclass(slots=True)
class Note:
    """A reading dropped during decoding, or the reason a whole message was rejected."""

    reason: Reason
    detail: str
    metric: str = ""


@dataclass(slots=True)
class RowBuffer:
    """Column lists filled by the decoder; the batcher turns them into numpy arrays at once."""

    ts_ns: list[int] = field(default_factory=list)
    series: list[int] = field(default_factory=list)
    value: list[float] = field(default_factory=list)
    origin: list[int] = field(default_factory=list)
    # origin (message index) -> readings dropped while decoding it
    notes: dict[int, list[Note]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.ts_ns)

    def note(self, origin: int, reason: Reason, detail: str, metric: str = "") -> None:
        self.notes.setdefault(origin, []).append(Note(reason, detail, metric))


class _Reject(Exception):
    def __init__(self, reason: Reason, detail: str) -> None:
        self.reason, self.detail = reason, detail


@dataclass(slots=True)
class Decoder:
    """Decodes telemetry messages against a series table; holds no state between messages."""

    table: SeriesTable
    topic_prefix: str = "pantau"
    max_payload_bytes: int = 65536
    max_future_ns: int = 300 * 1_000_000_000
    max_age_ns: int = 30 * 86400 * 1_000_000_000
    _devices: dict[str, tuple[str, dict[str, int]]] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        sites = {d.id: d.site for d in self.table.devices}
        self._devices = {dev: (sites[dev], per) for dev, per in self.table.lookup.items()}

    def device_of(self, topic: str) -> topics.Topic:
        """The topic's site, device and channel, or raise `_Reject` (BAD_TOPIC)."""
        parsed = topics.parse(topic, self.topic_prefix)
        if parsed is None:
            raise _Reject(Reason.BAD_TOPIC, f"topic {topic!r} is not "
                          f"{self.topic_prefix}/<site>/<device>/telemetry")
        return parsed

    def decode(self, topic: str, payload: bytes, now_ns: int, out: RowBuffer,
               origin: int) -> Note | None:
        """Append the message's readings to ``out``; return a `Note` when the whole message is
        rejected (nothing appended then). Never raises on bad input."""
        start = len(out.ts_ns)
        try:
            self._decode(topic, payload, now_ns, out, origin)
        except _Reject as r:
            del out.ts_ns[start:], out.series[start:], out.value[start:], out.origin[start:]
            out.notes.pop(origin, None)
            return Note(r.reason, r.detail)
        return None

    def _decode(self, topic: str, payload: bytes, now_ns: int, out: RowBuffer,
                origin: int) -> None:
        where = self.device_of(topic)
        site, device = where.site, where.device
        known = self._devices.get(device)
        if known is None:
            raise _Reject(Reason.UNKNOWN_DEVICE, f"device {device!r} is not in the registry")
        home, per = known
        if home != site:
            raise _Reject(Reason.BAD_TOPIC, f"device {device!r} belongs to site {home!r}, "
                          f"not {site!r}")
        if len(payload) > self.max_payload_bytes:
            raise _Reject(Reason.PAYLOAD_TOO_LARGE, f"{len(payload)} bytes > "
                          f"{self.max_payload_bytes}")
        head = payload.lstrip()[:1]
        if head and head in b'{["-0123456789':
            try:
                doc = _json_decode(payload.decode("utf-8"))
            except (ValueError, RecursionError) as e:
                raise _Reject(Reason.NOT_JSON, f"invalid JSON: {e}") from None
            if isinstance(doc, list) and doc and isinstance(doc[0], dict) \
                    and "values" not in doc[0] and _SENML_KEYS.issuperset(doc[0]):
                self._senml(device, per, doc, now_ns, out, origin)
            else:
                for item in doc if isinstance(doc, list) else (doc,):
                    self._reading_set(device, per, item, now_ns, out, origin)
        else:
            self._line_protocol(device, per, payload, now_ns, out, origin)
        if (not out.origin or out.origin[-1] != origin) and origin not in out.notes:
            raise _Reject(Reason.BAD_SCHEMA, "the message carries no readings")

    def _check_ts(self, ts: object, now_ns: int) -> int:
        if ts is None:
            raise _Reject(Reason.MISSING_TIMESTAMP, "no 'ts': Pantau stores the device's time")
        try:
            ns = to_ns(ts)
        except TimestampError as e:
            raise _Reject(Reason.BAD_TIMESTAMP, str(e)) from None
        if ns > now_ns + self.max_future_ns:
            raise _Reject(Reason.TS_IN_FUTURE, f"ts {ts!r} is {(ns - now_ns) / 1e9:.0f} s ahead")
        if ns < now_ns - self.max_age_ns:
            raise _Reject(Reason.TS_TOO_OLD, f"ts {ts!r} is {(now_ns - ns) / 1e9:.0f} s old")
        return ns

    def _add(self, device: str, per: dict[str, int], ts: int, name: Any, v: Any,
             out: RowBuffer, origin: int) -> None:
        sid = per.get(name) if isinstance(name, str) else None
        if sid is None:
            out.note(origin, Reason.UNKNOWN_METRIC,
                     f"device {device!r} has no metric {name!r}", str(name))
            return
        if type(v) is not float:
            if type(v) is int or type(v) is bool:
                v = float(v)
            else:
                out.note(origin, Reason.NOT_A_NUMBER,
                         f"device {device!r}: value {v!r} for {name!r} is not a number", name)
                return
        if not math.isfinite(v):
            out.note(origin, Reason.NOT_FINITE,
                     f"device {device!r}: value {v!r} for {name!r} is not finite", name)
            return
        out.ts_ns.append(ts)
        out.series.append(sid)
        out.value.append(v)
        out.origin.append(origin)

    def _reading_set(self, device: str, per: dict[str, int], item: Any, now_ns: int,
                     out: RowBuffer, origin: int) -> None:
        if not isinstance(item, dict) or not isinstance(item.get("values"), dict):
            raise _Reject(Reason.BAD_SCHEMA, 'expected {"ts": ..., "values": {metric: number}}')
        ts = self._check_ts(item.get("ts"), now_ns)
        # Hot path inlined: a known metric with a finite float (x - x is NaN for NaN and ±Inf).
        ts_l, s_l, v_l, o_l = out.ts_ns, out.series, out.value, out.origin
        for name, v in item["values"].items():
            sid = per.get(name)
            if sid is not None and type(v) is float and v - v == 0.0:
                ts_l.append(ts)
                s_l.append(sid)
                v_l.append(v)
                o_l.append(origin)
            else:
                self._add(device, per, ts, name, v, out, origin)

    def _senml(self, device: str, per: dict[str, int], records: list[Any], now_ns: int,
               out: RowBuffer, origin: int) -> None:
        bn, bt, bu = "", 0.0, None
        for rec in records:
            if not isinstance(rec, dict):
                raise _Reject(Reason.BAD_SCHEMA, "SenML records must be objects")
            bn = rec.get("bn", bn)
            bt = rec.get("bt", bt)
            bu = rec.get("bu", bu)
            if not isinstance(bn, str) or isinstance(bt, bool) or not isinstance(bt, int | float):
                raise _Reject(Reason.BAD_SCHEMA, "SenML 'bn' must be a string, 'bt' a number")
            name = bn + str(rec.get("n", ""))
            metric = name.replace("/", ":").rsplit(":", 1)[-1]
            t = rec.get("t", 0)
            if isinstance(t, bool) or not isinstance(t, int | float):
                raise _Reject(Reason.BAD_SCHEMA, "SenML 't' must be a number")
            when = bt + t
            if when < 2**28:  # RFC 8428 4.5.3: relative to "now", i.e. no device clock
                raise _Reject(Reason.MISSING_TIMESTAMP, "SenML time is relative (no device clock)")
            ts = self._check_ts(when, now_ns)
            unit = rec.get("u", bu)
            if "v" in rec:
                v = rec["v"]
            elif "vb" in rec:
                v = rec["vb"]
            elif "s" in rec:
                v = rec["s"]
            else:
                v = rec.get("vs", rec.get("vd"))
            sid = per.get(metric)
            if unit is not None and sid is not None and unit != self.table.unit[sid]:
                out.note(origin, Reason.UNIT_MISMATCH, f"device {device!r}: {metric!r} in "
                         f"{unit!r}, the registry says {self.table.unit[sid]!r}", metric)
                continue
            self._add(device, per, ts, metric, v, out, origin)

    def _line_protocol(self, device: str, per: dict[str, int], payload: bytes, now_ns: int,
                       out: RowBuffer, origin: int) -> None:
        try:
            text = payload.decode("utf-8")
        except UnicodeDecodeError:
            raise _Reject(Reason.NOT_JSON, "payload is not UTF-8 text") from None
        for line in text.splitlines():
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            if "\\" in line or '"' in line:
                raise _Reject(Reason.BAD_SCHEMA, "line protocol with escapes or string fields "
                              "is not supported for telemetry")
            parts = line.split(" ")
            if len(parts) != 3 or "=" not in parts[1]:
                raise _Reject(Reason.NOT_JSON, "payload is neither JSON nor line protocol "
                              "'<measurement>[,tags] <field>=<value>[,...] <timestamp>'")
            try:
                stamp: object = int(parts[2])
            except ValueError:
                raise _Reject(Reason.BAD_TIMESTAMP, f"{parts[2]!r} is not an integer "
                              "timestamp") from None
            ts = self._check_ts(stamp, now_ns)
            for kv in parts[1].split(","):
                name, _, raw = kv.partition("=")
                value: object = raw
                if raw.endswith("i"):
                    raw = raw[:-1]
                try:
                    value = float(raw)
                except ValueError:
                    value = {"t": True, "true": True, "f": False, "false": False}.get(
                        raw.lower(), raw)
                self._add(device, per, ts, name, value, out, origin)
