"""Request handling: parse, route, call the service, render. Status mapping lives here only."""
from __future__ import annotations

import email.utils
import hashlib
import json
import logging
import os
import re
import socket
import time
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any, Callable
from urllib.parse import quote, unquote, urlsplit

from artifactd import __version__
from artifactd.errors import (
    ArtifactdError,
    BadRequest,
    LengthRequired,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    RangeNotSatisfiable,
    RepositoryNotFound,
    TooManyRequests,
)
from artifactd.formats.generic.paths import join_segments, parse_matrix, split_matrix
from artifactd.formats.pypi import simple
from artifactd.formats.pypi.names import normalize
from artifactd.http import throttle
from artifactd.http.fastparse import FastParseMixin
from artifactd.http.loop import LOOP_FILE_MAX, HandOff, prefixed_reader
from artifactd.model import ANONYMOUS, Principal, StoredFile, isotime, utcnow
from artifactd.repositories.base import FileFetch, WouldWait, open_or_fetch, project_state

if TYPE_CHECKING:
    from artifactd.http.server import ArtifactServer

log = logging.getLogger("artifactd.http")

_BAD_HEADER_CHARS = re.compile(r"[\r\n\x00]")
_NOT_PLAIN = re.compile(r"[?#%\t\r\n]")
_DRAIN_LIMIT = 1 << 20
_BIG_BODY = 256 * 1024
IMMUTABLE = "max-age=31536000, immutable"
REVALIDATE = "max-age=0, must-revalidate"
_DATE_CACHE: tuple[int, str] = (0, "")


def _segments(raw_path: str) -> list[str]:
    """Split the path and percent-decode each segment exactly once; refuse traversal tricks."""
    # Fast path (most requests): a plain absolute path, which urlsplit() and unquote() would
    # return unchanged; they cost ~4 µs of a ~50 µs cached page request.
    plain = raw_path.startswith("/") and not raw_path.startswith("//") and _NOT_PLAIN.search(raw_path) is None
    if plain and "\\" not in raw_path and "\x00" not in raw_path:
        segs = raw_path[1:].split("/")
        if "" not in segs[:-1] and "." not in segs and ".." not in segs:
            return segs  # nothing to decode, nothing to refuse
    path = raw_path if plain else urlsplit(raw_path).path
    if not path.startswith("/"):
        raise BadRequest("request path must be absolute")
    segs = path.split("/")[1:]
    out = []
    for i, seg in enumerate(segs):
        try:
            dec = seg if plain else unquote(seg, errors="strict")
        except UnicodeDecodeError:
            raise BadRequest("request path is not valid UTF-8") from None
        if dec in (".", "..") or "/" in dec or "\\" in dec or "\x00" in dec or _BAD_HEADER_CHARS.search(dec):
            raise BadRequest("invalid path segment")
        if dec == "" and i != len(segs) - 1:
            raise BadRequest("empty path segment")
        out.append(dec)
    return out


class Handler(FastParseMixin, BaseHTTPRequestHandler):
    server: "ArtifactServer"
    protocol_version = "HTTP/1.1"
    server_version = f"artifactd/{__version__}"
    sys_version = ""
    disable_nagle_algorithm = True  # headers and body go in separate sends: no 40 ms delayed-ACK stalls

    # --- plumbing ---------------------------------------------------------------------
    parked = False  # True once handle() gave the connection back to the server's connection loop
    on_loop = False  # answering on the connection loop's thread (serve_inline), not a worker's
    loop_kind = False  # the last request was an index page the connection loop answers when cached
    only_pages = True  # every request on this connection, in this handler, was such a page
    loop_file: list[int] | None = None  # on the loop: [fd, offset, length] of a body still to send

    @classmethod
    def for_loop(cls, server: "ArtifactServer", sock: socket.socket, client_address: Any) -> "Handler":
        """A handler for the connection loop's inline requests (``serve_inline``): no thread, no setup."""
        h = cls.__new__(cls)
        h.server, h.request, h.connection, h.client_address = server, sock, sock, client_address
        h.timeout = server.request_timeout  # type: ignore[misc]
        h.close_connection = True
        h.on_loop = True
        return h

    def serve_inline(self) -> None:
        """One request whose whole head is in ``rfile``; the response goes to ``wfile`` (artifactd/http/loop.py)."""
        try:
            self.raw_requestline = self.rfile.readline(65537)
            if FastParseMixin.parse_request(self):  # no head deadline to disarm: the loop keeps it
                getattr(self, "do_" + self.command)()
        finally:
            # The loop is one thread that answers requests back to back: it keeps its database
            # connection between them (taking and returning it was ~3 us of each request).
            self.server.app.db.end_request()

    def setup(self) -> None:
        self.timeout = self.server.request_timeout  # type: ignore[misc]  # per-server socket timeout
        super().setup()
        loop = getattr(self.server, "loop", None)
        buf = loop.take_carry(self.connection) if loop is not None else b""
        if buf:  # the connection loop had read the start of the stream
            self.rfile.close()
            self.rfile = prefixed_reader(self.connection, buf, self.rbufsize if self.rbufsize > 0 else 8192)

    def handle(self) -> None:
        self.close_connection = True
        self.handle_one_request()
        loop = getattr(self.server, "loop", None)
        while not self.close_connection:
            if loop is not None and loop.shut:
                return  # the server is shutting down: the connection ends after the request in progress
            if loop is not None and loop.running and self._idle():
                self.parked = True  # the server gives it to the loop once this handler has finished
                return
            self.handle_one_request()

    def _idle(self) -> bool:
        """No next request within the server's ``worker_linger``: the connection loop can wait for it instead of this thread.

        A client that has just been sent a file usually asks for the next one at once (uv keeps ~50
        connections busy with downloads); handing each such connection back to the loop and out again
        made a uv install ~6% slower than keeping it here for a moment. A worker sends a file when the
        loop is busy (or the file is large): under load, connections that download then stay on
        workers, where they do not queue behind the loop for the GIL.
        """
        # A connection that came for pages only (a page to render, handed over by the loop) goes
        # back at once: the loop answers the cached ones, and a client asking for pages non-stop
        # would otherwise stay on this thread. Once it has asked for anything else (a file), the
        # worker lingers, and serves its pages too while it is busy.
        self.only_pages = self.only_pages and self.loop_kind
        linger = 0.0 if self.only_pages else self.server.worker_linger
        try:
            self.connection.settimeout(linger)
            try:
                ahead = self.rfile.peek(1)  # type: ignore[attr-defined]  # what is buffered, or one read
            except TimeoutError:
                return True  # (this rfile is done with: a reader that timed out refuses further reads)
            finally:
                self.connection.settimeout(self.timeout)
        except (OSError, ValueError):
            return False
        # Nothing after a wait is the client's close: the connection ends here, not through the loop.
        return not ahead and linger <= 0

    def handle_one_request(self) -> None:
        # The whole request head must arrive within request_timeout (slowloris; http/deadline.py).
        deadlines = getattr(self.server, "head_deadlines", None)
        if deadlines is not None:
            deadlines.arm(self.connection)
        try:
            super().handle_one_request()
        except (ConnectionResetError, BrokenPipeError):
            # The client went away between requests (a reset instead of a close): nothing to answer.
            self.close_connection = True
        finally:
            if deadlines is not None:
                deadlines.disarm(self.connection)
            # No database connection is held while a keep-alive connection waits for its next request.
            self.server.app.db.release_thread()

    def parse_request(self) -> bool:
        ok = super().parse_request()
        deadlines = getattr(self.server, "head_deadlines", None)
        if deadlines is not None:
            deadlines.disarm(self.connection)
        return ok

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        log.info("%s - %s", self.address_string(), format % args)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        log.debug('%s "%s" %s %s', self.address_string(), self.requestline, code, size)

    def date_time_string(self, timestamp: float | None = None) -> str:
        # formatdate() for the Date header of every response was ~7% of a cached page's CPU.
        if timestamp is not None:
            return super().date_time_string(timestamp)
        now = int(time.time())
        cached = _DATE_CACHE
        if cached[0] != now:
            cached = (now, email.utils.formatdate(now, usegmt=True))
            globals()["_DATE_CACHE"] = cached
        return cached[1]

    def send_header(self, keyword: str, value: str) -> None:
        if _BAD_HEADER_CHARS.search(keyword) or _BAD_HEADER_CHARS.search(str(value)):
            raise ValueError(f"refusing to send header {keyword!r} with CR/LF/NUL")
        super().send_header(keyword, value)

    def _body_length(self) -> int:
        try:
            return int(self.headers.get("Content-Length") or 0)
        except ValueError:
            return 0

    def _drain_or_close(self) -> None:
        """Before an early answer to a request with a body: read a small body, or close."""
        if self.command not in ("POST", "PUT", "PATCH"):
            return
        if getattr(self, "_body_consumed", False):
            return
        n = self._body_length()
        if self.headers.get("Transfer-Encoding") or n > _DRAIN_LIMIT:
            self.close_connection = True
            return
        try:
            while n > 0:
                chunk = self.rfile.read(min(n, 65536))
                if not chunk:
                    break
                n -= len(chunk)
        except OSError:
            self.close_connection = True
        self._body_consumed = True

    def respond(self, status: int, body: bytes = b"", content_type: str = "text/plain; charset=utf-8",
                headers: dict[str, str] | None = None, reason: str | None = None) -> None:
        self._drain_or_close()
        headers = headers or {}
        if self.request_version != "HTTP/0.9" and not any(k.lower() == "connection" for k in headers):
            self._head(status, reason, content_type, len(body), headers)
        else:
            self.send_response(status, reason)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for k, v in headers.items():
                self.send_header(k, v)
            if self.close_connection:
                self.send_header("Connection", "close")
        if self.request_version == "HTTP/0.9":  # no headers at all
            self.end_headers()
            if self.command != "HEAD" and body:
                self.wfile.write(body)
        else:
            # Headers and body in one send: one syscall (and one GIL release) instead of two.
            self._headers_buffer.append(b"\r\n")
            if self.command != "HEAD" and body:
                self._headers_buffer.append(body)
            if len(body) > _BIG_BODY:
                with self.server.page_gate.released():  # a slow reader must not hold up other pages
                    self.flush_headers()
            else:
                self.flush_headers()
        self.server.metrics.count(self.command, status, len(body))

    def _head(self, status: int, reason: str | None, content_type: str, length: int, headers: dict[str, str]) -> None:
        """What send_response + send_header for each header would buffer, built as one string.

        Eleven send_header calls (two regex checks and an encode each) were a sixth of a cached
        page request's CPU. The same checks run once over all the names and values.
        """
        self.log_request(status)
        if reason is None:
            reason = self.responses[status][0] if status in self.responses else ""
        parts = [f"{self.protocol_version} {status} {reason}\r\nServer: {self.version_string()}\r\n"
                 f"Date: {self.date_time_string()}\r\nContent-Type: {content_type}\r\n"
                 f"Content-Length: {length}\r\n"]
        for k, v in headers.items():
            parts.append(f"{k}: {v}\r\n")
        if self.close_connection:
            parts.append("Connection: close\r\n")
        checked = "\t".join((reason, content_type, *headers, *map(str, headers.values())))
        if _BAD_HEADER_CHARS.search(checked):
            raise ValueError("refusing to send a header or reason with CR/LF/NUL")
        if not hasattr(self, "_headers_buffer"):
            self._headers_buffer = []
        self._headers_buffer.append("".join(parts).encode("latin-1", "strict"))

    def version_string(self) -> str:
        return self.server_version  # sys_version is empty: no Python version in the Server header

    def send_error_response(self, exc: ArtifactdError) -> None:
        status = exc.http_status
        message = exc.message
        headers: dict[str, str] = {}
        if status == 401:
            headers["WWW-Authenticate"] = 'Basic realm="artifactd"'
        if getattr(exc, "retry_after", None):
            headers["Retry-After"] = str(exc.retry_after)  # type: ignore[attr-defined]
        if isinstance(exc, PayloadTooLarge):
            self.close_connection = True
        if isinstance(exc, RangeNotSatisfiable) and getattr(exc, "length", None) is not None:
            headers["Content-Range"] = f"bytes */{exc.length}"  # type: ignore[attr-defined]
        # The reason phrase carries the message (twine prints it); latin-1 safe, one line.
        reason = _latin1(message)[:300]
        accept = self.headers.get("Accept", "") if self.headers else ""
        if "application/json" in accept:
            # As the public index answers uploads: uv prints "Server says: <code>".
            body = json.dumps({"code": f"{status} {message}", "message": message, "status": status}).encode()
            ctype = "application/json"
        else:
            body = (reason + "\n").encode("latin-1")
            ctype = "text/plain; charset=latin-1"
        self.respond(status, body, ctype, headers, reason=reason)

    def _guard(self, fn: Callable[[], None]) -> None:
        self._body_consumed = False
        self.loop_kind = False
        self.__dict__.pop("_principal", None)  # one connection carries many requests
        try:
            self.server.maybe_reload()
            fn()
        except WouldWait:
            raise  # only on the connection loop: the request goes to a worker, unanswered
        except ArtifactdError as exc:
            if exc.http_status >= 500:
                log.warning("%s %s: %s", self.command, self.path, exc.message)
            self.send_error_response(exc)
        except (BrokenPipeError, ConnectionResetError, socket.timeout):
            self.close_connection = True
        except Exception:
            log.exception("unhandled error serving %s %s", self.command, self.path)
            self.close_connection = True
            try:
                self.respond(500, b"internal server error\n")
            except OSError:
                pass

    def _dispatch(self, fallback: Callable[[], None]) -> None:
        if _is_oci_path(self.path):  # the OCI distribution API lives at the host root
            from artifactd.http import oci

            return self._guard(lambda: oci.dispatch(self))
        self._guard(fallback)

    def do_GET(self) -> None:
        self._dispatch(self._get)

    def do_HEAD(self) -> None:
        self._dispatch(self._get)

    def do_POST(self) -> None:
        self._dispatch(self._post)

    def do_PUT(self) -> None:
        self._dispatch(self._put)

    def do_DELETE(self) -> None:
        self._dispatch(self._delete)

    def do_PATCH(self) -> None:
        self._dispatch(lambda: self._unsupported("PATCH"))

    def _unsupported(self, method: str) -> None:
        raise MethodNotAllowed(f"{method} is not supported here")

    # --- auth ------------------------------------------------------------------------------
    def principal(self) -> Principal:
        if not hasattr(self, "_principal"):
            self._principal = throttle.authenticate(self.server.app, getattr(self.server, "login_throttle", None),
                                                    self.headers.get("Authorization"), self.client_address[0])
        return self._principal

    def require(self, action: str, repo: str) -> Principal:
        app = self.server.app
        if action == "read":
            try:
                p = self.principal()
            except TooManyRequests:
                raise
            except ArtifactdError:
                p = ANONYMOUS
                cfg = app.config.repo(repo)
                anon = cfg.anonymous_read if cfg and cfg.anonymous_read is not None else app.config.server.anonymous_read
                if not anon:
                    raise
            app.require(p, "read", repo)
            return p
        p = self.principal()
        app.require(p, action, repo)
        return p

    # The /api/v1 and /ui modules load with their first request, not at start-up.
    def _api(self, segs: list[str]) -> None:
        from artifactd.http import api

        return api.dispatch(self, segs)

    def _web(self, segs: list[str]) -> None:
        from artifactd.web import routes as web

        return web.dispatch(self, segs)

    # --- GET/HEAD routing ----------------------------------------------------------------
    def _get(self) -> None:
        segs = _segments(self.path)
        if len(segs) >= 3 and segs[0] == "repository" and segs[2] == "simple" and not self.on_loop:
            self.loop_kind = self.server.loop_serves(segs[1])  # a page the loop answers once cached (and fresh)
            if self.server.local_only(segs[1]):
                # Index pages of hosted/group repositories are pure CPU (SQLite reads, rendering,
                # one send): run them one at a time, in arrival order (see artifactd/fifo.py).
                with self.server.page_gate:
                    return self._route_get(segs)
        return self._route_get(segs)

    def _route_get(self, segs: list[str]) -> None:
        if segs[:2] == ["api", "v1"]:
            return self._api(segs[2:])
        if segs[:1] == ["-"]:
            return self._internal(segs[1:])
        if segs == [""]:
            return self._redirect("/ui/")
        if segs[:1] == ["ui"]:
            return self._web(segs[1:])
        if segs[:1] != ["repository"]:
            raise NotFound("not found")
        rest = segs[1:]
        if not rest or rest == [""]:
            return self._repository_list()
        name = rest[0]
        repo = self.server.app.repository(name)
        self.require("read", name)
        sub = rest[1:]
        if not sub:
            return self._redirect(f"/repository/{quote(name)}/")
        if repo.config.format == "generic":
            return self._generic_get(name)
        if repo.config.format == "docker" and sub != [""]:
            raise NotFound(f"{name!r} is an image registry: pull through /v2/{name}/...")
        if sub[0] == "simple":
            if len(sub) == 1:
                return self._redirect(f"/repository/{quote(name)}/simple/")
            if sub[1:] == [""]:
                return self._root_page(repo)
            project = sub[1]
            norm = normalize(project)
            if project != norm or len(sub) != 3 or sub[2] != "":
                if len(sub) > 3 or (len(sub) == 3 and sub[2] != ""):
                    raise NotFound("not found")
                return self._redirect(f"/repository/{quote(name)}/simple/{quote(norm)}/")
            return self._project_page(repo, norm)
        if sub[0] == "packages" and len(sub) == 4:
            project, _version, filename = sub[1], sub[2], sub[3]
            norm = normalize(project)
            if filename.endswith(".metadata"):
                stored = repo.open_metadata(norm, filename[: -len(".metadata")])
                return self._send_file(stored, None, name)
            if self.command == "GET" and not self.headers.get("Range"):
                result, art = open_or_fetch(repo, norm, filename)
                if not isinstance(result, StoredFile):
                    return self._send_fetch(result, name)
                return self._send_file(result, art, name)
            stored, art = repo.open_file(norm, filename)  # HEAD/Range on a proxy: cache it first
            return self._send_file(stored, art, name)
        if sub == [""]:
            return self._repository_info(name)
        raise NotFound("not found")

    def _redirect(self, location: str) -> None:
        if _BAD_HEADER_CHARS.search(location):
            raise BadRequest("invalid redirect target")
        self.respond(301, b"", headers={"Location": location})

    def _internal(self, segs: list[str]) -> None:
        app = self.server.app
        if segs == ["health"]:
            checks = [{"name": "database", "ok": True, "detail": ""}]
            try:
                app.db.con.execute("SELECT 1").fetchone()
            except Exception as exc:  # pragma: no cover - reported, not raised
                checks[0] = {"name": "database", "ok": False, "detail": str(exc)}
            checks.append({"name": "blobstore", "ok": os.access(app.layout.blobs, os.W_OK), "detail": str(app.layout.blobs)})
            checks.extend(app.hooks.health_checks(app))
            ok = all(c.get("ok") for c in checks)
            body = json.dumps({"status": "ok" if ok else "fail", "version": __version__, "checks": checks}).encode()
            return self.respond(200 if ok else 503, body, "application/json", {"Cache-Control": "no-store"})
        if segs == ["metrics"]:
            extra = {"artifactd_page_cache_entries": float(len(self.server.pages._data))}
            for repo in app.config.repositories:
                count, size = app.db.count_artifacts(repo)
                extra[f'artifactd_repository_files{{repository="{repo}"}}'] = float(count)
                extra[f'artifactd_repository_bytes{{repository="{repo}"}}'] = float(size)
            text = self.server.metrics.render(extra).encode()
            return self.respond(200, text, "text/plain; version=0.0.4; charset=utf-8", {"Cache-Control": "no-store"})
        raise NotFound("not found")

    def _repository_list(self) -> None:
        app = self.server.app
        out = []
        for cfg in app.config.repositories.values():
            try:
                self.require("read", cfg.name)
            except ArtifactdError:
                continue
            out.append({"name": cfg.name, "type": cfg.type, "format": cfg.format,
                        "url": f"/repository/{cfg.name}/"})
        self.respond(200, json.dumps(out, indent=1).encode(), "application/json", {"Cache-Control": REVALIDATE})

    def _repository_info(self, name: str) -> None:
        from artifactd import service

        info = service.describe_repository(self.server.app, name)
        self.respond(200, json.dumps(info, indent=1).encode(), "application/json", {"Cache-Control": REVALIDATE})

    # --- index pages -------------------------------------------------------------------------
    def _negotiate(self) -> str:
        media = simple.negotiate(self.headers.get("Accept"))
        if media is None:
            raise ArtifactdError("none of the offered types (PEP 691 JSON, HTML) is acceptable", status=406)
        return media

    def _page(self, key: tuple[str, ...], state: str, render: Callable[[], bytes], media: str,
              cache_control: str) -> None:
        cached = self.server.pages.get(key, state)
        if cached is None:
            if self.on_loop:
                raise HandOff  # rendering is a worker's job: the loop only answers from the cache
            body = render()
            etag = '"' + hashlib.sha256(body).hexdigest()[:40] + '"'
            self.server.pages.put(key, state, body, etag)
        else:
            body, etag = cached
        headers = {"ETag": etag, "Vary": "Accept", "Cache-Control": cache_control}
        if _etag_matches(self.headers.get("If-None-Match"), etag):
            return self._not_modified(headers)
        self.respond(200, body, simple.content_type(media), headers)

    def _not_modified(self, headers: dict[str, str]) -> None:
        """304 with the validators and caching headers a 200 would carry, and no body."""
        self._drain_or_close()
        self.send_response(304)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", "0")
        self.end_headers()
        self.server.metrics.count(self.command, 304)

    def _cache_control(self, repo: Any) -> str:
        max_age = getattr(repo, "page_max_age", 0)
        return f"max-age={int(max_age)}, must-revalidate" if max_age else REVALIDATE

    def _root_page(self, repo: Any) -> None:
        media = self._negotiate()
        self._page((repo.name, "", media), repo.state(),
                   lambda: simple.render_root(repo.projects(), media), media, self._cache_control(repo))

    def _project_page(self, repo: Any, norm: str) -> None:
        media = self._negotiate()
        state = project_state(repo, norm)  # a proxy revalidates here, at most once per TTL
        self._page((repo.name, norm, media), state,
                   lambda: simple.render_project(repo.project(norm), media), media, self._cache_control(repo))

    # --- files -------------------------------------------------------------------------------
    def _send_file(self, f: StoredFile, art: Any, repo: str, *, cache_control: str = IMMUTABLE,
                   extra: dict[str, str] | None = None) -> None:
        """Serve a blob: ETag/304, HEAD, a single Range (206/416) or If-Range, then sendfile.

        Index files are immutable (their names are never reused); generic paths pass
        ``cache_control=REVALIDATE`` because a path may be overwritten.
        """
        if self.on_loop and art is not None and self.server.app.hooks.listens("artifactd_after_download"):
            raise HandOff  # a plugin's download hook may take its time: not on the loop
        etag = f'"{f.sha256}"'
        last_modified = email.utils.formatdate(f.mtime, usegmt=True)
        headers = {
            "ETag": etag,
            "Last-Modified": last_modified,
            "Accept-Ranges": "bytes",
            "Cache-Control": cache_control,
            **(extra or {}),
        }
        if _etag_matches(self.headers.get("If-None-Match"), etag):
            return self._not_modified(headers)
        start, end = 0, f.size - 1
        status = 200
        rng = self.headers.get("Range")
        if rng and _if_range_ok(self.headers.get("If-Range"), etag, last_modified):
            parsed = _parse_range(rng, f.size)
            if isinstance(parsed, str):
                err = RangeNotSatisfiable(f"range {rng!r} not satisfiable for {f.size} bytes")
                err.length = f.size  # type: ignore[attr-defined]
                raise err
            if parsed is not None:
                start, end = parsed
                status = 206
                headers["Content-Range"] = f"bytes {start}-{end}/{f.size}"
        length = max(0, end - start + 1)
        if self.on_loop and length > LOOP_FILE_MAX and self.command != "HEAD":
            raise HandOff  # a cold read of a large file would hold up every connection: a worker's job
        try:
            fh = open(f.path, "rb")
        except FileNotFoundError:
            raise NotFound("file is missing from the store") from None
        with fh:
            self.sendfile_response(fh, status, start, length, headers, f.content_type)
        if art is not None and status == 200 and self.command != "HEAD" and length > 0:
            self.server.downloads.record(art.id, isotime(utcnow()))
            self.server.app.hooks.after_download(repo, art, True)

    def sendfile_response(self, fh: Any, status: int, start: int, length: int, headers: dict[str, str],
                          content_type: str = "application/octet-stream") -> None:
        """Headers, then ``length`` bytes of ``fh`` from ``start`` with sendfile (nothing for HEAD)."""
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(length))
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        if self.command == "HEAD" or length == 0:
            self.server.metrics.count(self.command, status)
            return
        if self.on_loop:  # the loop sends the bytes as the client takes them (artifactd/http/loop.py)
            self.loop_file = [os.dup(fh.fileno()), start, length]
            self.server.metrics.count(self.command, status, length)
            return
        self.wfile.flush()
        # The file is open and the headers sent: hand the database connection back before a
        # send that lasts as long as the client reads (uv downloads ~50 files at once, and each
        # connection held meanwhile is ~0.2 MB of SQLite caches).
        self.server.app.db.set_aside()
        sent = self.connection.sendfile(fh, start, length)
        if sent != length:
            self.close_connection = True
        self.server.metrics.count(self.command, status, length)

    def _send_fetch(self, fetch: FileFetch, repo: str) -> None:
        """A proxy's first download of a file: small files are verified before the answer
        (a mismatch is a clean 502); large ones are streamed while written, the last chunk
        held back until the sha256 is verified, so a mismatch closes the connection early."""
        try:
            length = fetch.start()
            if length is None or not fetch.stream_to_client:
                stored, art = fetch.run(None)
                return self._send_file(stored, art, repo)
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(length))
            self.send_header("ETag", f'"{fetch.sha256}"')
            self.send_header("Last-Modified", email.utils.formatdate(usegmt=True))
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("Cache-Control", IMMUTABLE)
            self.end_headers()
        except BaseException:
            # Also a client gone before the headers went out: the upstream response goes back to
            # the pool (a bounded one when the repository sets connections) and the file's other
            # waiters are told.
            fetch.cancel()
            raise
        try:
            _, art = fetch.run(self.wfile.write)
        except ArtifactdError as exc:
            # Headers are gone: the only honest signal left is an incomplete body.
            log.warning("%s %s: aborted after the headers: %s", self.command, self.path, exc.message)
            self.close_connection = True
            self.server.metrics.count(self.command, 502)
            return
        self.server.metrics.count(self.command, 200, length)
        if art is not None:
            self.server.downloads.record(art.id, isotime(utcnow()))

    # --- POST: uploads ---------------------------------------------------------------------
    def _post(self) -> None:
        from artifactd import service

        segs = _segments(self.path)
        if segs[:2] == ["api", "v1"]:
            return self._api(segs[2:])
        if segs[:1] == ["ui"]:
            return self._web(segs[1:])
        if segs[:1] != ["repository"] or len(segs) < 2:
            raise NotFound("not found")
        name = segs[1]
        sub = [s for s in segs[2:] if s != ""]
        cfg = self.server.app.config.repo(name)
        if cfg is None:
            raise RepositoryNotFound(f"no repository named {name!r}")
        if sub and sub[0] == "simple":
            raise MethodNotAllowed("uploads go to /repository/<repo>/ or /repository/<repo>/legacy/, not the simple index")
        if sub not in ([], ["legacy"]):
            raise NotFound("not found")
        if cfg.format != "pypi":
            raise MethodNotAllowed(f"repository {name!r} does not take legacy PyPI uploads")
        principal = self.require("write", name)
        self.server.app.db.set_aside()  # no database connection held while the body streams in
        self._body_consumed = True  # the upload reader owns the body from here on
        try:
            result = service.receive_legacy_upload(self.server.app, name, self.rfile, self.headers, principal,  # type: ignore[arg-type]
                                                   address=self.client_address[0])
        except service.NoOp:
            return self.respond(200, b"OK\n")
        except ArtifactdError:
            # The body may be partly unread: do not reuse the connection.
            self.close_connection = True
            raise
        art = result.artifact
        msg = "OK: stored" if result.created else "OK: already stored (same content)"
        self.respond(200, f"{msg} {art.filename} sha256={art.sha256}\n".encode())


    # --- generic repositories: PUT/GET/HEAD/DELETE /repository/<repo>/<path>[;k=v...] ------------
    def _generic_target(self) -> tuple[str, str, dict[str, list[str]]]:
        """(repo, relative path, matrix properties) of a ``/repository/<repo>/<path>`` request."""
        raw, matrix = split_matrix(urlsplit(self.path).path)
        segs = _segments(raw)
        if segs[:1] != ["repository"] or len(segs) < 2 or not segs[1]:
            raise NotFound("not found")
        return segs[1], join_segments(segs[2:]), parse_matrix(matrix)

    def base_url(self) -> str:
        cfg = self.server.app.config.server
        if cfg.base_url:
            return cfg.base_url.rstrip("/")
        host = self.headers.get("Host") or self.server.url.removeprefix("http://")
        return "http://" + _BAD_HEADER_CHARS.sub("", host)

    def _json(self, status: int, obj: Any, headers: dict[str, str] | None = None) -> None:
        body = json.dumps(obj, indent=1, default=str).encode()
        self.respond(status, body, "application/json", {"Cache-Control": "no-store", **(headers or {})})

    def _generic_get(self, name: str) -> None:
        from artifactd import generic_service

        app = self.server.app
        _, path, filters = self._generic_target()
        art = None
        if path and not path.endswith("/"):
            art = generic_service.lookup(app, name, path)
        if art is None:
            listing = generic_service.folder_listing(app, name, path)
            if listing is None:
                raise NotFound(f"{path} not found in {name}")
            return self._json(200, listing)
        if filters:
            props = app.db.properties(art.id)
            if not all(set(v) <= set(props.get(k, [])) for k, v in filters.items()):
                raise NotFound(f"{path} in {name} does not have the requested properties")
        self._send_generic(art, name)

    def _send_generic(self, art: Any, repo: str) -> None:
        """Serve a generic file: revalidated (a path may be overwritten), with its checksum header."""
        from artifactd.repositories.hosted import stored

        f = stored(self.server.app, art.sha256, art.size)
        self._send_file(f, art, repo, cache_control=REVALIDATE, extra={"X-Checksum-Sha256": f.sha256})

    def _put(self) -> None:
        from artifactd import generic_service

        segs = _segments(split_matrix(urlsplit(self.path).path)[0])
        if segs[:2] == ["api", "v1"]:
            return self._api(_segments(self.path)[2:])
        name, path, props, principal = self._generic_write(
            "write", "repository {name!r} takes uploads by POST (legacy upload API), not PUT")
        app = self.server.app
        if self.headers.get("Transfer-Encoding") or self.headers.get("Content-Length") is None:
            self.close_connection = True
            raise LengthRequired("PUT needs a Content-Length (chunked uploads are not accepted)")
        try:
            length = int(self.headers["Content-Length"])
            if length < 0:
                raise ValueError
        except ValueError:
            self.close_connection = True
            raise BadRequest("invalid Content-Length") from None
        if not path or path.endswith("/"):
            raise BadRequest("PUT needs a file path, not a folder")
        limit = generic_service.max_upload(app, name)
        if length > limit:
            raise PayloadTooLarge(f"file of {length} bytes exceeds the size limit of {limit} bytes")
        checksums = {algo: self.headers[h] for h, algo in generic_service.CHECKSUM_HEADERS.items() if self.headers.get(h)}
        app.db.set_aside()  # no database connection held while the body streams in
        self._body_consumed = True  # the upload reads the body from here on
        try:
            result = generic_service.receive_file(app, name, path, self.rfile, length, properties=props,
                                                  checksums=checksums, principal=principal,
                                                  address=self.client_address[0])
        except (EOFError, ConnectionError, TimeoutError):
            # The client went away mid-body: nothing was stored, the temporary file is gone.
            # (Disk errors are not caught here: ENOSPC is 507, anything else a logged 500.)
            self.close_connection = True
            return
        except ArtifactdError:
            self.close_connection = True
            raise
        out = generic_service.describe(app, result.artifact, result.properties, base_url=self.base_url())
        out["outcome"] = result.outcome
        location = f"/repository/{quote(name)}/{quote(result.artifact.path)}"
        self._json(201 if result.created else 200, out, {"Location": location})

    def _delete(self) -> None:
        from artifactd import generic_service

        segs = _segments(self.path)
        if segs[:2] == ["api", "v1"]:
            return self._api(segs[2:])
        name, path, _, principal = self._generic_write(
            "delete", "DELETE is not supported in {format} repository {name!r}")
        deleted = generic_service.delete_path(self.server.app, name, path, principal=principal,
                                              address=self.client_address[0])
        self._json(200, {"repo": name, "deleted": [{"path": a.path, "sha256": a.sha256, "size": a.size}
                                                   for a in deleted]})

    def _generic_write(self, action: str, refusal: str) -> tuple[str, str, dict[str, list[str]], Principal]:
        """A PUT or DELETE target: a writable generic repository the caller may ``action`` in.

        ``refusal`` (formatted with ``name`` and ``format``) is the 405 for other formats.
        """
        name, path, props = self._generic_target()
        repo: Any = self.server.app.repository(name)
        if repo.config.format != "generic":
            raise MethodNotAllowed(refusal.format(name=name, format=repo.config.format))
        repo.writable()
        return name, path, props, self.require(action, name)


def _is_oci_path(path: str) -> bool:
    if path.startswith("/v2"):
        return path[3:4] in ("", "/", "?", "#")
    if path.startswith("/"):
        return False
    p = urlsplit(path).path  # an absolute-form request target
    return p == "/v2" or p.startswith("/v2/")


def _latin1(s: str) -> str:
    s = _BAD_HEADER_CHARS.sub(" ", s)
    return s.encode("latin-1", "replace").decode("latin-1")


def _etag_matches(header: str | None, etag: str) -> bool:
    if not header:
        return False
    if header.strip() == "*":
        return True
    return any(t.strip().removeprefix("W/") == etag for t in header.split(","))


def _if_range_ok(if_range: str | None, etag: str, last_modified: str) -> bool:
    """A failed If-Range means: ignore Range, send the whole file (R23)."""
    if not if_range:
        return True
    v = if_range.strip()
    if v.startswith('"') or v.startswith("W/"):
        return v == etag
    return v == last_modified


def _parse_range(header: str, size: int) -> tuple[int, int] | str | None:
    """A single byte range → (start, end); "unsatisfiable"; or None to ignore (multi/invalid)."""
    m = re.fullmatch(r"\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*", header)
    if not m:
        return None
    a, b = m.groups()
    if a == "" and b == "":
        return None
    if a == "":
        n = int(b)
        if n == 0:
            return "unsatisfiable"
        return max(0, size - n), size - 1
    start = int(a)
    if start >= size:  # checked first: "bytes=<size>-" is unsatisfiable, not ignorable (R23)
        return "unsatisfiable"
    end = int(b) if b else size - 1
    if end < start:
        return None
    return start, min(end, size - 1)
