"""The ingest package's settings sections: ``[mqtt]``, ``[influx]`` and ``[ingest]``.

The root `pantau.settings.Settings` composes them; each field's documentation lives next to it
and ``pantau settings`` prints them all. Credentials written into ``mqtt.url`` or ``influx.url``
(``scheme://user:password@host``) move to the username and password fields when the settings
are built, so no log line, error or repr that shows a URL can show a password; an error about
a URL shows it through `redact_url`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import SplitResult, unquote, urlsplit, urlunsplit

from core.settings import Secret, SettingsError, setting


@dataclass(frozen=True, slots=True)
class MqttSettings:
    url: str = setting("mqtt://127.0.0.1:1883", "Broker as `mqtt://[user:pass@]host:port` "
                       "(port 1883 by default), or `mqtts://...` for TLS (port 8883).")
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
    tls_ca_file: str = setting("", "`mqtts://`: CA certificates (PEM file) the broker's "
                               "certificate must chain to; empty: the system's trust store.")
    tls_cert_file: str = setting("", "`mqtts://`: client certificate (PEM file) for a broker "
                                 "that asks for one; needs `tls_key_file`.")
    tls_key_file: str = setting("", "`mqtts://`: the client certificate's private key (PEM file, "
                                "unencrypted; keep it mode 0600).")
    tls_verify_hostname: bool = setting(True, "`mqtts://`: the broker's certificate must name "
                                        "the host in `url`. Turn off only for a broker reached "
                                        "by an address its certificate does not list; the "
                                        "certificate must still chain to `tls_ca_file`.")

    def __post_init__(self) -> None:
        if not 1 <= self.max_unacked <= 65535:
            raise SettingsError(f"mqtt.max_unacked must be within 1..65535, not {self.max_unacked}")
        parse_mqtt_url(self.url)
        url, user, password = split_userinfo(self.url)
        # Credentials move out of the URL so that no repr or log line can show the password.
        if url != self.url:
            object.__setattr__(self, "url", url)
            object.__setattr__(self, "username", user or self.username)
            if password:
                object.__setattr__(self, "password", Secret(password))
        self._check_tls()

    def _check_tls(self) -> None:
        files = {"tls_ca_file": self.tls_ca_file, "tls_cert_file": self.tls_cert_file,
                 "tls_key_file": self.tls_key_file}
        if not self.tls and any(files.values()):
            named = ", ".join(f"mqtt.{k}" for k, v in files.items() if v)
            raise SettingsError(f"{named} set, but mqtt.url {redact_url(self.url)!r} is not "
                                "TLS: use mqtts://")
        if bool(self.tls_cert_file) != bool(self.tls_key_file):
            raise SettingsError("mqtt.tls_cert_file and mqtt.tls_key_file go together: set "
                                "both or neither")

    @property
    def host(self) -> str:
        return parse_mqtt_url(self.url)[0]

    @property
    def port(self) -> int:
        return parse_mqtt_url(self.url)[1]

    @property
    def tls(self) -> bool:
        """Whether `url` asks for TLS (``mqtts://``)."""
        return urlsplit(self.url).scheme == "mqtts"


_USERINFO = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://)(.*)@")


def redact_url(url: str) -> str:
    """``url`` for an error message: everything between ``://`` and the last ``@`` (user and
    password) becomes ``***``. Works on any text, parsable or not."""
    return _USERINFO.sub(r"\1***@", url, count=1)


def split_userinfo(url: str) -> tuple[str, str, str]:
    """(``url`` without ``user:password@``, user, password); the rest is kept as written (an
    IPv6 host keeps its brackets). A URL without credentials comes back unchanged."""
    parts = urlsplit(url)
    userinfo, at, hostport = parts.netloc.rpartition("@")
    if not at:
        return url, "", ""
    user, _, password = userinfo.partition(":")
    return urlunsplit(parts._replace(netloc=hostport)), unquote(user), unquote(password)


def _split(url: str, name: str, schemes: tuple[str, ...], form: str
           ) -> tuple[str, int | None, SplitResult]:
    """(host, port or None, parts) of a URL whose scheme is one of ``schemes``; a
    `SettingsError` naming setting ``name`` (and the URL without credentials) otherwise."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:  # its message may quote the URL: say it in our words
        raise SettingsError(f"{name} {redact_url(url)!r}: bad host or port; expected {form}"
                            ) from None
    if parts.scheme not in schemes or not parts.hostname:
        raise SettingsError(f"{name} {redact_url(url)!r}: expected {form}")
    return parts.hostname, port, parts


def parse_mqtt_url(url: str) -> tuple[str, int, str, str]:
    """(host, port, user, password) of ``mqtt://[user:pass@]host[:port]`` (an IPv6 host in
    brackets: ``mqtt://[::1]:1883``) or ``mqtts://...`` (TLS, port 8883 by default). Errors
    show the URL without its credentials."""
    host, port, parts = _split(url, "mqtt.url", ("mqtt", "tcp", "mqtts"),
                               "mqtt://[user:pass@]host:port (mqtts:// for TLS)")
    default = 8883 if parts.scheme == "mqtts" else 1883
    return host, port or default, unquote(parts.username or ""), unquote(parts.password or "")


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
    max_batch_size: int = setting(20000, "Readings per write while writes are slow (a write took "
                                  "a second or more): the next batch grows up to this many "
                                  "while one is in flight, so a slow database gets fewer, "
                                  "bigger writes and Pantau keeps up (this many readings per "
                                  "write latency). At least `batch_size`; keep a write's body "
                                  "(about 150 bytes a reading, derived values included) under "
                                  "the database's limit (InfluxDB 1.x `max-body-size`, 25 MB).")
    retry_min_s: float = setting(0.2, "First retry delay after a retryable write error; doubles, "
                                 "with jitter, honouring Retry-After.")
    retry_max_s: float = setting(15.0, "Longest retry delay. Retries never give up: the data stays "
                                 "unacknowledged in the broker until the database takes it.")

    def __post_init__(self) -> None:
        if self.api not in ("v1", "v2"):
            raise SettingsError(f"influx.api must be 'v1' or 'v2', not {self.api!r}")
        if self.batch_size < 1:
            raise SettingsError("influx.batch_size must be at least 1")
        if self.max_batch_size < self.batch_size:
            raise SettingsError(f"influx.max_batch_size ({self.max_batch_size}) must be at "
                                f"least influx.batch_size ({self.batch_size})")
        _split(self.url, "influx.url", ("http", "https"), "http(s)://host:port")
        url, user, password = split_userinfo(self.url)
        if url != self.url:  # as for mqtt.url: the credentials leave the URL
            object.__setattr__(self, "url", url)
            object.__setattr__(self, "username", user or self.username)
            if password:
                object.__setattr__(self, "password", Secret(password))


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
