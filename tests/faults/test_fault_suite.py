"""The fault suite (`pantau faults`), every scenario against the real Mosquitto and InfluxDB.

Default run: each scenario in its bounded form (seconds of outage, thousands of messages);
``PANTAU_SLOW=1`` runs them at full length. A failed check is a finding about Pantau: the
assertion message is the scenario's row of the scoreboard with every check.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pantau.faults import run_one, scenarios
from pantau.faults.report import table
from pantau.faults.scale import Size

SIZE = Size(full=os.environ.get("PANTAU_SLOW") == "1")


@pytest.mark.slow
@pytest.mark.parametrize("name", list(scenarios()))
async def test_scenario_passes_every_check(name: str, tmp_path: Path) -> None:
    result = await run_one(name, tmp_path, SIZE)
    print("\n" + table([result]))
    assert result.passed, "\n" + table([result])
