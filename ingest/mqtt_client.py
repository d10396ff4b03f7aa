"""`LeanClient`: paho's `Client` with a faster receive path for a QoS 1 telemetry subscriber.

paho-mqtt parses packets in pure Python, reading each packet with three or more ``recv``
calls and building a `Properties` object (about 30 attribute probes) for every MQTT v5
PUBLISH; on this project's 2-core reference machine that caps a bare paho v5 subscriber
near 8,000 messages/s. Two overrides remove most of that cost while paho keeps everything
else (connect, session, keepalive, subscribe, publish, reconnect):

- ``_sock_recv`` serves paho's small reads from a 64 KiB buffer filled by one ``recv``, and
  ``loop_read`` first parses every complete QoS 1 PUBLISH already in that buffer in one tight
  loop (anything else, and a packet cut by the buffer's end, is left to paho's parser);
- ``_handle_publish`` hands QoS 1 PUBLISH packets straight to ``fast_handler(topic, payload,
  mid)`` without building an `MQTTMessage` or `Properties` (properties are skipped: Pantau
  sets no Topic Alias Maximum, so every PUBLISH carries its full topic). Other QoS levels,
  and everything when ``fast_handler`` is unset, take paho's own path.

and `ack_many` queues the PUBACKs of a whole batch as one write instead of one packet (and
one ``send``) each; a PUBACK of remaining length 2 means Success in MQTT 3.1.1 and 5.

All three rely on private methods of paho 2.1/2.2 (the dependency is pinned below 2.3);
``tests/ingest/test_mqtt_client.py`` checks the signatures and runs the path against the
real broker.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import paho.mqtt.client as mqtt
from paho.mqtt.client import PUBACK, time_func
from paho.mqtt.enums import MQTTErrorCode

FastHandler = Callable[[str, bytes, int], None]

_READ_SIZE = 65536


class LeanClient(mqtt.Client):
    """A paho `Client` whose QoS 1 PUBLISH packets go to ``fast_handler``."""

    def __init__(self, *args: Any, fast_handler: FastHandler | None = None,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fast_handler = fast_handler
        self.hold = False  # set while the owner pauses reading: parsing stops at a packet edge
        self._rbuf = b""
        self._rpos = 0
        self._rsock: object = None

    def ack_many(self, mids: Sequence[int]) -> None:
        """PUBACK every message id in ``mids`` (in order) with a single queued write."""
        if not mids:
            return
        ids = np.asarray(mids, dtype=np.uint16)
        packets = np.empty((len(ids), 4), dtype=np.uint8)
        packets[:, 0] = PUBACK
        packets[:, 1] = 2
        packets[:, 2] = ids >> 8
        packets[:, 3] = ids & 0xFF
        self._packet_queue(PUBACK, packets.tobytes(), 0, 0)

    def loop_read(self, max_packets: int = 1) -> MQTTErrorCode:
        handler = self.fast_handler
        if (handler is not None and self._in_packet["command"] == 0
                and self._rsock is self._sock and self._rpos < len(self._rbuf)):
            self._rpos = self._parse_publishes(self._rbuf, self._rpos, handler)
            if self.hold:
                return MQTTErrorCode.MQTT_ERR_SUCCESS
        return super().loop_read(max_packets)

    def _parse_publishes(self, buf: bytes, pos: int, handler: FastHandler) -> int:
        """Hand every complete QoS 1 PUBLISH from ``buf[pos:]`` to ``handler``; return the
        position of the first byte not consumed."""
        end, v5 = len(buf), self._protocol == mqtt.MQTTv5
        while pos < end and buf[pos] & 0xF6 == 0x32 and not self.hold:  # PUBLISH, QoS 1
            i, length, shift = pos + 1, 0, 0
            while i < end:
                b = buf[i]
                i += 1
                length |= (b & 0x7F) << shift
                shift += 7
                if not b & 0x80:
                    break
            else:
                return pos  # the length itself is cut off
            stop = i + length
            if stop > end:
                return pos  # the rest of the packet is not read yet
            try:
                j = i + 2 + ((buf[i] << 8) | buf[i + 1])
                topic = buf[i + 2:j].decode("utf-8")
                mid = (buf[j] << 8) | buf[j + 1]
                j += 2
                if v5:
                    plen, shift = 0, 0
                    while True:
                        b = buf[j]
                        j += 1
                        plen |= (b & 0x7F) << shift
                        shift += 7
                        if not b & 0x80:
                            break
                    j += plen
            except (IndexError, UnicodeDecodeError):
                return pos  # malformed: paho's parser reports it and drops the connection
            handler(topic, buf[j:stop], mid)
            pos = stop
        return pos

    def note_alive(self) -> None:
        """Tell paho's keepalive check that the broker is alive although Pantau is not reading
        (back-pressure): bytes waiting in the socket prove it. Without this, paho closes the
        connection once a PINGRESP stays unread for a keepalive period."""
        with self._msgtime_mutex:
            self._last_bytes_received = time_func()

    def buffered(self) -> bool:
        """True while bytes already read from the socket wait to be parsed: the socket may
        not become readable again for them, so the caller must keep calling ``loop_read``."""
        return self._rpos < len(self._rbuf) and self._rsock is self._sock

    def _sock_recv(self, bufsize: int) -> bytes:
        if self._rsock is not self._sock:  # a new connection: drop the old one's bytes
            self._rbuf, self._rpos, self._rsock = b"", 0, self._sock
        if self._rpos >= len(self._rbuf):
            data: bytes = super()._sock_recv(_READ_SIZE)
            if not data:
                return data
            self._rbuf, self._rpos = data, 0
        end = self._rpos + bufsize
        out = self._rbuf[self._rpos:end]
        self._rpos = min(end, len(self._rbuf))
        return out

    def _handle_publish(self) -> MQTTErrorCode:
        header: int = self._in_packet["command"]
        handler = self.fast_handler
        if handler is None or (header & 0x06) != 0x02:  # only QoS 1 takes the fast path
            return super()._handle_publish()
        p = self._in_packet["packet"]
        pos = 2 + ((p[0] << 8) | p[1])
        topic = p[2:pos].decode("utf-8")
        mid = (p[pos] << 8) | p[pos + 1]
        pos += 2
        if self._protocol == mqtt.MQTTv5:  # skip the properties (variable byte length)
            length, shift = 0, 0
            while True:
                b = p[pos]
                pos += 1
                length |= (b & 0x7F) << shift
                shift += 7
                if not b & 0x80:
                    break
            pos += length
        handler(topic, bytes(p[pos:]), mid)
        if self._manual_ack:
            return MQTTErrorCode.MQTT_ERR_SUCCESS
        return self._send_puback(mid)
