"""`Delivery.payload`: what Alertmanager is told carries Pantau's clock in startsAt and endsAt
(its group_wait counts from startsAt), the reading's time in annotations; a catch-up of
readings two hours old is raised now, not two hours ago."""

from __future__ import annotations

from pathlib import Path

from alerts.alertmanager import rfc3339
from alerts.delivery import Delivery
from alerts.lifecycle import Book
from alerts.machine import FIRING, INACTIVE, Change
from alerts.settings import AlertSettings
from alerts.store import AlertDB
from core.metrics import Metrics

S = 1_000_000_000
NOW = 1_780_000_000 * S  # Pantau's clock
LABELS = {"alertname": "FloodStage", "severity": "high", "device": "wl-1", "stage": "Siaga"}


def test_times_are_pantaus_and_the_readings_are_annotations(tmp_path: Path) -> None:
    book = Book(AlertDB(tmp_path / "alerts.sqlite"))
    book.open(NOW)
    old = NOW - 7200 * S  # readings of a catch-up: two hours old
    book.apply([("a1", LABELS, Change(0, old, INACTIVE, FIRING, 560.0), {}, {})], NOW)
    d = Delivery(book, [], AlertSettings(), b"k" * 32, Metrics(), clock=lambda: NOW)
    [firing] = d.payload([book.alerts["a1"]], NOW + S)
    assert firing["startsAt"] == rfc3339(NOW)
    assert firing["endsAt"] > firing["startsAt"]
    assert firing["annotations"]["observed_at"] == rfc3339(old) == "2026-05-28T18:26:40.000Z"
    book.apply([("a1", LABELS, Change(0, old + 600 * S, FIRING, INACTIVE, 400.0), {}, {})],
               NOW + 5 * S)
    [resolved] = d.payload([book.alerts["a1"]], NOW + 6 * S)
    assert resolved["startsAt"] == rfc3339(NOW)
    assert resolved["endsAt"] == rfc3339(NOW + 5 * S)  # cleared here, not 1 h 50 ago
    assert resolved["annotations"]["cleared_at"] == rfc3339(old + 600 * S)
