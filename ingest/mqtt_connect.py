"""How Pantau's MQTT connection is made: the paho client and what CONNECT announces.

One place for every connection option, so that a new one (credentials, TLS, ...) is added
here and nowhere else: `new_client` builds and configures the client (`_authenticate` and
any further transport options are steps of it), `connect_properties` states the MQTT v5
session Pantau asks for, and `connect` opens it (blocking: run it in an executor).

What CONNECT announces (MQTT v5):

- Session Expiry Interval ``mqtt.session_expiry_s`` with ``clean_start=False`` and a fixed
  client id: the broker keeps the subscription and every unacknowledged message meanwhile;
- Receive Maximum ``mqtt.max_unacked``: the first window of unacknowledged messages;
- Maximum Packet Size ``max_packet_size`` (twice ``ingest.max_payload_bytes`` in `pantau.app`):
  the broker must not send Pantau a larger packet, so memory per message stays bounded. The
  broker's own limits (`max_packet_size`, `message_size_limit` in the shipped Mosquitto
  configs) are at or below it, so every message the broker accepts can reach Pantau.
"""

from __future__ import annotations

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from ingest.mqtt_client import FastHandler, LeanClient
from ingest.settings import MqttSettings

OWN_QUEUE = 10000  # our own QoS 1 publishes (dead letters) paho may hold; bounded
MQTT_MAX_PACKET = 268_435_460  # the largest packet MQTT can express (5 + 2**28 - 1)


def new_client(settings: MqttSettings, fast_handler: FastHandler) -> LeanClient:
    """A configured MQTT v5 client with manual acknowledgement (no callbacks set)."""
    client = LeanClient(CallbackAPIVersion.VERSION2, client_id=settings.client_id,
                        protocol=mqtt.MQTTv5, manual_ack=True, fast_handler=fast_handler)
    _authenticate(client, settings)
    client.max_queued_messages_set(OWN_QUEUE)
    return client


def _authenticate(client: LeanClient, settings: MqttSettings) -> None:
    if settings.username:
        client.username_pw_set(settings.username, settings.password.reveal() or None)


def connect_properties(settings: MqttSettings, max_packet_size: int = 0) -> Properties:
    """The CONNECT properties; ``max_packet_size`` 0 announces none (no limit)."""
    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    props.SessionExpiryInterval = settings.session_expiry_s
    props.ReceiveMaximum = settings.max_unacked
    if max_packet_size:
        props.MaximumPacketSize = min(max_packet_size, MQTT_MAX_PACKET)
    return props


def connect(client: LeanClient, settings: MqttSettings, props: Properties) -> None:
    """The first connection (blocking): resume the session if the broker kept it."""
    client.connect(settings.host, settings.port, settings.keepalive_s, clean_start=False,
                   properties=props)
