"""InfluxDB line protocol telemetry: ``anything[,tags] level_cm=123.4,battery_v=3.9 <ts>``, one
reading set per line; the measurement and tags are ignored (the topic names the device).

The timestamp is an integer of at most 19 ASCII digits (an optional ``-``), read by magnitude
like every other epoch time; anything else is a ``bad_timestamp``. Fields are floats,
integers (``12i``, checked against 64 bits) or booleans (``t``/``false``..., numbers only for
a metric of unit ``bool``); strings and escapes are refused (``bad_schema``).
"""

from __future__ import annotations

import re

from core.reasons import Reason
from ingest.decode_rows import Message, Reject, show

_TIMESTAMP = re.compile(r"-?[0-9]{1,19}")
_INTEGER = re.compile(r"[-+]?[0-9]{1,30}")
_BOOLEANS = {"t": True, "true": True, "f": False, "false": False}


def lines(payload: bytes, msg: Message) -> None:
    """Append the readings of a line-protocol payload."""
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        raise Reject(Reason.NOT_JSON, "payload is not UTF-8 text") from None
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if "\\" in line or '"' in line:
            raise Reject(Reason.BAD_SCHEMA, "line protocol with escapes or string fields "
                         "is not supported for telemetry")
        parts = line.split(" ")
        if len(parts) != 3 or "=" not in parts[1]:
            raise Reject(Reason.NOT_JSON, "payload is neither JSON nor line protocol "
                         "'<measurement>[,tags] <field>=<value>[,...] <timestamp>'")
        if _TIMESTAMP.fullmatch(parts[2]) is None:
            raise Reject(Reason.BAD_TIMESTAMP, f"{show(parts[2])} is not an integer timestamp "
                         "of at most 19 digits")
        ts = msg.timestamp(int(parts[2]))
        for kv in parts[1].split(","):
            name, _, raw = kv.partition("=")
            msg.add(ts, name, _field(raw))


def _field(raw: str) -> object:
    """The value of a line-protocol field; text it cannot read stays text (not a number)."""
    if raw.endswith("i") and _INTEGER.fullmatch(raw[:-1]):
        return int(raw[:-1])  # at most 30 digits: `Message.add` refuses beyond 64 bits
    try:
        return float(raw)
    except ValueError:
        return _BOOLEANS.get(raw.lower(), raw)
