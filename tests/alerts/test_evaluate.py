"""Rules over stored batches: flood stages from the flood processor, thresholds with a clear
level, quality flags, offline, redelivery and restart."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from alerts.store import AlertDB
from devices.status import Transition
from tests.alerts.helpers import T0, S, chain, evaluator, rules, stored

GAUGE = "wl-putih-gandusari"  # waspada 150, siaga 220, awas 300, hysteresis 10


def firing(ev) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {a.labels["alertname"] + "/" + a.labels.get("stage", ""): a.state
            for a in ev.book.alerts.values() if a.labels.get("device") == GAUGE}


def test_flood_stages_in_order_with_river_and_rise(tmp_path: Path) -> None:
    ch = chain()
    ev = evaluator(tmp_path, ch)
    ts = T0 + np.arange(0, 3600, 60) * S
    level = np.linspace(100, 320, len(ts))
    ev.on_stored(stored(ch, GAUGE, "level_cm", ts.tolist(), level.tolist()))
    states = firing(ev)
    assert states["FloodStage/Waspada"] == "firing"
    assert states["FloodStage/Siaga"] == "firing"
    assert states["FloodStage/Awas"] == "firing"
    history = ev.book.history({"alertname": {"FloodStage"}, "state": {"firing"}}, 0, 10)
    assert [e.severity for e in reversed(history)] == ["warning", "high", "critical"]
    awas = next(a for a in ev.book.alerts.values() if a.labels.get("stage") == "Awas")
    assert awas.labels["river"] == "putih" and awas.labels["team"] == "bpbd"
    assert "Awas" in awas.annotations["summary"] and "cm/jam" in awas.annotations["summary"]
    assert "?" not in awas.annotations["summary_en"]


def test_stage_resolves_only_below_the_hysteresis(tmp_path: Path) -> None:
    ch = chain()
    ev = evaluator(tmp_path, ch)
    ts = T0 + np.arange(0, 1800, 60) * S
    ev.on_stored(stored(ch, GAUGE, "level_cm", ts.tolist(), [160.0] * len(ts)))
    assert firing(ev) == {"FloodStage/Waspada": "firing"}
    ts2 = ts[-1] + np.arange(60, 1800, 60) * S
    ev.on_stored(stored(ch, GAUGE, "level_cm", ts2.tolist(), [145.0] * len(ts2)))  # in band
    assert firing(ev) == {"FloodStage/Waspada": "firing"}
    ts3 = ts2[-1] + np.arange(60, 600, 60) * S
    ev.on_stored(stored(ch, GAUGE, "level_cm", ts3.tolist(), [130.0] * len(ts3)))
    assert firing(ev) == {"FloodStage/Waspada": "resolved"}


def test_threshold_with_clear_level_and_for(tmp_path: Path) -> None:
    ch = chain()
    ev = evaluator(tmp_path, ch, rules({"rules": [
        {"name": "BatteryLow", "kind": "threshold", "metric": "battery_v", "below": 11.5,
         "clear": 12.0, "for": "10m"}]}))
    ts = (T0 + np.arange(0, 3600, 60) * S).tolist()
    volts = [11.4] * 20 + [11.8] * 20 + [12.1] * 20
    ev.on_stored(stored(ch, GAUGE, "battery_v", ts, volts))
    events = ev.book.history({}, 0, 10)
    assert [(e.state, (e.ts_ns - T0) // S) for e in reversed(events)] == [
        ("pending", 0), ("firing", 600), ("resolved", 2400)]
    assert events[-1].message.endswith("battery_v 11.4 V (batas 11.5 V)")


def test_a_redelivered_batch_changes_nothing(tmp_path: Path) -> None:
    ch = chain()
    ev = evaluator(tmp_path, ch)
    ts = (T0 + np.arange(0, 1800, 60) * S).tolist()
    batch = stored(ch, GAUGE, "level_cm", ts, [160.0] * len(ts))
    ev.on_stored(batch)
    before = len(ev.book.history({}, 0, 1000))
    ev.on_stored(batch)
    assert len(ev.book.history({}, 0, 1000)) == before


def test_restart_neither_refires_nor_forgets(tmp_path: Path) -> None:
    ch = chain()
    ev = evaluator(tmp_path, ch)
    ts = (T0 + np.arange(0, 1800, 60) * S).tolist()
    ev.on_stored(stored(ch, GAUGE, "level_cm", ts, [160.0] * len(ts)))
    ev.book.db.close()
    ev2 = evaluator(tmp_path, ch)  # a new process: state from SQLite only
    assert firing(ev2) == {"FloodStage/Waspada": "firing"}
    n = len(ev2.book.history({}, 0, 1000))
    more = (ts[-1] + np.arange(60, 600, 60) * S).tolist()
    ev2.on_stored(stored(ch, GAUGE, "level_cm", more, [161.0] * len(more)))
    assert len(ev2.book.history({}, 0, 1000)) == n  # no second firing
    ev2.book.db.close()
    ev3 = evaluator(tmp_path, ch)
    ev3.on_stored(stored(ch, GAUGE, "level_cm", [more[-1] + 60 * S], [100.0]))
    ev3.on_stored(stored(ch, GAUGE, "level_cm", [more[-1] + 120 * S], [100.0]))
    assert firing(ev3) == {"FloodStage/Waspada": "resolved"}


def test_offline_fires_after_for_and_resolves_online(tmp_path: Path) -> None:
    ch = chain()
    ev = evaluator(tmp_path, ch)
    ev.on_transition(Transition(GAUGE, T0, "offline", "lwt"))
    ev.sweep(T0 + 300 * S, {})
    offline = [a for a in ev.book.alerts.values() if a.labels["alertname"] == "DeviceOffline"]
    assert [a.state for a in offline] == ["pending"]
    ev.sweep(T0 + 600 * S, {})
    assert offline[0].state == "firing"
    ev.on_transition(Transition(GAUGE, T0 + 700 * S, "online", "telemetry"))
    assert offline[0].state == "resolved"


def test_watchdog_and_health(tmp_path: Path) -> None:
    ch = chain()
    ev = evaluator(tmp_path, ch)
    ev.sweep(T0, {"writes_failing": 1.0, "broker_disconnected": 0.0, "deadletter_per_min": 0})
    ev.sweep(T0 + 130 * S, {"writes_failing": 1.0})
    names = {a.labels["alertname"]: a.state for a in ev.book.alerts.values()}
    assert names == {"Watchdog": "firing", "PantauWritesFailing": "firing"}


def test_history_is_in_sqlite(tmp_path: Path) -> None:
    ch = chain()
    ev = evaluator(tmp_path, ch)
    ev.sweep(T0, {})
    db = AlertDB(tmp_path / "alerts.sqlite")
    db.open()
    assert [e.alertname for e in db.history({}, 0, 10)] == ["Watchdog"]


def test_an_alert_whose_rule_is_gone_is_resolved_at_restart(tmp_path: Path) -> None:
    ch = chain()
    ev = evaluator(tmp_path, ch)
    ts = (T0 + np.arange(0, 1800, 60) * S).tolist()
    ev.on_stored(stored(ch, GAUGE, "level_cm", ts, [160.0] * len(ts)))
    ev.book.db.close()
    ev2 = evaluator(tmp_path, ch, rules({"rules": [{"name": "Watchdog", "kind": "watchdog"}]}))
    assert firing(ev2) == {"FloodStage/Waspada": "resolved"}


def test_rate_of_change_between_readings(tmp_path: Path) -> None:
    ch = chain()
    ev = evaluator(tmp_path, ch, rules({"rules": [
        {"name": "Rising", "kind": "rate", "metric": "level_cm", "rate_above": 30, "clear": 10,
         "devices": {"id": GAUGE}}]}))
    ts = (T0 + np.arange(0, 420, 60) * S).tolist()
    level = [100.0, 100.2, 100.4, 103.4, 106.4, 106.6, 106.7]  # 12, 12, 180, 180, 12, 6 cm/h
    ev.on_stored(stored(ch, GAUGE, "level_cm", ts, level))
    events = [(e.state, (e.ts_ns - T0) // S, round(e.value or 0))
              for e in reversed(ev.book.history({}, 0, 10))]
    assert events == [("firing", 180, 180), ("resolved", 360, 6)]  # 12 cm/h is in the band


def test_quality_flags_of_a_stuck_sensor(tmp_path: Path) -> None:
    ch = chain()
    ev = evaluator(tmp_path, ch, rules({"rules": [
        {"name": "Stuck", "kind": "quality", "flags": ["stuck"], "for": "1h"}]}))
    ts = (T0 + np.arange(0, 9 * 3600, 600) * S).tolist()  # every 10 min, 9 h unchanged
    ev.on_stored(stored(ch, GAUGE, "level_cm", ts, [123.0] * len(ts)))
    stuck = {a.labels["metric"]: a.state for a in ev.book.alerts.values()}
    assert stuck == {"level_cm": "firing"}
    ev.on_stored(stored(ch, GAUGE, "level_cm", [ts[-1] + 600 * S], [124.0]))
    assert {a.state for a in ev.book.alerts.values()} == {"resolved"}
