"""``pantau bench``: the spine's end-to-end benchmark (a documented command, not a test).

1. Starts a private Mosquitto and InfluxDB (Debian packages) on free loopback ports, and a
   registry of ``--devices`` weather stations (five metrics, ~140-byte JSON messages).
2. Ceiling: ``--messages`` QoS 1 messages from ``--publishers`` processes to a bare paho-mqtt
   subscriber that does nothing (MQTT v5 like Pantau, and v3.1.1 for reference).
3. Pantau: ``pantau run`` as its own process; the same load; time until every message is
   acknowledged; then every reading is counted in InfluxDB (zero loss or the run fails).
4. Latency: ten seconds of load paced at half the measured rate, so that the figure is
   Pantau's own delay rather than the backlog of a flat-out run.
Prints messages/s, the ratio to the ceilings, publish-to-stored latency p50/p99 (device
timestamp to successful write, from Pantau's ``pantau_ingest_delay_seconds`` histogram),
Pantau's CPU seconds per 10,000 messages and its peak RSS.

``--chain`` times the processor chains instead (`pantau.bench.chain`), ``--lineproto`` the
line protocol encoder alone (`pantau.bench.lineproto`), ``--alerts`` the alert rules
(`pantau.bench.alerts`), ``--alerts --latency`` publish -> Alertmanager -> webhook latency
(`pantau.bench.alert_latency`), ``--fleet N`` a mixed fleet of N devices for millions of
messages in one process (`pantau.bench.fleet`; ``pantau bench --fleet N --help``).
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing as mp
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from core.metrics import parse_text, scraped_quantile
from pantau.bench.load import bare_subscriber, publish
from pantau.devstack import PANTAU_USER, InfluxDB1, Mosquitto, free_port, stack_users


def _registry(path: Path, n: int) -> list[tuple[str, str]]:
    devices = [("bench", f"ws-{i:05d}") for i in range(n)]
    lines = ["sites:", "  - {id: bench, lat: -8.1, lon: 112.2}", "kinds:", "  weather_station:",
             "    interval_s: 60", "    metrics:", "      temperature_c: {unit: degC}",
             "      humidity_pct: {unit: '%'}", "      pressure_hpa: {unit: hPa}",
             "      wind_ms: {unit: m/s}", "      wind_dir_deg: {unit: deg}", "devices:"]
    lines += [f"  - {{id: {d}, kind: weather_station, site: bench}}" for _, d in devices]
    path.write_text("\n".join(lines) + "\n")
    return devices


def _load(ctx: Any, broker: Mosquitto, devices: list[tuple[str, str]], n: int,
          publishers: int, rate: float = 0.0) -> float:
    user, pw = broker.admin
    with ctx.Pool(publishers) as pool:
        t0 = time.perf_counter()
        jobs = [pool.apply_async(publish, (broker.host, broker.port, user, pw,
                                           devices[k::publishers], n // publishers, k,
                                           rate / publishers))
                for k in range(publishers)]
        for j in jobs:
            j.get(timeout=3600)
    return time.perf_counter() - t0


def _ceiling(ctx: Any, broker: Mosquitto, devices: list[tuple[str, str]], n: int,
             publishers: int, protocol: int) -> dict[str, float]:
    ready, result = ctx.Event(), ctx.Queue()
    user, pw = broker.admin
    sub = ctx.Process(target=bare_subscriber, args=(broker.host, broker.port, user, pw, n,
                                                    protocol, ready, result))
    sub.start()
    ready.wait(30)
    _load(ctx, broker, devices, n, publishers)
    out: dict[str, float] = result.get(timeout=600)
    sub.join(30)
    return out


@contextlib.contextmanager
def running_pantau(broker: Mosquitto, influx: InfluxDB1, db: str, registry: Path, log: Path,
                   **extra: str) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """``pantau run`` as its own process against ``broker`` and ``db``, ready to take load:
    yields (process, base URL of its HTTP API); terminated (a clean, draining stop) after."""
    http = f"127.0.0.1:{free_port()}"
    env = {**os.environ, "PANTAU_MQTT_URL": broker.url_for(PANTAU_USER),
           "PANTAU_INFLUX_URL": influx.url, "PANTAU_INFLUX_DATABASE": db,
           "PANTAU_INFLUX_USERNAME": influx.writer.username,
           "PANTAU_INFLUX_PASSWORD": influx.writer.password,
           "PANTAU_INFLUX_READ_USERNAME": influx.reader.username,
           "PANTAU_INFLUX_READ_PASSWORD": influx.reader.password,
           "PANTAU_REGISTRY": str(registry), "PANTAU_HTTP_LISTEN": http,
           "PANTAU_STATE_DIR": str(log.with_suffix(".state")), "PANTAU_LOG_LEVEL": "WARNING",
           # Each run has its own client id: a week-long session would outlive the run and
           # have the broker queue every later message for it, slowing each next phase.
           "PANTAU_MQTT_SESSION_EXPIRY_S": "1",
           **extra}
    url = f"http://{http}"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "pantau.cli", "run"], env=env,
                                stdout=out, stderr=subprocess.STDOUT)
        try:
            for _ in range(300):
                try:
                    urllib.request.urlopen(f"{url}/readyz", timeout=1)
                    break
                except OSError:
                    if proc.poll() is not None:
                        raise RuntimeError(f"pantau run exited; see {log}") from None
                    time.sleep(0.1)
            yield proc, url
        finally:
            proc.terminate()
            proc.wait(60)


def _metrics(url: str) -> dict[str, float]:
    return parse_text(urllib.request.urlopen(f"{url}/metrics", timeout=5).read().decode())


def _quantile(m: dict[str, float], q: float, name: str = "pantau_ingest_delay_seconds"
              ) -> float:
    """A quantile of one of Pantau's histograms (by default ``pantau_ingest_delay_seconds``)
    from scraped /metrics values (`core.metrics.scraped_quantile`)."""
    return scraped_quantile(m, name, q)


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main(argv: list[str] | None = None) -> int:
    if argv and "--chain" in argv:  # the domain processors' cost: pantau.bench.chain
        from pantau.bench.chain import main as chain_bench
        return chain_bench([a for a in argv if a != "--chain"])
    if argv and any(a == "--fleet" or a.startswith("--fleet=") for a in argv):
        from pantau.bench.fleet import main as fleet_bench  # a mixed fleet, long runs
        return fleet_bench(argv)
    if argv and "--lineproto" in argv:  # the encoder alone: pantau.bench.lineproto
        from pantau.bench.lineproto import main as lineproto_bench
        return lineproto_bench([a for a in argv if a != "--lineproto"])
    if argv and "--alerts" in argv and "--latency" in argv:  # pantau.bench.alert_latency
        from pantau.bench.alert_latency import main as alert_latency
        return alert_latency([a for a in argv if a not in ("--alerts", "--latency")])
    if argv and "--alerts" in argv:  # the alert rules' cost per reading: pantau.bench.alerts
        from pantau.bench.alerts import main as alerts_bench
        return alerts_bench([a for a in argv if a != "--alerts"])
    p = argparse.ArgumentParser(prog="pantau bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--messages", type=int, default=200_000, help="per phase (default 200000)")
    p.add_argument("--devices", type=int, default=1000, help="simulated stations (default 1000)")
    p.add_argument("--publishers", type=int, default=2, help="publisher processes (default 2)")
    a = p.parse_args(argv)
    n = a.messages - a.messages % a.publishers
    ctx = mp.get_context("spawn")
    with tempfile.TemporaryDirectory(prefix="pantau-bench-") as tmp:
        work = Path(tmp)
        devices = _registry(work / "registry.yaml", a.devices)
        broker = Mosquitto(work / "mqtt", users=stack_users([]))
        influx = InfluxDB1(work / "influx", database="bench")
        print(f"starting Mosquitto and InfluxDB in {work} ...", flush=True)
        with broker, influx:
            influx.create_database("bench")
            influx.create_tiers("bench")
            ceilings = {}
            for proto in (5, 3):
                print(f"ceiling: bare paho subscriber (MQTT {'v5' if proto == 5 else 'v3.1.1'}),"
                      f" {n} messages ...", flush=True)
                ceilings[proto] = _ceiling(ctx, broker, devices, n, a.publishers, proto)
            with running_pantau(broker, influx, "bench", work / "registry.yaml",
                                work / "pantau.log") as (proc, url):
                print(f"pantau: {n} messages ...", flush=True)
                others = {k: pid for k, pid in (("Mosquitto", broker.pid),
                                                ("InfluxDB", influx.pid)) if pid is not None}
                others0 = {k: _cpu_s(pid) for k, pid in others.items()}
                cpu0, t0 = _cpu_s(proc.pid), time.perf_counter()
                _load(ctx, broker, devices, n, a.publishers)
                while _metrics(url).get("pantau_messages_acked_total", 0) < n:
                    time.sleep(0.02)
                seconds = time.perf_counter() - t0
                cpu = _cpu_s(proc.pid) - cpu0
                others_cpu = {k: _cpu_s(others[k]) - v for k, v in others0.items()}
                m = _metrics(url)
                flat = (_quantile(m, 0.5), _quantile(m, 0.99))
                pace = n / seconds / 2
                paced_n = min(n, int(pace * 10)) // a.publishers * a.publishers
                print(f"pantau: {paced_n} messages paced at {pace:.0f} msg/s ...", flush=True)
                _load(ctx, broker, devices[::-1], paced_n, a.publishers, pace)
                while _metrics(url).get("pantau_messages_acked_total", 0) < n + paced_n:
                    time.sleep(0.02)
                m2 = _metrics(url)
                delta = {k: v - m.get(k, 0.0) for k, v in m2.items()}
                paced = (_quantile(delta, 0.5), _quantile(delta, 0.99))
                rss = _peak_rss_mb(proc.pid)
            [row] = influx.rows("SELECT count(temperature_c) FROM weather_station", db="bench")
            stored = row["count"] - paced_n
    rate = n / seconds
    c5, c3 = ceilings[5]["rate"], ceilings[3]["rate"]
    loss = "zero loss" if stored == n else f"LOST {n - stored}"
    report = [
        f"Pantau spine benchmark: {n} messages, {a.devices} devices, "
        f"{a.publishers} publisher processes",
        f"  ceiling, bare paho v5 subscriber     {c5:10.0f} msg/s",
        f"  ceiling, bare paho v3.1.1 subscriber {c3:10.0f} msg/s",
        f"  Pantau end to end (acked + stored)   {rate:10.0f} msg/s   "
        f"ratio to v5 ceiling {rate / c5:.2f}, to v3.1.1 {rate / c3:.2f}",
        f"  stored in InfluxDB                   {stored:10d} of {n} ({loss})",
        f"  publish-to-stored latency, flat out  p50 {flat[0] * 1000:.0f} ms, "
        f"p99 {flat[1] * 1000:.0f} ms (backlog included)",
        f"  publish-to-stored latency, paced     p50 {paced[0] * 1000:.0f} ms, "
        f"p99 {paced[1] * 1000:.0f} ms at {pace:.0f} msg/s (half the end-to-end rate)",
        f"  Pantau CPU                           {cpu / (n / 10_000):.2f} s per 10,000 messages",
        f"  Pantau peak RSS                      {rss:.0f} MB",
        "  CPU in the Pantau phase (2 cores)    " + ", ".join(
            f"{k} {v:.1f} s" for k, v in {"Pantau": cpu, **others_cpu}.items())
        + f" over {seconds:.1f} s",
    ]
    print("\n" + "\n".join(report))
    return 0 if stored == n else 1
