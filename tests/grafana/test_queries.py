"""Every panel query of every dashboard, expanded as Grafana would (``$timeFilter`` over the
dashboard's range or the panel's relative time, ``$__interval`` from the range and the panel's
min interval, the drill-down's variables from their own ``SHOW`` queries), runs against the
real InfluxDB the real pipeline filled (`filled`) and returns rows: a panel that would be empty
fails. The flood scenario's rivers reach a flood stage."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import pytest

from devices.registry import default_registry_path, load_registry
from grafana.dashboards import build_all
from grafana.render import expand, interval, parse_duration_ms
from pantau.devstack import InfluxDB1
from pantau.grafana_cli import sources
from pantau.settings import Settings
from tests.grafana.conftest import RESOLVED, STILL_FIRING, Filled

MIN_INTERVAL = "10s"  # the data source's timeInterval (grafana.export.datasources)
BOARDS = build_all(sources(Settings(), load_registry(default_registry_path())))
FLOOD_BOARDS = ("pantau-command-center", "pantau-rivers")


def _range_ms(board: dict[str, Any], panel: dict[str, Any]) -> int:
    if panel.get("timeFrom"):
        return parse_duration_ms(panel["timeFrom"])
    return parse_duration_ms(board["time"]["from"].removeprefix("now-"))


def _run(influx: InfluxDB1, db: str, q: str) -> list[dict[str, Any]]:
    return influx.rows(q, db=db)


def _variable_sets(influx: InfluxDB1, db: str, board: dict[str, Any], end_ms: int
                   ) -> Iterator[dict[str, list[str]]]:
    """Every combination of the dashboard's variables Grafana would offer (each variable's
    query run with the ones before it chosen), as single selections."""
    names = [v for v in board.get("templating", {}).get("list", [])]
    if not names:
        yield {}
        return

    def walk(i: int, chosen: dict[str, list[str]]) -> Iterator[dict[str, list[str]]]:
        if i == len(names):
            yield dict(chosen)
            return
        v = names[i]
        q = expand(v["query"], from_ms=end_ms - 6 * 3600_000, to_ms=end_ms,
                   interval_ms="1m", variables=chosen)
        rows = _run(influx, db, q)
        values = sorted({str(r.get("value", r.get("name"))) for r in rows})
        if v.get("regex"):
            import re
            rx = re.compile(v["regex"].strip("/"))
            values = [x for x in values if rx.search(x)]
        assert values, f"variable {v['name']!r} offers nothing: {q}"
        for value in values:
            yield from walk(i + 1, {**chosen, v["name"]: [value]})

    yield from walk(0, {})


def _targets(board: dict[str, Any]) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    for panel in board["panels"]:
        for t in panel.get("targets", []):
            yield panel, t


@pytest.mark.slow
@pytest.mark.parametrize("uid", list(BOARDS))
def test_every_panel_returns_rows_normal_day(uid: str, filled: Filled, influx: InfluxDB1
                                             ) -> None:
    board, db = BOARDS[uid], filled.dbs["normal"]
    empty = _empty_panels(board, db, filled.end_ms, influx)
    assert not empty, f"{uid}: panels without rows:\n" + "\n".join(empty)


@pytest.mark.slow
@pytest.mark.parametrize("uid", FLOOD_BOARDS)
def test_every_panel_returns_rows_in_a_flood(uid: str, filled: Filled, influx: InfluxDB1
                                             ) -> None:
    board, db = BOARDS[uid], filled.dbs["flood"]
    empty = [e for e in _empty_panels(board, db, filled.end_ms, influx)
             if "ispu" not in e.lower()]  # 6 hours: no 24-hour average, no ISPU
    assert not empty, f"{uid}: panels without rows:\n" + "\n".join(empty)


@pytest.mark.slow
def test_the_flood_raises_a_stage(filled: Filled, influx: InfluxDB1) -> None:
    [row] = influx.rows("SELECT max(flood_stage) FROM river_gauge", db=filled.dbs["flood"])
    assert row["max"] >= 1


@pytest.mark.slow
@pytest.mark.parametrize("uid", list(BOARDS))
def test_alert_annotations_return_rows(uid: str, filled: Filled, influx: InfluxDB1) -> None:
    board = BOARDS[uid]
    for ann in board["annotations"]["list"]:
        q = expand(ann["target"]["query"], from_ms=filled.end_ms - 86400_000,
                   to_ms=filled.end_ms, interval_ms="1m")
        rows = influx.rows(q, db=filled.dbs["normal"])
        assert rows and all(ann["target"]["textColumn"] in r for r in rows), q


@pytest.mark.slow
def test_active_alerts_are_the_firing_ones(filled: Filled, influx: InfluxDB1) -> None:
    """The wall screen's alert table, with its filter as Grafana applies it, over the events
    the real alerts lifecycle wrote: an acknowledged or escalated alert still fires there, a
    resolved one is gone."""
    board = BOARDS["pantau-command-center"]
    [panel] = [p for p in board["panels"] if p["title"] == "Active alerts"]
    [target] = panel["targets"]
    [keep] = [f for t in panel["transformations"] if t["id"] == "filterByValue"
              for f in t["options"]["filters"]]
    rng = parse_duration_ms(panel["timeFrom"])
    rows = _run(influx, filled.dbs["normal"], expand(
        target["query"], from_ms=filled.end_ms - rng, to_ms=filled.end_ms, interval_ms="1m"))
    shown = {r["alertname"] for r in rows
             if r[keep["fieldName"]] == keep["config"]["options"]["value"]}
    assert set(STILL_FIRING) <= shown and RESOLVED not in shown, rows


def _empty_panels(board: dict[str, Any], db: str, end_ms: int, influx: InfluxDB1
                  ) -> list[str]:
    """Panels none of whose queries returns a row for any choice of the variables."""
    sets = list(itertools.islice(_variable_sets(influx, db, board, end_ms), 200))
    empty = []
    for panel, target in _targets(board):
        rng = _range_ms(board, panel)
        step = interval(rng, min_interval=panel.get("interval") or MIN_INTERVAL)
        found = False
        for chosen in sets:
            q = expand(target["query"], from_ms=end_ms - rng, to_ms=end_ms, interval_ms=step,
                       variables=chosen)
            if _run(influx, db, q):
                found = True
                break
        if not found:
            empty.append(f"  {panel['id']} {panel['title']!r} {target['refId']}: "
                         f"{target['query']}")
    return empty
