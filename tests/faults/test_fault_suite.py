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


def _processes_under(path: Path) -> list[str]:
    """Command lines of live processes that name ``path`` (its daemons' configs) or run
    `pantau run` with a working directory below it."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            cwd = os.readlink(proc / "cwd")
        except OSError:  # gone meanwhile, or not ours to read
            continue
        if str(path) in cmd or cwd.startswith(str(path)):
            found.append(cmd)
    return found


@pytest.mark.slow
def test_sigterm_stops_every_process_it_started(tmp_path: Path) -> None:
    import subprocess
    import sys
    import time

    keep = tmp_path / "keep"
    cli = subprocess.Popen([sys.executable, "-m", "pantau.cli", "faults", "--only", "overload",
                            "--keep", str(keep)], stdout=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not list(keep.glob("*/pantau-*.log")):  # Pantau started: every daemon is up
        assert cli.poll() is None and time.monotonic() < deadline, "Pantau never started"
        time.sleep(0.1)
    assert _processes_under(keep)
    cli.terminate()
    out, _ = cli.communicate(timeout=120)
    assert cli.returncode == 130, out
    assert "interrupted: the processes it started are stopped" in out
    assert _processes_under(keep) == []
