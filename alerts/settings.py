"""The ``[alerts]`` settings section: the rules file, the Alertmanager replicas, how alerts are
re-sent, acknowledged and escalated. Composed by `pantau.settings.Settings`."""

from __future__ import annotations

from dataclasses import dataclass

from core.settings import Secret, SettingsError, setting

SEVERITIES = ("info", "warning", "high", "critical")


@dataclass(frozen=True, slots=True)
class AlertSettings:
    rules: str = setting("", "Path of the alert rules YAML (empty: the shipped Blitar rules, "
                         "`alerts/data/blitar.rules.yaml`; `none`: no rules at all).")
    alertmanager_urls: tuple[str, ...] = setting(
        [], "Alertmanager replicas (`http://host:9093`); every alert goes to every one of them "
        "(they de-duplicate among themselves). Empty: alerts are raised, kept and shown, but "
        "not delivered.")
    resend_s: float = setting(60.0, "How often every firing alert is re-sent; its `endsAt` lies "
                              "4 such intervals ahead, so Alertmanager resolves it by itself if "
                              "Pantau dies.")
    resolved_keep_s: float = setting(900.0, "A resolved alert is re-sent this long (and until "
                                     "every replica has taken it), so a replica that was down "
                                     "still hears the resolve.")
    timeout_s: float = setting(10.0, "Timeout of one request to Alertmanager.")
    retry_max_s: float = setting(30.0, "Longest wait between attempts to a replica that failed.")
    sweep_s: float = setting(5.0, "Period of the time-based checks (offline for long enough, "
                             "`keep_firing_for` run out, Pantau's own health).")
    public_url: str = setting("http://127.0.0.1:8080", "How people reach Pantau's HTTP API: the "
                              "base of the acknowledgement links in notifications.")
    dashboard_url: str = setting("", "Base URL of the Grafana dashboards, for the links in "
                                 "notifications (empty: no link).")
    ack_secret: Secret = setting(Secret(), "HMAC key of the one-click acknowledgement links "
                                 "(empty: a random one is made and kept in "
                                 "`<state_dir>/alerts.key`).")
    ack_link_ttl_s: float = setting(86400.0, "How long an acknowledgement link stays valid.")
    silence_s: float = setting(3600.0, "Length of the Alertmanager silence an acknowledgement "
                               "creates; Pantau extends it while the alert fires and expires it "
                               "when the alert resolves.")
    escalate_critical_s: float = setting(900.0, "A critical alert unacknowledged this long is "
                                         "raised again at the next tier (0: never).")
    escalate_high_s: float = setting(1800.0, "The same for high alerts.")
    escalate_warning_s: float = setting(0.0, "The same for warnings (0: never).")
    max_tier: int = setting(2, "Highest escalation tier (tier 1 is the team on call; each "
                            "further delay raises the alert one tier, up to this one).")
    influx_events: bool = setting(True, "Write every alert transition to InfluxDB (measurement "
                                  "`alerts`), for annotations on the dashboards.")

    def __post_init__(self) -> None:
        for url in self.alertmanager_urls:
            if not url.startswith(("http://", "https://")):
                raise SettingsError(f"alerts.alertmanager_urls: {url!r} is not an http(s) URL")
        if self.resend_s <= 0 or self.sweep_s <= 0 or self.timeout_s <= 0:
            raise SettingsError("alerts.resend_s, sweep_s and timeout_s must be positive")
        if self.max_tier < 1:
            raise SettingsError("alerts.max_tier must be at least 1")

    def escalate_after_s(self, severity: str) -> float:
        """The delay after which an unacknowledged alert of ``severity`` climbs a tier (0:
        never)."""
        return {"critical": self.escalate_critical_s, "high": self.escalate_high_s,
                "warning": self.escalate_warning_s}.get(severity, 0.0)
