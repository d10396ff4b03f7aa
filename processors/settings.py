"""The processors' settings section, ``[processors]``; the root `pantau.settings.Settings`
composes it."""

from __future__ import annotations

from dataclasses import dataclass

from core.settings import SettingsError, setting


@dataclass(frozen=True, slots=True)
class ProcessorSettings:
    snapshot_interval_s: float = setting(
        5.0, "Checkpoint interval: the tiers of the batches since the last checkpoint are "
        "written (one row per bucket) and stateful processors (flood stages, windows, EWMA, "
        "...) save their state to `<state_dir>/processors.npz` (atomically, after a batch is "
        "written and before it is acknowledged) at most this often, and on a clean stop; the "
        "state is restored on start, and the readings stored since are replayed from InfluxDB "
        "(see `warmup_max_s`). 0: after every batch (costs a file write per batch).")
    warmup_max_s: float = setting(
        86400.0, "Warm-up from InfluxDB: when the state snapshot is missing or belongs to "
        "another registry, the stored readings of the last hours (as far back as each "
        "processor needs: 24 h for air quality, the rise window for rivers, ...; at most this "
        "long) are read back as `influx.read_username` and replayed before ingest starts, "
        "and the last stored `flood_stage` seeds the stages; after a restored snapshot, the "
        "stored readings it lacks are replayed, so a kill -9 between two snapshots loses no "
        "state. 0: off (a missing snapshot means fresh state).")
    aqi_standard: str = setting("ispu", "`ispu` (Indonesia, P.14/2020) or `aqi` (US EPA, May "
                                "2024): "
                                "names the derived fields (`ispu`, `ispu_category`, ...).")
    aqi_pm25_table: str = setting("2024", "EPA only: PM2.5 breakpoints `2024` or `pre2024`.")
    aqi_max_age_s: float = setting(3 * 3600.0, "A pollutant's sub-index older than this no longer "
                                   "counts towards a station's index.")
    flood_hysteresis_cm: float = setting(5.0, "A flood stage is left only this far below its "
                                         "threshold (a gauge's `params.hysteresis_cm` wins).")
    flood_min_duration_s: float = setting(300.0, "A flood stage is entered once the level stayed "
                                     "above its threshold this long (`params.min_duration_s`).")
    flood_rise_window_s: float = setting(1800.0, "Window of the least-squares rate of rise "
                                         "`level_rise_cm_h` (`params.rise_window_s` wins).")
    quality_gap_factor: float = setting(2.0, "A reading later than this many device intervals "
                                        "after the previous one is flagged as a gap.")
    anomaly_alpha: float = setting(0.05, "EWMA weight of each new reading (0..1).")
    anomaly_threshold: float = setting(4.0, "Absolute z-score at or above which a reading is "
                                       "flagged "
                                       "anomalous.")
    anomaly_warmup: int = setting(20, "Readings a series needs before it gets a z-score.")
    anomaly_metrics: tuple[str, ...] = setting(
        ("level_cm", "distance_cm", "rain_mm", "pm25", "pm10", "vehicles"),
        "Metrics that get a z-score (`<metric>_zscore`) and the anomaly flag: by default those "
        "a command center acts on (river level, rain, particulates, traffic), not every "
        "battery, wind direction or humidity; empty: all.")
    windows_s: tuple[int, ...] = setting((300, 3600), "`windows` processor: rolling windows in "
                                         "seconds (fields `<metric>_<stat>_5m`, ...).")
    window_stats: tuple[str, ...] = setting(("mean", "min", "max"), "`windows` processor: "
                                            "statistics among mean, min, max, count, last.")
    window_metrics: tuple[str, ...] = setting((), "`windows` processor: metrics it covers (empty: "
                                              "all).")
    tiers_s: tuple[int, ...] = setting((60, 3600), "`tiers` processor: downsampling resolutions in "
                                       "seconds; each is written to retention policy `tier_<1m>` "
                                       "(v1) or bucket `<bucket>_<1m>` (v2), which must exist. A "
                                       "tier covers the devices reporting more often than its "
                                       "resolution (`interval_s` < it); for the others the raw "
                                       "points already are that tier.")
    tiers_refresh: int = setting(6, "`tiers` processor: how often a still-filling bucket is "
                                 "rewritten, per resolution: when the newest device timestamp has "
                                 "moved resolution / this past its last write (6: the current "
                                 "hour's 1-hour row lags the raw data by at most 10 minutes). A "
                                 "bucket is written in full once it closes, and on a clean stop.")

    def __post_init__(self) -> None:
        if self.aqi_standard not in ("ispu", "aqi"):
            raise SettingsError(f"processors.aqi_standard must be 'ispu' or 'aqi', "
                                f"not {self.aqi_standard!r}")
        if self.aqi_pm25_table not in ("2024", "pre2024"):
            raise SettingsError(f"processors.aqi_pm25_table must be '2024' or 'pre2024', "
                                f"not {self.aqi_pm25_table!r}")
        if self.snapshot_interval_s < 0:
            raise SettingsError("processors.snapshot_interval_s must not be negative")
        if not self.windows_s or min(self.windows_s) <= 0 or not self.tiers_s \
                or min(self.tiers_s) <= 0:
            raise SettingsError("processors.windows_s and processors.tiers_s must be positive "
                                "seconds")
        if self.tiers_refresh < 1:
            raise SettingsError("processors.tiers_refresh must be at least 1")
