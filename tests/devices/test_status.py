"""The device status store with an injected clock: LWT, timeout, telemetry, history, SQLite."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest

from core.batch import TelemetryBatch
from core.reasons import Reason
from core.stored import Stored
from devices.registry import parse_registry
from devices.series import SeriesTable
from devices.status import StatusStore, Transition

S = 1_000_000_000
T0 = 1_800_000_000 * S
REGISTRY = parse_registry({
    "kinds": {"gauge": {"interval_s": 10, "metrics": {"level_cm": {"unit": "cm"},
                                                      "battery_v": {"unit": "V"}}}},
    "devices": [{"id": "a", "kind": "gauge", "site": "x", "lat": 0, "lon": 0},
                {"id": "b", "kind": "gauge", "site": "x", "lat": 0, "lon": 0, "interval_s": 60}],
})
TABLE = SeriesTable.from_registry(REGISTRY)
A_LEVEL, A_BAT, B_LEVEL = TABLE.lookup["a"]["level_cm"], TABLE.lookup["a"]["battery_v"], \
    TABLE.lookup["b"]["level_cm"]


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> int:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += int(seconds * S)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def store(tmp_path: Path, clock: Clock) -> AsyncIterator[StatusStore]:
    async with StatusStore(tmp_path / "pantau.sqlite", TABLE, clock=clock) as s:
        yield s


def batch(rows: list[tuple[int, int, float]], origin: list[int] | None = None
          ) -> TelemetryBatch:
    """rows of (series, device ts ns, value); one message per row unless ``origin`` says."""
    series, ts, value = zip(*rows, strict=True) if rows else ((), (), ())
    return TelemetryBatch.from_arrays(ts, series, value,
                                      origin=origin if origin is not None else range(len(rows)))


async def transitions(store: StatusStore, device: str) -> list[tuple[float, str, str]]:
    """(seconds after T0, status, cause), oldest first."""
    return [((t.ts_ns - T0) / S, t.status, t.cause)
            for t in reversed(await store.history(device))]


class Heard:
    def __init__(self) -> None:
        self.changes: list[Transition] = []

    def on_transition(self, change: Transition) -> None:
        self.changes.append(change)


class Deaf:
    def on_transition(self, change: Transition) -> None:
        raise RuntimeError("a bug in a listener")


async def test_listeners_hear_every_transition(store: StatusStore, clock: Clock) -> None:
    heard = Heard()
    store.subscribe(Deaf())
    store.subscribe(heard)
    store.on_status("pantau/x/a/status", b"online")
    clock.advance(3)
    store.on_status("pantau/x/a/status", b"offline")
    store.on_status("pantau/x/a/status", b"offline")  # no change, no transition
    assert heard.changes == [Transition("a", T0, "online", "lwt"),
                             Transition("a", T0 + 3 * S, "offline", "lwt")]
    assert await transitions(store, "a") == [(0, "online", "lwt"), (3, "offline", "lwt")]


async def test_lwt_offline_and_online(store: StatusStore, clock: Clock) -> None:
    assert store.status("a") == "unknown"
    store.on_status("pantau/x/a/status", b"online")
    clock.advance(3)
    store.on_status("pantau/x/a/status", b"offline")
    store.on_status("pantau/x/a/status", b"offline")  # no change, no transition
    clock.advance(1)
    store.on_status("pantau/x/a/status", b'{"status": "online"}')
    store.on_status("pantau/x/nobody/status", b"online")  # unknown device: ignored
    store.on_status("pantau/x/b/status", b"rebooting")    # not a status: ignored
    assert (store.status("a"), store.status("b")) == ("online", "unknown")
    assert await transitions(store, "a") == [(0, "online", "lwt"), (3, "offline", "lwt"),
                                             (4, "online", "lwt")]


async def test_timeout_after_two_intervals_counted_from_last_heard(store: StatusStore,
                                                                   clock: Clock) -> None:
    clock.advance(5)
    store.on_stored(Stored.of(batch([(A_LEVEL, T0, 1.0)]), [clock.now], 0))
    assert store.status("a") == "online"
    clock.advance(20)            # exactly 2 x 10 s: not yet
    assert store.sweep() == 0
    clock.advance(0.1)
    assert store.sweep() == 1    # a is late; b (60 s) has 120 s from the store's start
    assert (store.status("a"), store.status("b")) == ("offline", "unknown")
    clock.advance(100)
    assert store.sweep() == 1 and store.status("b") == "offline"
    assert store.sweep() == 0    # offline stays offline, no new transition
    assert await transitions(store, "a") == [(5, "online", "telemetry"),
                                             (25.1, "offline", "timeout")]
    assert await transitions(store, "b") == [(125.1, "offline", "timeout")]


async def test_telemetry_brings_an_offline_device_online(store: StatusStore,
                                                         clock: Clock) -> None:
    store.on_status("pantau/x/a/status", b"offline")
    clock.advance(2)
    store.on_stored(Stored.of(batch([(A_LEVEL, T0, 1.0)]), [clock.now - S], 0))
    assert store.status("a") == "online"
    assert await transitions(store, "a") == [(0, "offline", "lwt"), (1, "online", "telemetry")]


async def test_telemetry_received_before_the_lwt_does_not_revive(store: StatusStore,
                                                                 clock: Clock) -> None:
    received = clock.now
    clock.advance(0.2)
    store.on_status("pantau/x/a/status", b"offline")  # LWT overtakes the batch in flight
    clock.advance(0.2)
    store.on_stored(Stored.of(batch([(A_LEVEL, T0, 1.0)]), [received], 0))
    st = store.state("a")
    assert st is not None and (st.status, st.cause, st.last_seen_ns) == ("offline", "lwt",
                                                                         received)


async def test_an_online_announcement_gets_its_own_grace_period(store: StatusStore,
                                                                clock: Clock) -> None:
    clock.advance(100)
    store.on_status("pantau/x/a/status", b"online")
    clock.advance(15)
    assert store.sweep() == 0 and store.status("a") == "online"  # 115 s after the start
    clock.advance(6)
    assert store.sweep() == 2    # a: 21 s after "online"; b: 121 s after the start
    assert store.status("a") == "offline"


async def test_hold_restarts_the_grace_period(store: StatusStore, clock: Clock) -> None:
    store.on_stored(Stored.of(batch([(A_LEVEL, T0, 1.0)]), [clock.now], 0))
    clock.advance(50)
    assert store.sweep(hold=True) == 0   # the database was failing: silence means nothing
    clock.advance(15)
    assert store.sweep() == 0
    clock.advance(6)
    assert store.sweep() == 1


async def test_last_values_are_the_newest_device_timestamp_per_series(store: StatusStore,
                                                                      clock: Clock) -> None:
    b = batch([(A_LEVEL, T0 + 2 * S, 2.0), (A_LEVEL, T0 + 3 * S, 3.0), (A_BAT, T0, 12.5),
               (A_LEVEL, T0 + 1 * S, 1.0), (B_LEVEL, T0, 9.0)], origin=[0, 0, 0, 1, 2])
    rejected = b.with_status(np.array([False, False, False, False, True]), Reason.OUT_OF_RANGE)
    store.on_stored(Stored.of(rejected, [clock.now, clock.now, clock.now], 0))
    # an older reading, redelivered
    store.on_stored(Stored.of(batch([(A_LEVEL, T0, 0.5)]), [clock.now + 1], 0))
    st = store.state("a")
    assert st is not None and st.values == {"level_cm": (3.0, T0 + 3 * S),
                                            "battery_v": (12.5, T0)}
    b_state = store.state("b")
    assert b_state is not None and b_state.values == {}          # rejected: not a last value
    assert (b_state.status, b_state.last_seen_ns) == ("online", clock.now)  # but heard
    store.on_stored(Stored.of(batch([]), [], 0))  # empty batch: nothing


async def test_state_survives_a_restart_in_sqlite(tmp_path: Path, clock: Clock) -> None:
    path = tmp_path / "pantau.sqlite"
    async with StatusStore(path, TABLE, clock=clock) as s:
        s.on_stored(Stored.of(batch([(A_LEVEL, T0, 1.5), (A_BAT, T0, 12.1)], origin=[0, 0]),
                          [clock.now], 0))
        clock.advance(30)
        s.sweep()
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    assert conn.execute("SELECT device, status, cause FROM device_status ORDER BY device"
                        ).fetchall() == [("a", "offline", "timeout")]
    conn.close()
    async with StatusStore(path, TABLE, clock=clock) as s:
        st = s.state("a")
        assert st is not None
        assert (st.status, st.cause, st.last_seen_ns) == ("offline", "timeout", T0)
        assert st.values == {"level_cm": (1.5, T0), "battery_v": (12.1, T0)}
        assert len(await s.history("a")) == 2


async def test_flush_writes_only_what_changed_in_one_transaction(store: StatusStore,
                                                                 clock: Clock) -> None:
    calls: list[tuple[int, int, int]] = []
    write = store._db.write

    def spy(st: list[object], va: list[object], hi: list[object]) -> None:
        calls.append((len(st), len(va), len(hi)))
        write(st, va, hi)  # type: ignore[arg-type]

    store._db.write = spy  # type: ignore[method-assign,assignment]
    for k in range(100):   # 100 batches of telemetry between two flushes
        store.on_stored(Stored.of(batch([(A_LEVEL, T0 + k * S, float(k))]), [clock.now + k], 0))
    await store.flush()
    await store.flush()    # nothing changed: no transaction
    assert calls == [(1, 1, 1)]


async def test_a_failed_flush_keeps_the_changes_for_the_next_one(store: StatusStore,
                                                                 clock: Clock) -> None:
    write = store._db.write
    fail = [False, True]  # popped from the end: the first write fails

    def flaky(st: list[object], va: list[object], hi: list[object]) -> None:
        if fail.pop():
            raise sqlite3.OperationalError("disk I/O error")
        write(st, va, hi)  # type: ignore[arg-type]

    store._db.write = flaky  # type: ignore[method-assign,assignment]
    store.on_status("pantau/x/a/status", b"online")
    store.on_stored(Stored.of(batch([(A_LEVEL, T0, 4.0)]), [clock.now], 0))
    with pytest.raises(sqlite3.OperationalError):
        await store.flush()
    clock.advance(1)
    store.on_status("pantau/x/a/status", b"offline")  # a change while the write was failing
    assert await transitions(store, "a") == [(0, "online", "lwt"), (1, "offline", "lwt")]
    rows = store._db.conn.execute("SELECT device, metric, value FROM last_value").fetchall()
    assert rows == [("a", "level_cm", 4.0)]
