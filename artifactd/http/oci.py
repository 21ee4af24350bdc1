"""The OCI distribution API (``/v2/``) on the artifactd HTTP handler.

The first segment of an image name selects the artifactd repository:
``/v2/docker-hosted/team/app/manifests/1.0`` is image ``team/app`` in ``docker-hosted``.
Errors are rendered as the spec's ``{"errors": [{"code", "message", "detail"}]}``;
``401`` carries a ``Bearer`` challenge pointing at ``/v2/token``.

Routes (``<full>`` = ``<repo>/<image>``)::

    GET        /v2/                                   API version check
    GET        /v2/token                              bearer token (Basic credentials)
    GET        /v2/_catalog                           image names (n/last)
    GET|HEAD   /v2/<full>/manifests/<ref>             pull a manifest (tag or digest)
    PUT        /v2/<full>/manifests/<ref>             push a manifest
    DELETE     /v2/<full>/manifests/<ref>             delete a manifest (digest) or a tag
    GET|HEAD   /v2/<full>/blobs/<digest>              pull a blob (Range)
    DELETE     /v2/<full>/blobs/<digest>              unlink a blob
    POST       /v2/<full>/blobs/uploads/              start / monolithic (?digest=) / mount (?mount=&from=)
    PATCH      /v2/<full>/blobs/uploads/<uuid>        append a chunk (Content-Range)
    PUT        /v2/<full>/blobs/uploads/<uuid>        finish (?digest=)
    GET        /v2/<full>/blobs/uploads/<uuid>        upload status
    DELETE     /v2/<full>/blobs/uploads/<uuid>        cancel
    GET        /v2/<full>/tags/list                   tags (n/last, Link)
    GET        /v2/<full>/referrers/<digest>          referrers (artifactType filter)
"""
from __future__ import annotations

import json
import logging
import re
from typing import TYPE_CHECKING, Any, Iterator
from urllib.parse import parse_qs, quote, unquote, urlsplit

from artifactd.errors import (
    ArtifactdError,
    BadRequest,
    Forbidden,
    PayloadTooLarge,
    RepositoryNotFound,
    TooManyRequests,
    Unauthorized,
)
from artifactd.formats.oci import spec, tokens
from artifactd.formats.oci.spec import OciError
from artifactd.model import ANONYMOUS, Principal

if TYPE_CHECKING:
    from artifactd.http.handler import Handler

log = logging.getLogger("artifactd.http.oci")

API_HEADER = {"Docker-Distribution-API-Version": "registry/2.0"}
_CHUNK = 1 << 20
_ROUTES = [
    ("upload", re.compile(r"^/v2/(?P<full>.+)/blobs/uploads/(?P<uuid>[^/]*)$")),
    ("blob", re.compile(r"^/v2/(?P<full>.+)/blobs/(?P<ref>[^/]+)$")),
    ("manifest", re.compile(r"^/v2/(?P<full>.+)/manifests/(?P<ref>[^/]+)$")),
    ("tags", re.compile(r"^/v2/(?P<full>.+)/tags/list$")),
    ("referrers", re.compile(r"^/v2/(?P<full>.+)/referrers/(?P<ref>[^/]+)$")),
]
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_CONTENT_RANGE = re.compile(r"^\s*(?:bytes[ =])?(\d+)-(\d+)(?:/(?:\d+|\*))?\s*$")


class Request:
    """One /v2 request: the handler, its parsed URL and the resolved principal."""

    def __init__(self, h: "Handler") -> None:
        self.h = h
        self.app = h.server.app
        parts = urlsplit(h.path)
        self.path = parts.path
        self.query = parse_qs(parts.query, keep_blank_values=True)
        self.method = h.command
        self.full = ""
        self._grant: tokens.Grant | None = None
        self.body_incomplete = False

    def q(self, key: str) -> str | None:
        v = self.query.get(key)
        return v[0] if v else None

    # --- auth ----------------------------------------------------------------------------
    def grant(self) -> tokens.Grant:
        if self._grant is None:
            header = self.h.headers.get("Authorization")
            value = (header or "").strip()
            if value[:7].lower() == "bearer " and value[7:].strip().startswith(tokens.PREFIX):
                self._grant = tokens.verify(self.app, value[7:].strip())
            else:
                self._grant = tokens.Grant(self.app.authenticate(header), None)
        return self._grant

    def require(self, action: str, repo: str) -> Principal:
        try:
            g = self.grant()
        except Unauthorized:
            if action == "read" and self._anonymous_read(repo):
                return ANONYMOUS
            raise
        p = g.principal
        if not g.allows(action, repo):
            if action == "read" and self._anonymous_read(repo):
                return p
            if p.anonymous:
                raise Unauthorized("authentication required")
            raise Forbidden(f"token does not grant {action} on {repo!r}")
        self.app.require(p, action, repo)
        return p

    def _anonymous_read(self, repo: str) -> bool:
        cfg = self.app.config.repo(repo)
        anon = cfg.anonymous_read if cfg and cfg.anonymous_read is not None else self.app.config.server.anonymous_read
        return bool(anon)

    def base_url(self) -> str:
        base = self.app.config.server.base_url
        if base:
            return base.rstrip("/")
        host = self.h.headers.get("Host") or "{}:{}".format(*self.h.server.server_address[:2])
        if not re.fullmatch(r"[A-Za-z0-9.\-\[\]:]+", host):
            host = "{}:{}".format(*self.h.server.server_address[:2])
        return f"http://{host}"

    # --- bodies --------------------------------------------------------------------------
    def body(self) -> Iterator[bytes]:
        """The request body in chunks (Content-Length or chunked transfer encoding)."""
        h = self.h
        h._body_consumed = True
        self.body_incomplete = True
        if "chunked" in (h.headers.get("Transfer-Encoding") or "").lower():
            while True:
                line = h.rfile.readline(1024)
                try:
                    size = int(line.split(b";")[0].strip(), 16)
                except ValueError:
                    raise OciError("BLOB_UPLOAD_INVALID", "malformed chunked body", 400) from None
                if size == 0:
                    while h.rfile.readline(8192) not in (b"\r\n", b"\n", b""):
                        pass
                    break
                yield from self._read(size)
                h.rfile.readline(8)
        else:
            try:
                n = int(h.headers.get("Content-Length") or 0)
            except ValueError:
                raise OciError("SIZE_INVALID", "invalid Content-Length", 400) from None
            yield from self._read(n)
        self.body_incomplete = False

    def _read(self, n: int) -> Iterator[bytes]:
        while n > 0:
            data = self.h.rfile.read(min(n, _CHUNK))
            if not data:
                raise OciError("BLOB_UPLOAD_INVALID", "request body ended early", 400)
            n -= len(data)
            yield data

    def body_bytes(self, limit: int) -> bytes:
        buf = bytearray()
        for chunk in self.body():
            buf += chunk
            if len(buf) > limit:
                raise OciError("SIZE_INVALID", f"manifest exceeds {limit} bytes", 413)
        return bytes(buf)

    # --- responses ---------------------------------------------------------------------------
    def respond(self, status: int, body: bytes = b"", ctype: str = "application/json",
                headers: dict[str, str] | None = None) -> None:
        all_headers = dict(API_HEADER)
        all_headers.update(headers or {})
        self.h.respond(status, body, ctype, all_headers)

    def json(self, status: int, obj: Any, headers: dict[str, str] | None = None,
             ctype: str = "application/json") -> None:
        self.respond(status, json.dumps(obj).encode(), ctype, headers)


# --- entry point -----------------------------------------------------------------------------
def dispatch(h: "Handler") -> None:
    """Serve one request under /v2; every expected failure becomes a spec error body."""
    req = Request(h)
    try:
        _route(req)
    except OciError as exc:
        _error(req, exc)
    except ArtifactdError as exc:
        _error(req, _translate(exc))


def _translate(exc: ArtifactdError) -> OciError:
    if isinstance(exc, Unauthorized):
        return OciError("UNAUTHORIZED", exc.message, 401)
    if isinstance(exc, Forbidden):
        return OciError("DENIED", exc.message, 403)
    if isinstance(exc, RepositoryNotFound):
        return OciError("NAME_UNKNOWN", exc.message, 404)
    if isinstance(exc, PayloadTooLarge):
        return OciError("SIZE_INVALID", exc.message, 413)
    if isinstance(exc, TooManyRequests):
        return OciError("TOOMANYREQUESTS", exc.message, 429)
    if isinstance(exc, BadRequest):
        return OciError("UNSUPPORTED", exc.message, exc.http_status)
    return OciError("UNKNOWN", exc.message, exc.http_status)


def _error(req: Request, exc: OciError) -> None:
    if exc.http_status >= 500:
        log.warning("%s %s: %s", req.method, req.path, exc.message)
    if req.body_incomplete or exc.http_status == 413:
        req.h.close_connection = True
    headers = dict(exc.headers)
    if exc.http_status == 401:
        scope = ""
        if req.full:
            actions = "pull" if req.method in ("GET", "HEAD") else "pull,push"
            if req.method == "DELETE":
                actions = "delete"
            scope = f',scope="repository:{req.full}:{actions}"'
        headers["WWW-Authenticate"] = f'Bearer realm="{req.base_url()}/v2/token",service="artifactd"{scope}'
    if "Docker-Upload-UUID" in headers and req.full:
        headers["Location"] = f"/v2/{req.full}/blobs/uploads/{headers['Docker-Upload-UUID']}"
    req.respond(exc.http_status, exc.body(), "application/json", headers)


def _route(req: Request) -> None:
    path = req.path
    if path in ("/v2", "/v2/"):
        return _base(req)
    if path == "/v2/token":
        return _token(req)
    if path == "/v2/_catalog":
        return _catalog(req)
    for kind, rx in _ROUTES:
        m = rx.match(path)
        if m:
            break
    else:
        raise OciError("NAME_INVALID" if req.method != "GET" else "NAME_UNKNOWN", "not found", 404)
    full = m.group("full")
    repo_name, _, image = full.partition("/")
    req.full = full
    cfg = req.app.config.repo(repo_name)
    if cfg is None or cfg.format != "docker":
        raise spec.name_unknown(full)
    if not image:
        raise OciError("NAME_INVALID", "an image name follows the repository name", 400, {"name": full})
    spec.validate_name(image)
    repo = req.app.repository(repo_name)
    method = req.method
    if kind == "manifest":
        ref = unquote(m.group("ref"))
        if method in ("GET", "HEAD"):
            req.require("read", repo_name)
            return _get_manifest(req, repo, image, ref)
        if method == "PUT":
            return _put_manifest(req, repo, repo_name, image, ref)
        if method == "DELETE":
            return _delete_manifest(req, repo, repo_name, image, ref)
    elif kind == "blob":
        ref = unquote(m.group("ref"))
        if method in ("GET", "HEAD"):
            req.require("read", repo_name)
            return _get_blob(req, repo, image, ref)
        if method == "DELETE":
            return _delete_blob(req, repo, repo_name, image, ref)
    elif kind == "upload":
        return _upload(req, repo, repo_name, image, m.group("uuid"))
    elif kind == "tags" and method in ("GET", "HEAD"):
        req.require("read", repo_name)
        return _tags(req, repo, image)
    elif kind == "referrers" and method in ("GET", "HEAD"):
        req.require("read", repo_name)
        return _referrers(req, repo, image, unquote(m.group("ref")))
    raise spec.unsupported(f"{method} is not supported here")


# --- base, token, catalog ----------------------------------------------------------------------
def _base(req: Request) -> None:
    # Without credentials the answer is always the challenge: clients learn from this ping
    # where to get a token (an anonymous one still pulls from anonymously readable repositories).
    if not req.h.headers.get("Authorization"):
        raise OciError("UNAUTHORIZED", "authentication required", 401)
    req.grant()  # raises Unauthorized (with the challenge) for bad credentials
    req.json(200, {})


def _token(req: Request) -> None:
    principal = req.app.authenticate(req.h.headers.get("Authorization"))
    scopes = req.query.get("scope", [])
    req.json(200, tokens.issue(req.app, principal, scopes), {"Cache-Control": "no-store"})


def _catalog(req: Request) -> None:
    names: list[str] = []
    for cfg in req.app.config.repositories.values():
        if cfg.format != "docker":
            continue
        try:
            req.require("read", cfg.name)
        except ArtifactdError:
            continue
        repo: Any = req.app.repository(cfg.name)  # an OCI repository
        names.extend(f"{cfg.name}/{n}" for n in repo.names())
    page, link = _paginate(sorted(set(names)), req, "/v2/_catalog")
    req.json(200, {"repositories": page}, link)


def _paginate(items: list[str], req: Request, path: str) -> tuple[list[str], dict[str, str]]:
    last = req.q("last")
    if last:
        items = [t for t in items if t > last]
    n_raw = req.q("n")
    if n_raw is None or n_raw == "":
        return items, {}
    try:
        n = int(n_raw)
    except ValueError:
        raise OciError("UNSUPPORTED", "n must be an integer", 400) from None
    if n < 0:
        raise OciError("UNSUPPORTED", "n must not be negative", 400)
    page = items[:n]
    if n and len(items) > n:
        return page, {"Link": f'<{path}?n={n}&last={quote(page[-1])}>; rel="next"'}
    return page, {}


# --- manifests -------------------------------------------------------------------------------
def _get_manifest(req: Request, repo: Any, image: str, ref: str) -> None:
    row = repo.get_manifest(image, ref)
    try:
        body = req.app.blobs.read_bytes(row.sha256)
    except FileNotFoundError:
        raise spec.manifest_unknown(ref) from None
    headers = {"Docker-Content-Digest": row.digest, "ETag": f'"{row.digest}"'}
    if req.method == "GET":
        repo.record_pull(row)
    req.respond(200, body, row.media_type, headers)


def _writer(repo: Any) -> Any:
    w = repo.writable()
    if w is None:
        raise spec.unsupported(f"repository {repo.name!r} does not accept pushes")
    return w


def _put_manifest(req: Request, repo: Any, repo_name: str, image: str, ref: str) -> None:
    principal = req.require("write", repo_name)
    w = _writer(repo)
    if w.name != repo_name:
        req.require("write", w.name)
    body = req.body_bytes(spec.MAX_MANIFEST)
    row = w.put_manifest(image, ref, body, req.h.headers.get("Content-Type"), principal)
    headers = {"Location": f"/v2/{req.full}/manifests/{row.digest}", "Docker-Content-Digest": row.digest}
    if row.subject:
        headers["OCI-Subject"] = row.subject
    req.respond(201, b"", "text/plain", headers)


def _delete_manifest(req: Request, repo: Any, repo_name: str, image: str, ref: str) -> None:
    principal = req.require("delete", repo_name)
    w = _writer(repo)
    if w.name != repo_name:
        req.require("delete", w.name)
    w.delete_manifest(image, ref, principal)
    req.respond(202, b"", "text/plain")


# --- blobs -----------------------------------------------------------------------------------
def _get_blob(req: Request, repo: Any, image: str, digest: str) -> None:
    from artifactd.http.handler import (
        _parse_range,  # one Range parser for the whole server
    )

    sha256, size = repo.get_blob(image, digest)
    path = req.app.blobs.path(sha256)
    headers = {"Docker-Content-Digest": digest, "ETag": f'"{digest}"', "Accept-Ranges": "bytes",
               "Cache-Control": "max-age=31536000, immutable"}
    start, end, status = 0, size - 1, 200
    rng = req.h.headers.get("Range")
    if rng:
        parsed = _parse_range(rng, size)
        if isinstance(parsed, str):
            raise OciError("BLOB_UNKNOWN", "requested range not satisfiable", 416, {"digest": digest},
                           headers={"Content-Range": f"bytes */{size}"})
        if parsed is not None:
            start, end = parsed
            status = 206
            headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    length = max(0, end - start + 1)
    try:
        fh = open(path, "rb")
    except FileNotFoundError:
        raise spec.blob_unknown(digest) from None
    with fh:
        req.h.sendfile_response(fh, status, start, length, {**API_HEADER, **headers})


def _delete_blob(req: Request, repo: Any, repo_name: str, image: str, digest: str) -> None:
    req.require("delete", repo_name)
    _writer(repo).delete_blob(image, digest)
    req.respond(202, b"", "text/plain")


# --- uploads ---------------------------------------------------------------------------------
def _content_range(req: Request) -> tuple[int | None, int | None]:
    value = req.h.headers.get("Content-Range")
    if not value:
        return None, None
    m = _CONTENT_RANGE.match(value)
    if not m:
        raise OciError("BLOB_UPLOAD_INVALID", "invalid Content-Range", 416)
    start, end = int(m.group(1)), int(m.group(2))
    if end < start:
        raise OciError("BLOB_UPLOAD_INVALID", "invalid Content-Range", 416)
    return start, end


def _upload(req: Request, repo: Any, repo_name: str, image: str, uuid: str) -> None:
    method = req.method
    action = "read" if method in ("GET", "HEAD") else "write"
    principal = req.require(action, repo_name)
    w = _writer(repo)
    if w.name != repo_name:
        req.require(action, w.name)
    if method == "POST":
        if uuid:
            raise spec.unsupported("POST goes to .../blobs/uploads/")
        return _start_upload(req, w, principal, image)
    if not _UUID.fullmatch(uuid):
        raise spec.upload_unknown(uuid)
    location = f"/v2/{req.full}/blobs/uploads/{uuid}"
    if method in ("GET", "HEAD"):
        up = w.session(image, uuid)
        return req.respond(204, b"", "text/plain", {"Location": location, "Range": f"0-{max(up.offset - 1, 0)}",
                                                    "Docker-Upload-UUID": uuid})
    if method == "PATCH":
        start, end = _content_range(req)
        offset = w.append(image, uuid, req.body(), start, end)
        return req.respond(202, b"", "text/plain", {"Location": location, "Range": f"0-{max(offset - 1, 0)}",
                                                    "Docker-Upload-UUID": uuid})
    if method == "PUT":
        digest = req.q("digest")
        if not digest:
            raise spec.digest_invalid("the digest query parameter is required")
        spec.parse_digest(digest)
        start, end = _content_range(req)
        w.finish_upload(image, uuid, digest, req.body(), start, end)
        return req.respond(201, b"", "text/plain", {"Location": f"/v2/{req.full}/blobs/{digest}",
                                                    "Docker-Content-Digest": digest})
    if method == "DELETE":
        w.session(image, uuid)
        w.cancel_upload(image, uuid)
        return req.respond(204, b"", "text/plain")
    raise spec.unsupported(f"{method} is not supported here")


def _start_upload(req: Request, w: Any, principal: Principal, image: str) -> None:
    mount = req.q("mount")
    if mount:
        spec.parse_digest(mount)
        source = _mount_source(req, w, mount)
        if source is not None and w.mount(image, mount, *source):
            return req.respond(201, b"", "text/plain", {"Location": f"/v2/{req.full}/blobs/{mount}",
                                                        "Docker-Content-Digest": mount})
    digest = req.q("digest")
    if digest:
        spec.parse_digest(digest)
        w.put_blob(image, digest, req.body())
        return req.respond(201, b"", "text/plain", {"Location": f"/v2/{req.full}/blobs/{digest}",
                                                    "Docker-Content-Digest": digest})
    for _ in req.body():  # a body without ?digest= carries nothing we keep
        pass
    uuid = w.start_upload(image)
    req.respond(202, b"", "text/plain", {"Location": f"/v2/{req.full}/blobs/uploads/{uuid}",
                                         "Range": "0-0", "Docker-Upload-UUID": uuid})


def _mount_source(req: Request, w: Any, digest: str) -> tuple[str, str] | None:
    """(repository, image) to mount from: ``from=`` when readable, else any name in the same repository."""
    src = req.q("from")
    if src:
        repo_name, _, image = src.partition("/")
        cfg = req.app.config.repo(repo_name)
        if cfg is None or cfg.format != "docker" or not image:
            return None
        try:
            req.require("read", repo_name)
        except ArtifactdError:
            return None  # not allowed to read there: an ordinary upload instead
        return repo_name, image
    found: tuple[str, str] | None = w.find_in_repo(digest)
    return found


# --- tags and referrers ----------------------------------------------------------------------
def _tags(req: Request, repo: Any, image: str) -> None:
    tags = sorted(repo.tags(image))
    page, link = _paginate(tags, req, f"/v2/{req.full}/tags/list")
    req.json(200, {"name": req.full, "tags": page}, link)


def _referrers(req: Request, repo: Any, image: str, digest: str) -> None:
    spec.parse_digest(digest)
    wanted = req.q("artifactType")
    out = []
    for row in repo.referrers(image, digest):
        if wanted and row.artifact_type != wanted:
            continue
        d: dict[str, Any] = {"mediaType": row.media_type, "digest": row.digest, "size": row.size}
        if row.artifact_type:
            d["artifactType"] = row.artifact_type
        if row.annotations:
            d["annotations"] = row.annotations
        out.append(d)
    headers = {"OCI-Filters-Applied": "artifactType"} if wanted else {}
    req.json(200, {"schemaVersion": 2, "mediaType": spec.OCI_INDEX, "manifests": out}, headers, spec.OCI_INDEX)
