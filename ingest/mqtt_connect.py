"""How Pantau's MQTT connection is made: the paho client and what CONNECT announces.

One place for every connection option, so that a new one is added here and nowhere else:
`new_client` builds and configures the client (`_authenticate` and `_secure` are steps of
it), `connect_properties` states the MQTT v5 session Pantau asks for, and `connect` opens it
(blocking: run it in an executor).

TLS (``mqtts://``, `tls_context`): TLS 1.2 or later; the broker's certificate must chain to
``mqtt.tls_ca_file`` (or the system's trust store) and, unless ``mqtt.tls_verify_hostname``
is off, name the host of ``mqtt.url``; a client certificate is presented when
``mqtt.tls_cert_file``/``tls_key_file`` are set. Files that cannot be loaded raise
`MqttTlsError` when the client is built (Pantau does not start); a broker certificate that
does not verify makes `connect` raise `MqttTlsError` naming the reason (an `OSError`, so the
source logs it and retries like any refused connection: the broker may get a valid one).

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

import ssl

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from core.errors import PantauError
from ingest.mqtt_client import FastHandler, LeanClient
from ingest.settings import MqttSettings

OWN_QUEUE = 10000  # our own QoS 1 publishes (dead letters) paho may hold; bounded
MQTT_MAX_PACKET = 268_435_460  # the largest packet MQTT can express (5 + 2**28 - 1)


class MqttTlsError(PantauError, OSError):
    """TLS to the broker cannot be set up or the broker's certificate was refused; the
    message names the setting or the reason (never a key or password)."""


def new_client(settings: MqttSettings, fast_handler: FastHandler) -> LeanClient:
    """A configured MQTT v5 client with manual acknowledgement (no callbacks set)."""
    client = LeanClient(CallbackAPIVersion.VERSION2, client_id=settings.client_id,
                        protocol=mqtt.MQTTv5, manual_ack=True, fast_handler=fast_handler)
    _authenticate(client, settings)
    _secure(client, settings)
    client.max_queued_messages_set(OWN_QUEUE)
    return client


def _authenticate(client: LeanClient, settings: MqttSettings) -> None:
    if settings.username:
        client.username_pw_set(settings.username, settings.password.reveal() or None)


def _secure(client: LeanClient, settings: MqttSettings) -> None:
    if settings.tls:
        client.tls_set_context(tls_context(settings))


def tls_context(settings: MqttSettings) -> ssl.SSLContext:
    """The client side of TLS to the broker, from the ``mqtt.tls_*`` settings."""
    where = "mqtt.tls_ca_file"
    try:
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH,
                                         cafile=settings.tls_ca_file or None)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.check_hostname = settings.tls_verify_hostname  # the chain is verified either way
        if settings.tls_cert_file:
            where = "mqtt.tls_cert_file/tls_key_file"
            ctx.load_cert_chain(settings.tls_cert_file, settings.tls_key_file)
    except (OSError, ValueError) as e:  # ssl.SSLError is an OSError
        reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        raise MqttTlsError(f"{where}: cannot load it: {reason}") from None
    return ctx


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
    try:
        client.connect(settings.host, settings.port, settings.keepalive_s, clean_start=False,
                       properties=props)
    except ssl.SSLCertVerificationError as e:
        raise MqttTlsError(f"TLS: the broker's certificate was refused: {e.verify_message} "
                           "(check mqtt.tls_ca_file and the host in mqtt.url)") from None
