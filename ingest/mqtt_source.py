"""`MqttSource`: paho-mqtt 2.x driven by the asyncio event loop, QoS 1 with manual acknowledgement.

Delivery contract (see DESIGN.md, "Delivery"):

- MQTT v5, a fixed client id, ``clean_start=False`` and a session expiry interval, so the
  broker keeps the subscription and every unacknowledged message while Pantau is away
  (`ingest.mqtt_connect` says what CONNECT announces, Maximum Packet Size included).
- Subscriptions are QoS 1 (not 2: paho confirms QoS 2 on arrival). Messages are acknowledged
  only when the pipeline calls `ack` after their readings were written or dead-lettered.
- The MQTT v5 Receive Maximum (``mqtt.max_unacked``) caps unacknowledged messages: the broker
  sends no more until some are acknowledged, so memory stays bounded and the rest waits,
  queued in the broker. `pause` stops reading the socket altogether (back-pressure).
- After a reconnect, message ids of the old connection are meaningless: acks for them are
  skipped (counted) and the broker redelivers those messages, which then overwrite themselves
  in the database (same series and device timestamp).

The socket is driven from the event loop (`ingest.mqtt_driver`, no network thread):
callbacks, including the handler, run on the event loop thread, so they must not block.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.subscribeoptions import SubscribeOptions

from core.metrics import Metrics
from devices import topics
from ingest import mqtt_connect
from ingest.mqtt_client import LeanClient
from ingest.mqtt_driver import LoopDriver
from ingest.settings import MqttSettings

HELP: dict[str, tuple[str, str]] = {  # this module's metrics (`Metrics.describe`)
    "pantau_mqtt_connected": ("gauge", "1 while connected to the broker."),
    "pantau_mqtt_reconnects_total": ("counter", "Connection attempts after the first."),
    "pantau_mqtt_acks_skipped_total": ("counter", "Acks not sent because the connection that "
                                       "delivered the message is gone (the broker redelivers)."),
}

log = logging.getLogger("pantau.mqtt")

# (topic, payload, mid, generation) -> None; must not block and must not raise.
Handler = Callable[[str, bytes, int, int], None]


class MqttSource:
    """Owns one paho client. Lifecycle: ``await run()`` until cancelled; it connects, reconnects
    with jittered exponential backoff, and disconnects cleanly when cancelled. `ack`,
    `publish`, `pause` and `resume` are called from the event loop thread only.

    ``max_packet_size``: the MQTT v5 Maximum Packet Size announced on CONNECT (0: none)."""

    def __init__(self, settings: MqttSettings, handler: Handler, metrics: Metrics, *,
                 max_packet_size: int = 0) -> None:
        self._s = settings
        self.handler = handler  # may be replaced before `run` (the pipeline is built later)
        self._m = metrics
        metrics.describe(HELP)
        self._max_packet = max_packet_size
        self._acks: list[int] = []
        self.generation = 0
        self.connected = False
        self.session_present = False
        self.last_error = "not connected yet"
        self._up = asyncio.Event()
        self._subscribed = asyncio.Event()
        self._down = asyncio.Event()
        self._client = self._make_client()
        self._driver = LoopDriver(self._client, settings.keepalive_s)

    def _make_client(self) -> LeanClient:
        c = mqtt_connect.new_client(self._s, self._on_publish)
        c.on_connect = self._on_connect
        c.on_disconnect = self._on_disconnect
        c.on_subscribe = self._on_subscribe
        c.on_message = self._on_message
        return c

    # -- paho callbacks (on the loop thread) -------------------------------------------------
    def _on_connect(self, client: Any, userdata: Any, flags: Any, rc: Any, props: Any) -> None:
        if rc.is_failure:
            self.last_error = f"broker refused the connection: {rc}"
            log.error("MQTT %s (%s as %r)", self.last_error, self._s.url, self._s.username)
            self._down.set()
            return
        self.generation += 1
        self.connected = True
        self.session_present = bool(flags.session_present)
        self.last_error = ""
        self._m.gauge("pantau_mqtt_connected").set(1)
        opts = SubscribeOptions(qos=1)
        client.subscribe([(f, opts) for f in topics.subscriptions(self._s.topic_prefix,
                                                                  self._s.shared_group)])
        log.info("MQTT connected to %s as %r (session %s, generation %d)", self._s.url,
                 self._s.client_id, "resumed" if self.session_present else "new", self.generation)
        self._up.set()

    def _on_subscribe(self, client: Any, userdata: Any, mid: int, codes: Any, props: Any) -> None:
        failed = [c for c in codes if c.is_failure]
        if failed:
            self.last_error = f"subscription refused: {failed[0]}"
            log.error("MQTT %s (check the ACL of %r)", self.last_error, self._s.username)
            return
        if not self._subscribed.is_set():  # the line that says telemetry now flows in
            log.info("MQTT subscribed to %s: ingesting", ", ".join(
                topics.subscriptions(self._s.topic_prefix, self._s.shared_group)))
        self._subscribed.set()

    def _on_disconnect(self, client: Any, userdata: Any, flags: Any, rc: Any, props: Any) -> None:
        if self.connected:
            log.warning("MQTT connection lost: %s", rc)
        self.connected = False
        self.last_error = f"disconnected: {rc}"
        self._m.gauge("pantau_mqtt_connected").set(0)
        self._down.set()

    def _on_publish(self, topic: str, payload: bytes, mid: int) -> None:
        self.handler(topic, payload, mid, self.generation)

    def _on_message(self, client: Any, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        # QoS 0/2 deliveries (a misconfigured subscription); QoS 1 takes `_on_publish`.
        self.handler(msg.topic, bytes(msg.payload), msg.mid, self.generation)

    # -- public ----------------------------------------------------------------------------
    def ack(self, mid: int, generation: int) -> bool:
        """Acknowledge a message; False (and counted) when its connection is gone.

        Acks of one event-loop turn (a whole batch) leave as one write, in call order."""
        if generation != self.generation or not self.connected:
            self._m.counter("pantau_mqtt_acks_skipped_total").inc()
            return False
        loop = self._driver.loop
        if not self._acks and loop is not None:
            loop.call_soon(self._flush_acks)
        self._acks.append(mid)
        return True

    def _flush_acks(self) -> None:
        # Same turn of the loop as `ack`: a reconnect needs several, so `connected` still
        # describes the connection these message ids belong to.
        mids, self._acks = self._acks, []
        if self.connected and mids:
            self._client.ack_many(mids)

    def publish(self, topic: str, payload: bytes) -> None:
        """Queue a QoS 1 publish (paho resends it after a reconnect within the session)."""
        self._client.publish(topic, payload, qos=1)

    def pause(self) -> None:
        """Stop reading from the broker (unread messages wait in the socket and the broker)."""
        self._driver.pause()

    def resume(self) -> None:
        self._driver.resume()

    @property
    def paused(self) -> bool:
        return self._driver.paused

    async def wait_subscribed(self) -> None:
        """Until the broker granted the subscriptions at least once (the session exists)."""
        await self._subscribed.wait()

    async def housekeeping(self) -> None:
        """Keepalive pings and retries; run beside `run` until cancelled."""
        await self._driver.housekeeping()

    async def run(self) -> None:
        """Connect and stay connected until cancelled."""
        loop = self._driver.attach()
        props = mqtt_connect.connect_properties(self._s, self._max_packet)
        delay = self._s.reconnect_min_s
        first = True
        try:
            while True:
                self._up.clear()
                self._down.clear()
                try:
                    if first:
                        await loop.run_in_executor(None, mqtt_connect.connect, self._client,
                                                   self._s, props)
                        first = False
                    else:
                        await loop.run_in_executor(None, self._client.reconnect)
                    await self._wait_session()
                except (OSError, TimeoutError) as e:
                    self.last_error = f"cannot connect to {self._s.url}: {e}"
                    log.warning("MQTT %s; retrying in %.1f s", self.last_error, delay)
                if self.connected:
                    delay = self._s.reconnect_min_s
                    await self._down.wait()
                self._m.counter("pantau_mqtt_reconnects_total").inc()
                await asyncio.sleep(random.uniform(delay / 2, delay))
                delay = min(delay * 2, self._s.reconnect_max_s)
        finally:
            await self._shutdown()

    async def _wait_session(self) -> None:
        """Wait for CONNACK (or failure)."""
        up = asyncio.ensure_future(self._up.wait())
        down = asyncio.ensure_future(self._down.wait())
        try:
            await asyncio.wait({up, down}, timeout=max(10.0, self._s.keepalive_s),
                               return_when=asyncio.FIRST_COMPLETED)
        finally:
            up.cancel()
            down.cancel()
        if not self.connected and not self._down.is_set():
            raise TimeoutError("no CONNACK from the broker")

    async def _shutdown(self) -> None:
        self._flush_acks()
        if self.connected:
            self._client.disconnect()
            if self._client.want_write():
                self._client.loop_write()
        self.connected = False
        self._m.gauge("pantau_mqtt_connected").set(0)
        self._driver.detach()
