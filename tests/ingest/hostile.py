"""Hostile telemetry payloads for the decoder fuzz tests and the end-to-end hostile test.

`hostile_payloads(now_s, n, rng)` -> ``n`` payloads for the gauge ``wl-brantas-kanigoro``
(metrics ``level_cm``, ``battery_v``, neither of unit ``bool``), each of which must be rejected
as a whole or reading by reading, leaving nothing to store: hostile timestamps with valid
values, valid timestamps with hostile values, SenML and line protocol with hostile times and
values, random bytes, deep nesting, oversized numbers, lone surrogates. ``now_s`` is the
receiver's clock, so a "valid" timestamp here is one Pantau would accept.
"""

from __future__ import annotations

import random

BIG = "9" * 400  # the 400-digit integer of issue #9
# JSON texts of timestamps that no device clock can mean.
HOSTILE_TS = [
    BIG, "-" + BIG, str(2**63), str(-(2**63) - 1), str(2**63 - 1), str(2**64), "1" * 4300,
    "1e300", "-1e300", "1.5e10", "9.9e10", "1e19", "NaN", "Infinity", "-Infinity", "true",
    "false", "null", '""', '"9999-12-31T23:59:59+14:00"', '"0001-01-01T00:00:00+01:00"',
    '"2026-11-28T10:20:00"', '"\\ud800"', "[]", "{}", '{"ts": 1}', "[1795836000]",
]
# JSON texts of values that are not a finite number of a non-boolean metric.
HOSTILE_VALUES = [
    BIG, "-" + BIG, str(2**64), str(-(2**63) - 1), "1" * 4300, "1e999", "-1e999", "NaN",
    "Infinity", "true", "false", "null", '"12.5"', '""', "[]", "{}", '{"v": 1}', "[1, 2]",
    '"\\udfff"', "[[[[[[[[1]]]]]]]]",
]
HOSTILE_LINE_TS = [BIG, "-" + BIG, str(2**63), str(-(2**63) - 1), "1_795_836_000", "1e9",
                   "\u0663\u0663\u0663", "0x10", "NaN", ""]
HOSTILE_LINE_VALUES = ["1e999", "-1e999", "nan", "inf", "t", "false", BIG + "i",
                       str(2**64) + "i", "abc", "1.5.5"]


def hostile_payloads(now_s: int, n: int, rng: random.Random) -> list[bytes]:
    """``n`` hostile payloads (see the module docstring), drawn with ``rng``."""
    makers = [_bad_ts, _bad_value, _bad_senml, _bad_line, _bad_bytes, _bad_shape]
    return [rng.choice(makers)(now_s, rng) for _ in range(n)]


def _bad_ts(now_s: int, rng: random.Random) -> bytes:
    ts = rng.choice(HOSTILE_TS)
    return f'{{"ts": {ts}, "values": {{"level_cm": {rng.randint(0, 500)}}}}}'.encode()


def _bad_value(now_s: int, rng: random.Random) -> bytes:
    names = rng.sample(["level_cm", "battery_v", "\\ud800", "x" * 300], rng.randint(1, 3))
    values = ", ".join(f'"{m}": {rng.choice(HOSTILE_VALUES)}' for m in names)
    return f'{{"ts": {now_s - rng.randint(0, 3600)}, "values": {{{values}}}}}'.encode()


def _bad_senml(now_s: int, rng: random.Random) -> bytes:
    ok_t = now_s - rng.randint(0, 3600)
    rec = rng.choice([
        f'{{"bn": "x:", "bt": {rng.choice(HOSTILE_TS)}, "n": "level_cm", "v": 1}}',
        f'{{"bn": "x:", "bt": 1.5, "t": {BIG}, "n": "level_cm", "v": 1}}',
        f'{{"bn": "x:", "bt": {ok_t}, "t": {rng.choice(HOSTILE_TS)}, "n": "level_cm", "v": 1}}',
        f'{{"bn": "x:", "bt": {ok_t}, "n": "level_cm", "v": {rng.choice(HOSTILE_VALUES)}}}',
        f'{{"bn": "x:", "bt": {ok_t}, "n": "level_cm", "vb": true}}',
        f'{{"bn": "x:", "bt": {ok_t}, "n": 5, "v": 1}}',
        f'{{"bn": 7, "bt": {ok_t}, "n": "level_cm", "v": 1}}',
        f'{{"bn": "x:", "bt": {ok_t}, "n": "level_cm", "vs": "high"}}',
        f'{{"bn": "x:", "bt": {ok_t}, "n": "level_cm", "u": {{"a": 1}}, "v": 1}}',
    ])
    return f"[{rec}]".encode()


def _bad_line(now_s: int, rng: random.Random) -> bytes:
    ts_ns = (now_s - rng.randint(0, 3600)) * 10**9
    if rng.random() < 0.5:
        return f"gauge level_cm=1 {rng.choice(HOSTILE_LINE_TS)}".encode()
    return f"gauge level_cm={rng.choice(HOSTILE_LINE_VALUES)} {ts_ns}".encode()


def _bad_bytes(now_s: int, rng: random.Random) -> bytes:
    return bytes(rng.randrange(256) for _ in range(rng.randint(0, 300)))


def _bad_shape(now_s: int, rng: random.Random) -> bytes:
    return rng.choice([
        b"[" * 5000 + b"]" * 5000,
        b'{"ts": ' + b"1" * 5000 + b', "values": {"level_cm": 1}}',
        b"",
        b"null",
        b'{"ts": %d, "values": []}' % now_s,
        b'[{"ts": %d, "values": {"level_cm": 1}}, 7]' % now_s,
        b'{"ts": %d, "values": {"level_cm": 1}}' % now_s + b" " * 66000,
        b"\xef\xbb\xbf{}",
    ])
