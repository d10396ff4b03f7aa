"""The MQTT topic layout and the status payloads: the one module that builds and parses them.

A device publishes telemetry on ``<prefix>/<site>/<device>/telemetry`` (QoS 1) and announces
itself on ``<prefix>/<site>/<device>/status`` with ``online`` / ``offline`` (its last will,
retained). The prefix is ``mqtt.topic_prefix`` ("pantau" by default). Everyone else asks here:
the decoder and the MQTT source, the status store, dead-letter records, provisioning and its
ACL, the simulator and the CLI.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Channel = Literal["telemetry", "status"]
TELEMETRY: Channel = "telemetry"
STATUS: Channel = "status"
CHANNELS: tuple[Channel, ...] = (TELEMETRY, STATUS)

ONLINE = "online"
OFFLINE = "offline"


@dataclass(frozen=True, slots=True)
class Topic:
    """A parsed device topic."""

    site: str
    device: str
    channel: Channel


def topic(prefix: str, site: str, device: str, channel: Channel) -> str:
    """``<prefix>/<site>/<device>/<channel>``."""
    return f"{prefix}/{site}/{device}/{channel}"


def device_topics(prefix: str, site: str, device: str) -> tuple[str, str]:
    """(telemetry, status) topics of one device."""
    return topic(prefix, site, device, TELEMETRY), topic(prefix, site, device, STATUS)


def subscriptions(prefix: str, shared_group: str = "") -> list[str]:
    """The topic filters ingest subscribes to (``$share/<group>/...`` with a shared group)."""
    share = f"$share/{shared_group}/" if shared_group else ""
    return [f"{share}{prefix}/+/+/{channel}" for channel in CHANNELS]


def acl_patterns(prefix: str) -> list[str]:
    """Mosquitto ``pattern`` lines: a device (username = device id, ``%u``) may write only its
    own telemetry and status, at any site."""
    return [f"pattern write {prefix}/+/%u/{channel}" for channel in CHANNELS]


def parse(text: str, prefix: str) -> Topic | None:
    """The topic's site, device and channel; None when it is not a device topic under
    ``prefix``."""
    parts = text.split("/")
    if len(parts) != 4 or parts[0] != prefix or not parts[1] or not parts[2]:
        return None
    channel = parts[3]
    if channel == TELEMETRY:
        return Topic(parts[1], parts[2], TELEMETRY)
    if channel == STATUS:
        return Topic(parts[1], parts[2], STATUS)
    return None


def device_of(text: str) -> str:
    """The device named by a ``<prefix>/<site>/<device>/<channel>`` topic (any prefix), or ""
    (for log lines and dead-letter records, where the topic may be malformed)."""
    parts = text.split("/")
    return parts[2] if len(parts) == 4 else ""


def is_status(text: str) -> bool:
    """Whether a received topic is a status (LWT) topic."""
    return text.endswith("/" + STATUS)


def parse_status(payload: bytes) -> str | None:
    """``online``, ``offline`` or None (anything else) from a status payload; case and
    surrounding text are tolerated (``"Offline"``, ``{"state": "online"}``)."""
    text = payload.decode("utf-8", "replace").strip().lower()
    if ONLINE in text:
        return ONLINE
    if OFFLINE in text:
        return OFFLINE
    return None
