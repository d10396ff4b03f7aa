"""``pantau bench --chain``: what the domain processors cost, on 10,000 series.

Two measurements, both comparing the spine chain (calibration, range check, dedupe) with the
domain chain (the default: + quality, flood, aqi, anomaly, tiers; optionally + windows):

- ``in-process`` (always): the same batches (``--batch`` readings, weather stations reporting
  five metrics each minute) through each chain *and* the line protocol encoding of what would
  be written (readings, derived rows, and the tier lines coalesced per checkpoint as the
  pipeline writes them), timed with the process CPU clock. Prints
  readings/s and CPU per reading per chain, and the ratio.
- ``--end-to-end``: ``pantau run`` under the same MQTT load on a private Mosquitto and
  InfluxDB, alternating the spine chain and the domain chain for ``--repeat`` rounds (each run
  into its own database), so the ratio is that of the spine benchmark's CPU per message (MQTT,
  decoding, HTTP and all). On a shared 2-core machine single runs scatter by tens of percent,
  so: before each phase the bench waits until the broker and InfluxDB are idle (InfluxDB
  compacts what the previous phase wrote, on the same cores), the order alternates (spine
  first in odd rounds, domain first in even ones), and both the median of the round-by-round
  ratios and the ratio of each chain's best run are printed, with every round. Unlike the spine
  ``pantau bench`` (whose messages carry the wall clock at sending, for its publish-to-stored
  latency), the messages are stamped at the devices' cadence: message k of a station at
  ``start + k * interval_s`` (60 s in the bench registry; ``start`` so that the last reading
  is just before now, well within ``ingest.max_age_s``). Stamped with the sending time, each
  station would "report" several times a second: the quality processor would flag the
  resulting physically impossible jumps as spikes (``<metric>_q`` rows a real station at its
  real cadence does not cause) and each 1-minute tier bucket would take many readings.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from core.batch import TelemetryBatch
from devices.registry import load_registry
from devices.series import SeriesTable
from ingest.lineproto import LineEncoder, TierEncoder
from ingest.writer import coalesce
from pantau.settings import Settings
from processors import ProcessorContext, build_chain
from processors.domain.derived import Tier
from processors.settings import ProcessorSettings

if TYPE_CHECKING:
    from pantau.devstack import InfluxDB1, Mosquitto

SPINE = ("calibration", "range_check", "dedupe")
DOMAIN = Settings().ingest.processors
MIN = 60_000_000_000


def _batches(n_devices: int, batch: int, count: int) -> list[TelemetryBatch]:
    """``count`` batches of weather-station readings: each device reports its five metrics
    once a minute (spread over the minute), values drifting like the spine bench's."""
    per = batch // 5
    out = []
    for b in range(count):
        msg = np.arange(b * per, (b + 1) * per)
        dev = msg % n_devices
        ts = 1_790_000_000_000_000_000 + (msg // n_devices) * MIN + dev * (MIN // n_devices)
        i = msg
        values = np.stack([24 + (i % 97) / 10, 60.0 + i % 40, 1005 + (i % 50) / 10,
                           (i % 130) / 10, (i % 360).astype(float)], axis=1)
        series = dev[:, None] * 5 + np.arange(5)
        out.append(TelemetryBatch.from_arrays(np.repeat(ts, 5), series.ravel(), values.ravel(),
                                              origin=np.repeat(np.arange(per), 5)))
    return out


def in_process(registry: Path, n_devices: int, batch: int, count: int, windows: bool,
               checkpoint: int) -> dict[str, tuple[float, float, int]]:
    """{chain name: (readings/s, CPU µs per reading, rows written)}."""
    table = SeriesTable.from_registry(load_registry(registry))
    batches = _batches(n_devices, batch, count)
    chains = {"spine": SPINE, "domain": DOMAIN}
    if windows:
        chains["domain+windows"] = (*DOMAIN, "windows")
    result = {}
    for name, names in chains.items():
        chain = build_chain(names, ProcessorContext(table, settings=ProcessorSettings()))
        assert chain.table is not None
        lines, tiers = LineEncoder(chain.table), TierEncoder(chain.table)
        rows = 0
        pending: list[Tier] = []
        cpu0 = time.process_time()
        for k, b in enumerate(batches, 1):
            out = chain.run(b, defer_tiers=True)
            body = lines.encode(TelemetryBatch.concat([out.batch.take(out.batch.ok),
                                                       out.derived]))
            rows += len(out.derived) + int(out.batch.ok.sum())
            pending += out.tiers
            if k % checkpoint == 0 or k == len(batches):  # as the pipeline's checkpoint does
                pending += chain.flush_tiers()
                for t in coalesce(pending):
                    body += tiers.encode(t)
                    rows += len(t)
                pending = []
        cpu = time.process_time() - cpu0
        n = batch * count
        result[name] = (n / cpu, cpu / n * 1e6, rows)
    return result


def _cadence_load(ctx: Any, broker: Mosquitto, devices: list[tuple[str, str]], n: int,
                  publishers: int, interval_s: float, rate: float) -> None:
    """``n`` messages from ``publishers`` processes (each owning every publishers-th device),
    at ``rate`` messages/s in all (0: flat out), stamped at the devices' cadence of
    ``interval_s``."""
    from pantau.bench.load import publish

    per_device = -(-n // len(devices)) + 1
    if per_device * interval_s >= Settings().ingest.max_age_s:
        raise SystemExit(f"{n} messages over {len(devices)} devices at {interval_s:g} s span "
                         "more than ingest.max_age_s: use fewer --messages or more --series")
    user, pw = broker.admin
    with ctx.Pool(publishers) as pool:
        jobs = [pool.apply_async(publish, (broker.host, broker.port, user, pw,
                                           devices[k::publishers], n // publishers, k,
                                           rate / publishers, interval_s))
                for k in range(publishers)]
        for j in jobs:
            j.get(timeout=3600)


def _settle(pids: list[int], *, quiet_s: float = 0.05, within_s: float = 30.0) -> None:
    """Wait until ``pids`` together burn less than ``quiet_s`` CPU seconds in a second."""
    from pantau.bench import _cpu_s

    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        before = sum(_cpu_s(p) for p in pids)
        time.sleep(1.0)
        if sum(_cpu_s(p) for p in pids) - before < quiet_s:
            return


def _pantau_phase(ctx: Any, broker: Mosquitto, influx: InfluxDB1,
                  devices: list[tuple[str, str]], registry: Path, work: Path,
                  chain: tuple[str, ...], n: int, publishers: int, tag: str,
                  interval_s: float, rate: float) -> tuple[float, float]:
    """(messages/s, CPU s per 10,000 messages) of ``pantau run`` with ``chain``; ``tag``
    names its database, client id and state directory."""
    from pantau.bench import _cpu_s, _metrics, running_pantau

    db = f"bench_{tag}"
    influx.create_database(db)
    influx.create_tiers(db)
    with running_pantau(broker, influx, db, registry, work / f"pantau-{tag}.log",
                        PANTAU_MQTT_CLIENT_ID=f"pantau-bench-{tag}",
                        PANTAU_INGEST_PROCESSORS=",".join(chain)) as (proc, url):
        cpu0, t0 = _cpu_s(proc.pid), time.perf_counter()
        _cadence_load(ctx, broker, devices, n, publishers, interval_s, rate)
        # Polled 4 times a second: rendering /metrics costs Pantau CPU too, and polling
        # it 50 times a second charged the slower phase for its longer wall time.
        while _metrics(url).get("pantau_messages_acked_total", 0) < n:
            time.sleep(0.25)
        seconds = time.perf_counter() - t0
        cpu = _cpu_s(proc.pid) - cpu0
    return n / seconds, cpu / (n / 10_000)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="pantau bench --chain", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--series", type=int, default=10_000, help="series (5 per station; "
                   "default 10000)")
    p.add_argument("--batch", type=int, default=5000, help="readings per batch (default 5000, "
                   "influx.batch_size)")
    p.add_argument("--batches", type=int, default=200, help="batches (default 200: 100 "
                   "readings per series, past the anomaly warm-up)")
    p.add_argument("--windows", action="store_true", help="also time domain + windows")
    p.add_argument("--checkpoint", type=int, default=20, help="batches per checkpoint, where "
                   "tiers are coalesced and written (default 20: 5 s at 20,000 readings/s)")
    p.add_argument("--end-to-end", action="store_true", help="also run `pantau run` twice "
                   "under MQTT load (private Mosquitto + InfluxDB)")
    p.add_argument("--messages", type=int, default=100_000, help="end to end: per chain")
    p.add_argument("--publishers", type=int, default=2, help="end to end: publisher processes")
    p.add_argument("--rate", type=float, default=0.0, help="end to end: messages/s in all "
                   "(default 0: flat out; a paced load leaves the 2 cores less contended, so "
                   "the CPU per message scatters less)")
    p.add_argument("--repeat", type=int, default=4, help="end to end: rounds, each running "
                   "both chains, in alternating order (default 4; the median of the rounds' "
                   "ratios and the ratio of each chain's best run are printed, with every "
                   "round)")
    a = p.parse_args(argv)
    from pantau.bench import _registry
    n_devices = a.series // 5
    with tempfile.TemporaryDirectory(prefix="pantau-bench-chain-") as tmp:
        work = Path(tmp)
        devices = _registry(work / "registry.yaml", n_devices)
        print(f"in process: {a.batches} batches of {a.batch} readings, {n_devices * 5} series "
              "...", flush=True)
        res = in_process(work / "registry.yaml", n_devices, a.batch, a.batches, a.windows,
                         a.checkpoint)
        report = [f"Pantau chain benchmark: {n_devices * 5} series ({n_devices} weather "
                  f"stations), batches of {a.batch} readings",
                  "  in process (chain + line protocol of everything written, CPU clock):"]
        base = res["spine"][1]
        for name, (rate, us, rows) in res.items():
            report.append(f"    {name:15s} {rate:12,.0f} readings/s  {us:6.2f} µs/reading  "
                          f"x{us / base:4.2f}  ({rows / (a.batch * a.batches):.2f} rows "
                          "written per reading)")
        if a.end_to_end:
            from pantau.devstack import InfluxDB1, Mosquitto, stack_users
            n = a.messages - a.messages % a.publishers
            ctx = mp.get_context("spawn")
            intervals = {d.interval_s for d in load_registry(work / "registry.yaml").devices}
            if len(intervals) != 1:
                raise SystemExit(f"bench registry: one interval_s expected, got {intervals}")
            interval_s = intervals.pop()
            broker = Mosquitto(work / "mqtt", users=stack_users([]))
            influx = InfluxDB1(work / "influx", database="bench")
            with broker, influx:
                e2e: dict[str, list[tuple[float, float]]] = {"spine": [], "domain": []}
                pids = [p for p in (broker.pid, influx.pid) if p is not None]
                phases = (("spine", SPINE), ("domain", DOMAIN))
                for k in range(a.repeat):  # alternating, so that drift hits both alike
                    for name, chain in phases if k % 2 == 0 else phases[::-1]:
                        _settle(pids)
                        print(f"end to end, round {k + 1}/{a.repeat}: pantau run with the "
                              f"{name} chain, {n} messages ...", flush=True)
                        e2e[name].append(_pantau_phase(
                            ctx, broker, influx, devices, work / "registry.yaml", work, chain,
                            n, a.publishers, f"{name}_{k}", interval_s, a.rate))
            pace = f"{a.rate:,.0f} msg/s" if a.rate else "flat out"
            report.append(f"  end to end ({n} messages of 5 readings, {a.publishers} "
                          f"publishers, {pace}, {a.repeat} rounds; timestamps at the devices' "
                          "cadence, "
                          f"one message per station every {interval_s:g} s):")
            best = {name: min(cpu for _, cpu in runs) for name, runs in e2e.items()}
            for name, runs in e2e.items():
                rounds = ", ".join(f"{cpu:.3f}" for _, cpu in runs)
                rate = max(r for r, _ in runs)
                report.append(f"    {name:15s} {rate:12,.0f} msg/s  {best[name]:6.3f} CPU s per "
                              f"10,000 messages (best; rounds: {rounds})  "
                              f"x{best[name] / best['spine']:4.2f}")
            ratios = [d / s_ - 1 for (_, s_), (_, d) in
                      zip(e2e["spine"], e2e["domain"], strict=True)]
            pairs = ", ".join(f"{r:+.0%}" for r in ratios)
            extra = best["domain"] / best["spine"] - 1
            report.append(f"  domain processors add {float(np.median(ratios)):+.0%} CPU per "
                          f"message, median of the rounds ({pairs}); best of each: "
                          f"{extra:+.0%} (target: < +15%)")
        print("\n" + "\n".join(report))
    return 0
