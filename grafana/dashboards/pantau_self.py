"""Pantau itself: the pipeline's health from the counters Pantau writes to InfluxDB
(`ingest.self_metrics`, measurement ``pantau``): received, written, rejected by reason,
unacknowledged, write latency, ingest delay, broker connection and reconnects, tiers; and,
when the alerts' metrics are known (`pantau.grafana_cli.sources`), their delivery."""

from __future__ import annotations

from typing import Any

from grafana.board import Board
from grafana.influxql import Expr, Select
from grafana.panels import stat_panel, steps, timeseries_panel, value_names
from grafana.sources import Sources
from ingest import schema

UID = "pantau-self"
PANTAU = schema.PANTAU_MEASUREMENT
BY = ("instance",)


def rate(src: Sources, metric: str, *labels: str, per: str = "1s") -> Select:
    """Per-``per`` increase of a cumulative counter (a restart is not a negative rate), by
    ``labels`` (a counter never incremented is written as one line without labels, at 0: the
    panel shows that 0 until the first labelled count)."""
    return Select((Expr(src.pantau(metric), "last",
                        outer=f"non_negative_derivative({{}}, {per})"),),
                  measurement=PANTAU, group_by=(*BY, *labels))


def gauge(src: Sources, metric: str, stat: str = "", func: str = "max") -> Select:
    return Select((Expr(src.pantau(metric, stat), func),), measurement=PANTAU, group_by=BY)


def build(src: Sources) -> dict[str, Any]:
    b = Board(UID, "Pantau — Pantau itself", tags=["pantau-health"], time_from="now-6h",
              kinds=(), description="The ingest pipeline's own health, from the counters "
              "Pantau writes to InfluxDB every few seconds (measurement `pantau`).")
    b.add(stat_panel("Broker connection", [Select(
        (Expr(src.pantau("pantau_mqtt_connected"), "last"),), measurement=PANTAU,
        every="", group_by=BY)], mappings=value_names([("disconnected", "red"),
                                                         ("connected", "green")]),
        thresholds=steps((None, "red"), (1.0, "green"))),
          stat_panel("Unacknowledged messages", [Select(
              (Expr(src.pantau("pantau_messages_unacked"), "last"),), measurement=PANTAU,
              every="", group_by=BY)], thresholds=steps((None, "green"), (10000.0, "orange"))),
          stat_panel("Readings in flight", [Select(
              (Expr(src.pantau("pantau_readings_in_flight"), "last"),), measurement=PANTAU,
              every="", group_by=BY)], thresholds=steps((None, "green"))),
          stat_panel("Reconnects", [Select(
              (Expr(src.pantau("pantau_mqtt_reconnects_total"), "last"),), measurement=PANTAU,
              every="", group_by=BY)], thresholds=steps((None, "green"), (1.0, "orange"))))
    alias = "$col $tag_instance"
    b.add(timeseries_panel("Readings per second", [
        Select((Expr(src.pantau("pantau_readings_received_total"), "last", "received",
                     outer="non_negative_derivative({}, 1s)"),
                Expr(src.pantau("pantau_readings_written_total"), "last", "written",
                     outer="non_negative_derivative({}, 1s)")),
               measurement=PANTAU, group_by=BY)], unit="reqps", alias=alias,
        description="received = written + rejected + duplicate + in flight"),
          timeseries_panel("Rejected readings per minute, by reason", [
              rate(src, "pantau_readings_rejected_total", "reason", per="1m")],
              alias="$tag_reason"),
          timeseries_panel("Rejected messages per minute, by reason", [
              rate(src, "pantau_messages_rejected_total", "reason", per="1m")],
              alias="$tag_reason"),
          timeseries_panel("Unacknowledged and queued", [
              gauge(src, "pantau_messages_unacked"), gauge(src, "pantau_queue_batches")],
              alias="$col $tag_instance"))
    b.add(timeseries_panel("Write latency (p50, p99 per interval)", [Select(
        (Expr(src.pantau("pantau_write_seconds", "p50"), "max", "p50"),
         Expr(src.pantau("pantau_write_seconds", "p99"), "max", "p99")),
        measurement=PANTAU, group_by=BY)], unit="s", alias=alias),
          timeseries_panel("Ingest delay (device clock to stored, p50, p99)", [Select(
              (Expr(src.pantau("pantau_ingest_delay_seconds", "p50"), "max", "p50"),
               Expr(src.pantau("pantau_ingest_delay_seconds", "p99"), "max", "p99")),
              measurement=PANTAU, group_by=BY)], unit="s", alias=alias),
          timeseries_panel("Write retries per minute, by kind", [
              rate(src, "pantau_write_retries_total", "kind", per="1m")], alias="$tag_kind"),
          timeseries_panel("Tier rows written per minute", [
              rate(src, "pantau_tier_points_written_total", "resolution", per="1m")],
              alias="$tag_resolution"))
    if src.has_pantau("pantau_alertmanager_posts_total"):
        _alert_panels(b, src, alias)
    return b.built()


def _alert_panels(b: Board, src: Sources, alias: str) -> None:
    """Pantau's side of the way to the on-call phone: posts to Alertmanager (a failing one
    shows as retryable or refused), how long from raising an alert to a replica accepting it,
    the alert events written for the annotations, escalations."""
    b.add(timeseries_panel("Alerts posted to Alertmanager per minute, by result", [
        rate(src, "pantau_alertmanager_posts_total", "result", per="1m")],
        alias="$tag_result", description="ok; retryable (the replica is down or busy: Pantau "
        "retries); refused (Alertmanager rejected the alert)."),
          timeseries_panel("Alert delivery, raised to accepted (p50, p99 per interval)", [Select(
              (Expr(src.pantau("pantau_alert_delivery_seconds", "p50"), "max", "p50"),
               Expr(src.pantau("pantau_alert_delivery_seconds", "p99"), "max", "p99")),
              measurement=PANTAU, group_by=BY)], unit="s", alias=alias),
          timeseries_panel("Alert events written per minute, by result", [
              rate(src, "pantau_alert_events_total", "result", per="1m")],
              alias="$tag_result"),
          timeseries_panel("Escalations per minute, by severity", [
              rate(src, "pantau_alerts_escalations_total", "severity", per="1m")],
              alias="$tag_severity"))
