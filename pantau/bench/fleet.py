"""``pantau bench --fleet N``: a mixed fleet end to end, long enough for a slope to show.

1. Grows the shipped Blitar registry to ``N`` devices (`devices.simulator.fleet`: every kind in
   its proportion) and starts a private Mosquitto and InfluxDB as ``pantau bench`` does.
2. Baseline (``--baseline``, default ``--every`` messages): ``pantau run`` with the spine chain
   (calibration, range check, dedupe) under the same load, in its own process and database.
3. Flat out: ``--messages`` QoS 1 messages to one ``pantau run`` with the default chain, every
   device stamped at its own cadence (``interval_s``: message k of a device at
   ``start + offset + k * interval_s``, in time order, so a 60 s gauge sends five times as
   often as a 300 s air-quality station; ``start`` such that the last is just before now).
   At every ``--every`` acknowledged messages it prints the throughput, Pantau's CPU seconds
   per 10,000 messages and its RSS over that stretch. "Flat out" is held within `LEAD`
   messages of Pantau's acks: further ahead, the broker's queue for Pantau would overflow
   and drop messages (it did, at 1.17 of 1.5 million, before this bound).
4. Paced: ``--paced`` messages at half the flat-out rate (or ``--rate``), stamped with the
   sending time (the only way a device timestamp measures publish-to-stored latency: a fleet
   that sends 12,000 messages/s at its real cadence would have a million devices), and the
   latency p50/p99 from Pantau's ``pantau_ingest_delay_seconds``.
5. Counts every reading of the flat-out and paced phases in InfluxDB (zero loss, or exit 1).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from devices.catalogue import load_rivers
from devices.registry import Registry, default_registry_path, load_registry
from devices.simulator.fleet import grow, write_registry
from pantau.bench.fleet_load import Device, device_specs, publish_fleet, schedule_span_s
from pantau.settings import Settings

SPINE = "calibration,range_check,dedupe"
LEAD = 200_000  # messages the publishers may be ahead of Pantau (the broker queues 1,000,000)


def _load(ctx: Any, broker: Any, devices: list[Device], n: int, publishers: int,
          rate: float, span_s: float, allowed: Any = None) -> None:
    """``n`` messages from ``publishers`` processes (each owning every publishers-th device);
    ``allowed``: see `publish_fleet`."""
    user, pw = broker.admin
    parts = [devices[k::publishers] for k in range(publishers)]
    share = [round(n * sum(1 / d.interval_s for d in p) / sum(1 / d.interval_s for d in devices))
             for p in parts]
    share[-1] = n - sum(share[:-1])
    procs = [ctx.Process(target=publish_fleet, args=(
        broker.host, broker.port, user, pw, p, m, k, rate / publishers, span_s, allowed, m / n))
        for k, (p, m) in enumerate(zip(parts, share, strict=True))]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join()
    if any(proc.exitcode for proc in procs):
        raise RuntimeError(f"a publisher failed: exit codes {[p.exitcode for p in procs]}")


def _flat_out(ctx: Any, broker: Any, devices: list[Device], n: int, publishers: int,
              span_s: float) -> tuple[Any, list[BaseException]]:
    """`_load` flat out in a thread, held within `LEAD` of Pantau's acks through the shared
    value it returns (that `_watch` keeps up to date), with the list its error lands in."""
    allowed, failed = ctx.Value("q", LEAD), []

    def load() -> None:
        try:
            _load(ctx, broker, devices, n, publishers, 0.0, span_s, allowed)
        except BaseException as e:  # _watch raises it
            failed.append(e)

    threading.Thread(target=load, daemon=True).start()
    return allowed, failed


def _watch(proc: Any, url: str, total: int, every: int, t_start: float,
           failed: list[BaseException] | None = None, allowed: Any = None,
           base: int = 0) -> list[str]:
    """Poll /metrics twice a second until ``total`` messages are acknowledged; a line per
    ``every`` of them: rate, CPU per 10,000 messages and RSS over that stretch."""
    from pantau.bench import _cpu_s, _metrics

    rows, mark = [], (0, t_start, _cpu_s(proc.pid))
    stalls = 0.0
    while mark[0] < total:
        time.sleep(0.5)
        if failed:
            raise RuntimeError("a publisher failed") from failed[0]
        try:
            acked = int(_metrics(url).get("pantau_messages_acked_total", 0))
        except OSError:  # busy for over 5 s: said in the stretch's line, not a failure
            if proc.poll() is not None:
                raise RuntimeError("pantau run exited during the benchmark") from None
            stalls += 5.0
            continue
        if allowed is not None:  # the publishers may stay LEAD messages ahead of the acks
            allowed.value = acked - base + LEAD
        if mark[0] == 0 and 0 < acked < total:  # stretches start at the first ack seen,
            mark = (acked, time.perf_counter(), _cpu_s(proc.pid))  # not at the publishers'
            continue                                                # start-up
        if acked >= min(mark[0] + every, total) or acked >= total:
            now, cpu = time.perf_counter(), _cpu_s(proc.pid)
            rss, hwm = _rss_mb(proc.pid)
            done = acked - mark[0]
            line = (f"    {mark[0]:>11,} - {acked:<11,} {done / (now - mark[1]):9,.0f} msg/s  "
                    f"{(cpu - mark[2]) / (done / 10_000):5.2f} CPU s/10k msgs  RSS {rss:4.0f} MB "
                    f"(peak {hwm:.0f})" + (f"; /metrics silent {stalls:.0f} s" if stalls else ""))
            print(line, flush=True)
            rows.append(line)
            mark, stalls = (acked, now, cpu), 0.0
    return rows


def _rss_mb(pid: int) -> tuple[float, float]:
    got = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            got[key] = int(value.split()[0]) / 1024
    return got["VmRSS"], got["VmHWM"]


def _fleet(work: Path, n: int) -> tuple[Path, Registry]:
    base = load_registry(default_registry_path())
    grown, _ = grow(base, load_rivers(default_registry_path(), base), n)
    path = work / "fleet.yaml"
    write_registry(grown, path)
    return path, grown


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="pantau bench --fleet N", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--fleet", type=int, required=True, help="devices (1,000 - 100,000)")
    p.add_argument("--messages", type=int, default=2_000_000, help="flat out (default 2M)")
    p.add_argument("--every", type=int, default=0, help="a line per this many messages "
                   "(default: 1,000,000, or a tenth of --messages when fewer)")
    p.add_argument("--baseline", type=int, default=-1, help="messages through the spine chain "
                   "first (default --every; 0: none)")
    p.add_argument("--paced", type=int, default=200_000, help="paced messages (default 200k)")
    p.add_argument("--rate", type=float, default=0.0, help="paced rate (default: half the "
                   "flat-out rate)")
    p.add_argument("--publishers", type=int, default=2, help="publisher processes (default 2)")
    p.add_argument("--autosave", type=int, default=10, help="Mosquitto's autosave_interval "
                   "(default 10 s, as deploy/mosquitto; the devstack's 1 s has the broker "
                   "rewrite a backlog of a million messages, ~150 MB, every second)")
    a = p.parse_args(argv)
    every = a.every or min(1_000_000, max(a.messages // 10, 1))
    baseline = every if a.baseline < 0 else a.baseline
    from pantau.devstack import InfluxDB1, Mosquitto, stack_users

    ctx = mp.get_context("spawn")
    with tempfile.TemporaryDirectory(prefix="pantau-bench-fleet-") as tmp:
        work = Path(tmp)
        t0 = time.perf_counter()
        registry_path, registry = _fleet(work, a.fleet)
        devices = device_specs(registry)
        kinds: dict[str, int] = {}
        for d in registry.devices:
            kinds[d.kind] = kinds.get(d.kind, 0) + 1
        span = schedule_span_s(devices, a.messages + baseline)
        if span >= Settings().ingest.max_age_s:
            raise SystemExit(f"{a.messages + baseline} messages from {a.fleet} devices span "
                             f"{span / 86400:.1f} days of their cadence, more than "
                             "ingest.max_age_s: use a larger --fleet or fewer --messages")
        print(f"fleet of {a.fleet} devices ({', '.join(f'{k} {v}' for k, v in kinds.items())}) "
              f"written in {time.perf_counter() - t0:.1f} s; {a.messages:,} messages span "
              f"{span / 3600:.1f} h of the devices' cadence", flush=True)
        broker = Mosquitto(work / "mqtt", users=stack_users([]), autosave_interval=a.autosave)
        influx = InfluxDB1(work / "influx", database="fleet")
        report = [f"Pantau mixed-fleet benchmark: {a.fleet:,} devices, {a.publishers} publisher "
                  "processes, default chain unless said"]
        try:
            lines, stored = _phases(a, ctx, broker, influx, registry_path, registry, devices,
                                    every, baseline, span)
            report += lines
        except BaseException:
            for log in sorted(work.glob("*.log")):  # the evidence goes with the temporary dir
                print(f"--- last lines of {log.name}:\n"
                      + "\n".join(log.read_text(errors="replace").splitlines()[-30:]))
            raise
    want = (a.messages + a.paced)
    report.append(f"  stored: {stored:,} reading sets of {want:,} "
                  f"({'zero loss' if stored == want else f'LOST {want - stored}'})")
    print("\n" + "\n".join(report))
    return 0 if stored == want else 1


def _phases(a: argparse.Namespace, ctx: Any, broker: Any, influx: Any, registry_path: Path,
            registry: Registry, devices: list[Device], every: int, baseline: int, span: float
            ) -> tuple[list[str], int]:
    """Run the baseline, flat-out and paced phases; the report's lines and the reading sets
    stored."""
    from pantau.bench import _cpu_s, _metrics, _quantile, running_pantau

    work = registry_path.parent
    report: list[str] = []
    with broker, influx:
        if baseline:
            influx.create_database("fleet_spine")
            print(f"baseline: the spine chain, {baseline:,} messages ...", flush=True)
            with running_pantau(broker, influx, "fleet_spine", registry_path,
                                work / "spine.log", PANTAU_MQTT_CLIENT_ID="bench-spine",
                                PANTAU_INGEST_PROCESSORS=SPINE) as (proc, url):
                t = time.perf_counter()
                allowed, failed = _flat_out(ctx, broker, devices, baseline, a.publishers,
                                            schedule_span_s(devices, baseline))
                report += ["  spine chain (baseline, own process):",
                           *_watch(proc, url, baseline, baseline, t, failed, allowed)]
        influx.create_database("fleet")
        influx.create_tiers("fleet")
        t_start = time.perf_counter()
        with running_pantau(broker, influx, "fleet", registry_path, work / "pantau.log",
                            PANTAU_MQTT_CLIENT_ID="bench-fleet") as (proc, url):
            ready_s, rss0 = time.perf_counter() - t_start, _rss_mb(proc.pid)[0]
            print(f"default chain: ready in {ready_s:.1f} s, idle RSS {rss0:.0f} MB; "
                  f"{a.messages:,} messages flat out ...", flush=True)
            report.append(f"  default chain, flat out (ready in {ready_s:.1f} s, idle RSS "
                          f"{rss0:.0f} MB):")
            t, cpu0 = time.perf_counter(), _cpu_s(proc.pid)
            allowed, failed = _flat_out(ctx, broker, devices, a.messages, a.publishers, span)
            report += _watch(proc, url, a.messages, every, t, failed, allowed)
            seconds, cpu = time.perf_counter() - t, _cpu_s(proc.pid) - cpu0
            flat_rate = a.messages / seconds
            report.append(f"    whole run: {flat_rate:,.0f} msg/s, "
                          f"{cpu / (a.messages / 10_000):.2f} CPU s per 10k messages")
            m = _metrics(url)
            rate = a.rate or flat_rate / 2
            print(f"paced: {a.paced:,} messages at {rate:,.0f} msg/s ...", flush=True)
            _load(ctx, broker, devices, a.paced, a.publishers, rate, 0.0)
            while _metrics(url).get("pantau_messages_acked_total", 0) < a.messages + a.paced:
                time.sleep(0.25)
            m2 = _metrics(url)
            delta = {k: v - m.get(k, 0.0) for k, v in m2.items()}
            report.append(f"  paced at {rate:,.0f} msg/s, {a.paced:,} messages: "
                          f"publish-to-stored p50 {_quantile(delta, 0.5) * 1000:.0f} ms, "
                          f"p99 {_quantile(delta, 0.99) * 1000:.0f} ms; RSS "
                          f"{_rss_mb(proc.pid)[0]:.0f} MB, peak {_rss_mb(proc.pid)[1]:.0f} MB")
            report.append("    where a batch's time went: " + _stages(delta))
        return report, _stored(influx, registry)


STAGES = (("chain", "pantau_process_seconds"), ("write", "pantau_write_seconds"),
          ("state snapshot", "pantau_state_snapshot_seconds"))


def _stages(delta: dict[str, float]) -> str:
    """The paced phase's batches taken apart: for the chain, each database write (readings,
    tiers) and each state snapshot, how many, their mean and p99 (from Pantau's histograms)."""
    from pantau.bench import _quantile

    parts = []
    for label, name in STAGES:
        n = delta.get(f"{name}_count", 0.0)
        if n:
            mean = delta.get(f"{name}_sum", 0.0) / n
            parts.append(f"{label} {n:.0f}x, mean {mean * 1000:.0f} ms, "
                         f"p99 {_quantile(delta, 0.99, name) * 1000:.0f} ms")
    return "; ".join(parts) or "no batch"


def _stored(influx: Any, registry: Registry) -> int:
    """Messages stored: per kind, the count of a field every message of that kind carries."""
    first = {d.kind: d.metrics[0].name for d in registry.devices}
    total = 0
    for kind, field in first.items():
        rows = influx.rows(f'SELECT count("{field}") FROM "{kind}"', db="fleet")
        total += int(rows[0]["count"]) if rows else 0
    return total
