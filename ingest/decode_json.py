"""Pantau's JSON reading sets: ``{"ts": <time>, "values": {metric: number}}`` or a list of them.

A reading set that is not that shape rejects the message (`Reject`, ``bad_schema``); its
timestamp is checked once for all its values (`Message.timestamp`); a value that is not a
finite number drops only that reading (`Message.add`).
"""

from __future__ import annotations

from core.reasons import Reason
from ingest.decode_rows import Message, Reject

_SHAPE = 'expected {"ts": ..., "values": {metric: number}}'


def reading_sets(doc: object, msg: Message) -> None:
    """Append the readings of a decoded JSON document (one reading set or a list of them)."""
    out, origin, per = msg.out, msg.origin, msg.per
    ts_l, s_l, v_l, o_l = out.ts_ns, out.series, out.value, out.origin
    for item in doc if isinstance(doc, list) else (doc,):
        if not isinstance(item, dict):
            raise Reject(Reason.BAD_SCHEMA, _SHAPE)
        values = item.get("values")
        if not isinstance(values, dict):
            raise Reject(Reason.BAD_SCHEMA, _SHAPE)
        ts = msg.timestamp(item.get("ts"))
        # Hot path inlined: a known metric with a finite float (x - x is NaN for NaN and ±Inf).
        for name, v in values.items():
            sid = per.get(name)
            if sid is not None and type(v) is float and v - v == 0.0:
                ts_l.append(ts)
                s_l.append(sid)
                v_l.append(v)
                o_l.append(origin)
            else:
                msg.add(ts, name, v)
