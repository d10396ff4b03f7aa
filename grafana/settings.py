"""The grafana package's settings section, ``[grafana]``: where the command center's Grafana
is (for ``pantau grafana sync``) and how that Grafana reaches InfluxDB and Alertmanager (for the
data sources that ``pantau grafana export`` and ``sync`` provision)."""

from __future__ import annotations

from dataclasses import dataclass

from core.settings import Secret, SettingsError, setting


@dataclass(frozen=True, slots=True)
class GrafanaSettings:
    url: str = setting("http://127.0.0.1:3000", "Grafana's base URL, for `pantau grafana sync`.")
    token: Secret = setting(Secret(), "A Grafana service-account token (role Editor or Admin) "
                            "for `pantau grafana sync`.")
    influx_url: str = setting("", "InfluxDB as Grafana reaches it (empty: `influx.url`); "
                              "docker compose: `http://influxdb:8086`.")
    influx_read_user: str = setting("", "InfluxDB 1.x: the READ-only user of Grafana's data "
                                    "source (empty: `influx.read_username`).")
    influx_read_secret: Secret = setting(Secret(), "`pantau grafana sync`: that user's password "
                                         "(1.x) or a read-only token (2.x, sent as "
                                         "`Authorization: Token ...` to the InfluxQL API).")
    influx_read_secret_file: str = setting(
        "/run/secrets/grafana-influx-read", "`pantau grafana export`: the file, inside "
        "Grafana's container, holding that password or token (`$__file{...}` in the "
        "provisioning file, so no secret is exported).")
    alertmanager_url: str = setting("http://127.0.0.1:9093", "Alertmanager as Grafana reaches "
                                    "it (docker compose: `http://alertmanager:9093`).")
    timeout_s: float = setting(10.0, "One request to Grafana's HTTP API.")

    def __post_init__(self) -> None:
        for name in ("url", "alertmanager_url"):
            if not getattr(self, name).startswith(("http://", "https://")):
                raise SettingsError(f"grafana.{name} must be an http(s) URL, "
                                    f"not {getattr(self, name)!r}")
