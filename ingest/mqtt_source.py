"""`MqttSource`: paho-mqtt 2.x driven by the asyncio event loop, QoS 1 with manual acknowledgement.

Delivery contract (see DESIGN.md, "Delivery"):

- MQTT v5, a fixed client id, ``clean_start=False`` and a session expiry interval, so the
  broker keeps the subscription and every unacknowledged message while Pantau is away.
- Subscriptions are QoS 1 (not 2: paho confirms QoS 2 on arrival). Messages are acknowledged
  only when the pipeline calls `ack` after their readings were written or dead-lettered.
- The MQTT v5 Receive Maximum (``mqtt.max_unacked``) caps unacknowledged messages: the broker
  sends no more until some are acknowledged, so memory stays bounded and the rest waits,
  queued in the broker. `pause` stops reading the socket altogether (back-pressure).
- After a reconnect, message ids of the old connection are meaningless: acks for them are
  skipped (counted) and the broker redelivers those messages, which then overwrite themselves
  in the database (same series and device timestamp).

The socket is driven by ``loop.add_reader``/``add_writer`` (no network thread): callbacks,
including the handler, run on the event loop thread, so they must not block.
"""

from __future__ import annotations

import asyncio
import logging
import random
import select
import threading
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from core.metrics import Metrics
from devices import topics
from ingest.mqtt_client import LeanClient
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

_READS_PER_WAKEUP = 256  # packets read per readable event before yielding to the loop


class MqttSource:
    """Owns one paho client. Lifecycle: ``await run()`` until cancelled; it connects, reconnects
    with jittered exponential backoff, and disconnects cleanly when cancelled. `ack`,
    `publish`, `pause` and `resume` are called from the event loop thread only."""

    def __init__(self, settings: MqttSettings, handler: Handler, metrics: Metrics) -> None:
        self._s = settings
        self.handler = handler  # may be replaced before `run` (the pipeline is built later)
        self._m = metrics
        metrics.describe(HELP)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread = 0
        self._acks: list[int] = []
        self._fd: int | None = None
        self._reading = False
        self._paused = False
        self.generation = 0
        self.connected = False
        self.session_present = False
        self.last_error = "not connected yet"
        self._up = asyncio.Event()
        self._subscribed = asyncio.Event()
        self._down = asyncio.Event()
        self._client = self._make_client()

    # -- paho wiring -----------------------------------------------------------------------
    def _make_client(self) -> LeanClient:
        c = LeanClient(CallbackAPIVersion.VERSION2, client_id=self._s.client_id,
                       protocol=mqtt.MQTTv5, manual_ack=True, fast_handler=self._on_publish)
        user, password = self._s.username, self._s.password
        if user:
            c.username_pw_set(user, password.reveal() or None)
        c.on_connect = self._on_connect
        c.on_disconnect = self._on_disconnect
        c.on_subscribe = self._on_subscribe
        c.on_message = self._on_message
        c.on_socket_open = self._on_socket_open
        c.on_socket_close = self._on_socket_close
        c.on_socket_register_write = self._on_register_write
        c.on_socket_unregister_write = self._on_unregister_write
        c.max_queued_messages_set(10000)  # our own publishes (dead letters); bounded
        return c

    def _threadsafe(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` on the loop thread: now if we are on it, else as soon as possible (paho
        calls the socket callbacks from the executor thread while connecting)."""
        assert self._loop is not None
        if threading.get_ident() == self._loop_thread:
            fn()
        else:
            self._loop.call_soon_threadsafe(fn)

    # Sockets are tracked by file descriptor number: paho closes the socket object right after
    # `on_socket_close`, and the selector must still be able to unregister it.
    def _on_socket_open(self, client: Any, userdata: Any, sock: Any) -> None:
        fd: int = sock.fileno()

        def opened() -> None:
            self._fd = fd
            self._reading = False
            self._sync_reader()
        self._threadsafe(opened)

    def _on_socket_close(self, client: Any, userdata: Any, sock: Any) -> None:
        fd = self._fd

        def closed() -> None:
            if self._loop is not None and fd is not None:
                self._loop.remove_reader(fd)
                self._loop.remove_writer(fd)
            self._reading = False
            if self._fd == fd:
                self._fd = None
        self._threadsafe(closed)

    def _on_register_write(self, client: Any, userdata: Any, sock: Any) -> None:
        fd: int = sock.fileno()

        def register() -> None:
            if self._loop is not None and self._fd == fd:
                self._loop.add_writer(fd, self._writable)
        self._threadsafe(register)

    def _on_unregister_write(self, client: Any, userdata: Any, sock: Any) -> None:
        fd = self._fd

        def unregister() -> None:
            if self._loop is not None and fd is not None:
                self._loop.remove_writer(fd)
        self._threadsafe(unregister)

    def _writable(self) -> None:
        self._client.loop_write()

    def _readable(self) -> None:
        client = self._client
        for _ in range(_READS_PER_WAKEUP):
            if client.loop_read() != MQTTErrorCode.MQTT_ERR_SUCCESS or self._paused:
                return
            if not client.buffered():  # what was read is parsed; epoll wakes us for more
                return
        if self._loop is not None:  # still buffered: continue after other tasks had a turn
            self._loop.call_soon(self._readable)

    def _sync_reader(self) -> None:
        sock, loop = self._fd, self._loop
        if sock is None or loop is None:
            self._reading = False
            return
        want = not self._paused
        if want and not self._reading:
            loop.add_reader(sock, self._readable)
        elif not want and self._reading:
            loop.remove_reader(sock)
        self._reading = want

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
        if not self._acks and self._loop is not None:
            self._loop.call_soon(self._flush_acks)
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
        self._paused = True
        self._client.hold = True
        self._sync_reader()

    def resume(self) -> None:
        self._paused = False
        self._client.hold = False
        self._sync_reader()
        if self._client.buffered() and self._loop is not None:
            self._loop.call_soon(self._readable)  # bytes already read wake no selector

    @property
    def paused(self) -> bool:
        return self._paused

    async def wait_subscribed(self) -> None:
        """Until the broker granted the subscriptions at least once (the session exists)."""
        await self._subscribed.wait()

    async def run(self) -> None:
        """Connect and stay connected until cancelled."""
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = self._s.session_expiry_s
        props.ReceiveMaximum = self._s.max_unacked
        delay = self._s.reconnect_min_s
        first = True
        try:
            while True:
                self._up.clear()
                self._down.clear()
                try:
                    if first:
                        await self._loop.run_in_executor(None, lambda: self._client.connect(
                            self._s.host, self._s.port, self._s.keepalive_s,
                            clean_start=False, properties=props))
                        first = False
                    else:
                        await self._loop.run_in_executor(None, self._client.reconnect)
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
        """Run keepalive housekeeping and wait for CONNACK (or failure)."""
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

    async def housekeeping(self) -> None:
        """Keepalive pings and retries; run beside `run` until cancelled."""
        while True:
            await asyncio.sleep(min(1.0, self._s.keepalive_s / 4))
            fd = self._fd
            if fd is None:
                continue
            if self._paused and select.select([fd], [], [], 0)[0]:
                self._client.note_alive()  # unread bytes wait: the broker is there
            self._client.loop_misc()

    async def _shutdown(self) -> None:
        self._flush_acks()
        if self.connected:
            self._client.disconnect()
            if self._client.want_write():
                self._client.loop_write()
        self.connected = False
        self._m.gauge("pantau_mqtt_connected").set(0)
        if self._fd is not None and self._loop is not None:
            self._loop.remove_reader(self._fd)
            self._loop.remove_writer(self._fd)
        self._reading = False
