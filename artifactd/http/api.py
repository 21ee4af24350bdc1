"""The JSON REST API under ``/api/v1``: repositories, artifacts, properties, search, builds, promotion.

One route table (:data:`ROUTES`) drives both dispatch and the OpenAPI 3.1 document served at
``/api/v1/openapi.json``, so the document cannot drift from what is served. Every error is
JSON: ``{"error": {"code": "<reason>", "message": "<one line>"}}`` with the matching status.
Paths of files inside a repository travel in the ``path`` query parameter (OpenAPI path
parameters cannot contain '/').
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable
from urllib.parse import parse_qs, urlsplit

from artifactd import __version__, build_service, generic_service, service
from artifactd.errors import (
    ArtifactdError,
    BadRequest,
    Forbidden,
    LengthRequired,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    Unauthorized,
)
from artifactd.formats.generic.paths import Properties, check_property, clean_path, parse_filters
from artifactd.model import Principal

if TYPE_CHECKING:
    from artifactd.app import App
    from artifactd.http.handler import Handler

log = logging.getLogger(__name__)

PREFIX = "/api/v1"
MAX_JSON = 8 * 2**20


@dataclass(frozen=True)
class Param:
    name: str
    description: str
    required: bool = False
    repeated: bool = False
    schema: dict[str, Any] = field(default_factory=lambda: {"type": "string"})


@dataclass
class Request:
    handler: "Handler"
    params: dict[str, str]
    query: dict[str, list[str]]
    _body: Any = None

    @property
    def app(self) -> "App":
        return self.handler.server.app

    def principal(self) -> Principal:
        return self.handler.principal()

    def require(self, action: str, repo: str) -> Principal:
        return self.handler.require(action, repo)

    def q(self, name: str, default: str | None = None) -> str | None:
        vals = self.query.get(name)
        return vals[-1] if vals else default

    def flag(self, name: str) -> bool:
        return (self.q(name) or "").lower() in ("1", "true", "yes")

    def body(self) -> dict[str, Any]:
        if self._body is None:
            self._body = _read_json(self.handler)
        return self._body  # type: ignore[no-any-return]


@dataclass(frozen=True)
class Route:
    method: str
    template: str  # relative to /api/v1, "{name}" matches one path segment
    handler: Callable[[Request], tuple[int, Any]]
    summary: str
    tag: str
    query: tuple[Param, ...] = ()
    body: dict[str, Any] | None = None  # JSON schema of the request body
    status: int = 200
    response: dict[str, Any] = field(default_factory=lambda: {"type": "object"})

    @property
    def parts(self) -> list[str]:
        return self.template.strip("/").split("/")

    def match(self, segs: list[str]) -> dict[str, str] | None:
        parts = self.parts
        if len(parts) != len(segs):
            return None
        out: dict[str, str] = {}
        for p, s in zip(parts, segs):
            if p.startswith("{") and p.endswith("}"):
                if not s:
                    return None
                out[p[1:-1]] = s
            elif p != s:
                return None
        return out

    @property
    def operation_id(self) -> str:
        words = [p.strip("{}").replace(".", "_") for p in self.parts]
        return self.method.lower() + "_" + "_".join(words)


# --- helpers ---------------------------------------------------------------------------

def _read_json(h: "Handler") -> dict[str, Any]:
    if h.headers.get("Transfer-Encoding"):
        h.close_connection = True
        raise LengthRequired("the request body needs a Content-Length")
    n = h._body_length()
    if n > MAX_JSON:
        h.close_connection = True
        raise PayloadTooLarge(f"JSON body over {MAX_JSON} bytes")
    data = h.rfile.read(n) if n else b""
    h._body_consumed = True
    if len(data) != n:
        h.close_connection = True
        raise BadRequest("request body ended early")
    if not data.strip():
        return {}
    try:
        obj = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise BadRequest("the request body is not valid JSON") from None
    if not isinstance(obj, dict):
        raise BadRequest("the request body must be a JSON object")
    return obj


def _props_from_json(value: Any) -> Properties:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise BadRequest("properties must be an object of key → value or list of values")
    out: Properties = {}
    for k, v in value.items():
        vals = [str(x) for x in v] if isinstance(v, list) else [str(v)]
        check_property(str(k), vals)
        out[str(k)] = vals
    return out


def _path(req: Request, *, folder_ok: bool = False) -> str:
    p = req.q("path")
    if p is None:
        if folder_ok:
            return ""
        raise BadRequest("the 'path' query parameter is required")
    return clean_path(p, folder_ok=folder_ok)


def _require_admin(req: Request) -> Principal:
    p = req.principal()
    if p.anonymous:
        raise Unauthorized("authentication required")
    if not p.is_admin:
        raise Forbidden("administrator rights required")
    return p


def _readable(req: Request) -> Callable[[str], bool]:
    def ok(repo: str) -> bool:
        try:
            req.require("read", repo)
            return True
        except ArtifactdError:
            return False

    return ok


def _require_read_builds(req: Request) -> None:
    """Build records are readable by anyone who may read anonymously, else by any credential."""
    app = req.app
    if app.config.server.anonymous_read:
        return
    if req.principal().anonymous:
        raise Unauthorized("authentication required")


# --- handlers: meta and repositories ---------------------------------------------------------

def openapi(req: Request) -> tuple[int, Any]:
    return 200, openapi_document()


def list_repositories(req: Request) -> tuple[int, Any]:
    out = []
    readable = _readable(req)
    for cfg in req.app.config.repositories.values():
        if readable(cfg.name):
            count, size = req.app.db.count_artifacts(cfg.name)
            row: dict[str, Any] = {"name": cfg.name, "type": cfg.type, "format": cfg.format, "files": count,
                                   "bytes": size}
            if cfg.members:
                row["members"] = list(cfg.members)
            out.append(row)
    return 200, out


def create_repository(req: Request) -> tuple[int, Any]:
    _require_admin(req)
    b = req.body()
    name, rtype, fmt = b.get("name"), b.get("type"), b.get("format", "pypi")
    if not isinstance(name, str) or not isinstance(rtype, str) or not isinstance(fmt, str):
        raise BadRequest("name, type and format must be strings")
    members = tuple(b.get("members") or ())
    extra: dict[str, Any] = {}
    if "allow_overwrite" in b:
        extra["allow_overwrite"] = bool(b["allow_overwrite"])
    service.create_repository(req.app, name, rtype, fmt, members=members, url=b.get("url"), **extra)
    return 201, service.describe_repository(req.app, name)


def get_repository(req: Request) -> tuple[int, Any]:
    name = req.params["repo"]
    generic_service.repo_config(req.app, name)
    req.require("read", name)
    return 200, service.describe_repository(req.app, name)


# --- artifacts and properties -----------------------------------------------------------------

def get_artifact(req: Request) -> tuple[int, Any]:
    repo = req.params["repo"]
    generic_service.repo_config(req.app, repo)
    req.require("read", repo)
    path = _path(req, folder_ok=True)
    if path and not path.endswith("/"):
        art = generic_service.lookup(req.app, repo, path)
        if art is not None:
            return 200, generic_service.describe(req.app, art, base_url=req.handler.base_url())
    if req.app.config.repo(repo).format != "generic":  # type: ignore[union-attr]
        raise NotFound(f"{path} not found in {repo}")
    listing = generic_service.folder_listing(req.app, repo, path)
    if listing is None:
        raise NotFound(f"{path} not found in {repo}")
    return 200, listing


def delete_artifact(req: Request) -> tuple[int, Any]:
    repo = req.params["repo"]
    generic_service.repo_config(req.app, repo)
    p = req.require("delete", repo)
    deleted = generic_service.delete_path(req.app, repo, _path(req, folder_ok=True), principal=p,
                                          address=req.handler.client_address[0])
    return 200, {"repo": repo, "deleted": [{"path": a.path, "sha256": a.sha256, "size": a.size} for a in deleted]}


def get_properties(req: Request) -> tuple[int, Any]:
    repo = req.params["repo"]
    generic_service.repo_config(req.app, repo)
    req.require("read", repo)
    path = _path(req)
    return 200, {"repo": repo, "path": path, "properties": generic_service.get_properties(req.app, repo, path)}


def set_properties(req: Request) -> tuple[int, Any]:
    repo = req.params["repo"]
    generic_service.repo_config(req.app, repo)
    p = req.require("write", repo)
    path = _path(req)
    props = _props_from_json(req.body().get("properties"))
    if not props:
        raise BadRequest("give at least one property")
    return 200, {"repo": repo, "path": path,
                 "properties": generic_service.set_properties(req.app, repo, path, props, principal=p)}


def delete_properties(req: Request) -> tuple[int, Any]:
    repo = req.params["repo"]
    generic_service.repo_config(req.app, repo)
    p = req.require("write", repo)
    path = _path(req)
    keys = req.query.get("key") or []
    if not keys:
        raise BadRequest("give at least one 'key' query parameter")
    return 200, {"repo": repo, "path": path,
                 "properties": generic_service.delete_properties(req.app, repo, path, keys, principal=p)}


def search(req: Request) -> tuple[int, Any]:
    repos = req.query.get("repo") or None
    for r in repos or []:
        generic_service.repo_config(req.app, r)
    try:
        limit = int(req.q("limit") or 1000)
    except ValueError:
        raise BadRequest("limit must be an integer") from None
    rows = generic_service.search(req.app, repos=repos, props=parse_filters(req.query.get("prop") or []),
                                  name=req.q("name"), readable=_readable(req), limit=max(1, min(limit, 10_000)))
    base = req.handler.base_url()
    return 200, {"results": [generic_service.describe(req.app, a, p, base_url=base) for a, p in rows]}


def select_downloads(req: Request) -> tuple[int, Any]:
    repo = req.params["repo"]
    generic_service.repo_config(req.app, repo)
    req.require("read", repo)
    arts = generic_service.select_downloads(req.app, repo, props=parse_filters(req.query.get("prop") or []),
                                            build=req.q("build"), name=req.q("name"), all_matches=req.flag("all"))
    readable = _readable(req)
    base = req.handler.base_url()
    return 200, {"results": [generic_service.describe(req.app, a, base_url=base) for a in arts if readable(a.repo)]}


# --- builds and promotion ---------------------------------------------------------------------

def list_builds(req: Request) -> tuple[int, Any]:
    _require_read_builds(req)
    return 200, build_service.list_builds(req.app, req.q("name"))


def publish_build(req: Request) -> tuple[int, Any]:
    b = req.body()
    name, number = str(b.get("name") or ""), str(b.get("number") or "")
    refs = b.get("artifacts") or []
    if not isinstance(refs, list) or not all(isinstance(r, str) for r in refs):
        raise BadRequest("artifacts must be a list of 'REPO:PATH' strings")
    principal = req.principal()
    if principal.anonymous:
        raise Unauthorized("authentication required")
    for ref in refs:
        req.require("write", build_service.parse_artifact_ref(ref)[0])
    deps: list[build_service.Dependency] = []
    for d in b.get("dependencies") or []:
        if not isinstance(d, dict):
            raise BadRequest("each dependency must be an object with name, version and hashes")
        deps.append((str(d.get("name") or ""), str(d.get("version") or ""), [str(h) for h in d.get("hashes") or []]))
    if b.get("requirements"):
        deps += build_service.parse_requirements(str(b["requirements"]))
    vcs = b.get("vcs") or {}
    if not isinstance(vcs, dict):
        raise BadRequest("vcs must be an object")
    record = build_service.publish(req.app, name, number, artifacts=refs, dependencies=deps,
                                   vcs={str(k): str(v) for k, v in vcs.items()},
                                   properties=_props_from_json(b.get("properties")), principal=principal)
    return 201, record


def get_build(req: Request) -> tuple[int, Any]:
    _require_read_builds(req)
    return 200, build_service.show(req.app, req.params["name"], req.params["number"])


def _build_repos(req: Request) -> list[str]:
    record = build_service.show(req.app, req.params["name"], req.params["number"])
    return sorted({a["repo"] for a in record["artifacts"]})


def scan_build(req: Request) -> tuple[int, Any]:
    principal = req.principal()
    if principal.anonymous:
        raise Unauthorized("authentication required")
    for r in _build_repos(req):
        req.require("write", r)
    return 200, build_service.scan(req.app, req.params["name"], req.params["number"], principal=principal)


def promote_build(req: Request) -> tuple[int, Any]:
    b = req.body()
    target = b.get("target")
    if not isinstance(target, str) or not target:
        raise BadRequest("target is required")
    generic_service.repo_config(req.app, target)
    principal = req.require("write", target)
    move = bool(b.get("move"))
    if move:
        for r in _build_repos(req):
            req.require("delete", r)
    result = build_service.promote(req.app, req.params["name"], req.params["number"], target,
                                   status=str(b.get("status") or "promoted"), comment=b.get("comment"), move=move,
                                   force=bool(b.get("force")), principal=principal)
    return 200, result


def promote(req: Request) -> tuple[int, Any]:
    b = req.body()
    source, target = b.get("source"), b.get("target")
    if not isinstance(source, str) or not isinstance(target, str):
        raise BadRequest("source and target are required")
    generic_service.repo_config(req.app, source)
    generic_service.repo_config(req.app, target)
    req.require("read", source)
    principal = req.require("write", target)
    move = bool(b.get("move"))
    if move:
        req.require("delete", source)
    result = generic_service.promote(req.app, source, target, package=b.get("package"), path=b.get("path"),
                                     move=move, force=bool(b.get("force")), comment=b.get("comment"),
                                     principal=principal, address=req.handler.client_address[0])
    return 200, result.to_dict()


# --- the route table --------------------------------------------------------------------------

_PATH = Param("path", "File or folder path inside the repository (e.g. models/fraud/1.0/model.pkl).")
_PATH_REQ = Param("path", "File path inside the repository.", required=True)
_PROP = Param("prop", "Property filter key=value (exact) or key (has the key); repeat to AND.", repeated=True)
_STR = {"type": "string"}
_PROPS_SCHEMA = {"type": "object", "additionalProperties": {"oneOf": [_STR, {"type": "array", "items": _STR}]}}

ROUTES: tuple[Route, ...] = (
    Route("GET", "/openapi.json", openapi, "This OpenAPI 3.1 document", "meta"),
    Route("GET", "/repositories", list_repositories, "List the repositories you may read", "repositories",
          response={"type": "array", "items": {"type": "object"}}),
    Route("POST", "/repositories", create_repository, "Create a repository (administrators)", "repositories",
          body={"type": "object", "required": ["name", "type"], "properties": {
              "name": _STR, "type": {"enum": ["hosted", "proxy", "group"]}, "format": {"enum": ["pypi", "generic"]},
              "members": {"type": "array", "items": _STR}, "url": _STR, "allow_overwrite": {"type": "boolean"}}},
          status=201),
    Route("GET", "/repositories/{repo}", get_repository, "Describe a repository", "repositories"),
    Route("GET", "/repositories/{repo}/artifacts", get_artifact,
          "A file's description and properties, or a folder's children ('path' empty or ending in '/')",
          "artifacts", query=(_PATH,)),
    Route("DELETE", "/repositories/{repo}/artifacts", delete_artifact,
          "Delete a file, or every file below a folder (hosted generic repositories)", "artifacts",
          query=(Param("path", "File or folder path.", required=True),)),
    Route("GET", "/repositories/{repo}/properties", get_properties, "A file's properties", "properties",
          query=(_PATH_REQ,)),
    Route("PUT", "/repositories/{repo}/properties", set_properties,
          "Set properties (replaces the values of the given keys; other keys stay)", "properties",
          query=(_PATH_REQ,), body={"type": "object", "required": ["properties"],
                                    "properties": {"properties": _PROPS_SCHEMA}}),
    Route("DELETE", "/repositories/{repo}/properties", delete_properties, "Delete property keys", "properties",
          query=(_PATH_REQ, Param("key", "Property key to remove; repeat.", required=True, repeated=True))),
    Route("GET", "/repositories/{repo}/downloads", select_downloads,
          "The files to download: matches by property and/or build, newest per path unless all=true",
          "search", query=(_PROP, Param("build", "NAME/NUMBER: only files this build recorded."),
                           Param("name", "Basename glob."), Param("all", "true: every match, not the newest per path.",
                                                                  schema={"type": "boolean"}))),
    Route("GET", "/search", search, "Search stored files by repository, properties and name", "search",
          query=(Param("repo", "Repository (groups search their members); repeat.", repeated=True), _PROP,
                 Param("name", "Glob on the file name (or the whole path)."),
                 Param("limit", "At most this many results (default 1000).", schema={"type": "integer"}))),
    Route("GET", "/builds", list_builds, "List build records", "builds", query=(Param("name", "Only this build name."),),
          response={"type": "array", "items": {"type": "object"}}),
    Route("POST", "/builds", publish_build, "Publish a build record", "builds", status=201, body={
        "type": "object", "required": ["name", "number"], "properties": {
            "name": _STR, "number": _STR, "artifacts": {"type": "array", "items": _STR, "description": "REPO:PATH"},
            "dependencies": {"type": "array", "items": {"type": "object", "required": ["name", "version"],
                                                        "properties": {"name": _STR, "version": _STR,
                                                                       "hashes": {"type": "array", "items": _STR}}}},
            "requirements": {"type": "string", "description": "requirements/lock file text or pip freeze output"},
            "vcs": {"type": "object", "properties": {"commit": _STR, "branch": _STR, "url": _STR}},
            "properties": _PROPS_SCHEMA}}),
    Route("GET", "/builds/{name}/{number}", get_build, "A build record with its status history", "builds"),
    Route("POST", "/builds/{name}/{number}/scan", scan_build,
          "Run the dependency and artifact gates over a build and store the verdict", "builds"),
    Route("POST", "/builds/{name}/{number}/promote", promote_build,
          "Promote (copy or move) every artifact of a build; refused when a gate denies unless force", "promotion",
          body={"type": "object", "required": ["target"], "properties": {
              "target": _STR, "status": _STR, "comment": _STR, "move": {"type": "boolean"},
              "force": {"type": "boolean"}}}),
    Route("POST", "/promote", promote, "Promote one package version (NAME==VERSION) or a path", "promotion",
          body={"type": "object", "required": ["source", "target"], "properties": {
              "source": _STR, "target": _STR, "package": _STR, "path": _STR, "comment": _STR,
              "move": {"type": "boolean"}, "force": {"type": "boolean"}}}),
)

ERROR_SCHEMA = {
    "type": "object", "required": ["error"],
    "properties": {"error": {"type": "object", "required": ["code", "message"],
                             "properties": {"code": _STR, "message": _STR}}},
}


def openapi_document() -> dict[str, Any]:
    """The OpenAPI 3.1 description, generated from :data:`ROUTES`."""
    paths: dict[str, dict[str, Any]] = {}
    for r in ROUTES:
        params: list[dict[str, Any]] = [
            {"name": p[1:-1], "in": "path", "required": True, "schema": _STR}
            for p in r.parts if p.startswith("{")
        ]
        for q in r.query:
            schema = {"type": "array", "items": q.schema} if q.repeated else q.schema
            entry: dict[str, Any] = {"name": q.name, "in": "query", "required": q.required, "schema": schema,
                                     "description": q.description}
            if q.repeated:
                entry.update({"style": "form", "explode": True})
            params.append(entry)
        op: dict[str, Any] = {
            "operationId": r.operation_id, "summary": r.summary, "tags": [r.tag],
            "responses": {
                str(r.status): {"description": "OK", "content": {"application/json": {"schema": r.response}}},
                "default": {"description": "Error",
                            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
            },
        }
        if params:
            op["parameters"] = params
        if r.body is not None:
            op["requestBody"] = {"required": True, "content": {"application/json": {"schema": r.body}}}
        paths.setdefault(PREFIX + r.template, {})[r.method.lower()] = op
    return {
        "openapi": "3.1.0",
        "info": {"title": "artifactd API", "version": __version__,
                 "description": "Repositories, generic files, properties, search, builds and promotion. "
                                "Files themselves are uploaded with PUT /repository/<repo>/<path>[;k=v] "
                                "and downloaded with GET /repository/<repo>/<path>."},
        "servers": [{"url": "/"}],
        "components": {
            "schemas": {"Error": ERROR_SCHEMA},
            "securitySchemes": {"basic": {"type": "http", "scheme": "basic"},
                                "bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"basic": []}, {"bearer": []}, {}],
        "paths": paths,
    }


# --- dispatch ---------------------------------------------------------------------------------

def dispatch(h: "Handler", segs: list[str]) -> None:
    """Serve ``/api/v1/<segs>``; every failure becomes a JSON error body."""
    method = "GET" if h.command == "HEAD" else h.command
    try:
        if segs and segs[-1] == "" and len(segs) > 1:
            segs = segs[:-1]
        allowed: list[str] = []
        for r in ROUTES:
            params = r.match(segs)
            if params is None:
                continue
            if r.method != method:
                allowed.append(r.method)
                continue
            query = parse_qs(urlsplit(h.path).query, keep_blank_values=True)
            status, obj = r.handler(Request(h, params, query))
            body = json.dumps(obj, indent=1, default=str).encode()
            h.respond(status, body, "application/json", {"Cache-Control": "no-store"})
            return
        if allowed:
            raise MethodNotAllowed(f"{method} is not allowed here (allowed: {', '.join(sorted(set(allowed)))})")
        raise NotFound(f"no API endpoint {PREFIX}/{'/'.join(segs)}")
    except ArtifactdError as exc:
        send_error(h, exc)


def send_error(h: "Handler", exc: ArtifactdError) -> None:
    headers: dict[str, str] = {"Cache-Control": "no-store"}
    if exc.http_status == 401:
        headers["WWW-Authenticate"] = 'Basic realm="artifactd", Bearer'
    if isinstance(exc, (PayloadTooLarge, LengthRequired)):
        h.close_connection = True
    if exc.http_status >= 500:
        log.warning("%s %s: %s", h.command, h.path, exc.message)
    body = json.dumps({"error": {"code": exc.reason, "message": exc.message}}).encode()
    h.respond(exc.http_status, body, "application/json", headers)
