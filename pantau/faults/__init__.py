"""``pantau faults``: the fault suite and its scoreboard (a documented command, and the body of
``tests/faults``).

Each scenario starts its own Mosquitto (configured as ``deploy/`` ships it) and InfluxDB 1.x on
this machine, runs ``pantau run`` as a child process under a stream from publisher processes
(devices that reconnect and resend what the broker did not acknowledge), injects its fault,
and ends with the same checks: every reading the broker acknowledged is stored once with its
value or dead-lettered with its reason; on ``/metrics`` received = written + rejected +
duplicate + in flight; peak RSS under a stated bound; unacknowledged messages within
``mqtt.max_unacked``. Then one table: scenario, what was injected, published, stored,
dead-lettered, lost, duplicated, peak RSS, time to recover, pass/fail.

Scenarios are bounded by default (seconds of outage, thousands of messages); ``--full`` (or
``PANTAU_SLOW=1``) runs them at full length. Scenario 4 needs root (``ip netns``). Ctrl-C or
SIGTERM stops it and every process it started (exit status 130, the table of what finished).
See docs/reliability.md for what each one injects and checks, and the latest table.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import tempfile
import time
import traceback
from collections.abc import Awaitable, Callable
from pathlib import Path

from pantau.faults.report import Result, table
from pantau.faults.scale import Size

Scenario = Callable[[Path, Size], Awaitable[Result]]


def scenarios() -> dict[str, Scenario]:
    """The scenarios, by the name ``--only`` takes, in the order they run."""
    from pantau.faults.broker import broker_freeze, broker_kill
    from pantau.faults.database import database
    from pantau.faults.load_faults import overload, soak
    from pantau.faults.network import partition
    from pantau.faults.stopping import sigterm
    return {"broker-kill": broker_kill, "broker-freeze": broker_freeze, "database": database,
            "partition": partition, "overload": overload, "soak": soak, "sigterm": sigterm}


async def run_one(name: str, work: Path, size: Size) -> Result:
    """One scenario; an error in the rig itself is a failed row, with its traceback as a note."""
    t0 = time.monotonic()
    try:
        result = await scenarios()[name](work, size)
    except Exception as e:  # the table must still print: the error is the row's finding
        result = Result(name, "(scenario did not complete)")
        result.check("scenario ran to the end", False, f"{type(e).__name__}: {e}")
        result.notes.append(traceback.format_exc(limit=4).strip().replace("\n", "\n       "))
    result.notes.append(f"ran {time.monotonic() - t0:.0f} s in {work}")
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="pantau faults", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--full", action="store_true", default=os.environ.get("PANTAU_SLOW") == "1",
                   help="full length (minutes per scenario) instead of bounded")
    p.add_argument("--only", nargs="+", metavar="NAME", choices=list(scenarios()),
                   help=f"run only these ({', '.join(scenarios())})")
    p.add_argument("--keep", metavar="DIR", help="work in DIR and keep logs and data")
    a = p.parse_args(argv)
    # SIGTERM stops it as Ctrl-C does: the scenario's `async with` blocks stop the Pantau,
    # Mosquitto, InfluxDB and publisher processes it started (else they outlive it).
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    size = Size(full=a.full)
    results = []
    with tempfile.TemporaryDirectory(prefix="pantau-faults-") as tmp:
        root = Path(a.keep or tmp)
        try:
            for name in a.only or list(scenarios()):
                print(f"scenario {name} ({'full' if size.full else 'bounded'}) ...", flush=True)
                results.append(asyncio.run(run_one(name, root / name, size)))
                print(f"  {'pass' if results[-1].passed else 'FAIL'}", flush=True)
        except KeyboardInterrupt:
            print("interrupted: the processes it started are stopped", flush=True)
            if results:
                print("\n" + table(results))
            return 130
    print("\n" + table(results))
    return 0 if all(r.passed for r in results) else 1
