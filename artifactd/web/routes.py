"""Requests under ``/ui/``: sessions, permissions, the page cache, and which page to render.

The HTTP handler calls :func:`dispatch` for every GET/HEAD/POST whose path starts with
``/ui``. Reads follow the repository permissions (``App.require``); a repository the
caller may not read is answered like one that does not exist. Writes are POST forms that
need a session, its CSRF token and the matching permission; the services they call audit
them.
"""
from __future__ import annotations

import base64
import datetime as dt
import hmac
import json
import logging
import secrets
import time
from importlib import resources
from typing import TYPE_CHECKING, Any, Callable
from urllib.parse import parse_qs, urlsplit

from packaging.utils import canonicalize_name

from artifactd import build_service, generic_service, policy, service
from artifactd.errors import ArtifactdError, BadRequest, Forbidden, NotFound, ProjectNotFound, Unauthorized
from artifactd.model import ANONYMOUS, Artifact, Principal, isotime, utcnow
from artifactd.store.web_sessions import WebSession, WebSessions
from artifactd.web import pages, queries, reports
from artifactd.web.html import url

if TYPE_CHECKING:
    from artifactd.app import App
    from artifactd.http.handler import Handler

log = logging.getLogger(__name__)

COOKIE = "artifactd_session"
LOGIN_COOKIE = "artifactd_login"
SESSION_SECONDS = 12 * 3600
MAX_FORM = 64 * 1024
PROXY_STATUS_TTL = 15.0
SECURITY_HEADERS = [
    ("Content-Security-Policy", pages.CSP),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "same-origin"),
    ("X-Frame-Options", "DENY"),
]


# --- principals -------------------------------------------------------------------------------------

def principal_for(app: "App", s: WebSession) -> Principal | None:
    """The principal of a session, re-checked on every request (a revoked token or deleted user ends it)."""
    if s.token_hash:
        return app.token_principal(s.token_hash)
    row = app.db.get_user(s.user)
    if row is None or not row[1]:
        return None
    return app.user_principal(row[0], row[2])


class Ctx:
    """One request under /ui/: who asks, with which session, for what."""

    def __init__(self, handler: "Handler", segs: list[str]) -> None:
        self.h = handler
        self.app: "App" = handler.server.app
        parts = urlsplit(handler.path)
        self.raw_path = parts.path
        self.raw_query = parts.query
        self.query = {k: v[0] for k, v in parse_qs(parts.query, max_num_fields=20).items()}
        self.segs = segs
        self.session: WebSession | None = None
        self.sid: str | None = None
        self.principal: Principal = ANONYMOUS
        self.new_cookies: list[str] = []
        sid = self.cookie(COOKIE)
        if sid:
            s = WebSessions(self.app.db).get(sid, isotime(utcnow()))
            p = principal_for(self.app, s) if s is not None else None
            if s is not None and p is not None:
                self.session, self.sid, self.principal = s, sid, p
            else:
                self.new_cookies.append(_cookie(COOKIE, "", 0))
        elif handler.headers.get("Authorization"):
            try:
                self.principal = handler.principal()
            except ArtifactdError:
                self.principal = ANONYMOUS

    def cookie(self, name: str) -> str | None:
        from http.cookies import CookieError, SimpleCookie

        raw = self.h.headers.get("Cookie")
        if not raw:
            return None
        jar: SimpleCookie = SimpleCookie()
        try:
            jar.load(raw)
        except CookieError:
            return None
        m = jar.get(name)
        return m.value if m is not None else None

    @property
    def user(self) -> str | None:
        return self.principal.user

    @property
    def csrf(self) -> str | None:
        return self.session.csrf if self.session else None

    def can(self, action: str, repo: str) -> bool:
        try:
            self.app.require(self.principal, action, repo)
            return True
        except ArtifactdError:
            return False

    def readable(self, repo: str) -> bool:
        return self.app.config.repo(repo) is not None and self.can("read", repo)

    def need_read(self, repo: str) -> Any:
        if not self.readable(repo):
            raise NotFound(f"no repository named {repo!r}")
        return self.app.repository(repo)

    @property
    def base(self) -> str:
        return self.h.base_url()

    @property
    def host(self) -> str:
        return self.base.split("://", 1)[-1]

    def page(self, title: str, body: Any, crumbs: list[tuple[str, str]] | None = None) -> bytes:
        return pages.layout(title, body, user=self.user, csrf=self.csrf, crumbs=crumbs or [],
                            login_next=self.raw_path if self.user is None else "")


def _cookie(name: str, value: str, max_age: int) -> str:
    return f"{name}={value}; HttpOnly; SameSite=Strict; Path=/ui; Max-Age={max_age}"


# --- responses -----------------------------------------------------------------------------------------

def send(ctx: Ctx, status: int, body: bytes, *, ctype: str = "text/html; charset=utf-8",
         headers: list[tuple[str, str]] | None = None) -> None:
    h = ctx.h
    h._drain_or_close()
    h.send_response(status)
    h.send_header("Content-Type", ctype)
    h.send_header("Content-Length", str(len(body)))
    all_headers = list(SECURITY_HEADERS) + list(headers or [])
    if not any(k == "Cache-Control" for k, _ in all_headers):
        all_headers.append(("Cache-Control", "no-store"))
    for k, v in all_headers:
        h.send_header(k, v)
    for c in ctx.new_cookies:
        h.send_header("Set-Cookie", c)
    if h.close_connection:
        h.send_header("Connection", "close")
    h.end_headers()
    if h.command != "HEAD" and body:
        h.wfile.write(body)
    h.server.metrics.count(h.command, status, len(body))


def redirect(ctx: Ctx, location: str, status: int = 303) -> None:
    if any(c in location for c in "\r\n\x00") or not location.startswith("/"):
        raise BadRequest("invalid redirect target")
    send(ctx, status, b"", ctype="text/plain; charset=utf-8", headers=[("Location", location)])


def global_state(app: "App") -> str:
    """Repository serials, plus what changes without a serial bump: the configuration, the advisory
    files, and audited writes (properties, pins, promotions and users are all audited)."""
    serials = app.db.serials()
    audit = app.db.con.execute("SELECT MAX(id) FROM audit").fetchone()[0]
    state = ("|".join(f"{k}:{v}" for k, v in sorted(serials.items()))
             + f"|cfg:{app._config_mtime}|adv:{reports.state(app)}|audit:{audit}")
    if any(c.type == "proxy" for c in app.config.repositories.values()):
        # upstream health lives outside the database: such pages are rebuilt at most every PROXY_STATUS_TTL s
        state += f"|t:{int(time.monotonic() // PROXY_STATUS_TTL)}"
    return state


def cached(ctx: Ctx, state: str, render: Callable[[], bytes]) -> None:
    """Serve a rendered page from the server's page cache while ``state`` holds; 304 on a matching ETag."""
    import hashlib

    from artifactd.http.handler import _etag_matches

    who = ctx.session.id_hash if ctx.session else (ctx.user or "")
    key = ("ui", who, ctx.raw_path, ctx.raw_query)
    hit = ctx.h.server.pages.get(key, state)
    if hit is None:
        body = render()
        etag = '"' + hashlib.sha256(body).hexdigest()[:40] + '"'
        ctx.h.server.pages.put(key, state, body, etag)
    else:
        body, etag = hit
    headers = [("ETag", etag), ("Cache-Control", "private, no-cache"), ("Vary", "Cookie, Authorization")]
    if _etag_matches(ctx.h.headers.get("If-None-Match"), etag):
        send(ctx, 304, b"", headers=headers)
        return
    send(ctx, 200, body, headers=headers)


def read_form(ctx: Ctx) -> dict[str, str]:
    h = ctx.h
    ctype = (h.headers.get("Content-Type") or "").split(";")[0].strip().lower()
    if ctype != "application/x-www-form-urlencoded":
        raise BadRequest("expected a form (application/x-www-form-urlencoded)")
    try:
        n = int(h.headers.get("Content-Length") or "0")
    except ValueError:
        raise BadRequest("invalid Content-Length") from None
    if n < 0 or n > MAX_FORM:
        h.close_connection = True
        raise BadRequest("form too large")
    raw = h.rfile.read(n) if n else b""
    h._body_consumed = True
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest("form is not UTF-8") from None
    return {k: v[0] for k, v in parse_qs(text, keep_blank_values=True, max_num_fields=50).items()}


def check_csrf(ctx: Ctx, form: dict[str, str]) -> None:
    if ctx.session is None:
        raise Unauthorized("log in first (your session may have expired)")
    if not hmac.compare_digest(form.get("csrf", "").encode(), ctx.session.csrf.encode()):
        raise Forbidden("invalid or missing CSRF token: reload the page and try again")


# --- dispatch ------------------------------------------------------------------------------------------

def dispatch(handler: "Handler", segs: list[str]) -> None:
    """``segs``: the decoded path segments after ``ui``."""
    if not segs:
        return redirect(Ctx(handler, segs), "/ui/", 301)
    if segs == ["static", "app.css"]:
        return _static(handler)
    ctx = Ctx(handler, segs)
    parts = segs[:-1] if segs[-1] == "" else segs
    try:
        if handler.command == "POST":
            return _post(ctx, parts)
        return _get(ctx, parts, trailing=segs[-1] == "")
    except ArtifactdError as exc:
        status = exc.http_status
        if status >= 500:
            raise
        body = ctx.page("Not found" if status == 404 else "Error",
                        pages.error_page(status, exc.message, anonymous=ctx.principal.anonymous))
        retry_after = getattr(exc, "retry_after", None)
        extra = [("Retry-After", str(retry_after))] if retry_after else []
        send(ctx, 403 if status == 401 else status, body, headers=extra)


def _static(handler: "Handler") -> None:
    css = resources.files("artifactd.web").joinpath("static/app.css").read_bytes()
    ctx = Ctx(handler, ["static", "app.css"])
    send(ctx, 200, css, ctype="text/css; charset=utf-8", headers=[("Cache-Control", "max-age=3600")])


def _get(ctx: Ctx, p: list[str], trailing: bool) -> None:
    if p == []:
        return cached(ctx, global_state(ctx.app), lambda: ctx.page("Repositories", pages.home(home_rows(ctx), ctx.principal.anonymous)))
    if p == ["login"]:
        return login_form(ctx)
    if p == ["health"]:
        return cached(ctx, global_state(ctx.app), lambda: health_page(ctx))
    if p == ["cleanup"]:
        return send(ctx, 200, cleanup_page(ctx))  # a preview is computed fresh: "now" moves
    if p == ["builds"]:
        return cached(ctx, global_state(ctx.app), lambda: builds_page(ctx))
    if len(p) == 3 and p[0] == "builds":
        return cached(ctx, global_state(ctx.app), lambda: build_page(ctx, p[1], p[2]))
    if len(p) >= 2 and p[0] == "repo":
        name = p[1]
        repo = ctx.need_read(name)
        rest = p[2:]
        fmt = repo.config.format
        if not rest:
            if not trailing:
                return redirect(ctx, url("repo", name), 301)
            return cached(ctx, global_state(ctx.app), lambda: repo_page(ctx, name))
        if rest[0] == "browse" and fmt == "generic":
            return cached(ctx, global_state(ctx.app), lambda: browse_page(ctx, name, rest[1:], trailing))
        if rest[0] == "image" and fmt == "docker":
            return cached(ctx, global_state(ctx.app), lambda: image_page(ctx, name))
        if rest[0] == "project" and fmt == "pypi" and len(rest) in (2, 3):
            norm = canonicalize_name(rest[1])
            if norm != rest[1]:
                return redirect(ctx, url("repo", name, "project", norm, *rest[2:]), 301)
            leaves = leaf_repos(ctx.app, name)
            state = global_state(ctx.app) + "|" + queries.project_activity(ctx.app, leaves, norm)
            if len(rest) == 2:
                return cached(ctx, state, lambda: project_page(ctx, name, norm))
            return cached(ctx, state, lambda: version_page(ctx, name, norm, rest[2]))
    raise NotFound("no such page")


def _post(ctx: Ctx, p: list[str]) -> None:
    if p == ["login"]:
        return login_post(ctx)
    form = read_form(ctx)
    check_csrf(ctx, form)
    addr = ctx.h.client_address[0]
    if p == ["logout"]:
        assert ctx.sid is not None
        WebSessions(ctx.app.db).delete(ctx.sid)
        ctx.app.db.audit(isotime(utcnow()), ctx.user, addr, "web-logout", None, None)
        ctx.new_cookies.append(_cookie(COOKIE, "", 0))
        return redirect(ctx, "/ui/")
    if len(p) == 6 and p[0] == "repo" and p[2] == "project" and p[5] in ("pin", "unpin"):
        name, project, ver, action = p[1], p[3], p[4], p[5]
        ctx.need_read(name)
        if not ctx.can("write", name):
            raise Forbidden(f"{ctx.user!r} may not {action} in repository {name!r}")
        policy.set_pinned(ctx.app, name, project, ver, action == "pin", principal=ctx.principal)
        return redirect(ctx, url("repo", name, "project", canonicalize_name(project), ver))
    if len(p) == 6 and p[0] == "repo" and p[2] == "project" and p[5] in ("yank", "unyank"):
        name, project, ver, action = p[1], p[3], p[4], p[5]
        ctx.need_read(name)
        if not ctx.can("write", name):
            raise Forbidden(f"{ctx.user!r} may not {action} in repository {name!r}")
        reason = form.get("reason", "").strip()[:200] or None
        service.yank(ctx.app, name, project, ver, reason=reason, undo=action == "unyank", principal=ctx.principal)
        return redirect(ctx, url("repo", name, "project", canonicalize_name(project), ver))
    if p == ["cleanup", "run"]:
        repos = reports.plan_repos(ctx.app)
        if not repos or not all(ctx.can("delete", r) for r in repos):
            raise Forbidden("running this cleanup needs the delete permission on " + (", ".join(repos) or "its repositories"))
        result = reports.run_cleanup(ctx.app, ctx.principal)
        return send(ctx, 200, cleanup_page(ctx, result))
    if len(p) == 4 and p[0] == "builds" and p[3] == "promote":
        rec = ctx.app.db.build(p[1], p[2])
        if rec is None or not build_visible(ctx, rec):
            raise NotFound(f"build {p[1]}/{p[2]} not found")
        target = form.get("target", "")
        if ctx.app.config.repo(target) is None or not ctx.can("write", target):
            raise Forbidden(f"{ctx.user!r} may not promote into {target!r}")
        status = (form.get("status") or "promoted").strip()[:64] or "promoted"
        result = build_service.promote(ctx.app, p[1], p[2], target, status=status,
                                       comment=(form.get("comment") or "").strip()[:200] or None, principal=ctx.principal)
        body = ctx.page(f"Build {p[1]} #{p[2]}", pages.build(show_build(ctx, rec["name"], rec["number"])[0], 0, [], ctx.csrf, result),
                        [("Builds", url("builds")), (f"{p[1]} #{p[2]}", "")])
        return send(ctx, 200, body)
    raise NotFound("no such action")


# --- login ------------------------------------------------------------------------------------------------

def _safe_next(value: str | None) -> str:
    if value and value.startswith("/ui/") and not value.startswith("//") and all(c not in value for c in "\r\n\\\x00"):
        return value
    return "/ui/"


def login_form(ctx: Ctx, error: str | None = None, status: int = 200, extra: list[tuple[str, str]] | None = None) -> None:
    token = secrets.token_urlsafe(24)
    ctx.new_cookies.append(_cookie(LOGIN_COOKIE, token, 600))
    body = ctx.page("Log in", pages.login(token, _safe_next(ctx.query.get("next")), error))
    send(ctx, status, body, headers=extra)


def login_post(ctx: Ctx) -> None:
    form = read_form(ctx)
    addr = ctx.h.client_address[0]
    expected = ctx.cookie(LOGIN_COOKIE) or ""
    if not expected or not hmac.compare_digest(form.get("csrf", "").encode(), expected.encode()):
        raise Forbidden("the login form expired or its CSRF token is missing: reload the page")
    ctx.query["next"] = form.get("next", "")
    user, password = form.get("username", ""), form.get("password", "")
    from artifactd import auth
    from artifactd.http.throttle import Throttled, authenticate

    try:
        if not user or not password or ":" in user:
            raise Unauthorized("user and password are required")
        header = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        # the server's failed-login throttle, shared with HTTP Basic/Bearer authentication
        principal = authenticate(ctx.app, getattr(ctx.h.server, "login_throttle", None), header, addr)
    except Throttled as exc:
        ctx.app.db.audit(isotime(utcnow()), user[:100] or None, addr, "web-login-throttled", None, None)
        return login_form(ctx, f"Too many failed logins: try again in {exc.retry_after} seconds.", 429,
                          [("Retry-After", str(exc.retry_after))])
    except Unauthorized:
        ctx.app.db.audit(isotime(utcnow()), user[:100] or None, addr, "web-login-failed", None, None)
        return login_form(ctx, "Wrong user name, password or token.", 403)
    assert principal.user is not None
    is_token = user == "__token__" or password.startswith(auth.TOKEN_PREFIX)
    now = utcnow()
    if ctx.sid:  # a new login never keeps the old session id (no fixation)
        WebSessions(ctx.app.db).delete(ctx.sid)
    sid, _ = WebSessions(ctx.app.db).add(principal.user, auth.hash_token(password) if is_token else None,
                                         isotime(now), isotime(now + dt.timedelta(seconds=SESSION_SECONDS)))
    ctx.app.db.audit(isotime(now), principal.user, addr, "web-login", None, None, {"with": "token" if is_token else "password"})
    ctx.new_cookies += [_cookie(COOKIE, sid, SESSION_SECONDS), _cookie(LOGIN_COOKIE, "", 0)]
    redirect(ctx, _safe_next(form.get("next")))


# --- data for pages --------------------------------------------------------------------------------------

def leaf_repos(app: "App", name: str, trail: tuple[str, ...] = ()) -> list[str]:
    cfg = app.config.repo(name)
    if cfg is None or name in trail:
        return []
    if cfg.type != "group":
        return [name]
    out: list[str] = []
    for m in cfg.members:
        out += [x for x in leaf_repos(app, m, trail + (name,)) if x not in out]
    return out


def upstream_status(app: "App", name: str) -> dict[str, Any] | None:
    try:
        status = getattr(app.repository(name), "status", None)
        return dict(status()) if callable(status) else None
    except Exception as exc:  # a failing status must not break the page
        return {"healthy": False, "error": str(exc)}


def repo_info(ctx: Ctx, name: str) -> dict[str, Any]:
    app = ctx.app
    cfg = app.config.repo(name)
    assert cfg is not None
    info: dict[str, Any] = {"name": name, "type": cfg.type, "format": cfg.format,
                            "members": [m for m in cfg.members if ctx.readable(m)],
                            "url": service.redact_url(cfg.url) if cfg.url else None,
                            "upstream": upstream_status(app, name) if cfg.type == "proxy" else None,
                            "findings": None}
    if cfg.format == "docker":
        leaves = leaf_repos(app, name)
        totals = [queries.oci_totals(app, r) for r in leaves]
        info["items"], info["items_label"] = sum(t[0] for t in totals), "images"
        info["files"] = sum(t[0] for t in totals)
        info["stored"], info["dedup"] = sum(t[1] for t in totals), sum(t[2] for t in totals)
        return info
    leaves = leaf_repos(app, name)
    files, stored, dedup = queries.totals(app, leaves)
    info.update(files=files, stored=stored, dedup=dedup)
    if cfg.format == "pypi":
        info["items"], info["items_label"] = queries.project_count(app, leaves), "projects"
        if cfg.type != "group":
            info["findings"] = reports.summary(app, name)
    else:
        info["items"], info["items_label"] = files, "files"
    return info


def home_rows(ctx: Ctx) -> list[dict[str, Any]]:
    return [repo_info(ctx, name) for name in sorted(ctx.app.config.repositories) if ctx.readable(name)]


def _page_no(ctx: Ctx) -> int:
    try:
        return max(1, min(int(ctx.query.get("page", "1")), 1_000_000))
    except ValueError:
        return 1


def _prop_filter(prop: str) -> list[tuple[str, str | None]]:
    out: list[tuple[str, str | None]] = []
    for part in prop.split(";"):
        part = part.strip()
        if not part:
            continue
        k, sep, v = part.partition("=")
        out.append((k.strip(), v.strip() if sep else None))
    return out


def repo_page(ctx: Ctx, name: str) -> bytes:
    cfg = ctx.app.config.repo(name)
    assert cfg is not None
    info = repo_info(ctx, name)
    q = ctx.query.get("q", "")[:200]
    prop = ctx.query.get("prop", "")[:500]
    page = _page_no(ctx)
    crumbs = [("Repositories", url()), (name, "")]
    if cfg.format == "docker":
        names = image_names(ctx, name)
        if q:
            names = [n for n in names if q.lower() in n.lower()]
        return ctx.page(name, pages.images(name, info, names, page, queries.PAGE_SIZE, ctx.host), crumbs)
    results = None
    if prop or (q and cfg.format == "generic"):
        results = generic_service.search(ctx.app, repos=[name], props=_prop_filter(prop),
                                         name=f"*{q}*" if q else None, readable=ctx.readable, limit=1000)
    if cfg.format == "generic":
        listing = None if results is not None else generic_service.folder_listing(ctx.app, name, "")
        return ctx.page(name, pages.generic_repo(name, info, "", listing, q, prop, results, page, queries.PAGE_SIZE,
                                                 ctx.base), crumbs)
    rows, total = queries.project_page(ctx.app, leaf_repos(ctx.app, name), q, page)
    return ctx.page(name, pages.pypi_repo(name, info, rows, total, page, queries.PAGE_SIZE, q, prop, results, ctx.base),
                    crumbs)


def browse_page(ctx: Ctx, name: str, parts: list[str], trailing: bool) -> bytes:
    path = "/".join(parts)
    crumbs = [("Repositories", url()), (name, url("repo", name)), (path or "/", "")]
    if parts and not trailing:
        art = generic_service.lookup(ctx.app, name, path)
        if art is not None:
            props = ctx.app.db.properties(art.id)
            promos = ctx.app.db.promotions(path=art.path)
            promos = [x for x in promos if ctx.readable(x["source"]) and ctx.readable(x["target"])]
            return ctx.page(parts[-1], pages.generic_file(art, props, promos, queries.builds_of_artifact(ctx.app, art.repo, art.path),
                                                          ctx.base), crumbs)
    listing = generic_service.folder_listing(ctx.app, name, path + "/" if path else "")
    if listing is None:
        raise NotFound(f"{path} not found in {name}")
    info = repo_info(ctx, name)
    return ctx.page(f"{name}: {path or '/'}", pages.generic_repo(name, info, path, listing, "", "", None, _page_no(ctx),
                                                                   queries.PAGE_SIZE, ctx.base), crumbs)


def _project_artifacts(ctx: Ctx, name: str, norm: str) -> tuple[Any, list[Any]]:
    try:
        page = ctx.app.repository(name).project(norm)
    except ProjectNotFound:
        raise NotFound(f"project {norm!r} not found in {name}") from None
    arts = []
    for f in page.files:
        art = ctx.app.db.get_by_filename(f.repo or name, f.filename)
        if art is None:  # a proxy's file not cached yet: what its index page says (id 0: no row)
            art = Artifact(id=0, repo=f.repo or name, path=f"{norm}/{f.version}/{f.filename}", sha256=f.sha256,
                           size=f.size or 0, created=f.upload_time or "", kind="pypi", project=norm,
                           project_name=page.name, version=f.version, filename=f.filename, packagetype=f.packagetype,
                           requires_python=f.requires_python, yanked=f.yanked, yanked_reason=f.yanked_reason)
        arts.append(art)
    return page, arts


def project_page(ctx: Ctx, name: str, norm: str) -> bytes:
    page, arts = _project_artifacts(ctx, name, norm)
    releases: dict[tuple[str, str], list[Any]] = {}
    for art in arts:
        releases.setdefault((art.version or "", art.repo), []).append(art)
    reps: dict[str, dict[str, Any]] = {}
    for (v, _), files in releases.items():
        reps.setdefault(v, reports.package_report(ctx.app, files))
    crumbs = [("Repositories", url()), (name, url("repo", name)), (page.name, "")]
    body = [pages.project(name, page, arts, reps),
            pages.snippets_pypi(ctx.base, name, norm, None, ctx.app.config.repo(name).type == "hosted")]  # type: ignore[union-attr]
    return ctx.page(page.name, body, crumbs)


def version_page(ctx: Ctx, name: str, norm: str, ver: str) -> bytes:
    from artifactd.repositories.hosted import version_key

    page, arts = _project_artifacts(ctx, name, norm)
    mine = [x for x in arts if x.version == ver]
    if not mine:
        same = [x.version for x in arts if version_key(x.version or "") == version_key(ver)]
        raise NotFound(f"{norm} {ver} not found in {name}" + (f" (did you mean {same[0]}?)" if same else ""))
    rep = reports.package_report(ctx.app, [x for x in mine if x.repo == mine[0].repo])
    props = ctx.app.db.properties_of(x.id for x in mine)
    promos = [pr for x in mine for pr in ctx.app.db.promotions(path=x.path)
              if ctx.readable(pr["source"]) and ctx.readable(pr["target"])]
    builds = [b for x in mine for b in queries.builds_of_artifact(ctx.app, x.repo, x.path)]
    hosted = ctx.app.config.repo(name).type == "hosted"  # type: ignore[union-attr]

    def can_yank(r: str) -> bool:
        cfg = ctx.app.config.repo(r)
        return ctx.session is not None and cfg is not None and cfg.type == "hosted" and ctx.can("write", r)

    crumbs = [("Repositories", url()), (name, url("repo", name)), (page.name, url("repo", name, "project", norm)), (ver, "")]
    return ctx.page(f"{page.name} {ver}", pages.version(name, page.name, norm, ver, mine, rep, props, promos,
                                                        list(dict.fromkeys(builds)), can_yank, ctx.csrf, ctx.base, hosted),
                    crumbs)


def health_page(ctx: Ctx) -> bytes:
    repos = [reports.repository_report(ctx.app, name) for name, cfg in sorted(ctx.app.config.repositories.items())
             if cfg.format == "pypi" and cfg.type != "group" and ctx.readable(name)]
    return ctx.page("Repository health", pages.health(repos),
                    [("Repositories", url()), ("Health", "")])


def cleanup_page(ctx: Ctx, result: dict[str, Any] | None = None) -> bytes:
    preview = reports.cleanup_preview(ctx.app, ctx.readable)
    repos = preview["repos"]
    can_run = ctx.session is not None and bool(repos) and all(ctx.can("delete", r) for r in repos)
    return ctx.page("Cleanup preview", pages.cleanup(preview, can_run, ctx.csrf, result),
                    [("Repositories", url()), ("Cleanup", "")])


def build_visible(ctx: Ctx, rec: dict[str, Any], repos: set[str] | None = None) -> bool:
    repos = repos if repos is not None else {a["repo"] for a in rec.get("artifacts", [])}
    if not repos:
        return not ctx.principal.anonymous or ctx.app.config.server.anonymous_read
    return any(ctx.readable(r) for r in repos)


def builds_page(ctx: Ctx) -> bytes:
    by_build = queries.build_repos(ctx.app)
    rows = [r for r in ctx.app.db.builds() if build_visible(ctx, r, by_build.get(r["id"], set()))]
    return ctx.page("Builds", pages.builds(rows), [("Repositories", url()), ("Builds", "")])


def show_build(ctx: Ctx, name: str, number: str) -> tuple[dict[str, Any], int]:
    rec = ctx.app.db.build(name, number)
    if rec is None or not build_visible(ctx, rec):
        raise NotFound(f"build {name}/{number} not found")
    visible = [x for x in rec["artifacts"] if ctx.readable(x["repo"])]
    hidden = len(rec["artifacts"]) - len(visible)
    rec = dict(rec, artifacts=visible)
    return rec, hidden


def build_page(ctx: Ctx, name: str, number: str) -> bytes:
    rec, hidden = show_build(ctx, name, number)
    fmt = {x["repo"]: ctx.app.config.repo(x["repo"]) for x in rec["artifacts"]}
    formats = {c.format for c in fmt.values() if c is not None}
    targets = [] if ctx.session is None else [
        n for n, c in sorted(ctx.app.config.repositories.items())
        if c.type == "hosted" and c.format in formats and n not in fmt and ctx.can("write", n)]
    return ctx.page(f"Build {name} #{number}", pages.build(rec, hidden, targets, ctx.csrf),
                    [("Repositories", url()), ("Builds", url("builds")), (f"{name} #{number}", "")])


def image_names(ctx: Ctx, name: str) -> list[str]:
    from artifactd.store.oci_db import OciMeta

    meta = OciMeta(ctx.app.db)
    names: set[str] = set()
    for leaf in leaf_repos(ctx.app, name):
        names.update(meta.names(leaf))
    return sorted(names)


def image_page(ctx: Ctx, name: str) -> bytes:
    from artifactd.store.oci_db import OciMeta

    image = ctx.query.get("name", "")
    digest = ctx.query.get("digest", "")
    meta = OciMeta(ctx.app.db)
    leaves = [r for r in leaf_repos(ctx.app, name) if image in meta.names(r)]
    if not image or not leaves:
        raise NotFound(f"no image {image!r} in {name}")
    crumbs = [("Repositories", url()), (name, url("repo", name)), (image, url("repo", name, "image", query={"name": image}))]
    if digest:
        for leaf in leaves:
            m = meta.manifest(leaf, image, digest)
            if m is not None:
                body = None
                try:
                    with ctx.app.blobs.open(m.sha256) as fh:
                        doc = json.loads(fh.read(4 * 2**20))
                    body = doc if isinstance(doc, dict) else None
                except (OSError, ValueError):
                    body = None
                return ctx.page(f"{image}@{digest[:19]}", pages.manifest(m, body), crumbs + [(digest[:19], "")])
        raise NotFound(f"no manifest {digest!r} for {image}")
    tags = [t for leaf in leaves for t in meta.tags(leaf, image)]
    manifests = [m for leaf in leaves for m in meta.manifests(leaf, image)]
    return ctx.page(image, pages.image(name, image, tags, manifests, ctx.host), crumbs[:-1] + [(image, "")])
