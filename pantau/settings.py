"""Settings: one frozen, typed object with a section per package.

Loaded from a TOML file (``pantau run --config FILE``) and then overridden by environment
variables named ``PANTAU_<SECTION>_<FIELD>`` (``PANTAU_<FIELD>`` for top-level fields), e.g.
``PANTAU_MQTT_URL``, ``PANTAU_INFLUX_TOKEN``, ``PANTAU_REGISTRY``. A secret may instead come
from a file named by ``<VARIABLE>_FILE`` (``PANTAU_INFLUX_TOKEN_FILE=/run/secrets/token``).
Each field's documentation lives next to it (``doc=``); ``pantau settings`` prints them all.
Constructors do no I/O; secrets are `Secret` so they never reach a log or a repr. Loading
(file, environment, secret files) and the reference are in `pantau.config`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

from ingest.errors import PantauError


class SettingsError(PantauError):
    """A settings file or environment variable is malformed; the message names which."""


@dataclass(frozen=True, slots=True)
class Secret:
    """A string that prints as ``***``; read it with ``.reveal()`` where it is used."""

    _value: str = ""

    def reveal(self) -> str:
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __repr__(self) -> str:
        return "Secret('***')" if self._value else "Secret('')"

    __str__ = __repr__


def _f(default: Any, doc: str) -> Any:
    if isinstance(default, list | tuple):
        return field(default=tuple(default), metadata={"doc": doc})
    return field(default=default, metadata={"doc": doc})


@dataclass(frozen=True, slots=True)
class MqttSettings:
    url: str = _f("mqtt://127.0.0.1:1883", "Broker as `mqtt://[user:pass@]host:port`.")
    username: str = _f("", "Username (overridden by one in `url`).")
    password: Secret = _f(Secret(), "Password (overridden by one in `url`).")
    client_id: str = _f("pantau-ingest", "Fixed client id: the broker keeps this session's "
                        "unacknowledged messages across restarts under it.")
    topic_prefix: str = _f("pantau", "Topics are `<prefix>/<site>/<device>/telemetry` and "
                           "`.../status`.")
    shared_group: str = _f("", "When set, subscribe as `$share/<group>/...` so several Pantau "
                           "workers split the devices.")
    session_expiry_s: int = _f(7 * 24 * 3600, "How long the broker keeps the session (and its "
                               "queued messages) while Pantau is away.")
    max_unacked: int = _f(20000, "Most messages held unacknowledged (MQTT v5 Receive Maximum, "
                          "1..65535): bounds memory; the broker queues the rest.")
    keepalive_s: int = _f(30, "MQTT keepalive.")
    reconnect_min_s: float = _f(0.5, "First reconnect delay; doubles up to `reconnect_max_s`, "
                                "with jitter.")
    reconnect_max_s: float = _f(30.0, "Longest reconnect delay.")
    deadletter_topic: str = _f("pantau/deadletter", "Rejected messages are republished (QoS 1) "
                               "under `<deadletter_topic>/<reason>`.")

    def __post_init__(self) -> None:
        if not 1 <= self.max_unacked <= 65535:
            raise SettingsError(f"mqtt.max_unacked must be within 1..65535, not {self.max_unacked}")
        host, port, user, password = parse_mqtt_url(self.url)
        # Credentials move out of the URL so that no repr or log line can show the password.
        if user or password:
            object.__setattr__(self, "url", f"mqtt://{host}:{port}")
            object.__setattr__(self, "username", user or self.username)
            if password:
                object.__setattr__(self, "password", Secret(password))

    @property
    def host(self) -> str:
        return parse_mqtt_url(self.url)[0]

    @property
    def port(self) -> int:
        return parse_mqtt_url(self.url)[1]



def parse_mqtt_url(url: str) -> tuple[str, int, str, str]:
    """(host, port, user, password) of ``mqtt://[user:pass@]host[:port]``."""
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "tcp") or not parts.hostname:
        raise SettingsError(f"mqtt.url {url!r}: expected mqtt://[user:pass@]host:port")
    try:
        port = parts.port or 1883
    except ValueError as e:
        raise SettingsError(f"mqtt.url {url!r}: bad port") from e
    return (parts.hostname, port, unquote(parts.username or ""), unquote(parts.password or ""))


@dataclass(frozen=True, slots=True)
class InfluxSettings:
    url: str = _f("http://127.0.0.1:8086", "InfluxDB base URL.")
    api: str = _f("v1", "`v1` (`/write`, database + retention policy; InfluxDB 1.x) or `v2` "
                  "(`/api/v2/write` through influxdb-client; InfluxDB 2.x and 3.x).")
    database: str = _f("pantau", "v1: database name.")
    retention_policy: str = _f("", "v1: retention policy (empty: the database's default).")
    username: str = _f("", "v1: user with WRITE on `database` (empty: no auth).")
    password: Secret = _f(Secret(), "v1: that user's password.")
    read_username: str = _f("", "User with READ on `database`, used only to read stored points "
                            "back: by `pantau devices recalibrate` (it writes them as "
                            "`username`) and the processors' warm-up "
                            "(`processors.warmup_max_s`). Separate so that the ingest user "
                            "keeps WRITE only; empty: `username` (which then needs READ too). "
                            "InfluxDB 2.x: a v1 authorisation and a DBRP mapping.")
    read_password: Secret = _f(Secret(), "v1: that user's password.")
    org: str = _f("pantau", "v2: organisation.")
    bucket: str = _f("pantau", "v2: bucket.")
    token: Secret = _f(Secret(), "v2: API token with write access to `bucket` only.")
    timeout_s: float = _f(10.0, "One write request's timeout.")
    batch_size: int = _f(5000, "Readings per write: a batch is flushed when it has this many...")
    flush_interval_s: float = _f(0.25, "...or when its oldest reading waited this long.")
    retry_min_s: float = _f(0.2, "First retry delay after a retryable write error; doubles, "
                            "with jitter, honouring Retry-After.")
    retry_max_s: float = _f(15.0, "Longest retry delay. Retries never give up: the data stays "
                            "unacknowledged in the broker until the database takes it.")

    def __post_init__(self) -> None:
        if self.api not in ("v1", "v2"):
            raise SettingsError(f"influx.api must be 'v1' or 'v2', not {self.api!r}")
        if self.batch_size < 1:
            raise SettingsError("influx.batch_size must be at least 1")


@dataclass(frozen=True, slots=True)
class IngestSettings:
    max_payload_bytes: int = _f(65536, "Larger payloads are rejected (`payload_too_large`).")
    max_future_s: float = _f(300.0, "Readings dated further ahead than this are rejected "
                             "(`ts_in_future`): a device clock gone wrong.")
    max_age_s: float = _f(30 * 86400.0, "Readings older than this are rejected (`ts_too_old`).")
    processors: tuple[str, ...] = _f(
        ("calibration", "range_check", "dedupe", "quality", "flood", "aqi", "anomaly", "tiers"),
        "The processor chain, in order (see `processors.PROCESSORS`; `windows` is optional). "
        "Derived values (flood stage, air-quality index, z-score, ...) are stored beside the "
        "readings; the README's InfluxDB schema lists them.")
    range_mode: str = _f("reject", "Out-of-range readings: `reject` (dead-letter) or `flag` "
                         "(store with quality flag).")
    pending_batches: int = _f(4, "Sealed batches waiting for the writer before reading pauses.")
    deadletter_file: str = _f("", "JSON-lines file of rejected messages (empty: "
                              "`<state_dir>/deadletter.jsonl`).")

    def __post_init__(self) -> None:
        if self.range_mode not in ("reject", "flag"):
            raise SettingsError(f"ingest.range_mode must be 'reject' or 'flag', "
                                f"not {self.range_mode!r}")


@dataclass(frozen=True, slots=True)
class ProcessorSettings:
    snapshot_interval_s: float = _f(
        5.0, "Checkpoint interval: the tiers of the batches since the last checkpoint are "
        "written (one row per bucket) and stateful processors (flood stages, windows, EWMA, "
        "...) save their state to `<state_dir>/processors.npz` (atomically, after a batch is "
        "written and before it is acknowledged) at most this often, and on a clean stop; the "
        "state is restored on start, and the readings stored since are replayed from InfluxDB "
        "(see `warmup_max_s`). 0: after every batch (costs a file write per batch).")
    warmup_max_s: float = _f(
        86400.0, "Warm-up from InfluxDB: when the state snapshot is missing or belongs to "
        "another registry, the stored readings of the last hours (as far back as each "
        "processor needs: 24 h for air quality, the rise window for rivers, ...; at most this "
        "long) are read back as `influx.read_username` and replayed before ingest starts, "
        "and the last stored `flood_stage` seeds the stages; after a restored snapshot, the "
        "stored readings it lacks are replayed, so a kill -9 between two snapshots loses no "
        "state. 0: off (a missing snapshot means fresh state).")
    aqi_standard: str = _f("ispu", "`ispu` (Indonesia, P.14/2020) or `aqi` (US EPA, May 2024): "
                           "names the derived fields (`ispu`, `ispu_category`, ...).")
    aqi_pm25_table: str = _f("2024", "EPA only: PM2.5 breakpoints `2024` or `pre2024`.")
    aqi_max_age_s: float = _f(3 * 3600.0, "A pollutant's sub-index older than this no longer "
                              "counts towards a station's index.")
    flood_hysteresis_cm: float = _f(5.0, "A flood stage is left only this far below its "
                                    "threshold (a gauge's `params.hysteresis_cm` wins).")
    flood_min_duration_s: float = _f(300.0, "A flood stage is entered once the level stayed "
                                     "above its threshold this long (`params.min_duration_s`).")
    flood_rise_window_s: float = _f(1800.0, "Window of the least-squares rate of rise "
                                    "`level_rise_cm_h` (`params.rise_window_s` wins).")
    quality_gap_factor: float = _f(2.0, "A reading later than this many device intervals "
                                   "after the previous one is flagged as a gap.")
    anomaly_alpha: float = _f(0.05, "EWMA weight of each new reading (0..1).")
    anomaly_threshold: float = _f(4.0, "Absolute z-score at or above which a reading is flagged "
                                  "anomalous.")
    anomaly_warmup: int = _f(20, "Readings a series needs before it gets a z-score.")
    anomaly_metrics: tuple[str, ...] = _f(
        ("level_cm", "distance_cm", "rain_mm", "pm25", "pm10", "vehicles"),
        "Metrics that get a z-score (`<metric>_zscore`) and the anomaly flag: by default those "
        "a command center acts on (river level, rain, particulates, traffic), not every "
        "battery, wind direction or humidity; empty: all.")
    windows_s: tuple[int, ...] = _f((300, 3600), "`windows` processor: rolling windows in "
                                    "seconds (fields `<metric>_<stat>_5m`, ...).")
    window_stats: tuple[str, ...] = _f(("mean", "min", "max"), "`windows` processor: "
                                       "statistics among mean, min, max, count, last.")
    window_metrics: tuple[str, ...] = _f((), "`windows` processor: metrics it covers (empty: "
                                         "all).")
    tiers_s: tuple[int, ...] = _f((60, 3600), "`tiers` processor: downsampling resolutions in "
                                  "seconds; each is written to retention policy `tier_<1m>` "
                                  "(v1) or bucket `<bucket>_<1m>` (v2), which must exist. A "
                                  "tier covers the devices reporting more often than its "
                                  "resolution (`interval_s` < it); for the others the raw "
                                  "points already are that tier.")
    tiers_refresh: int = _f(6, "`tiers` processor: how often a still-filling bucket is "
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


@dataclass(frozen=True, slots=True)
class HttpSettings:
    listen: str = _f("127.0.0.1:8080", "`host:port` of the HTTP API (health, metrics, devices).")

    def __post_init__(self) -> None:
        host, _, port = self.listen.rpartition(":")
        if not host or not port.isdigit():
            raise SettingsError(f"http.listen {self.listen!r}: expected host:port")

    @property
    def host(self) -> str:
        return self.listen.rpartition(":")[0].strip("[]")

    @property
    def port(self) -> int:
        return int(self.listen.rpartition(":")[2])


@dataclass(frozen=True, slots=True)
class Settings:
    registry: str = _f("", "Path of the device registry YAML (empty: the shipped Blitar one).")
    state_dir: str = _f("var", "Directory for Pantau's own files (dead letters, state).")
    log_level: str = _f("INFO", "DEBUG, INFO, WARNING or ERROR.")
    mqtt: MqttSettings = field(default_factory=MqttSettings)
    influx: InfluxSettings = field(default_factory=InfluxSettings)
    ingest: IngestSettings = field(default_factory=IngestSettings)
    processors: ProcessorSettings = field(default_factory=ProcessorSettings)
    http: HttpSettings = field(default_factory=HttpSettings)


__all__ = ["HttpSettings", "InfluxSettings", "IngestSettings", "MqttSettings",
           "ProcessorSettings", "Secret", "Settings", "SettingsError"]
