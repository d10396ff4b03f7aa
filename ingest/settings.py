"""The ingest package's settings sections: ``[mqtt]``, ``[influx]`` and ``[ingest]``.

The root `pantau.settings.Settings` composes them; each field's documentation lives next to it
and ``pantau settings`` prints them all.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from core.settings import Secret, SettingsError, setting


@dataclass(frozen=True, slots=True)
class MqttSettings:
    url: str = setting("mqtt://127.0.0.1:1883", "Broker as `mqtt://[user:pass@]host:port`.")
    username: str = setting("", "Username (overridden by one in `url`).")
    password: Secret = setting(Secret(), "Password (overridden by one in `url`).")
    client_id: str = setting("pantau-ingest", "Fixed client id: the broker keeps this session's "
                             "unacknowledged messages across restarts under it.")
    topic_prefix: str = setting("pantau", "Topics are `<prefix>/<site>/<device>/telemetry` and "
                                "`.../status`.")
    shared_group: str = setting("", "When set, subscribe as `$share/<group>/...` so several Pantau "
                                "workers split the devices.")
    session_expiry_s: int = setting(7 * 24 * 3600, "How long the broker keeps the session (and its "
                                    "queued messages) while Pantau is away.")
    max_unacked: int = setting(20000, "Most messages held unacknowledged (MQTT v5 Receive Maximum, "
                               "1..65535): bounds memory; the broker queues the rest.")
    keepalive_s: int = setting(30, "MQTT keepalive.")
    reconnect_min_s: float = setting(0.5, "First reconnect delay; doubles up to `reconnect_max_s`, "
                                     "with jitter.")
    reconnect_max_s: float = setting(30.0, "Longest reconnect delay.")
    deadletter_topic: str = setting("pantau/deadletter", "Rejected messages are republished (QoS "
                                    "1) "
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
    url: str = setting("http://127.0.0.1:8086", "InfluxDB base URL.")
    api: str = setting("v1", "`v1` (`/write`, database + retention policy; InfluxDB 1.x) or `v2` "
                       "(`/api/v2/write` through influxdb-client; InfluxDB 2.x and 3.x).")
    database: str = setting("pantau", "v1: database name.")
    retention_policy: str = setting("", "v1: retention policy (empty: the database's default).")
    username: str = setting("", "v1: user with WRITE on `database` (empty: no auth).")
    password: Secret = setting(Secret(), "v1: that user's password.")
    read_username: str = setting("", "User with READ on `database`, used only to read stored "
                                 "points "
                                 "back: by `pantau devices recalibrate` (it writes them as "
                                 "`username`) and the processors' warm-up "
                                 "(`processors.warmup_max_s`). Separate so that the ingest user "
                                 "keeps WRITE only; empty: `username` (which then needs READ too). "
                                 "InfluxDB 2.x: a v1 authorisation and a DBRP mapping.")
    read_password: Secret = setting(Secret(), "v1: that user's password.")
    org: str = setting("pantau", "v2: organisation.")
    bucket: str = setting("pantau", "v2: bucket.")
    token: Secret = setting(Secret(), "v2: API token with write access to `bucket` only.")
    timeout_s: float = setting(10.0, "One write request's timeout.")
    batch_size: int = setting(5000, "Readings per write: a batch is flushed when it has this "
                              "many...")
    flush_interval_s: float = setting(0.25, "...or when its oldest reading waited this long.")
    retry_min_s: float = setting(0.2, "First retry delay after a retryable write error; doubles, "
                                 "with jitter, honouring Retry-After.")
    retry_max_s: float = setting(15.0, "Longest retry delay. Retries never give up: the data stays "
                                 "unacknowledged in the broker until the database takes it.")

    def __post_init__(self) -> None:
        if self.api not in ("v1", "v2"):
            raise SettingsError(f"influx.api must be 'v1' or 'v2', not {self.api!r}")
        if self.batch_size < 1:
            raise SettingsError("influx.batch_size must be at least 1")


@dataclass(frozen=True, slots=True)
class IngestSettings:
    max_payload_bytes: int = setting(65536, "Larger payloads are rejected (`payload_too_large`).")
    max_future_s: float = setting(300.0, "Readings dated further ahead than this are rejected "
                                  "(`ts_in_future`): a device clock gone wrong.")
    max_age_s: float = setting(30 * 86400.0, "Readings older than this are rejected "
                               "(`ts_too_old`).")
    processors: tuple[str, ...] = setting(
        ("calibration", "range_check", "dedupe", "quality", "flood", "aqi", "anomaly", "tiers"),
        "The processor chain, in order (see `processors.PROCESSORS`; `windows` is optional). "
        "Derived values (flood stage, air-quality index, z-score, ...) are stored beside the "
        "readings; the README's InfluxDB schema lists them.")
    range_mode: str = setting("reject", "Out-of-range readings: `reject` (dead-letter) or `flag` "
                              "(store with quality flag).")
    pending_batches: int = setting(4, "Sealed batches waiting for the writer before reading "
                                   "pauses.")
    deadletter_file: str = setting("", "JSON-lines file of rejected messages (empty: "
                                   "`<state_dir>/deadletter.jsonl`).")

    def __post_init__(self) -> None:
        if self.range_mode not in ("reject", "flag"):
            raise SettingsError(f"ingest.range_mode must be 'reject' or 'flag', "
                                f"not {self.range_mode!r}")
