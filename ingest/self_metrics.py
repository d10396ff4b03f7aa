"""Pantau's own counters (and its devices' status) written to InfluxDB at an interval, as
Telegraf's ``internal`` input does, so that the command center needs no Prometheus.

What is written, in measurement `ingest.schema.PANTAU_MEASUREMENT` every ``interval_s``:

- one line per label set of the metrics on ``/metrics``: tag ``instance`` plus the metric's
  labels (``reason``, ``kind``, ...), one field per metric named by `field` (``pantau_``
  dropped: ``readings_received_total``). A counter or gauge is its value; a histogram is
  ``<name>_count`` and ``<name>_sum`` (since start) and ``<name>_p50`` / ``<name>_p99`` over
  the observations of the last interval (left out when there were none);
- with a status store, one line per device: tags ``instance``, ``device``, ``site``, fields
  `STATUS_FIELDS`: ``device_online`` (1 online, 0 offline or never heard) and
  ``device_seen_age_s`` (seconds since it was last heard; left out when never heard).

`fields` lists every field name for a set of metric descriptions, so the dashboards name only
fields that are written. The metrics are read through their public rendering
(`core.metrics.Metrics.render`), the format ``/metrics`` serves.

`SelfMetrics.run` makes one write attempt per interval; a failure is logged, counted in
``pantau_self_metrics_errors_total`` and the next interval writes the then-current values
(counters are cumulative, so nothing is lost but resolution).
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import aiohttp

from core.metrics import Histogram, Metrics
from core.settings import SettingsError, setting
from devices.status import StatusStore
from ingest.errors import SinkError
from ingest.influx_sink import http_error, transport_error
from ingest.lineproto import escape_key, escape_measurement
from ingest.schema import DEVICE_TAG, PANTAU_MEASUREMENT, SITE_TAG
from ingest.settings import InfluxSettings

log = logging.getLogger("pantau.self_metrics")

PREFIX = "pantau_"
INSTANCE_TAG = "instance"
HISTOGRAM_STATS = ("count", "sum", "p50", "p99")
STATUS_FIELDS = ("device_online", "device_seen_age_s")
HELP: dict[str, tuple[str, str]] = {  # this module's metrics (`Metrics.describe`)
    "pantau_self_metrics_errors_total": ("counter", "Writes of Pantau's own metrics to InfluxDB "
                                         "that failed (logged; the next interval writes the "
                                         "current values)."),
}
_SAMPLE = re.compile(r'^([a-z_][a-z0-9_]*)(?:\{(.*)\})? (\S+)$')
_LABEL = re.compile(r'([a-z_][a-z0-9_]*)="((?:[^"\\]|\\.)*)"')
_Key = tuple[str, tuple[tuple[str, str], ...]]  # histogram name, its labels


@dataclass(frozen=True, slots=True)
class SelfMetricsSettings:
    interval_s: float = setting(10.0, "How often Pantau writes its own counters (and each "
                                "device's status) to InfluxDB, measurement `pantau`, for the "
                                "`Pantau itself` dashboard; 0 turns it off.")
    instance: str = setting("", "Tag `instance` of those points (empty: `mqtt.client_id`).")

    def __post_init__(self) -> None:
        if self.interval_s < 0 or not math.isfinite(self.interval_s):
            raise SettingsError("self_metrics.interval_s must be 0 (off) or more")


def field(metric: str, stat: str = "") -> str:
    """The field of ``metric`` (``stat``: one of `HISTOGRAM_STATS` for a histogram)."""
    name = metric.removeprefix(PREFIX)
    return f"{name}_{stat}" if stat else name


def fields(described: Mapping[str, tuple[str, str]]) -> tuple[str, ...]:
    """Every field written for metrics ``described`` (name -> (kind, help)), sorted."""
    out = set(STATUS_FIELDS)
    for name, (kind, _) in described.items():
        out.update([field(name, s) for s in HISTOGRAM_STATS] if kind == "histogram"
                   else [field(name)])
    return tuple(sorted(out))


def _tags(labels: Mapping[str, str]) -> str:
    return "".join(f",{escape_key(k)}={escape_key(v)}" for k, v in sorted(labels.items()) if v)


class SelfMetrics:
    """Renders and writes the points above; `run` until cancelled. Not thread-safe (the event
    loop's); constructing does no I/O."""

    def __init__(self, metrics: Metrics, settings: SelfMetricsSettings, influx: InfluxSettings,
                 *, instance: str, status: StatusStore | None = None,
                 clock: Callable[[], int] = time.time_ns) -> None:
        metrics.describe(HELP)
        self._m, self.settings, self._influx = metrics, settings, influx
        self._instance, self._status, self._clock = instance, status, clock
        self._prev: dict[_Key, list[float]] = {}
        url = influx.url.rstrip("/")
        if influx.api == "v2":
            self._url, self._where = f"{url}/api/v2/write", f"InfluxDB {url} bucket " \
                f"{influx.bucket!r}"
            self._params = {"org": influx.org, "bucket": influx.bucket, "precision": "ns"}
            self._auth = f"Token {influx.token.reveal()}" if influx.token else ""
        else:
            self._url, self._where = f"{url}/write", f"InfluxDB {url} database " \
                f"{influx.database!r}"
            self._params = {"db": influx.database, "precision": "ns",
                            **({"rp": influx.retention_policy} if influx.retention_policy
                               else {})}
            self._auth = (aiohttp.encode_basic_auth(influx.username, influx.password.reveal())
                          if influx.username else "")

    def lines(self) -> bytes:
        """The points of this moment (see the module docstring); histograms' quantiles cover
        the observations since the previous call."""
        now = self._clock()
        rows: dict[str, list[str]] = {}
        for name, labels, value in self._samples():
            rows.setdefault(_tags(labels), []).append(f"{escape_key(name)}={value!r}")
        head = f"{escape_measurement(PANTAU_MEASUREMENT)},{INSTANCE_TAG}=" \
               f"{escape_key(self._instance)}"
        out = [f"{head}{tags} {','.join(sorted(fs))} {now}" for tags, fs in sorted(rows.items())]
        out += self._status_lines(head, now)
        return ("\n".join(out) + "\n").encode() if out else b""

    def _samples(self) -> list[tuple[str, dict[str, str], float]]:
        samples: list[tuple[str, dict[str, str], float]] = []
        buckets: dict[_Key, list[tuple[float, float]]] = {}
        kinds = {n: k for n, (k, _) in self._m.described().items()}
        for line in self._m.render().splitlines():
            m = _SAMPLE.match(line)
            if m is None:
                continue
            name, labels = m[1], dict(_LABEL.findall(m[2] or ""))
            value = float(m[3])
            base = name.rsplit("_", 1)[0]
            if kinds.get(name) in ("counter", "gauge"):
                samples.append((field(name), labels, value))
            elif kinds.get(base) == "histogram" and name.endswith(("_sum", "_count")):
                samples.append((field(base, name.rsplit("_", 1)[1]), labels, value))
            elif name.endswith("_bucket") and kinds.get(name[:-7]) == "histogram":
                le = float(labels.pop("le"))
                key = (name[:-7], tuple(sorted(labels.items())))
                buckets.setdefault(key, []).append((le, value))
        # A counter or gauge never touched is not rendered: written as 0 without labels, so a
        # healthy Pantau's "reconnects" reads 0 rather than nothing.
        seen = {name for name, _, _ in samples}
        samples += [(field(n), {}, 0.0) for n, k in kinds.items()
                    if k in ("counter", "gauge") and field(n) not in seen]
        return samples + self._quantiles(buckets)

    def _quantiles(self, buckets: dict[_Key, list[tuple[float, float]]]
                   ) -> list[tuple[str, dict[str, str], float]]:
        """p50 and p99 of each histogram over the observations since the previous call."""
        out: list[tuple[str, dict[str, str], float]] = []
        for (name, labels), cum in buckets.items():
            prev = self._prev.get((name, labels), [0.0] * len(cum))
            now = [c - p for (_, c), p in zip(cum, prev, strict=True)]
            h = Histogram(tuple(le for le, _ in cum[:-1]))
            h.counts = [int(b - a) for a, b in zip([0.0, *now[:-1]], now, strict=True)]
            h.count = int(now[-1])
            if h.count > 0:
                out += [(field(name, f"p{q}"), dict(labels), h.quantile(q / 100))
                        for q in (50, 99)]
        self._prev = {k: [c for _, c in v] for k, v in buckets.items()}
        return out

    def _status_lines(self, head: str, now: int) -> list[str]:
        store = self._status
        if store is None:
            return []
        out = []
        for d in store.table.devices:  # once per interval; devices, not readings
            state = store.state(d.id)
            online = int(state is not None and state.status == "online")
            seen = state.last_seen_ns if state is not None else None
            fs = f"device_online={float(online)!r}"
            if seen is not None:
                fs += f",device_seen_age_s={max(now - seen, 0) / 1e9!r}"
            out.append(f"{head},{DEVICE_TAG}={escape_key(d.id)},{SITE_TAG}="
                       f"{escape_key(d.site)} {fs} {now}")
        return out

    async def write(self, session: aiohttp.ClientSession) -> None:
        """One attempt to write `lines`; raises `SinkError`."""
        body = self.lines()
        headers = {"Authorization": self._auth} if self._auth else {}
        try:
            async with session.post(self._url, params=self._params, data=body,
                                    headers=headers) as resp:
                if resp.status // 100 != 2:
                    raise http_error(resp.status, await resp.text(errors="replace"),
                                     resp.headers, self._where, "check the influx settings")
        except (aiohttp.ClientError, TimeoutError, OSError) as e:
            raise transport_error(e, self._where) from e

    async def run(self) -> None:
        """Write every ``interval_s`` until cancelled (never when it is 0)."""
        if self.settings.interval_s <= 0:
            return
        timeout = aiohttp.ClientTimeout(total=self._influx.timeout_s)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while True:
                await asyncio.sleep(self.settings.interval_s)
                try:
                    await self.write(session)
                except SinkError as e:
                    self._m.counter("pantau_self_metrics_errors_total").inc()
                    log.warning("cannot write Pantau's own metrics: %s", e)
