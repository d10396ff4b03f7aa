"""``pantau bench --fleet``: each device's messages at its own cadence, in time order, every
kind in its proportion, payloads its kind's metrics inside their valid ranges."""

from __future__ import annotations

import json

import numpy as np

from devices.registry import default_registry_path, load_registry
from pantau.bench.fleet_load import _schedule, device_specs, schedule_span_s

REGISTRY = load_registry(default_registry_path())


def test_the_schedule_keeps_each_device_at_its_cadence() -> None:
    devices = device_specs(REGISTRY)
    n = 20_000
    span = schedule_span_s(devices, n)
    dev, k, t_us = _schedule(devices, n, span)
    assert len(dev) == n and (np.diff(t_us) >= 0).all()  # time order
    counts = np.bincount(dev, minlength=len(devices))
    for d, spec in enumerate(devices):
        mine = t_us[dev == d]
        assert (abs(np.diff(mine) - spec.interval_s * 1e6) <= 1).all(), spec.id  # µs rounding
        assert k[dev == d].tolist() == list(range(len(mine)))
        # in proportion to 1 / interval: span / interval messages, give or take one
        assert abs(counts[d] - span / spec.interval_s) <= 1.0, spec.id


def test_payloads_are_the_kinds_metrics_inside_their_ranges() -> None:
    for spec, d in zip(device_specs(REGISTRY), REGISTRY.devices, strict=True):
        for rendered in spec.values[:3]:
            values = json.loads(rendered)
            assert list(values) == [m.name for m in d.metrics]
            for m in d.metrics:
                assert m.min <= values[m.name] <= m.max, (d.id, m.name)


def test_payloads_are_a_normal_day_no_gauge_at_its_waspada_level() -> None:
    from devices.catalogue import load_rivers
    from devices.simulator.fleet import grow

    grown, _ = grow(REGISTRY, load_rivers(default_registry_path(), REGISTRY), 300)
    gauges = 0
    for spec, d in zip(device_specs(grown), grown.devices, strict=True):
        if "waspada_cm" in d.params:
            gauges += 1
            levels = [json.loads(v)["level_cm"] for v in spec.values]
            assert max(levels) < d.params["waspada_cm"], d.id
            assert len(set(levels)) > 1, d.id  # the river moves from report to report
    assert gauges > 9  # the clones too
