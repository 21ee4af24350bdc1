"""The connection loop: one thread owns every idle keep-alive connection, answers index pages and sends files.

Thread per connection made the GIL the bottleneck under load. At 16 keep-alive connections a
cached index page cost ~178 µs of CPU against ~105 µs at one connection: the difference was
sixteen threads waking from ``recv``, queueing for the GIL and handing it on. Here one thread
waits on all connections with ``selectors`` (as gunicorn's gthread worker and waitress do) and:

* accepts connections, holding one of the server's slots for each (past ``max_connections`` a new
  connection waits up to ``slot_wait`` here, without a thread, then gets its 503);
* reads request heads; a ``GET``/``HEAD`` of a pypi repository's index page with no password to
  check runs right here, through the same ``Handler`` code, and its response goes out in
  non-blocking sends -- as long as the page is in the page cache and needs no network: one to
  render goes to a worker (``HandOff``), so that a burst of renders after uploads never holds up
  the other connections' requests behind the loop, and so does a proxy page due for revalidation
  (``WouldWait``: this thread is marked as one that may not wait);
* sends a file of such a repository the same way when it is on disk and at most ``LOOP_FILE_MAX``,
  with ``os.sendfile``, one chunk per turn -- unless the loop is busy (``waited``): then a worker
  does, as it does for a proxy's file still to fetch and while a plugin listens to downloads;
* hands every other request (uploads, proxies' fetches, the web UI, password logins, anything
  odd) to a worker thread with the bytes already read; the worker gives the connection back once
  no next request has come for ``worker_linger`` (at once after pages only);
* drops a connection whose next request head is not complete within ``request_timeout``
  (slowloris, idle keep-alive), counted in ``head_deadlines.dropped`` like the workers' drops,
  and one that takes none of its response for as long.

Only work that runs one request at a time anyway (cached pages, see artifactd/fifo.py; the start
of a file's send) happens on this thread.
"""
from __future__ import annotations

import base64
import binascii
import io
import logging
import os
import re
import selectors
import socket
import threading
import time
from collections import deque
from typing import TYPE_CHECKING, Any

from artifactd.auth import TOKEN_PREFIX
from artifactd.repositories.base import WouldWait, forbid_waiting

if TYPE_CHECKING:
    from artifactd.http.server import ArtifactServer

log = logging.getLogger(__name__)

_MAX_HEAD = 65536  # more than this without a complete head: the worker's parser gives the 414/431
_SWEEP = 0.25  # seconds between deadline sweeps
_TOKEN_PREFIX = TOKEN_PREFIX.encode()
TOO_BUSY = (b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 20\r\n"
            b"Connection: close\r\nRetry-After: 1\r\n\r\nserver is too busy\r\n")  # past max_connections
_PLAUSIBLE = re.compile(rb"[A-Za-z]{0,20}(?: |$)")  # how a request line starts, or a prefix of that


class HandOff(WouldWait):
    """Raised by a handler on the loop before it has answered: this request needs a worker (a page
    that is not cached: rendering one can take milliseconds, and nothing else may wait on the loop).
    A proxy page due for revalidation raises its base class, :class:`WouldWait`, the same way."""


#: Files up to this size are sent by the loop itself; larger ones by a worker. ``os.sendfile``
#: reads the file as it sends, and a read that misses the page cache waits for the disk: for a
#: wheel that is a few milliseconds at worst, for a 2 GB model file it would hold up every
#: connection the loop has.
LOOP_FILE_MAX = 8 << 20
_SENDFILE_CHUNK = 1 << 20  # per turn: one connection's file does not keep the loop to itself
#: Files go to workers while the loop's recent inline requests waited longer than this for the
#: GIL, on average (see ConnectionLoop.waited).
_CONTENDED = 0.001


class _Conn:
    __slots__ = ("sock", "addr", "buf", "deadline", "handler", "out", "file", "close_after", "writing")

    def __init__(self, sock: socket.socket, addr: Any, buf: bytes, deadline: float) -> None:
        self.sock, self.addr, self.buf, self.deadline = sock, addr, buf, deadline
        self.handler: Any = None
        self.out: memoryview | None = None  # the rest of a response the socket did not take at once
        self.file: list[int] | None = None  # [fd, offset, bytes left] of a file body still to send
        self.close_after = False
        self.writing = False  # registered for EVENT_WRITE (waiting for the client to take more)

    @property
    def sending(self) -> bool:
        return self.out is not None or self.file is not None


class _Out:
    """The inline handler's ``wfile``: a response is collected, then sent in one go."""

    __slots__ = ("parts",)

    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def write(self, data: bytes) -> int:
        self.parts.append(data)
        return len(data)

    def flush(self) -> None:
        pass


class PrefixedSocketIO(socket.SocketIO):
    """A socket's raw reader that first returns bytes the loop already read from it."""

    def __init__(self, sock: socket.socket, prefix: bytes) -> None:
        super().__init__(sock, "rb")
        self._prefix = memoryview(prefix)

    def readinto(self, b: Any) -> int | None:
        if self._prefix:
            n = min(len(b), len(self._prefix))
            b[:n] = self._prefix[:n]
            self._prefix = self._prefix[n:]
            return n
        return super().readinto(b)


def prefixed_reader(sock: socket.socket, prefix: bytes, buffering: int = io.DEFAULT_BUFFER_SIZE) -> io.BufferedReader:
    """What ``sock.makefile("rb")`` returns, reading ``prefix`` first."""
    raw = PrefixedSocketIO(sock, prefix)
    sock._io_refs += 1  # type: ignore[attr-defined]  # as makefile() counts its readers
    return io.BufferedReader(raw, buffering)


def head_end(buf: bytes) -> int:
    """Where the request head ends (after its blank line), as the stdlib's line reader sees it; -1 if not yet."""
    a = buf.find(b"\n\r\n")
    b = buf.find(b"\n\n")
    if a < 0:
        return b + 2 if b >= 0 else -1
    if b < 0 or a < b:
        return a + 3
    return b + 2


def cheap_credentials(value: bytes) -> bool:
    """An Authorization value that is checked with a hash and a lookup (a token), not a password's scrypt."""
    value = value.strip()
    scheme, _, rest = value.partition(b" ")
    scheme = scheme.lower()
    if scheme == b"bearer":
        return True
    if scheme != b"basic":
        return False
    try:
        user, _, secret = base64.b64decode(rest.strip(), validate=True).partition(b":")
    except (binascii.Error, ValueError):
        return False
    return user == b"__token__" or secret.startswith(_TOKEN_PREFIX)


class ConnectionLoop:
    def __init__(self, server: "ArtifactServer") -> None:
        self.server = server
        self._lock = threading.Lock()
        self._running = False
        self._stop = False
        self.shut = False  # stop() was called (or run() ended): workers end their connections
        self._stopped = threading.Event()
        self._stopped.set()
        self._returned: list[tuple[socket.socket, Any]] = []
        self._carry: dict[socket.socket, bytes] = {}
        self._waiting: deque[tuple[socket.socket, Any, float]] = deque()
        self._conns: dict[socket.socket, _Conn] = {}
        self._wake_r, self._wake_w = socket.socketpair()
        # Every read lands here first, and only the bytes received are copied out. recv(65536) made
        # a 64 KiB block per read and shrank it to the request's few hundred bytes: glibc split it,
        # and the rest, between blocks that stayed, grew the loop thread's heap by ~1 MB over a
        # uv install. A request head now fits Python's small-object allocator.
        self._rview = memoryview(bytearray(65536))
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self.inline_served = 0
        # How long inline requests waited for the GIL lately (wall time less the loop's own CPU
        # time, sampled; a moving average that halves every sweep). Busy workers make every recv, send
        # and SQLite call on the loop wait for the GIL again; then files, which make the most of
        # those calls, are sent by workers, which wait side by side instead of one after another
        # (200 clients mixing uploads, pages and files: file p99 ~90 ms instead of ~350 ms).
        self.waited = 0.0
        self.files_shed = 0
        self._accept_paused = False
        self._accept_warned = -1e9
        self.handed_off = 0
        self.given_back = 0

    # --- called from other threads -------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._running

    def park(self, sock: socket.socket, addr: Any) -> bool:
        """A worker gives back an idle keep-alive connection. False when the loop is not running."""
        with self._lock:
            if not self._running or self._stop:
                return False
            self._returned.append((sock, addr))
            self.given_back += 1
        self._wake()
        return True

    def take_carry(self, sock: socket.socket) -> bytes:
        """What the loop had read from a connection it handed to a worker."""
        return self._carry.pop(sock, b"")

    def stop(self) -> None:
        """Ask the loop to end and wait until it has. Before run(), the request holds: run() then returns at once."""
        with self._lock:
            self._stop = self.shut = True
            if not self._running:
                return
        self._wake()
        self._stopped.wait()

    def open_connections(self) -> int:
        """Connections the loop holds right now (idle or reading a head)."""
        return len(self._conns)

    def close(self) -> None:
        for s in (self._wake_r, self._wake_w):
            s.close()

    def _wake(self) -> None:
        try:
            self._wake_w.send(b"\0")
        except (BlockingIOError, OSError):
            pass  # already pending, or closing

    # --- the loop ------------------------------------------------------------------------
    def run(self, poll_interval: float = 0.5) -> None:
        with self._lock:
            if self._stop:  # shutdown() came first (socketserver's serve_forever behaves the same)
                self._stop = False
                return
            self._running = True  # from here on stop() waits for the finally below
            self.shut = False
            self._stopped.clear()
        srv = self.server
        sel = selectors.DefaultSelector()
        forbid_waiting()  # a proxy page due for revalidation goes to a worker, never waits here
        try:
            listener = srv.socket
            listener.setblocking(False)
            sel.register(listener, selectors.EVENT_READ, None)
            sel.register(self._wake_r, selectors.EVENT_READ, self._wake_r)
            next_sweep = time.monotonic() + _SWEEP
            self._accept_paused = False
            while not self._stop:
                events = sel.select(0.05 if self._waiting else min(poll_interval, _SWEEP))
                for key, _ in events:
                    data = key.data
                    try:
                        if data is None:
                            self._accept(sel, listener)
                        elif data is self._wake_r:
                            self._drain_wake()
                        elif data.writing:
                            self._writable(sel, data)
                        else:
                            self._readable(sel, data)
                    except Exception:  # a bug must cost one connection, never the loop (and so the server)
                        log.exception("connection loop: error on %r", data)
                        if isinstance(data, _Conn):
                            self._close(sel, data)
                if self._returned:
                    with self._lock:
                        returned, self._returned = self._returned, []
                    for sock, addr in returned:
                        self._add(sel, sock, addr, b"")
                if self._waiting:
                    self._admit(sel)
                now = time.monotonic()
                if now >= next_sweep:
                    self._sweep(sel, now)
                    next_sweep = now + _SWEEP
                    if self._accept_paused:
                        self._accept_paused = False
                        sel.register(listener, selectors.EVENT_READ, None)
                srv.service_actions()
        finally:
            with self._lock:
                self._running = False
                self.shut = True
                returned, self._returned = self._returned, []
            for conn in list(self._conns.values()):
                self._close(sel, conn)
            for sock, _addr in returned:
                self._shut(sock)
            while self._waiting:
                sock, _addr, _deadline = self._waiting.popleft()
                srv.shutdown_request(sock)
            sel.close()
            srv.app.db.release_thread()  # the connection inline requests kept (Handler.serve_inline)
            self._stop = False
            self._stopped.set()

    def _drain_wake(self) -> None:
        try:
            while self._wake_r.recv(4096):
                pass
        except (BlockingIOError, OSError):
            pass

    def _accept(self, sel: selectors.BaseSelector, listener: socket.socket) -> None:
        srv = self.server
        for _ in range(64):
            try:
                sock, addr = listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # out of file descriptors, say: pause accepting, or this would spin
                now = time.monotonic()
                if now - self._accept_warned > 10.0:
                    self._accept_warned = now
                    log.warning("accept failed, pausing new connections for %.2f s at a time: %s", _SWEEP, exc)
                sel.unregister(listener)
                self._accept_paused = True
                return
            sock.setblocking(False)
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass
            if not self._waiting and srv.slots.acquire(blocking=False):  # (never ahead of those waiting)
                self._add(sel, sock, addr, b"")
            else:
                self._waiting.append((sock, addr, time.monotonic() + srv.slot_wait))

    def _admit(self, sel: selectors.BaseSelector) -> None:
        """Connections waiting for a slot: in arrival order while slots free up; a 503 once they waited too long."""
        srv = self.server
        while self._waiting and srv.slots.acquire(blocking=False):
            sock, addr, _deadline = self._waiting.popleft()
            self._add(sel, sock, addr, b"")
        now = time.monotonic()
        while self._waiting and self._waiting[0][2] <= now:
            sock, _addr, _deadline = self._waiting.popleft()
            try:
                sock.send(TOO_BUSY)
            except OSError:
                pass
            srv.shutdown_request(sock)

    def _add(self, sel: selectors.BaseSelector, sock: socket.socket, addr: Any, buf: bytes) -> None:
        try:
            sock.setblocking(False)
            conn = _Conn(sock, addr, buf, time.monotonic() + self.server.request_timeout)
            sel.register(sock, selectors.EVENT_READ, conn)
        except (OSError, ValueError):  # closed meanwhile
            self._shut(sock)
            return
        self._conns[sock] = conn
        if buf:
            self._serve(sel, conn)

    def _shut(self, sock: socket.socket) -> None:
        self.server.shutdown_request(sock)
        self.server.slots.release()

    def _forget(self, sel: selectors.BaseSelector, conn: _Conn) -> None:
        """The loop stops watching the connection (it is closed, or a worker takes it)."""
        self._conns.pop(conn.sock, None)
        try:
            sel.unregister(conn.sock)
        except (KeyError, ValueError):
            pass
        if conn.file is not None:
            os.close(conn.file[0])
            conn.file = None

    def _close(self, sel: selectors.BaseSelector, conn: _Conn) -> None:
        self._forget(sel, conn)
        self._shut(conn.sock)

    def _sweep(self, sel: selectors.BaseSelector, now: float) -> None:
        self.waited *= 0.5  # a busy spell is forgotten within a second or two, requests or not
        for conn in [c for c in self._conns.values() if c.deadline <= now]:
            if not conn.sending:  # no complete request head in time (a slow reader is not counted here)
                self.server.head_deadlines.dropped += 1
            self._close(sel, conn)

    def _readable(self, sel: selectors.BaseSelector, conn: _Conn) -> None:
        try:
            n = conn.sock.recv_into(self._rview)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            n = 0
        if not n:
            self._close(sel, conn)
            return
        data = bytes(self._rview[:n])
        conn.buf = conn.buf + data if conn.buf else data
        self._serve(sel, conn)

    def _serve(self, sel: selectors.BaseSelector, conn: _Conn) -> None:
        """Answer the complete requests in the buffer that can be answered here; hand off at the first other."""
        while conn.buf:
            buf = conn.buf
            end = head_end(buf)
            if end < 0:
                if len(buf) > _MAX_HEAD or not _PLAUSIBLE.match(buf):
                    # Not the start of an HTTP request (a TLS hello, say): the stdlib's parser answers
                    # it at once, as it did before the loop; waiting would leave the client hanging.
                    self._hand_off(sel, conn)
                return  # wait for the rest of the head (the sweep ends a slow one)
            head = buf[:end]
            if not self._inline_ok(head):
                self._hand_off(sel, conn)
                return
            conn.buf = buf[end:]
            try:
                data, file, close = self._run_inline(conn, head)
            except WouldWait:
                conn.buf = head + conn.buf  # nothing was answered: the worker reads the request again
                self._hand_off(sel, conn)
                return
            except Exception:
                log.exception("error serving %s", conn.addr)
                self._close(sel, conn)
                return
            conn.out, conn.file, conn.close_after = memoryview(data), file, close
            if not self._send(sel, conn):
                return  # the rest goes out as the client takes it (or the connection is gone)

    def _send(self, sel: selectors.BaseSelector, conn: _Conn) -> bool:
        """Send what the socket takes of the response, and of a file one chunk per turn; True once
        all of it is out and the connection is ready for its next request. Otherwise it waits for
        EVENT_WRITE (other connections have their turn meanwhile), or is closed."""
        try:
            while conn.out is not None:
                sent = conn.sock.send(conn.out)
                conn.out = conn.out[sent:] if sent < len(conn.out) else None
            if conn.file is not None:
                fd, offset, left = conn.file
                sent = os.sendfile(conn.sock.fileno(), fd, offset, min(left, _SENDFILE_CHUNK))
                if sent == 0:  # the file is shorter than its record says: the response cannot be completed
                    raise OSError("file ended early")
                if sent < left:
                    conn.file[1:] = offset + sent, left - sent
                    return self._wait_writable(sel, conn)
                os.close(fd)
                conn.file = None
        except (BlockingIOError, InterruptedError):
            return self._wait_writable(sel, conn)
        except OSError:
            self._close(sel, conn)
            return False
        if conn.close_after:
            self._close(sel, conn)
            return False
        if conn.writing:
            sel.modify(conn.sock, selectors.EVENT_READ, conn)
            conn.writing = False
        conn.deadline = time.monotonic() + self.server.request_timeout
        return True

    def _wait_writable(self, sel: selectors.BaseSelector, conn: _Conn) -> bool:
        if not conn.writing:
            sel.modify(conn.sock, selectors.EVENT_WRITE, conn)
            conn.writing = True
        # Renewed on every turn: a client that takes its response, however slowly, is not stuck (a
        # turn without progress comes only from a spurious wake-up).
        conn.deadline = time.monotonic() + self.server.request_timeout
        return False

    def _writable(self, sel: selectors.BaseSelector, conn: _Conn) -> None:
        if self._send(sel, conn) and conn.buf:  # requests that came while the response was going out
            self._serve(sel, conn)

    def _inline_ok(self, head: bytes) -> bool:
        if not (head.startswith(b"GET /repository/") or head.startswith(b"HEAD /repository/")):
            return False
        line = head[: head.find(b"\n")].split()
        if len(line) != 3 or line[2] not in (b"HTTP/1.1", b"HTTP/1.0"):
            return False
        segs = line[1].split(b"/", 4)
        if len(segs) < 5 or segs[3] not in (b"simple", b"packages"):
            return False
        if not self.server.loop_serves(segs[2].decode("latin-1")):
            return False
        low = head.lower()
        if b"\ncontent-length:" in low or b"\ntransfer-encoding:" in low or b"\nexpect:" in low:
            return False
        at = low.find(b"\nauthorization:")
        if at >= 0:
            eol = head.find(b"\n", at + 1)
            if not cheap_credentials(head[at + 15: eol]) or low.find(b"\nauthorization:", eol) >= 0:
                return False
        if segs[3] == b"packages" and self.waited > _CONTENDED:
            self.files_shed += 1
            return False
        return True

    def _run_inline(self, conn: _Conn, head: bytes) -> tuple[bytes, list[int] | None, bool]:
        """Answer one request: the response head (and body), the file still to send, whether to close after."""
        h = conn.handler
        if h is None:
            handler_class: Any = self.server.RequestHandlerClass
            h = conn.handler = handler_class.for_loop(self.server, conn.sock, conn.addr)
        out = _Out()
        h.rfile = io.BytesIO(head)
        h.wfile = out
        h.loop_file = None
        sample = not self.inline_served & 7  # (thread_time is a system call: one request in eight)
        if sample:
            wall, cpu = time.perf_counter(), time.thread_time()
        try:
            h.serve_inline()
        except BaseException:
            if h.loop_file is not None:
                os.close(h.loop_file[0])
            raise
        self.inline_served += 1
        if sample:
            self.waited += ((time.perf_counter() - wall) - (time.thread_time() - cpu) - self.waited) * 0.5
        parts = out.parts
        return (parts[0] if len(parts) == 1 else b"".join(parts)), h.loop_file, h.close_connection

    def _hand_off(self, sel: selectors.BaseSelector, conn: _Conn) -> None:
        self._forget(sel, conn)
        self._carry[conn.sock] = conn.buf
        try:
            self.server.workers.submit(conn.sock, conn.addr)
        except Exception:
            log.exception("could not hand a connection to a worker")
            self._carry.pop(conn.sock, None)
            self._shut(conn.sock)
            return
        self.handed_off += 1  # (counted once a worker has it: a test waiting for this sees it busy)
