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

from packaging.utils import canonicalize_name

from artifactd import __version__, service
from artifactd.errors import (
    ArtifactdError,
    BadRequest,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    RangeNotSatisfiable,
    RepositoryNotFound,
)
from artifactd.formats.pypi import simple
from artifactd.http.fastparse import FastParseMixin
from artifactd.model import ANONYMOUS, Principal, StoredFile, isotime, utcnow

if TYPE_CHECKING:
    from artifactd.http.server import ArtifactServer

log = logging.getLogger("artifactd.http")

_BAD_HEADER_CHARS = re.compile(r"[\r\n\x00]")
_NOT_PLAIN = re.compile(r"[?#%\t\r\n]")
_DRAIN_LIMIT = 1 << 20
IMMUTABLE = "max-age=31536000, immutable"
REVALIDATE = "max-age=0, must-revalidate"
_DATE_CACHE: tuple[int, str] = (0, "")


def _segments(raw_path: str) -> list[str]:
    """Split the path and percent-decode each segment exactly once; refuse traversal tricks."""
    # Fast path (most requests): a plain absolute path, which urlsplit() and unquote() would
    # return unchanged; they cost ~4 µs of a ~50 µs cached page request.
    plain = raw_path.startswith("/") and not raw_path.startswith("//") and _NOT_PLAIN.search(raw_path) is None
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
    def setup(self) -> None:
        self.timeout = self.server.request_timeout
        super().setup()

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
        self.send_response(status, reason)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
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
            self.flush_headers()
        self.server.metrics.count(self.command, status, len(body))

    def send_error_response(self, exc: ArtifactdError) -> None:
        status = exc.http_status
        message = exc.message
        headers: dict[str, str] = {}
        if status == 401:
            headers["WWW-Authenticate"] = 'Basic realm="artifactd"'
        if isinstance(exc, PayloadTooLarge):
            self.close_connection = True
        if isinstance(exc, RangeNotSatisfiable) and getattr(exc, "length", None) is not None:
            headers["Content-Range"] = f"bytes */{exc.length}"  # type: ignore[attr-defined]
        # The reason phrase carries the message (twine prints it); latin-1 safe, one line.
        reason = _latin1(message)[:300]
        accept = self.headers.get("Accept", "") if self.headers else ""
        if "application/json" in accept:
            body = json.dumps({"code": exc.reason, "message": message, "status": status}).encode()
            ctype = "application/json"
        else:
            body = (reason + "\n").encode("latin-1")
            ctype = "text/plain; charset=latin-1"
        self.respond(status, body, ctype, headers, reason=reason)

    def _guard(self, fn: Callable[[], None]) -> None:
        self._body_consumed = False
        self.__dict__.pop("_principal", None)  # one connection carries many requests
        try:
            self.server.maybe_reload()
            fn()
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

    def do_GET(self) -> None:
        self._guard(self._get)

    def do_HEAD(self) -> None:
        self._guard(self._get)

    def do_POST(self) -> None:
        self._guard(self._post)

    def do_PUT(self) -> None:
        self._guard(lambda: self._unsupported("PUT"))

    def do_DELETE(self) -> None:
        self._guard(lambda: self._unsupported("DELETE"))

    def _unsupported(self, method: str) -> None:
        raise MethodNotAllowed(f"{method} is not supported here")

    # --- auth ------------------------------------------------------------------------------
    def principal(self) -> Principal:
        if not hasattr(self, "_principal"):
            self._principal = self.server.app.authenticate(self.headers.get("Authorization"))
        return self._principal

    def require(self, action: str, repo: str) -> Principal:
        app = self.server.app
        if action == "read":
            try:
                p = self.principal()
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

    # --- GET/HEAD routing ----------------------------------------------------------------
    def _get(self) -> None:
        segs = _segments(self.path)
        if segs[:1] == ["-"]:
            return self._internal(segs[1:])
        if segs == [""]:
            return self._redirect("/repository/")
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
        if sub[0] == "simple":
            if len(sub) == 1:
                return self._redirect(f"/repository/{quote(name)}/simple/")
            if sub[1:] == [""]:
                return self._root_page(repo)
            project = sub[1]
            norm = canonicalize_name(project)
            if project != norm or len(sub) != 3 or sub[2] != "":
                if len(sub) > 3 or (len(sub) == 3 and sub[2] != ""):
                    raise NotFound("not found")
                return self._redirect(f"/repository/{quote(name)}/simple/{quote(norm)}/")
            return self._project_page(repo, norm)
        if sub[0] == "packages" and len(sub) == 4:
            project, _version, filename = sub[1], sub[2], sub[3]
            norm = canonicalize_name(project)
            if filename.endswith(".metadata"):
                stored = repo.open_metadata(norm, filename[: -len(".metadata")])
                return self._send_file(stored, None, name)
            stored, art = repo.open_file(norm, filename)
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
            body = render()
            etag = '"' + hashlib.sha256(body).hexdigest()[:40] + '"'
            self.server.pages.put(key, state, body, etag)
        else:
            body, etag = cached
        headers = {"ETag": etag, "Vary": "Accept", "Cache-Control": cache_control}
        if _etag_matches(self.headers.get("If-None-Match"), etag):
            self._drain_or_close()
            self.send_response(304)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", "0")
            self.end_headers()
            self.server.metrics.count(self.command, 304)
            return
        self.respond(200, body, simple.content_type(media), headers)

    def _cache_control(self, repo: Any) -> str:
        max_age = getattr(repo, "page_max_age", 0)
        return f"max-age={int(max_age)}, must-revalidate" if max_age else REVALIDATE

    def _root_page(self, repo: Any) -> None:
        media = self._negotiate()
        self._page((repo.name, "", media), repo.state(),
                   lambda: simple.render_root(repo.projects(), media), media, self._cache_control(repo))

    def _project_page(self, repo: Any, norm: str) -> None:
        media = self._negotiate()
        state = repo.state()
        self._page((repo.name, norm, media), state,
                   lambda: simple.render_project(repo.project(norm), media), media, self._cache_control(repo))

    # --- files -------------------------------------------------------------------------------
    def _send_file(self, f: StoredFile, art: Any, repo: str) -> None:
        etag = f'"{f.sha256}"'
        last_modified = email.utils.formatdate(f.mtime, usegmt=True)
        headers = {
            "ETag": etag,
            "Last-Modified": last_modified,
            "Accept-Ranges": "bytes",
            "Cache-Control": IMMUTABLE,
        }
        if _etag_matches(self.headers.get("If-None-Match"), etag):
            self._drain_or_close()
            self.send_response(304)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", "0")
            self.end_headers()
            self.server.metrics.count(self.command, 304)
            return
        start, end = 0, f.size - 1
        status = 200
        rng = self.headers.get("Range")
        if rng and _if_range_ok(self.headers.get("If-Range"), etag, last_modified):
            parsed = _parse_range(rng, f.size)
            if parsed == "unsatisfiable":
                err = RangeNotSatisfiable(f"range {rng!r} not satisfiable for {f.size} bytes")
                err.length = f.size  # type: ignore[attr-defined]
                raise err
            if parsed is not None:
                start, end = parsed
                status = 206
                headers["Content-Range"] = f"bytes {start}-{end}/{f.size}"
        length = max(0, end - start + 1)
        try:
            fh = open(f.path, "rb")
        except FileNotFoundError:
            raise NotFound("file is missing from the store") from None
        with fh:
            self.send_response(status)
            self.send_header("Content-Type", f.content_type)
            self.send_header("Content-Length", str(length))
            for k, v in headers.items():
                self.send_header(k, v)
            self.end_headers()
            if self.command == "HEAD" or length == 0:
                self.server.metrics.count(self.command, status)
                return
            self.wfile.flush()
            sent = self.connection.sendfile(fh, start, length)
            if sent != length:
                self.close_connection = True
        self.server.metrics.count(self.command, status, length)
        if art is not None and status == 200:
            self.server.downloads.record(art.id, isotime(utcnow()))
            self.server.app.hooks.after_download(repo, art, True)

    # --- POST: uploads ---------------------------------------------------------------------
    def _post(self) -> None:
        segs = _segments(self.path)
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
        self._body_consumed = True  # the upload reader owns the body from here on
        try:
            result = service.receive_legacy_upload(self.server.app, name, self.rfile, self.headers, principal,
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
    if start >= size:
        return "unsatisfiable"
    end = int(b) if b else size - 1
    if end < start:
        return None
    return start, min(end, size - 1)
