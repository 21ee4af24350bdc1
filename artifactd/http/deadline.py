"""A deadline for reading each request head (request line + headers): slowloris protection.

The socket timeout (``request_timeout``) bounds each recv, so a client that drips
one byte at a time never trips it. One reaper thread per server keeps
``{connection: deadline}`` for connections that are waiting for or reading a
request head, and shuts down those past their deadline; the handler then sees
EOF and ends. Arming and disarming is a dict update under a lock, per request.
"""
from __future__ import annotations

import logging
import socket
import threading
import time

log = logging.getLogger(__name__)


class HeadDeadlines:
    def __init__(self, limit: float, interval: float = 0.25) -> None:
        self.limit = limit
        self.interval = min(interval, max(limit / 4, 0.01))
        self._armed: dict[socket.socket, float] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="artifactd-head-deadlines", daemon=True)
        self.dropped = 0

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def arm(self, conn: socket.socket) -> None:
        with self._lock:
            self._armed[conn] = time.monotonic() + self.limit

    def disarm(self, conn: socket.socket) -> None:
        with self._lock:
            self._armed.pop(conn, None)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            now = time.monotonic()
            with self._lock:
                late = [c for c, t in self._armed.items() if t <= now]
                for c in late:
                    del self._armed[c]
            for c in late:
                self.dropped += 1
                try:
                    c.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
