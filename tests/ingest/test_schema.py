"""The schema module is the one place that names what Pantau writes: the encoder writes only the
fields it lists, the series table derives the names it spells, tiers go where it says."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import numpy as np
import pytest

from core.batch import TelemetryBatch
from devices.registry import default_registry_path, load_registry
from devices.series import SeriesTable
from ingest.lineproto import LineEncoder, TierEncoder
from ingest.schema import (
    ALERTS_FIELDS,
    ALERTS_MEASUREMENT,
    ALERTS_TAGS,
    PANTAU_MEASUREMENT,
    TAGS,
    TIER_FIELDS,
    derived_field,
    device_tags,
    fields,
    measurement,
    quality_field,
    tier_field,
    tier_fields,
    tier_setup,
    tier_target,
    window_label,
)
from ingest.settings import InfluxSettings, IngestSettings
from processors import Chain, ProcessorContext, build_chain
from processors.domain.derived import Tier

S = 1_000_000_000
T0 = 1_795_800_000 * S  # a whole hour
README = Path(__file__).resolve().parents[2] / "README.md"


@cache
def default_chain() -> Chain:
    """The default chain plus rolling windows, over the shipped registry, out-of-range readings
    flagged (so quality fields are written too)."""
    table = SeriesTable.from_registry(load_registry(default_registry_path()))
    return build_chain([*IngestSettings().processors, "windows"],
                       ProcessorContext(table, range_mode="flag"))


def sample(table: SeriesTable, hours: float = 26.0) -> TelemetryBatch:
    """Every raw series at its device's cadence for ``hours`` (enough for the 24-hour air
    quality averages), values inside the valid range with a drift, and one reading above it
    per series."""
    interval = table.interval_s()[:table.raw]
    per = (hours * 3600 // interval).astype(np.int64)
    series = np.repeat(np.arange(table.raw, dtype=np.int32), per)
    k = np.arange(len(series)) - np.repeat(np.cumsum(per) - per, per)
    ts = T0 + (k * interval[series] * S).astype(np.int64)
    lo = np.where(np.isfinite(table.vmin[series]), table.vmin[series], 0.0)
    hi = np.where(np.isfinite(table.vmax[series]), table.vmax[series], 1000.0)
    value = lo + (hi - lo) * (0.2 + 0.3 * (k % 97) / 97)
    last = np.cumsum(per) - 1
    value[last] = hi[last] + 1.0
    order = np.argsort(ts, kind="stable")
    return TelemetryBatch.from_arrays(ts[order], series[order], value[order],
                                      origin=np.arange(len(ts)))  # readings, not derived rows


def written(body: bytes) -> dict[str, set[str]]:
    """Field names per measurement in line protocol ``body`` (names without escapes)."""
    out: dict[str, set[str]] = {}
    for line in body.decode().splitlines():
        head, field_set, _ = line.split(" ")
        name, *tags = head.split(",")
        assert tuple(t.split("=")[0] for t in tags) == TAGS
        out.setdefault(name, set()).update(f.split("=")[0] for f in field_set.split(","))
    return out


def test_every_field_the_encoder_writes_through_the_default_chain_is_in_the_schema() -> None:
    chain = default_chain()
    out = chain.run(sample(chain.table))
    lines = LineEncoder(chain.table)
    body = lines.encode(TelemetryBatch.concat([out.batch, out.derived]))
    found = written(body)
    schema = fields(chain.table)
    assert found and set(found) <= set(schema)
    for m, names in found.items():
        assert names <= set(schema[m]), (m, names - set(schema[m]))
    every = set().union(*found.values())
    # the sample reaches the derived kinds, so the check above covers them
    assert {"flood_stage", "ispu", quality_field("level_cm"), derived_field("zscore", of="pm25"),
            derived_field(f"mean_{window_label(300)}", of="level_cm")} <= every
    tiers = TierEncoder(chain.table)
    body = b"".join(tiers.encode(t) for t in out.tiers)
    assert body
    for m, names in written(body).items():
        assert names <= set(tier_fields(chain.table)[m])


def test_the_series_table_names_derived_fields_as_the_schema_does() -> None:
    table = default_chain().table
    checked = 0
    for (name, per_series), ids in table.derived.items():
        for s in np.flatnonzero(ids >= 0).tolist():
            of = table.metric[s] if per_series else None
            assert table.metric[int(ids[s])] == derived_field(name, of=of)
            checked += 1
    assert checked > table.raw  # every raw series has its quality field, and more


def test_fields_list_raw_derived_and_quality_fields_per_measurement() -> None:
    table = default_chain().table
    schema = fields(table)
    assert set(schema) == {measurement(d.kind) for d in table.devices}
    river = schema[measurement("river_gauge")]
    assert {"level_cm", quality_field("level_cm"), "flood_stage"} <= set(river)
    assert list(river) == sorted(river)
    assert "level_cm_mean" in tier_fields(table)[measurement("river_gauge")]


def test_device_tags_follow_tags() -> None:
    d = default_chain().table.devices[0]
    assert device_tags(d) == ((TAGS[0], d.id), (TAGS[1], d.site))
    assert LineEncoder(default_chain().table).encode(TelemetryBatch.from_arrays(
        [T0], [0], [1.0])).startswith(f"{measurement(d.kind)},device={d.id},site={d.site} "
                                      .encode())


@pytest.mark.parametrize(("api", "seconds", "target"), [
    pytest.param("v1", 60, "tier_1m", id="v1-minute"),
    pytest.param("v1", 3600, "tier_1h", id="v1-hour"),
    pytest.param("v2", 3600, "pantau_1h", id="v2-hour"),
])
def test_tier_targets_and_the_readme(api: str, seconds: int, target: str) -> None:
    settings = InfluxSettings(api=api)
    assert tier_target(settings, seconds) == target
    assert target in tier_setup(settings, seconds)
    readme = README.read_text()
    assert (f"`{target}`" if api == "v1" else f"`<bucket>_{window_label(seconds)}`") in readme
    assert all(f"`<metric>_{stat}`" in readme for stat in TIER_FIELDS)


def test_names_are_checked_and_pantaus_own_measurements_are_declared() -> None:
    assert tier_field("level_cm", "max") == "level_cm_max"
    with pytest.raises(ValueError, match="tier stat"):
        tier_field("level_cm", "median")
    assert set(TIER_FIELDS) <= set(Tier.__dataclass_fields__)  # what TierEncoder reads
    assert ALERTS_MEASUREMENT == "alerts" and PANTAU_MEASUREMENT == "pantau"
    assert set(TAGS) <= set(ALERTS_TAGS) and "state" in ALERTS_FIELDS
