"""Settings: one frozen, typed object composed of a section per package.

Loaded from a TOML file (``pantau run --config FILE``) and then overridden by environment
variables named ``PANTAU_<SECTION>_<FIELD>`` (``PANTAU_<FIELD>`` for top-level fields), e.g.
``PANTAU_MQTT_URL``, ``PANTAU_INFLUX_TOKEN``, ``PANTAU_REGISTRY``. A secret may instead come
from a file named by ``<VARIABLE>_FILE`` (``PANTAU_INFLUX_TOKEN_FILE=/run/secrets/token``).
Each package owns its sections (`ingest.settings`, `processors.settings`); `Settings` holds
one field per section, and the reference (``pantau settings``, docs/settings.md) is built
from those fields, so a new package adds one field here and nothing else. Constructors do no
I/O; secrets are `Secret` so they never reach a log or a repr. Loading is in `pantau.config`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from alerts.settings import AlertSettings
from core.settings import SettingsError, setting
from grafana.settings import GrafanaSettings
from ingest.self_metrics import SelfMetricsSettings
from ingest.settings import InfluxSettings, IngestSettings, MqttSettings
from pantau.malloc import MAX_KIB
from processors.settings import ProcessorSettings


@dataclass(frozen=True, slots=True)
class HttpSettings:
    listen: str = setting("127.0.0.1:8080", "`host:port` of the HTTP API (health, metrics, "
                          "devices).")
    tokens_file: str = setting("", "API tokens (hashed, with roles; `pantau tokens` edits it, "
                               "mode 0600); empty: `<state_dir>/api-tokens.json`. Without "
                               "one, every `/api/` route answers 401.")

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
    registry: str = setting("", "Path of the device registry YAML (empty: the shipped Blitar one).")
    state_dir: str = setting("var", "Directory for Pantau's own files (dead letters, state).")
    log_level: str = setting("INFO", "DEBUG, INFO, WARNING or ERROR.")
    malloc_mmap_threshold_kib: int = setting(
        4096, "glibc: allocations of at least this many KiB get a mapping of their own, "
        "returned to the system when freed; fixed, so that freed numpy arrays do not stay "
        "resident (`pantau.malloc`: peak RSS under load 252-275 -> 221-239 MB at 10,000 "
        "devices). 0: glibc's sliding default.")
    mqtt: MqttSettings = field(default_factory=MqttSettings)
    influx: InfluxSettings = field(default_factory=InfluxSettings)
    ingest: IngestSettings = field(default_factory=IngestSettings)
    processors: ProcessorSettings = field(default_factory=ProcessorSettings)
    http: HttpSettings = field(default_factory=HttpSettings)
    self_metrics: SelfMetricsSettings = field(default_factory=SelfMetricsSettings)
    grafana: GrafanaSettings = field(default_factory=GrafanaSettings)
    alerts: AlertSettings = field(default_factory=AlertSettings)

    def __post_init__(self) -> None:
        if not 0 <= self.malloc_mmap_threshold_kib <= MAX_KIB:
            raise SettingsError(f"malloc_mmap_threshold_kib {self.malloc_mmap_threshold_kib}: "
                                f"expected 0 (glibc's default) to {MAX_KIB}")


__all__ = ["HttpSettings", "Settings"]
