"""The conservation ledger: every acknowledged reading is stored once with its value or
dead-lettered with its reason; anything else is lost or duplicated."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from pantau.faults.load import Sent, body, humidity, temperature
from pantau.faults.report import Result, dead_letters, reconcile, table

DEVICES = ("d0", "d1")


def sent(n: int, bad_every: int = 0, unacked: tuple[int, ...] = ()) -> Sent:
    i = np.arange(n)
    acked = np.full(n, 100.0)
    acked[list(unacked)] = np.nan
    bad = (i % bad_every == bad_every - 1) if bad_every else np.zeros(n, bool)
    return Sent((i % 2).astype(np.int32), 1_000_000 + i, bad, acked, 0)


def stored_all(s: Sent) -> dict[tuple[str, int], tuple[float | None, float | None]]:
    return {(DEVICES[d], int(ts) * 1000): (float(temperature(int(k))),
                                            None if b else float(humidity(int(k))))
            for k, (d, ts, b) in enumerate(zip(s.device, s.ts_us, s.bad, strict=True))}


def rejected(s: Sent) -> dict[tuple[str, int, str], str]:
    return {(DEVICES[s.device[k]], int(s.ts_us[k]), "humidity_pct"): "not_a_number"
            for k in np.flatnonzero(s.bad)}


def test_everything_stored_or_dead_lettered_balances() -> None:
    s = sent(10, bad_every=5)
    led = reconcile([(DEVICES, s)], stored_all(s), rejected(s))
    assert (led.published, led.stored, led.dead_lettered, led.lost, led.duplicated) == \
        (20, 18, 2, 0, 0)


@pytest.mark.parametrize(("change", "lost", "duplicated"), [
    pytest.param("drop", 2, 0, id="a missing point loses both readings"),
    pytest.param("alter", 1, 1, id="a changed value is lost and duplicated"),
    pytest.param("extra", 0, 1, id="a point nobody sent is a duplicate"),
    pytest.param("undead", 1, 0, id="a bad reading neither stored nor dead-lettered is lost"),
])
def test_what_does_not_balance_is_counted(change: str, lost: int, duplicated: int) -> None:
    s = sent(10, bad_every=5)
    st, rej = stored_all(s), rejected(s)
    key = ("d0", 1_000_000 * 1000)
    if change == "drop":
        del st[key]
    elif change == "alter":
        st[key] = (-1.0, st[key][1])
    elif change == "extra":
        st[("d0", 7)] = (1.0, 1.0)
    else:
        rej.clear()
        lost *= 2  # both bad messages
    led = reconcile([(DEVICES, s)], st, rej)
    assert (led.lost, led.duplicated) == (lost, duplicated)


def test_unacknowledged_messages_are_not_published() -> None:
    s = sent(4, unacked=(3,))
    led = reconcile([(DEVICES, s)], stored_all(s), {})
    assert (led.published, led.unacked, led.lost) == (6, 1, 0)


def test_dead_letters_are_read_by_device_timestamp_and_metric(tmp_path: Path) -> None:
    rec = {"device": "d1", "reason": "not_a_number", "payload": body(3, 42, True).decode(),
           "readings": [{"metric": "humidity_pct", "reason": "not_a_number"}]}
    path = tmp_path / "deadletter.jsonl"
    path.write_text(json.dumps(rec) + "\n" + json.dumps(rec) + "\n")  # redelivered: once
    assert dead_letters([path, tmp_path / "missing"]) == {("d1", 42, "humidity_pct"):
                                                           "not_a_number"}


def test_the_payload_carries_the_values_the_ledger_expects() -> None:
    doc = json.loads(body(1234, 5, False))
    assert doc == {"ts": 5, "values": {"temperature_c": temperature(1234),
                                       "humidity_pct": humidity(1234)}}


def test_a_failed_check_fails_the_row() -> None:
    r = Result("x", "y")
    r.check("fine", True)
    r.check("broken", False, "why")
    assert not r.passed
    assert "| x | y |" in table([r]) and "FAIL broken: why" in table([r])
