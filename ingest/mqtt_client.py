"""`LeanClient`: paho's `Client` with a faster receive path for a QoS 1 telemetry subscriber.

paho-mqtt parses packets in pure Python, reading each packet with three or more ``recv``
calls and building a `Properties` object (about 30 attribute probes) for every MQTT v5
PUBLISH; on this project's 2-core reference machine that caps a bare paho v5 subscriber
near 8,000 messages/s. Two overrides remove most of that cost while paho keeps everything
else (connect, session, keepalive, subscribe, publish, reconnect):

- ``_sock_recv`` serves paho's small reads from a 16 KiB buffer filled by one ``recv``, and
  ``loop_read`` then parses every complete QoS 1 PUBLISH in that buffer in one tight loop
  (anything else, and a packet cut by the buffer's end, is left to paho's parser), so it
  works under paho's own threaded loop as well as under Pantau's asyncio driver. One
  ``loop_read`` reads the socket at most once: a second read is answered "try again"
  (`BlockingIOError`, which paho's parser takes as such, keeping a cut packet's first part),
  so one call handles at most what was buffered plus one read (32 KiB) and returns, however
  long the backlog in the broker; the socket's next bytes wake the selector again;
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

import ssl
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import paho.mqtt.client as mqtt
from paho.mqtt.client import PUBACK, time_func
from paho.mqtt.enums import MQTTErrorCode
from paho.mqtt.exception import MalformedPacket

FastHandler = Callable[[str, bytes, int], None]

# One read per `loop_read`: some 140 telemetry messages, a few ms of the event loop (a
# bigger read held it for 100-170 ms under the fault suite's overload on 2 loaded cores).
_READ_SIZE = 16384


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
        self._reads_left = 1  # socket reads the current `loop_read` may still make

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
        """Read from the socket once, then parse everything buffered: complete QoS 1
        PUBLISHes in one loop, anything else one packet at a time through paho. Only the
        first part of a packet cut by the end of what was read stays (in paho's parser; its
        rest wakes the selector), or everything while `hold` is set (see `buffered`)."""
        self._reads_left = 1
        rc = super().loop_read(max_packets)
        handler = self.fast_handler
        while rc == MQTTErrorCode.MQTT_ERR_SUCCESS and self._unparsed() and not self.hold:
            if handler is not None and self._in_packet["command"] == 0:
                self._rpos = self._parse_publishes(self._rbuf, self._rpos, handler)
                if not self._unparsed() or self.hold:
                    break
            rc = super().loop_read(max_packets)  # one packet (or the cut tail) via paho
        return rc

    def _parse_publishes(self, buf: bytes, pos: int, handler: FastHandler) -> int:
        """Hand every complete QoS 1 PUBLISH from ``buf[pos:]`` to ``handler``; return the
        position of the first byte not consumed."""
        end, v5 = len(buf), self._protocol == mqtt.MQTTv5
        while pos < end and buf[pos] & 0xF6 == 0x32 and not self.hold:  # PUBLISH, QoS 1
            length, i = _varint(buf, pos + 1)
            stop = i + length
            if length < 0 or stop > end:
                return pos  # the packet is not all read yet
            parts = _split_publish(buf, i, stop, v5)
            if parts is None:
                return pos  # malformed: paho's parser reports it and drops the connection
            topic, mid, j = parts
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
        """True while bytes already read from the socket wait to be parsed (after a
        `loop_read` under `hold`), or TLS has decrypted bytes in hand: the socket may not
        become readable again for them, so the caller must call ``loop_read`` again."""
        sock = self._sock
        return self._unparsed() or (isinstance(sock, ssl.SSLSocket) and sock.pending() > 0)

    def _unparsed(self) -> bool:
        return self._rpos < len(self._rbuf) and self._rsock is self._sock

    def _sock_recv(self, bufsize: int) -> bytes:
        if self._rsock is not self._sock:  # a new connection: drop the old one's bytes
            self._rbuf, self._rpos, self._rsock = b"", 0, self._sock
        if self._rpos >= len(self._rbuf):
            if not self._reads_left:  # this `loop_read` had its read: paho tries again later
                raise BlockingIOError
            self._reads_left -= 1
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
        p = bytes(self._in_packet["packet"])
        parts = _split_publish(p, 0, len(p), self._protocol == mqtt.MQTTv5)
        if parts is None:
            raise MalformedPacket("PUBLISH with a bad topic or header")  # paho disconnects
        topic, mid, start = parts
        handler(topic, p[start:], mid)
        if self._manual_ack:
            return MQTTErrorCode.MQTT_ERR_SUCCESS
        return self._send_puback(mid)


def _split_publish(buf: bytes, i: int, stop: int, v5: bool) -> tuple[str, int, int] | None:
    """(topic, message id, payload start) of a QoS 1 PUBLISH whose variable header starts at
    ``buf[i]`` and which ends at ``stop``; None when it is malformed."""
    try:
        j = i + 2 + ((buf[i] << 8) | buf[i + 1])
        topic = buf[i + 2:j].decode("utf-8")
        mid = (buf[j] << 8) | buf[j + 1]
        j += 2
        if v5:  # skip the properties
            plen, j = _varint(buf, j)
            j = j + plen if plen >= 0 else stop + 1
    except (IndexError, UnicodeDecodeError):
        return None
    return (topic, mid, j) if j <= stop else None


def _varint(buf: bytes, i: int) -> tuple[int, int]:
    """(value, position after it) of an MQTT variable byte integer at ``buf[i]``;
    value -1 when ``buf`` ends inside it."""
    value, shift, end = 0, 0, len(buf)
    while i < end:
        b = buf[i]
        i += 1
        value |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return value, i
    return -1, i
