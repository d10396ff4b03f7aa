"""Vectorised InfluxDB line protocol for a `TelemetryBatch`.

Schema (`ingest.schema`): measurement = the device's kind, tags ``device`` and ``site``, one
float field per series of the table (raw metric, derived value), time = the device's timestamp
in ns. Readings of one device at one timestamp become
ONE line with several fields, which InfluxDB stores several times cheaper than one line each::

    river_gauge,device=wl-01,site=kanigoro battery_v=3.9,level_cm=123.4 1700000000000000000

How it stays vectorised: `LineEncoder` renders, once per table, each device's line prefix
(``<measurement>,device=..,site=.. ``) and each field name's two heads (``<field>=`` for a
line's first field, ``,<field>=`` for the next ones) as NUL-padded byte items; a series keeps
only the number of its field name (a table of 850,000 series has a few hundred names: heads
per series were 200 MB at 100,000 devices, with the tiers' encoder). Encoding a batch
sorts it with one stable argsort of a packed (device, time, field name) key, then lays the
text out as NUL-padded records: a prefix per line, then per reading its field head, its value
and, at a line's end, the timestamp. Digits are written with integer arithmetic, four per
table lookup; one mask keeps the non-NUL bytes. There is no per-reading Python object.

Values are written as the shortest string that parses back to the same float64 (the digits
of ``repr(float)``), each proven exact (`ingest.numtext.format_floats`).

Contract: only OK rows (``status == 0``) are encoded, so callers may pass the batch as the
processors left it, or an already filtered one. When a batch holds the same series twice at
the same timestamp the later row wins, as InfluxDB itself would do with two writes.
A non-finite OK value is a broken invariant (the decoder rejects them) and raises ValueError.
An encoder is immutable after construction and may be shared between tasks and threads.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from core.batch import TelemetryBatch
from devices.series import SeriesTable
from ingest.numtext import format_floats, int_digits, lead, records, void, voids
from ingest.schema import TIER_FIELDS, device_tags, measurement, tier_field

if TYPE_CHECKING:
    from processors.domain.derived import Tier

_I64 = npt.NDArray[np.int64]

_TS_GROUPS = 5                                        # 20 digit columns >= int64's 19
_TAIL_W = 1 + 1 + 4 * _TS_GROUPS + 1                  # ' ', sign, digits, '\n'
_SLICE = 1 << 18                                      # bytes compacted at a time


def escape_measurement(name: str) -> str:
    _check_printable(name)
    return name.replace("\\", "\\\\").replace(",", "\\,").replace(" ", "\\ ")


def escape_key(name: str) -> str:
    """Escape a tag key, tag value or field key."""
    _check_printable(name)
    return (name.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=")
            .replace(" ", "\\ "))


def _check_printable(name: str) -> None:
    if not name or "\n" in name or "\r" in name or "\0" in name:
        raise ValueError(f"{name!r} cannot be written as a line protocol identifier")


class LineEncoder:
    """Line protocol for the batches of one `SeriesTable` (see the module docstring).

    ``series`` optionally lists the table's series the encoder's series ids stand for, and
    ``fields`` their field names as (the distinct names, per encoder series the index of its
    name); default: each of the table's series under its metric. `TierEncoder` uses them to
    give one source series several fields."""

    def __init__(self, table: SeriesTable, *,
                 series: Sequence[int] | npt.NDArray[np.integer[Any]] | None = None,
                 fields: tuple[Sequence[str], npt.NDArray[np.int32]] | None = None) -> None:
        ids = slice(None) if series is None else np.asarray(series, np.intp)
        if fields is None:
            code: dict[str, int] = {}
            field = np.fromiter((code.setdefault(n, len(code)) for n in table.metric),
                                np.int32, len(table))[ids]
            names: Sequence[str] = list(code)
        else:
            names, field = fields
        if len(field) != len(table.device_index[ids]) or len(set(names)) != len(names):
            raise ValueError("LineEncoder: one field per series, from distinct names")
        # a line: the device's prefix, then its fields as "f=<v>" (first) or ",f=<v>"
        prefixes = [(escape_measurement(measurement(d.kind)) + "".join(
            f",{escape_key(tag)}={escape_key(v)}" for tag, v in device_tags(d)) + " ").encode()
                    for d in table.devices]
        # encoder series -> its field name; its device (a view of the table's when all)
        self._field = field.astype(np.uint16 if len(names) <= 1 << 16 else np.int32)
        heads = [h for name in names for f in [escape_key(name).encode() + b"="]
                 for h in (b"," + f, f)]
        self._prefixes, self._heads = voids(prefixes), voids(heads)
        self._device: npt.NDArray[np.int32] = np.asarray(table.device_index[ids], np.int32)
        # fields of a line in name order, the order InfluxDB's own writers use (a device has
        # each field name once, so the rank of the name orders its line)
        self._rank = np.empty(len(names), dtype=np.int32)
        self._rank[sorted(range(len(names)), key=names.__getitem__)] = np.arange(
            len(names), dtype=np.int32)
        self._bits = (max(len(table.devices) - 1, 0).bit_length(),
                      max(len(names) - 1, 0).bit_length())

    def encode(self, batch: TelemetryBatch) -> bytes:
        """The OK rows of ``batch`` as line protocol (``b""`` when there are none)."""
        ok = batch.ok
        if not ok.all():
            batch = batch.take(ok)
        return self._encode(batch.ts_ns, batch.series, batch.value)

    def encode_rows(self, batch: TelemetryBatch,
                    rows: npt.NDArray[np.bool_] | npt.NDArray[np.intp]) -> bytes:
        """Like `encode` for the rows selected by a mask or index array (e.g. half a batch
        that the database refused)."""
        return self.encode(batch.take(rows))

    def _encode(self, ts: _I64, series: npt.NDArray[np.int32],
                value: npt.NDArray[np.float64]) -> bytes:
        n = len(ts)
        if n == 0:
            return b""
        if not np.isfinite(value).all():
            bad = int(np.flatnonzero(~np.isfinite(value))[0])
            raise ValueError(f"series {int(series[bad])}: {value[bad]} is not a finite value "
                             "and cannot be written")
        dev, field = self._device[series], self._field[series]
        order = line_order(dev, ts, self._rank[field], self._bits)
        ts, series, value, dev = ts[order], series[order], value[order], dev[order]
        field = field[order]
        dup = (series[1:] == series[:-1]) & (ts[1:] == ts[:-1])
        if dup.any():                                  # the later reading wins
            keep = np.append(~dup, True)
            ts, value, dev, field = ts[keep], value[keep], dev[keep], field[keep]
            n = len(ts)
        new = np.ones(n, dtype=bool)
        new[1:] = (dev[1:] != dev[:-1]) | (ts[1:] != ts[:-1])
        last = np.empty(n, dtype=bool)
        last[:-1], last[-1] = new[1:], True
        end = np.flatnonzero(last)
        values = format_floats(value)
        head_w, val_w = self._heads.dtype.itemsize, values.shape[1]
        # NUL-padded records of which the non-NUL bytes are the text: the prefix of each line,
        # then per row its field's head, value and, at a line's end, the timestamp
        first = np.flatnonzero(new)
        at = np.arange(n) + np.cumsum(new)             # row i follows its line's prefix
        width = max(head_w + val_w + _TAIL_W, self._prefixes.dtype.itemsize)
        m = np.zeros(n + len(first), dtype={"names": ["head", "value", "tail"], "formats": [
            f"V{head_w}", f"V{val_w}", f"V{_TAIL_W}"], "itemsize": width})
        m["head"][at] = np.take(self._heads, field.astype(np.intp) * 2 + new)
        m["value"][at] = void(values)
        t = ts[end]
        tail = records(len(t), space=1, sign=1, digits=4 * _TS_GROUPS, newline=1)
        tail["space"] = ord(" ")
        tail["sign"] = (t < 0).view(np.uint8) * ord("-")
        tail["digits"] = void(int_digits(np.abs(t), _TS_GROUPS))
        tail["newline"] = ord("\n")
        m["tail"][at[end]] = tail.view(f"V{_TAIL_W}")
        lead(m, self._prefixes.dtype.itemsize)[first + np.arange(len(first))] = np.take(
            self._prefixes, dev[first])
        flat = m.view(np.uint8)
        # large ones (tiers) in slices: a mask as large as the records would be fresh memory,
        # paged in on every call; a batch's records fit blocks that the allocator reuses
        step = _SLICE if len(flat) > 4 * _SLICE else len(flat)
        return b"".join([part[part != 0] for part in (
            flat[i:i + step] for i in range(0, len(flat), step))])


def line_order(dev: npt.NDArray[np.int32], ts: _I64, rank: npt.NDArray[np.int32],
               bits: tuple[int, int]) -> npt.NDArray[np.intp]:
    """``np.lexsort((rank, ts, dev))`` (stable: equal keys keep their order), as one stable
    sort of a packed uint64 key when ``bits`` (of device and rank) and the timestamps fit."""
    t = (ts - ts.min()).view(np.uint64)                # exact: the wrap-around cancels
    t_bits = int(t.max()).bit_length()
    if sum(bits) + t_bits > 63:                        # e.g. tier buckets: count in steps
        t = t // max(int(np.gcd.reduce(t)), 1)
        t_bits = int(t.max()).bit_length()
    if sum(bits) + t_bits > 63:                        # a long span: rank the timestamps
        uniq, inv = np.unique(ts, return_inverse=True)
        t, t_bits = inv.astype(np.uint64), (len(uniq) - 1).bit_length()
    if sum(bits) + t_bits > 63:
        return np.lexsort((rank, ts, dev))
    key = dev.astype(np.uint64) << (t_bits + bits[1])
    key |= t << bits[1]
    key |= rank.astype(np.uint64)
    return np.argsort(key, kind="stable")


class TierEncoder:
    """Line protocol for downsampled tiers (`processors.domain.derived.Tier`): one line per
    (device, bucket start) with the fields `ingest.schema.tier_field` names (``<metric>_mean``,
    ``_min``, ``_max`` and ``_count``, float) for each of the device's series in the tier, in
    the same measurement and tags as the raw readings."""

    def __init__(self, table: SeriesTable) -> None:
        k = len(TIER_FIELDS)
        code: dict[str, int] = {}  # a raw metric's fields are k names in a row
        metric = np.fromiter((code.setdefault(table.metric[s], len(code))
                              for s in range(table.raw)), np.int32, table.raw)
        names = [tier_field(m, st) for m in code for st in TIER_FIELDS]
        field = (metric[:, None] * np.int32(k) + np.arange(k, dtype=np.int32)).ravel()
        self._lines = LineEncoder(table, series=np.repeat(np.arange(table.raw), k),
                                  fields=(names, field.astype(np.int32)))
        self._k = k

    def encode(self, tier: Tier) -> bytes:
        n, k = len(tier), self._k
        if n == 0:
            return b""
        series = (tier.series.astype(np.int32)[:, None] * np.int32(k)
                  + np.arange(k, dtype=np.int32)).ravel().astype(np.int32)
        value = np.stack([np.asarray(getattr(tier, st), np.float64) for st in TIER_FIELDS],
                         axis=1).ravel()
        return self._lines._encode(np.repeat(tier.ts_ns, k), series, value)
