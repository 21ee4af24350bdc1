"""The HTTP server: stdlib ThreadingHTTPServer, bounded concurrency, graceful stop."""
from __future__ import annotations

import logging
import os
import queue
import socketserver
import sys
import _thread
import threading
import time
from collections import OrderedDict
from http.server import ThreadingHTTPServer
from typing import Any, Callable

from artifactd.app import App
from artifactd.fifo import FifoGate
from artifactd.http.handler import Handler
from artifactd.http.deadline import HeadDeadlines
from artifactd.http.loop import TOO_BUSY, ConnectionLoop
from artifactd.http.throttle import LoginThrottle

log = logging.getLogger(__name__)


class PageCache:
    """Rendered index pages keyed by (repo, page, media), valid while the repository state holds.

    Least recently used pages go first once there are more than ``size`` pages or their bodies
    take more than ``max_bytes`` (a page of 2,000 versions is ~1 MB; memory stays bounded however
    many projects clients ask for).
    """

    def __init__(self, size: int = 4096, max_bytes: int = 32 << 20) -> None:
        self._data: OrderedDict[tuple[str, ...], tuple[str, bytes, str]] = OrderedDict()
        self._size = size
        self._max_bytes = max_bytes
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key: tuple[str, ...], state: str) -> tuple[bytes, str] | None:
        with self._lock:
            hit = self._data.get(key)
            if hit is None or hit[0] != state:
                return None
            self._data.move_to_end(key)
            return hit[1], hit[2]

    def put(self, key: tuple[str, ...], state: str, body: bytes, etag: str) -> None:
        if len(body) > self._max_bytes // 4:
            return  # one huge page must not push out everything else
        with self._lock:
            old = self._data.pop(key, None)
            if old is not None:
                self._bytes -= len(old[1])
            self._data[key] = (state, body, etag)
            self._bytes += len(body)
            while len(self._data) > self._size or self._bytes > self._max_bytes:
                _, (_, dropped, _) = self._data.popitem(last=False)
                self._bytes -= len(dropped)

    @property
    def nbytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._data)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()
            self._bytes = 0


class DownloadRecorder:
    """Counts downloads in memory and writes them in one transaction every few seconds.

    Recording must not cost a synchronous SQLite commit on every file served.
    """

    def __init__(self, app: App, interval: float = 2.0) -> None:
        self.app = app
        self.interval = interval
        self._pending: dict[int, tuple[int, str]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="artifactd-downloads", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def record(self, artifact_id: int, when: str) -> None:
        with self._lock:
            n, _ = self._pending.get(artifact_id, (0, when))
            self._pending[artifact_id] = (n + 1, when)

    def flush(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, {}
        if pending:
            try:
                self.app.db.record_downloads(pending)
            except Exception:
                log.exception("could not record %d downloads", len(pending))

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.flush()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        self.flush()


class Metrics:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: dict[tuple[str, int], int] = {}
        self.bytes_sent = 0
        self.started = time.time()

    def count(self, method: str, status: int, sent: int = 0) -> None:
        with self._lock:
            key = (method, status)
            self.requests[key] = self.requests.get(key, 0) + 1
            self.bytes_sent += sent

    def render(self, extra: dict[str, float]) -> str:
        lines = [
            "# HELP artifactd_http_requests_total HTTP requests by method and status.",
            "# TYPE artifactd_http_requests_total counter",
        ]
        with self._lock:
            for (m, s), n in sorted(self.requests.items()):
                lines.append(f'artifactd_http_requests_total{{method="{m}",status="{s}"}} {n}')
            lines += [
                "# HELP artifactd_http_response_bytes_total Bytes sent in response bodies.",
                "# TYPE artifactd_http_response_bytes_total counter",
                f"artifactd_http_response_bytes_total {self.bytes_sent}",
            ]
        lines += [
            "# HELP artifactd_uptime_seconds Seconds since the server started.",
            "# TYPE artifactd_uptime_seconds gauge",
            f"artifactd_uptime_seconds {time.time() - self.started:.3f}",
        ]
        for k, v in sorted(extra.items()):
            lines += [f"# TYPE {k} gauge", f"{k} {v}"]
        return "\n".join(lines) + "\n"


class ConnectionWorkers:
    """Handler threads that serve one connection after another.

    socketserver's ThreadingMixIn starts a thread for every connection, and ``Thread.start()``
    returns only once the new thread runs: under load the accept loop waited on the GIL for each
    (a uv install opens ~50 connections, most at once; thread start-up was ~40% of the server's
    GIL time in it). Here a thread whose connection ended (or went back to the connection loop)
    waits up to ``idle_timeout`` seconds for the next one, handed over through its own queue; at
    most ``max_idle`` wait at once, the rest end. New threads start without waiting for them to
    run (``_thread``), so the loop that hands connections over never waits on the GIL for one.
    """

    def __init__(self, serve: Callable[[Any, Any], None], max_idle: int = 16, idle_timeout: float = 30.0) -> None:
        self._serve = serve
        self.max_idle, self.idle_timeout = max_idle, idle_timeout
        self._lock = threading.Lock()
        self._idle: list[queue.SimpleQueue[Any]] = []  # last in, first out: the most recently busy thread
        self._closed = False
        self._live = 0

    def submit(self, request: Any, client_address: Any) -> None:
        with self._lock:
            inbox = self._idle.pop() if self._idle else None
            if inbox is None:
                self._live += 1
        if inbox is not None:
            inbox.put((request, client_address))
            return
        try:
            # Not Thread.start(): it waits until the new thread has run, and under load a new thread
            # waits for the GIL behind every busy one; the connection loop must not wait with it.
            _thread.start_new_thread(self._run, ((request, client_address),))
        except BaseException:
            with self._lock:
                self._live -= 1
            raise

    def idle(self) -> int:
        """Threads waiting for a connection."""
        with self._lock:
            return len(self._idle)

    def live(self) -> int:
        """Threads alive, busy or idle."""
        with self._lock:
            return self._live

    def close(self) -> None:
        """Idle threads end now; busy ones end after their connection."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for inbox in idle:
            inbox.put(None)

    def _run(self, job: tuple[Any, Any] | None) -> None:
        threading.current_thread().name = "artifactd-connection"  # (started by _thread: named here)
        inbox: queue.SimpleQueue[Any] = queue.SimpleQueue()
        try:
            while job is not None:
                self._serve(*job)
                job = self._next(inbox)
        finally:
            with self._lock:
                self._live -= 1

    def _next(self, inbox: queue.SimpleQueue[Any]) -> tuple[Any, Any] | None:
        with self._lock:
            if self._closed or len(self._idle) >= self.max_idle:
                return None
            self._idle.append(inbox)
        try:
            job: tuple[Any, Any] | None = inbox.get(timeout=self.idle_timeout)
            return job
        except queue.Empty:
            with self._lock:
                if inbox in self._idle:
                    self._idle.remove(inbox)
                    return None
            return inbox.get()  # submit() took this thread as it timed out: the connection is on its way


class ArtifactServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128
    slot_wait = 5.0  # seconds a new connection may wait for a free handler slot before its 503
    watch_delay = 0.5  # seconds after start-up before the watchers (config reload, drop folder) start
    worker_linger = 1.0  # seconds a worker waits for a connection's next request before the loop takes it back

    def __init__(self, app: App, address: tuple[str, int], *, max_connections: int | None = None,
                 timeout: float | None = None) -> None:
        self.app = app
        cfg = app.config.server
        self.pages = PageCache()
        self.downloads = DownloadRecorder(app)
        self.metrics = Metrics()
        self.slots = threading.BoundedSemaphore(max_connections or cfg.max_connections)
        self.request_timeout = timeout if timeout is not None else cfg.request_timeout
        self._last_reload_check = 0.0
        self.page_gate = FifoGate(1)
        self._local_only: dict[str, tuple[Any, bool]] = {}
        self.login_throttle = LoginThrottle()
        self.head_deadlines = HeadDeadlines(self.request_timeout)
        self.workers = ConnectionWorkers(self.process_request_thread)
        self._loop_serves: dict[str, tuple[Any, bool]] = {}
        super().__init__(address, Handler)
        self.loop = ConnectionLoop(self)

    def serve_forever(self, poll_interval: float = 0.5) -> None:
        """Accept and serve until shutdown(): the connection loop (artifactd/http/loop.py) plus worker threads."""
        self.loop.run(poll_interval)

    def shutdown(self) -> None:
        """Stop serve_forever() and wait for it; idle connections close, requests in progress finish."""
        self.loop.stop()

    def server_bind(self) -> None:
        # HTTPServer.server_bind would also ask DNS for the bound address's name (socket.getfqdn):
        # a reverse lookup that nothing here uses and that can stall start-up on a badly
        # configured resolver.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = port

    def local_only(self, name: str) -> bool:
        """True for a hosted repository, or a group of only such (no upstream, no waiting)."""
        return self._remembered(self._local_only, name, lambda cfg: _local_only(cfg, name, ()))

    def loop_serves(self, name: str) -> bool:
        """Index pages and files of this repository may be answered on the connection loop: any
        pypi repository. What would have to wait there raises WouldWait and goes to a worker: a
        page to render, a proxy page due for revalidation, a proxy's file not yet fetched."""
        return self._remembered(self._loop_serves, name, lambda cfg: (repo := cfg.repo(name)) is not None
                                and repo.format == "pypi")

    def _remembered(self, cache: dict[str, tuple[Any, bool]], name: str, work_out: Callable[[Any], bool]) -> bool:
        """A per-repository answer, remembered with the configuration it was worked out for.

        Compared by identity: keyed by id(cfg), an answer could outlive its configuration and be
        read for a later one allocated at the same address."""
        cfg = self.app.config
        hit = cache.get(name)
        if hit is not None and hit[0] is cfg:
            return hit[1]
        answer = work_out(cfg)
        if len(cache) > 4096:  # names of repositories that do not exist, say
            cache.clear()
        cache[name] = (cfg, answer)
        return answer

    def maybe_reload(self) -> None:
        now = time.monotonic()
        if now - self._last_reload_check < 1.0:
            return
        self._last_reload_check = now
        if self.app.reload_if_changed():
            self.pages.clear()

    def process_request(self, request: Any, client_address: Any) -> None:
        # socketserver's handle_request() path (serve_forever() accepts in the connection loop):
        # a slot for the connection, or a 503 after slot_wait.
        if not self.slots.acquire(timeout=self.slot_wait):
            try:
                request.sendall(TOO_BUSY)
            except OSError:
                pass
            self.shutdown_request(request)
            return
        try:
            self.workers.submit(request, client_address)
        except Exception:
            self.slots.release()
            raise

    def handle_error(self, request: Any, client_address: Any) -> None:
        """socketserver prints a traceback to stderr; clients that drop a connection are not errors."""
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError)):
            log.debug("connection from %s ended: %s", client_address, exc)
            return
        log.exception("error serving a connection from %s", client_address)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        parked = False
        try:
            handler_class: Any = self.RequestHandlerClass
            parked = handler_class(request, client_address, self).parked
        except Exception:
            self.handle_error(request, client_address)
        finally:
            self.app.db.release_thread()
            # An idle keep-alive connection goes back to the loop, still holding its slot.
            if not (parked and self.loop.park(request, client_address)):
                self.shutdown_request(request)
                self.slots.release()

    def server_activate(self) -> None:
        super().server_activate()
        self.downloads.start()
        self.app.config_listeners.append(self._config_changed)
        # Watchdog (config reload, drop folder) starts a moment after the server: importing and
        # starting it beside the first requests cost them ~10 ms of the GIL. Until it runs, the
        # per-request mtime check (maybe_reload) still sees a changed configuration, and the drop
        # folder's first scan picks up files that arrived meanwhile.
        self.watchers: Any = None
        self._watch_starter = threading.Timer(self.watch_delay, self._start_watchers)
        self._watch_starter.name = "artifactd-watch-start"
        self._watch_starter.daemon = True
        self._watch_starter.start()
        self.head_deadlines.start()
        self.app.hooks.startup(self.app)

    def _start_watchers(self) -> None:
        self.watchers = start_watchers(self.app, self.pages.clear)

    def _config_changed(self, cfg: Any) -> None:
        self.pages.clear()

    def server_close(self) -> None:
        super().server_close()
        self.loop.stop()
        self.loop.close()
        self.workers.close()
        starter = getattr(self, "_watch_starter", None)
        if starter is not None:
            starter.cancel()
            starter.join()
        watchers = getattr(self, "watchers", None)
        if watchers is not None:
            watchers.stop()
        if self._config_changed in self.app.config_listeners:
            self.app.config_listeners.remove(self._config_changed)
        self.downloads.stop()
        self.head_deadlines.stop()
        self.app.hooks.shutdown(self.app)

    @property
    def url(self) -> str:
        host, port = str(self.server_address[0]), int(self.server_address[1])
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{port}"


def start_watchers(app: App, on_reload: Any) -> Any:
    """Config reload and drop folder (artifactd.watch); a bad [watch] section is logged, not fatal."""
    from artifactd.errors import ConfigError
    from artifactd.watch import Watchers

    watchers = Watchers(app, on_reload)
    try:
        watchers.start()
    except (ConfigError, OSError) as exc:
        log.error("watchers not started: %s", exc)
    return watchers


def _local_only(cfg: Any, name: str, trail: tuple[str, ...]) -> bool:
    repo = cfg.repo(name)
    if repo is None or name in trail:
        return False
    if repo.type == "hosted":
        return True
    if repo.type == "group":
        return all(_local_only(cfg, m, trail + (name,)) for m in repo.members)
    return False


def tune_malloc(arenas: int = 2, mmap_threshold: int = 128 * 1024) -> dict[str, bool]:
    """Two glibc malloc settings for a long-running threaded server, as their environment
    variables would set them (a variable that is set wins; a no-op where glibc is not the C library).

    * ``M_ARENA_MAX`` (``MALLOC_ARENA_MAX``) = 2. glibc gives threads their own arenas, up to eight
      per core; every handler thread that allocates a response body or a read buffer can then keep
      its own partly used heap, resident long after the request (a few MB at 16 connections). Two
      keep allocation contention low for a server whose Python code runs one thread at a time.
    * ``M_MMAP_THRESHOLD`` (``MALLOC_MMAP_THRESHOLD_``) fixed at glibc's default, 128 KiB. Left
      alone, glibc raises it each time a block it had mmapped is freed (up to 32 MiB); blocks of
      that size then come from the heap, and what they leave there when freed stays resident. One
      256 KiB buffer from a library was enough: ~1-2 MB more after every burst of uploads or
      downloads. Set, the threshold stays put: large blocks are mapped, and unmapped on free.
      ``M_TRIM_THRESHOLD`` goes back to its default with it (glibc had raised it with the other,
      to twice the largest block freed), so free memory at the top of the heap is given back too.

    Called once before the server starts threads. Returns which were set.
    """
    done = {"arenas": False, "mmap_threshold": False}
    if not sys.platform.startswith("linux"):
        return done
    import ctypes

    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return done
    if not os.environ.get("MALLOC_ARENA_MAX"):
        done["arenas"] = bool(mallopt(-8, arenas))  # M_ARENA_MAX
    if not os.environ.get("MALLOC_MMAP_THRESHOLD_"):
        done["mmap_threshold"] = bool(mallopt(-3, mmap_threshold))  # M_MMAP_THRESHOLD
        if not os.environ.get("MALLOC_TRIM_THRESHOLD_"):
            mallopt(-1, mmap_threshold)  # M_TRIM_THRESHOLD (glibc's default is the same 128 KiB)
    return done


def make_server(app: App, host: str | None = None, port: int | None = None, **kwargs: Any) -> ArtifactServer:
    cfg = app.config.server
    server = ArtifactServer(app, (host or cfg.host, cfg.port if port is None else port), **kwargs)
    return server


def serve_in_thread(app: App, host: str = "127.0.0.1", port: int = 0, **kwargs: Any) -> tuple[ArtifactServer, threading.Thread]:
    server = make_server(app, host, port, **kwargs)
    t = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    t.start()
    return server, t



