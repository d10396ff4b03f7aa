"""`Book.drop_resolved`: a resolve is kept ``resolved_keep_s`` on Pantau's clock and until
every replica took it, whatever the device's clock says."""

from __future__ import annotations

from pathlib import Path

from alerts.lifecycle import Book
from alerts.machine import FIRING, INACTIVE, Change
from alerts.store import AlertDB

S = 1_000_000_000
NOW = 1_780_000_000 * S  # Pantau's clock
LABELS = {"alertname": "FloodStage", "severity": "high", "device": "wl-1", "stage": "Siaga"}
REPLICAS = ("http://am-1", "http://am-2")


def resolved_book(tmp_path: Path, device_ahead_s: int) -> Book:
    """A book whose one alert fired and resolved at NOW, the device's clock that far ahead."""
    book = Book(AlertDB(tmp_path / "alerts.sqlite"), resolved_keep_s=900)
    book.open(NOW)
    ts = NOW + device_ahead_s * S
    book.apply([("a1", LABELS, Change(0, ts - 60 * S, INACTIVE, FIRING, 280.0), {}, {})], NOW)
    book.apply([("a1", LABELS, Change(0, ts, FIRING, INACTIVE, 200.0), {}, {})], NOW)
    assert book.alerts["a1"].state == "resolved"
    return book


def test_kept_until_every_replica_took_it_and_the_keep_time_passed(tmp_path: Path) -> None:
    for ahead_s in (-7200, 0, 7200):  # behind, in step, ahead by two hours
        book = resolved_book(tmp_path / str(ahead_s), ahead_s)
        book.alerts["a1"].sent[REPLICAS[0]] = NOW + S
        assert book.drop_resolved(NOW + 3600 * S, REPLICAS) == []  # the second one did not
        book.alerts["a1"].sent[REPLICAS[1]] = NOW + 2 * S
        assert book.drop_resolved(NOW + 899 * S, REPLICAS) == [], ahead_s
        assert book.drop_resolved(NOW + 900 * S, REPLICAS) == ["a1"], ahead_s
        assert not book.alerts


def test_the_keep_time_survives_a_restart(tmp_path: Path) -> None:
    book = resolved_book(tmp_path, 7200)
    book.alerts["a1"].sent = {r: NOW + S for r in REPLICAS}
    book.save(book.alerts["a1"])
    book.db.close()
    again = Book(AlertDB(tmp_path / "alerts.sqlite"), resolved_keep_s=900)
    again.open(NOW + 10 * S)
    assert again.drop_resolved(NOW + 10 * S, REPLICAS) == []
    assert again.drop_resolved(NOW + 900 * S, REPLICAS) == ["a1"]
