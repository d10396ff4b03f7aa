"""The scoreboard: what each scenario published, what ended up stored or dead-lettered, the
checks it passed, and the one table `pantau faults` prints.

`reconcile` is the conservation check every scenario ends with: each reading the broker
acknowledged to a publisher is either stored once in InfluxDB with the value sent, or found in
the dead-letter file with its reason; nothing else is stored.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

from pantau.faults.load import BAD_METRIC, BAD_REASON, Sent, humidity, temperature

Key = tuple[str, int]  # (device, timestamp in ns)


@dataclass(slots=True)
class Check:
    name: str
    ok: bool
    detail: str = ""


@dataclass(slots=True)
class Ledger:
    """Readings, counted: ``published`` = ``stored`` + ``dead_lettered`` + ``lost``;
    ``duplicated`` counts stored points no message explains (an extra or a changed value);
    ``unacked`` messages the broker never acknowledged (not counted as published);
    ``lost_acked_at`` when the broker had acknowledged each message with a lost reading."""

    published: int = 0
    stored: int = 0
    dead_lettered: int = 0
    lost: int = 0
    duplicated: int = 0
    wrong_dead_letters: int = 0
    unacked: int = 0
    lost_acked_at: npt.NDArray[np.float64] = field(default_factory=lambda: np.zeros(0))


@dataclass(slots=True)
class Result:
    scenario: str
    injected: str
    ledger: Ledger = field(default_factory=Ledger)
    peak_rss_mb: float = math.nan
    recover: str = "-"
    checks: list[Check] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return bool(self.checks) and all(c.ok for c in self.checks)

    def check(self, name: str, ok: bool, detail: str = "") -> bool:
        self.checks.append(Check(name, bool(ok), detail))
        return bool(ok)


def dead_letters(paths: Iterable[Path]) -> dict[tuple[str, int, str], str]:
    """(device, timestamp µs, metric) -> reason of every rejected reading in the dead-letter
    files (a redelivered message may be recorded twice: one key)."""
    out: dict[tuple[str, int, str], str] = {}
    for path in paths:
        if not path.exists():
            continue
        for line in path.read_text().splitlines():
            rec = json.loads(line)
            try:
                ts = int(json.loads(rec.get("payload", "{}"))["ts"])
            except (ValueError, KeyError, TypeError):
                ts = -1
            for r in rec.get("readings") or [{"metric": "*", "reason": rec["reason"]}]:
                out[(rec["device"], ts, r["metric"])] = r["reason"]
    return out


def reconcile(sent: Sequence[tuple[Sequence[str], Sent]],
              stored: Mapping[Key, tuple[float | None, float | None]],
              rejected: Mapping[tuple[str, int, str], str]) -> Ledger:
    """Count every reading of every message (see `Ledger`). ``sent``: each publisher's device
    ids with what it sent; ``stored``: (device, ts ns) -> (temperature, humidity) read back."""
    led = Ledger()
    explained: set[Key] = set()
    lost_at: list[float] = []
    for devices, s in sent:
        idx = np.arange(len(s.ts_us))
        temps, hums = temperature(idx), humidity(idx)
        acked = ~np.isnan(s.acked_at)
        led.unacked += int(np.count_nonzero(~acked))
        for i in np.flatnonzero(acked):
            dev, ts_us = devices[s.device[i]], int(s.ts_us[i])
            key = (dev, ts_us * 1000)
            got_t, got_h = stored.get(key, (None, None))
            explained.add(key)
            lost = 0
            led.published += 2
            if got_t == temps[i]:
                led.stored += 1
            else:
                lost += 1
                led.duplicated += got_t is not None  # stored, with another value
            if s.bad[i]:
                if rejected.get((dev, ts_us, BAD_METRIC)) == BAD_REASON and got_h is None:
                    led.dead_lettered += 1
                else:
                    lost += 1
            elif got_h == hums[i]:
                led.stored += 1
            else:
                lost += 1
                led.duplicated += got_h is not None
            led.lost += lost
            if lost:
                lost_at.append(float(s.acked_at[i]))
            if (dev, ts_us, "temperature_c") in rejected or (
                    not s.bad[i] and (dev, ts_us, BAD_METRIC) in rejected):
                led.wrong_dead_letters += 1
    led.duplicated += sum(1 for k in stored if k not in explained)
    led.lost_acked_at = np.array(lost_at)
    return led


def _mb(x: float) -> str:
    return "-" if math.isnan(x) else f"{x:.0f} MB"


COLUMNS = ("scenario", "injected", "published", "stored", "dead-lettered", "lost", "duplicated",
           "peak RSS", "time to recover", "result")


def table(results: Sequence[Result]) -> str:
    """The scoreboard as a Markdown table, then every check of every scenario."""
    rows = [COLUMNS, tuple("---" for _ in COLUMNS)]
    for r in results:
        led = r.ledger
        rows.append((r.scenario, r.injected, f"{led.published:,}", f"{led.stored:,}",
                     f"{led.dead_lettered:,}", f"{led.lost:,}", f"{led.duplicated:,}",
                     _mb(r.peak_rss_mb), r.recover, "pass" if r.passed else "FAIL"))
    lines = ["| " + " | ".join(row) + " |" for row in rows]
    lines.append("")
    for r in results:
        lines.append(f"{r.scenario}:")
        lines += [f"  {'ok  ' if c.ok else 'FAIL'} {c.name}" + (f": {c.detail}" if c.detail
                                                               else "") for c in r.checks]
        lines += [f"  note {n}" for n in r.notes]
    return "\n".join(lines)
