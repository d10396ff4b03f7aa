"""`LoopDriver`: drives one paho client's socket from the asyncio event loop (no network thread).

paho tells the driver when its socket opens, closes and wants to write; the driver registers
``loop.add_reader``/``add_writer`` for it, makes one bounded `LeanClient.loop_read` per
wakeup (one socket read: at most 16 KiB, some 140 telemetry messages; so the loop serves
HTTP, the writer and timers between two reads, however long the broker's backlog), and stops
reading altogether while paused (back-pressure: unread bytes wait in the socket and the
broker). Every paho callback, the message handler included, then runs on the loop thread;
only the connect itself runs in an executor thread, whose socket callbacks are handed to the
loop thread-safely.

Lifecycle: `attach` on the loop thread before connecting; `housekeeping` beside the
connection until cancelled; `detach` when the connection is given up.
"""

from __future__ import annotations

import asyncio
import select
import threading
from collections.abc import Callable
from typing import Any

from paho.mqtt.enums import MQTTErrorCode

from ingest.mqtt_client import LeanClient


class LoopDriver:
    """Socket plumbing between a `LeanClient` and the running event loop."""

    def __init__(self, client: LeanClient, keepalive_s: float) -> None:
        self._client = client
        self._keepalive_s = keepalive_s
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread = 0
        self._fd: int | None = None
        self._reading = False
        self._paused = False
        client.on_socket_open = self._on_socket_open
        client.on_socket_close = self._on_socket_close
        client.on_socket_register_write = self._on_register_write
        client.on_socket_unregister_write = self._on_unregister_write

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        return self._loop

    def attach(self) -> asyncio.AbstractEventLoop:
        """Bind to the running loop (call on the loop thread, before connecting)."""
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        return self._loop

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
        """One bounded `LeanClient.loop_read` per wakeup; epoll wakes us for the socket's next
        bytes, and what is already in hand (TLS) continues after other callbacks had a turn."""
        client = self._client
        if client.loop_read() != MQTTErrorCode.MQTT_ERR_SUCCESS or self._paused:
            return
        if client.buffered() and self._loop is not None:
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

    async def housekeeping(self) -> None:
        """Keepalive pings and retries; run beside the connection until cancelled."""
        while True:
            await asyncio.sleep(min(1.0, self._keepalive_s / 4))
            fd = self._fd
            if fd is None:
                continue
            if self._paused and select.select([fd], [], [], 0)[0]:
                self._client.note_alive()  # unread bytes wait: the broker is there
            self._client.loop_misc()

    def detach(self) -> None:
        """Stop watching the socket (after the client disconnected)."""
        if self._fd is not None and self._loop is not None:
            self._loop.remove_reader(self._fd)
            self._loop.remove_writer(self._fd)
        self._reading = False
