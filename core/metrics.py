"""A small in-process metrics registry rendered in the Prometheus text format (``/metrics``).

Metrics are created on first use: ``metrics.counter("pantau_x_total", reason="nan").inc()``.
Every name must first be described (`Metrics.describe`, its kind and HELP text), so that what
``/metrics`` shows is documented. The help texts live with the module that counts: each
component describes its own metrics when it is built, and no table here lists them.
"""

from __future__ import annotations

import bisect
import importlib
import math
import pkgutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import ModuleType

import numpy as np
import numpy.typing as npt

DEFAULT_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
SIZE_BUCKETS = (1, 10, 100, 500, 1000, 2500, 5000, 10000, 25000, 50000)
# 1 ms .. ~5 min, 4 buckets per doubling: quantiles read off it are within ~10 %.
DELAY_BUCKETS = tuple(round(0.001 * 2 ** (i / 4), 6) for i in range(73))


@dataclass(slots=True)
class Counter:
    value: float = 0.0

    def inc(self, n: float = 1.0) -> None:
        self.value += n


@dataclass(slots=True)
class Gauge:
    value: float = 0.0

    def set(self, v: float) -> None:
        self.value = v

    def inc(self, n: float = 1.0) -> None:
        self.value += n


@dataclass(slots=True)
class Histogram:
    buckets: tuple[float, ...]
    counts: list[int] = field(default_factory=list)
    sum: float = 0.0
    count: int = 0

    def __post_init__(self) -> None:
        self.counts = [0] * (len(self.buckets) + 1)

    def observe(self, v: float) -> None:
        self.counts[bisect.bisect_left(self.buckets, v)] += 1
        self.sum += v
        self.count += 1

    def observe_many(self, values: npt.NDArray[np.float64]) -> None:
        """Observe a whole array at once (vectorised bucketing)."""
        if len(values) == 0:
            return
        idx = np.searchsorted(np.asarray(self.buckets), values, side="left")
        for i, c in enumerate(np.bincount(idx, minlength=len(self.counts)).tolist()):
            self.counts[i] += c
        self.sum += float(values.sum())
        self.count += len(values)

    def quantile(self, q: float) -> float:
        """Estimate a quantile by linear interpolation inside its bucket (as Prometheus'
        ``histogram_quantile`` does); NaN when empty."""
        if self.count == 0:
            return math.nan
        rank = q * self.count
        cum = 0
        for i, c in enumerate(self.counts):
            if cum + c >= rank and c:
                lo = self.buckets[i - 1] if i > 0 else 0.0
                hi = self.buckets[i] if i < len(self.buckets) else self.buckets[-1]
                return lo + (hi - lo) * (rank - cum) / c
            cum += c
        return self.buckets[-1]


def _labels(labels: dict[str, str], extra: str = "") -> str:
    parts = [f'{k}="{v}"' for k, v in sorted(labels.items())]
    if extra:
        parts.append(extra)
    return "{" + ",".join(parts) + "}" if parts else ""


def _fmt(v: float) -> str:
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    return repr(int(v)) if float(v).is_integer() else repr(v)


def parse_text(text: str) -> dict[str, float]:
    """The inverse of `Metrics.render` for readers of ``/metrics`` (benchmarks, the fault
    suite, tests): ``name{labels}`` as rendered -> the sample's value; HELP/TYPE lines skipped."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


def total(metrics: Mapping[str, float], name: str) -> float:
    """The sum of ``name`` over all its label sets in a `parse_text` result (0 when absent);
    ``name_bucket``, ``name_sum`` and ``name_count`` of a histogram are other names."""
    return sum(v for k, v in metrics.items() if k == name or k.startswith(name + "{"))


def scraped_quantile(after: Mapping[str, float], name: str, q: float,
                     before: Mapping[str, float] | None = None) -> float:
    """A quantile of histogram ``name`` (unlabelled) from `parse_text` results: of everything
    observed up to ``after``, or between ``before`` and ``after``; estimated as
    `Histogram.quantile` does (the same histogram, rebuilt from its text); NaN when empty."""
    was = before or {}
    cum = sorted((float(k.split('le="')[1].rstrip('"}').replace("+Inf", "inf")),
                  v - was.get(k, 0.0)) for k, v in after.items() if k.startswith(name + "_bucket{"))
    if not cum:
        return math.nan
    h = Histogram(tuple(le for le, _ in cum if le != math.inf))
    h.counts = [int(n) for n in np.diff([0.0, *(c for _, c in cum)])]
    h.count = int(cum[-1][1])
    return h.quantile(q)


def collect_help(package: ModuleType) -> dict[str, tuple[str, str]]:
    """Every metric a package counts: the `HELP` mappings of all its modules, merged.

    For what must know the metrics before any component ran (the dashboards); the components
    themselves describe theirs with `Metrics.describe`. Imports every module of ``package``."""
    merged = Metrics()
    for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
        help_texts = getattr(importlib.import_module(info.name), "HELP", None)
        if isinstance(help_texts, Mapping):
            merged.describe(help_texts)
    return merged.described()


class Metrics:
    """Holds every metric of one Pantau process. Not thread-safe: use from the event loop."""

    def __init__(self) -> None:
        self._m: dict[tuple[str, tuple[tuple[str, str], ...]], Counter | Gauge | Histogram] = {}
        self._help: dict[str, tuple[str, str]] = {}

    def describe(self, help_texts: Mapping[str, tuple[str, str]]) -> None:
        """Declare metrics: name -> (kind, HELP text), kind being counter, gauge or histogram.

        Describing a name again with the same text is a no-op (several components of one kind
        share a registry); a different text for a described name is a programming error."""
        for name, (kind, text) in help_texts.items():
            if kind not in ("counter", "gauge", "histogram"):
                raise ValueError(f"metric {name!r}: unknown kind {kind!r}")
            old = self._help.setdefault(name, (kind, text))
            if old != (kind, text):
                raise ValueError(f"metric {name!r} described twice, differently")

    def described(self) -> dict[str, tuple[str, str]]:
        """Every described metric: name -> (kind, HELP text)."""
        return dict(self._help)

    def _get(self, name: str, labels: dict[str, str], make: type, *args: object) -> object:
        if name not in self._help:
            raise KeyError(f"metric {name!r} was not described (Metrics.describe)")
        key = (name, tuple(sorted(labels.items())))
        m = self._m.get(key)
        if m is None:
            m = self._m[key] = make(*args)
        return m

    def counter(self, name: str, **labels: str) -> Counter:
        m = self._get(name, labels, Counter)
        assert isinstance(m, Counter)
        return m

    def gauge(self, name: str, **labels: str) -> Gauge:
        m = self._get(name, labels, Gauge)
        assert isinstance(m, Gauge)
        return m

    def histogram(self, name: str, buckets: tuple[float, ...] = DEFAULT_BUCKETS,
                  **labels: str) -> Histogram:
        m = self._get(name, labels, Histogram, buckets)
        assert isinstance(m, Histogram)
        return m

    def value(self, name: str, **labels: str) -> float:
        """Current value of a counter or gauge (0 when never touched); for tests and the API."""
        m = self._m.get((name, tuple(sorted(labels.items()))))
        return m.value if isinstance(m, Counter | Gauge) else 0.0

    def render(self) -> str:
        """The Prometheus text format: one sort of every series, then one pass (linear in the
        series: thousands of per-device counters must not hold the event loop)."""
        out: list[str] = []
        name = ""
        for (n, labels), m in sorted(self._m.items(), key=lambda kv: kv[0]):
            if n != name:
                name = n
                kind, help_text = self._help[n]
                out.append(f"# HELP {n} {help_text}")
                out.append(f"# TYPE {n} {kind}")
            lab = dict(labels)
            if isinstance(m, Histogram):
                cum = 0
                for b, c in zip((*m.buckets, math.inf), m.counts, strict=True):
                    cum += c
                    le = 'le="' + _fmt(b) + '"'
                    out.append(f"{n}_bucket{_labels(lab, le)} {cum}")
                out.append(f"{n}_sum{_labels(lab)} {_fmt(m.sum)}")
                out.append(f"{n}_count{_labels(lab)} {m.count}")
            else:
                out.append(f"{n}{_labels(lab)} {_fmt(m.value)}")
        return "\n".join(out) + "\n"
