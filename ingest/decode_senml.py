"""SenML JSON (RFC 8428): a list of records with ``bn``/``bt``/``bu``/``n``/``t``/``u`` and one
of ``v``/``vb``/``vs``/``vd``/``s``; the metric is the resolved name's last ``:`` or ``/``
segment.

The time of a record is ``bt + t``. Pantau stores only device clocks: a resolved time below
2**28 (RFC 8428 4.5.3: relative to "now") rejects the message (``missing_timestamp``). A
malformed record (not an object, ``bn``/``n`` not strings, ``bt``/``t`` not numbers) rejects
it too (``bad_schema``); a sum too large for a float is a ``bad_timestamp``, never an
overflow. A unit that differs from the registry's drops that reading (``unit_mismatch``).
"""

from __future__ import annotations

from typing import TypeGuard

from core.reasons import Reason
from ingest.decode_rows import Message, Reject, show

KEYS = frozenset(("bn", "bt", "bu", "bv", "bver", "n", "u", "v", "vs", "vb", "vd", "s", "t",
                  "ut"))
_RELATIVE = 2**28


def is_senml(doc: object) -> TypeGuard[list[object]]:
    """Whether a decoded JSON document is SenML rather than Pantau's reading sets."""
    return (isinstance(doc, list) and bool(doc) and isinstance(doc[0], dict)
            and "values" not in doc[0] and KEYS.issuperset(doc[0]))


def _is_number(x: object) -> TypeGuard[int | float]:
    return type(x) is int or type(x) is float


def records(doc: list[object], msg: Message) -> None:
    """Append the readings of a SenML pack."""
    bn: object = ""
    bt: object = 0
    bu: object = None
    for rec in doc:
        if not isinstance(rec, dict):
            raise Reject(Reason.BAD_SCHEMA, "SenML records must be objects")
        bn, bt, bu = rec.get("bn", bn), rec.get("bt", bt), rec.get("bu", bu)
        n, t = rec.get("n", ""), rec.get("t", 0)
        if not isinstance(bn, str) or not isinstance(n, str):
            raise Reject(Reason.BAD_SCHEMA, "SenML 'bn' and 'n' must be strings")
        if not _is_number(bt) or not _is_number(t):
            raise Reject(Reason.BAD_SCHEMA, "SenML 'bt' and 't' must be numbers")
        try:
            when = bt + t  # exact for two ints; a float sum overflows only past 1.8e308
        except OverflowError:
            raise Reject(Reason.BAD_TIMESTAMP, f"SenML time {show(bt)} + {show(t)} is beyond "
                         "any timestamp") from None
        if when < _RELATIVE:
            raise Reject(Reason.MISSING_TIMESTAMP, "SenML time is relative (no device clock)")
        ts = msg.timestamp(when)
        metric = (bn + n).replace("/", ":").rsplit(":", 1)[-1]
        unit = rec.get("u", bu)
        sid = msg.per.get(metric)
        if unit is not None and sid is not None and unit != msg.units[sid]:
            msg.drop(Reason.UNIT_MISMATCH, f"{metric!r} in {show(unit)}, the registry says "
                     f"{msg.units[sid]!r}", metric)
            continue
        msg.add(ts, metric, _value(rec))


def _value(rec: dict[str, object]) -> object:
    for key in ("v", "vb", "s"):
        if key in rec:
            return rec[key]
    return rec.get("vs", rec.get("vd"))
