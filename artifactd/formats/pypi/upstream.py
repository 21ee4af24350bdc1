"""The client side of the simple index: fetch and parse an upstream's pages and files.

* PEP 691 negotiation: JSON preferred, PEP 503 HTML accepted (``Accept`` as uv sends it).
* Conditional requests (``If-None-Match`` / ``If-Modified-Since``) → ``not_modified``.
* One pooled :class:`urllib3.PoolManager` per upstream (keep-alive), connect/read timeouts.
* Redirects are followed here, not by urllib3: at most :data:`MAX_REDIRECTS`, only to
  ``http``/``https`` targets, and credentials are sent only to the configured upstream's
  origin (scheme, host, port). Credentials come from the repository configuration (or the
  URL's userinfo) or the ``artifactd_upstream_auth`` provider, never from a client request.
* Parsed pages are frozen :class:`UpstreamPage` objects; garbage (bad JSON, an HTML page
  over :data:`MAX_PAGE`, an unexpected content type) is an :class:`UpstreamError`, never cached.
"""
from __future__ import annotations

import base64
import json
import logging
import socket
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any, Callable
from urllib.parse import unquote, urljoin, urlsplit, urlunsplit

import urllib3
from urllib3.exceptions import HTTPError as Urllib3Error
from urllib3.exceptions import EmptyPoolError, NewConnectionError, ProtocolError
from urllib3.exceptions import TimeoutError as Urllib3Timeout

from artifactd import __version__
from artifactd.errors import ArtifactdError, BadRequest, UpstreamError, UpstreamTimeout
from artifactd.formats.pypi.names import normalize, parse_filename

log = logging.getLogger(__name__)

ACCEPT = ("application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html;q=0.2, "
          "text/html;q=0.01")
MAX_REDIRECTS = 5
MAX_PAGE = 20 * 2**20
CHUNK = 1 << 16
USER_AGENT = f"artifactd/{__version__} (proxy)"


@dataclass(frozen=True)
class UpstreamFile:
    """One file as the upstream lists it (URL absolute, resolved against the page URL)."""

    filename: str
    url: str
    version: str
    sha256: str
    size: int | None = None
    upload_time: str | None = None
    requires_python: str | None = None
    yanked: bool = False
    yanked_reason: str | None = None
    # PEP 658/714: None = not advertised; "" = advertised without a hash; else the sha256 hex.
    core_metadata: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "UpstreamFile":
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


@dataclass(frozen=True)
class UpstreamPage:
    name: str  # display name (as the upstream spells it, else the normalized one)
    files: tuple[UpstreamFile, ...]
    skipped: int = 0  # files dropped: not a distribution of this project, or no sha256


@dataclass(frozen=True)
class PageResult:
    """``status``: ``ok`` (page set), ``not_modified`` or ``not_found``."""

    status: str
    page: UpstreamPage | None = None
    etag: str | None = None
    last_modified: str | None = None
    url: str = ""


@dataclass
class Auth:
    """Basic credentials for one origin."""

    origin: tuple[str, str, int]
    header: str = field(repr=False)


def origin_of(url: str) -> tuple[str, str, int]:
    p = urlsplit(url)
    scheme = p.scheme.lower()
    port = p.port or (443 if scheme == "https" else 80)
    return scheme, (p.hostname or "").lower(), port


def strip_userinfo(url: str) -> tuple[str, str | None, str | None]:
    """(url without credentials, username, password)."""
    p = urlsplit(url)
    if not (p.username or p.password):
        return url, None, None
    host = p.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    if p.port:
        host += f":{p.port}"
    return urlunsplit((p.scheme, host, p.path, p.query, p.fragment)), unquote(p.username or ""), unquote(p.password or "")


def redact(url: str) -> str:
    clean, user, _ = strip_userinfo(url)
    if user is None:
        return url
    p = urlsplit(clean)
    return urlunsplit((p.scheme, "***@" + p.netloc, p.path, p.query, p.fragment))


class UpstreamClient:
    """Talks to one upstream simple index (``base_url`` ends with ``/simple/`` or similar)."""

    def __init__(self, base_url: str, *, timeout: float = 30.0, username: str | None = None,
                 password: str | None = None, auth_provider: Callable[[str], tuple[str, str] | None] | None = None,
                 connections: int | None = None, before_request: Callable[[], object] | None = None) -> None:
        url, u_user, u_pass = strip_userinfo(base_url)
        # Called before each request goes out (the proxy hands back its database connection:
        # nothing of the metadata store is held while the upstream answers).
        self.before_request = before_request
        if not url.endswith("/"):
            url += "/"
        self.base_url = url
        self.timeout = urllib3.Timeout(connect=min(timeout, 10.0), read=timeout)
        user, pw = (username, password) if username is not None else (u_user, u_pass)
        if user is None and auth_provider is not None:
            found = auth_provider(url)
            if found:
                user, pw = found
        self._auth = None
        if user is not None:
            token = base64.b64encode(f"{user}:{pw or ''}".encode()).decode()
            self._auth = Auth(origin_of(url), "Basic " + token)
        # By default 16 connections are kept alive and more are opened when more requests run at
        # once (a cold uv install makes ~50): a file download holds its connection for the whole
        # transfer, and nothing should queue behind large downloads. With ``connections`` set, at
        # most that many requests reach the upstream at once and the rest wait (up to the read
        # timeout) for a free connection: for a single-threaded upstream such as pypiserver on
        # wsgiref (listen backlog 5), which drops the SYNs past its backlog, 1 s each.
        self.pool_timeout = timeout
        self.pool = urllib3.PoolManager(num_pools=8, maxsize=connections or 16, block=connections is not None,
                                        retries=False, timeout=self.timeout, headers={"User-Agent": USER_AGENT})

    def close(self) -> None:
        self.pool.clear()

    # --- low level ----------------------------------------------------------------------
    def _headers(self, url: str, extra: dict[str, str]) -> dict[str, str]:
        h = dict(extra)
        if self._auth is not None and origin_of(url) == self._auth.origin:
            h["Authorization"] = self._auth.header
        return h

    def request(self, url: str, headers: dict[str, str], *, stream: bool = False) -> tuple[str, Any]:
        """GET ``url`` following redirects by hand. Returns (final URL, urllib3 response).

        With ``stream`` the body is left unread (the caller must ``release_conn()``).
        Raises UpstreamTimeout / UpstreamError for network failures.
        """
        if self.before_request is not None:
            self.before_request()
        for _ in range(MAX_REDIRECTS + 1):
            scheme = urlsplit(url).scheme.lower()
            if scheme not in ("http", "https"):
                raise UpstreamError(f"upstream redirected to a non-http(s) URL ({scheme}:)")
            try:
                resp = self.pool.request("GET", url, headers=self._headers(url, headers), redirect=False,
                                         preload_content=False, decode_content=True,
                                         pool_timeout=self.pool_timeout)
            except EmptyPoolError:
                raise UpstreamTimeout(f"upstream busy: all {self.pool.connection_pool_kw['maxsize']} connections "
                                      f"to {redact(url)} stayed in use for {self.pool_timeout:g} s") from None
            except NewConnectionError as exc:  # (a ConnectTimeoutError subclass, but a refusal)
                raise UpstreamError(f"upstream unreachable: {redact(url)}: {_describe(exc)}") from None
            except (Urllib3Timeout, socket.timeout) as exc:
                raise UpstreamTimeout(f"upstream timed out: {redact(url)}: {type(exc).__name__}") from None
            except (Urllib3Error, OSError) as exc:
                raise UpstreamError(f"upstream unreachable: {redact(url)}: {_describe(exc)}") from None
            if resp.status in (301, 302, 303, 307, 308):
                location = resp.headers.get("Location")
                resp.drain_conn()
                resp.release_conn()
                if not location:
                    raise UpstreamError(f"upstream redirect without Location: {redact(url)}")
                url = urljoin(url, location)
                continue
            if not stream:
                try:
                    body = _read_capped(resp, MAX_PAGE)
                finally:
                    resp.release_conn()
                return url, (resp, body)
            return url, resp
        raise UpstreamError(f"upstream redirected more than {MAX_REDIRECTS} times: {redact(url)}")

    # --- pages --------------------------------------------------------------------------
    def project_url(self, normalized: str) -> str:
        return urljoin(self.base_url, f"{normalized}/")

    def get_project(self, normalized: str, etag: str | None = None,
                    last_modified: str | None = None) -> PageResult:
        url = self.project_url(normalized)
        headers = {"Accept": ACCEPT}
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified
        final, (resp, body) = self.request(url, headers)
        if resp.status == 304:
            return PageResult("not_modified", etag=resp.headers.get("ETag") or etag,
                              last_modified=resp.headers.get("Last-Modified") or last_modified, url=final)
        if resp.status == 404 or resp.status == 410:
            return PageResult("not_found", url=final)
        if resp.status != 200:
            raise UpstreamError(f"upstream answered {resp.status} for {redact(final)}")
        page = parse_project_page(body, resp.headers.get("Content-Type", ""), final, normalized)
        return PageResult("ok", page, resp.headers.get("ETag"), resp.headers.get("Last-Modified"), final)

    def open_file(self, url: str) -> Any:
        """Start downloading a file; returns the streaming urllib3 response (status 200)."""
        final, resp = self.request(url, {"Accept-Encoding": "identity", "Accept": "*/*"}, stream=True)
        if resp.status != 200:
            status = resp.status
            resp.drain_conn()
            resp.release_conn()
            if status == 404:
                raise UpstreamError(f"upstream no longer has {redact(final)} (404)")
            raise UpstreamError(f"upstream answered {status} for {redact(final)}")
        return resp

    def get_bytes(self, url: str, limit: int = MAX_PAGE) -> bytes:
        final, (resp, body) = self.request(url, {"Accept-Encoding": "identity", "Accept": "*/*"})
        if resp.status != 200:
            raise UpstreamError(f"upstream answered {resp.status} for {redact(final)}")
        return body


def _describe(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None)
    return str(reason or exc).split("\n")[0][:200]


def _read_capped(resp: Any, limit: int) -> bytes:
    out = bytearray()
    try:
        for chunk in resp.stream(CHUNK):
            out += chunk
            if len(out) > limit:
                raise UpstreamError(f"upstream page exceeds {limit} bytes")
    except (Urllib3Timeout, socket.timeout):
        raise UpstreamTimeout("upstream timed out while sending a page") from None
    except (ProtocolError, Urllib3Error, OSError) as exc:
        raise UpstreamError(f"upstream connection failed while sending a page: {_describe(exc)}") from None
    return bytes(out)


# --- parsing ------------------------------------------------------------------------------


def parse_project_page(body: bytes, content_type: str, page_url: str, normalized: str) -> UpstreamPage:
    """Parse a PEP 691 JSON or PEP 503 HTML project page. Raises UpstreamError on garbage."""
    ctype = content_type.split(";")[0].strip().lower()
    if ctype in ("application/vnd.pypi.simple.v1+json", "application/vnd.pypi.simple.latest+json"):
        return _parse_json(body, page_url, normalized)
    if ctype in ("application/vnd.pypi.simple.v1+html", "application/vnd.pypi.simple.latest+html", "text/html", ""):
        return _parse_html(body, page_url, normalized)
    raise UpstreamError(f"upstream served an unexpected content type {ctype!r} for {redact(page_url)}")


def _meta_value(v: Any) -> str | None:
    """A PEP 658/714 attribute value → None / "" (no hash) / sha256 hex."""
    if v is None or v is False:
        return None
    if v is True:
        return ""
    if isinstance(v, dict):
        h = v.get("sha256")
        return h.lower() if isinstance(h, str) and _is_hex64(h) else ""
    if isinstance(v, str):
        s = v.strip()
        if s.lower() == "true":
            return ""
        if s.startswith("sha256="):
            h = s[len("sha256="):].lower()
            return h if _is_hex64(h) else ""
        return ""
    return None


def _is_hex64(s: str) -> bool:
    return len(s) == 64 and all(c in "0123456789abcdefABCDEF" for c in s)


class _Builder:
    def __init__(self, page_url: str, normalized: str) -> None:
        self.page_url = page_url
        self.normalized = normalized
        self.files: dict[str, UpstreamFile] = {}
        self.skipped = 0

    def add(self, filename: str, href: str, sha256: str | None, **kw: Any) -> None:
        url = urljoin(self.page_url, href.split("#", 1)[0])
        if urlsplit(url).scheme.lower() not in ("http", "https"):
            self.skipped += 1
            return
        try:
            dist = parse_filename(filename)
        except BadRequest:
            self.skipped += 1  # eggs, exes, non-normalized junk: not served
            return
        if dist.normalized != self.normalized or not sha256 or not _is_hex64(sha256):
            self.skipped += 1  # another project's file, or no sha256 to verify against
            return
        if dist.kind != "wheel":
            kw["core_metadata"] = None  # R14: never for sdists
        self.files.setdefault(filename, UpstreamFile(filename=filename, url=url, version=str(dist.version),
                                                     sha256=sha256.lower(), **kw))


def _parse_json(body: bytes, page_url: str, normalized: str) -> UpstreamPage:
    try:
        doc = json.loads(body)
        files = doc["files"]
        if not isinstance(files, list):
            raise TypeError("files is not a list")
    except (ValueError, KeyError, TypeError) as exc:
        raise UpstreamError(f"upstream served an invalid PEP 691 page for {redact(page_url)}: {exc}") from None
    b = _Builder(page_url, normalized)
    for f in files:
        if not isinstance(f, dict) or not isinstance(f.get("filename"), str) or not isinstance(f.get("url"), str):
            b.skipped += 1
            continue
        hashes = f.get("hashes")
        if not isinstance(hashes, dict):
            hashes = {}
        yanked = f.get("yanked", False)
        size = f.get("size")
        meta = f.get("core-metadata", f.get("dist-info-metadata", f.get("data-dist-info-metadata")))
        ut = f.get("upload-time")
        rp = f.get("requires-python")
        b.add(f["filename"], f["url"], hashes.get("sha256") if isinstance(hashes.get("sha256"), str) else None,
              size=size if isinstance(size, int) and not isinstance(size, bool) and size >= 0 else None,
              upload_time=ut if isinstance(ut, str) else None,
              requires_python=rp if isinstance(rp, str) and rp else None,
              yanked=bool(yanked), yanked_reason=yanked if isinstance(yanked, str) and yanked else None,
              core_metadata=_meta_value(meta))
    name = doc.get("name") if isinstance(doc.get("name"), str) else normalized
    return UpstreamPage(name=name, files=tuple(b.files.values()), skipped=b.skipped)


class _AnchorParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.anchors: list[tuple[dict[str, str | None], str]] = []
        self._current: dict[str, str | None] | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self._current = dict(attrs)
            self._text = []

    def handle_data(self, data: str) -> None:
        if self._current is not None:
            self._text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "a" and self._current is not None:
            self.anchors.append((self._current, "".join(self._text).strip()))
            self._current = None


def _parse_html(body: bytes, page_url: str, normalized: str) -> UpstreamPage:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise UpstreamError(f"upstream served a page that is not UTF-8: {redact(page_url)}") from None
    if text.strip() and "<" not in text:
        raise UpstreamError(f"upstream served something that is not an HTML page: {redact(page_url)}")
    p = _AnchorParser()
    try:
        p.feed(text)
        p.close()
    except Exception as exc:  # html.parser is lenient; anything it raises means garbage
        raise UpstreamError(f"upstream served unparsable HTML for {redact(page_url)}: {exc}") from None
    b = _Builder(page_url, normalized)
    for attrs, label in p.anchors:
        href = attrs.get("href")
        if not href:
            continue
        path = urlsplit(href).path
        filename = unquote(path.rsplit("/", 1)[-1]) or label
        frag = urlsplit(href).fragment
        sha = frag[len("sha256="):] if frag.startswith("sha256=") else None
        yanked = "data-yanked" in attrs
        reason = attrs.get("data-yanked") or None
        meta = attrs.get("data-core-metadata", attrs.get("data-dist-info-metadata"))
        has_meta = "data-core-metadata" in attrs or "data-dist-info-metadata" in attrs
        b.add(filename, href, sha, size=None, upload_time=attrs.get("data-upload-time") or None,
              requires_python=attrs.get("data-requires-python") or None, yanked=yanked, yanked_reason=reason,
              core_metadata=_meta_value(meta if meta is not None else ("true" if has_meta else None)))
    return UpstreamPage(name=normalize(normalized), files=tuple(b.files.values()), skipped=b.skipped)


__all__ = ["UpstreamClient", "UpstreamFile", "UpstreamPage", "PageResult", "parse_project_page", "redact",
           "ArtifactdError", "ACCEPT"]
