"""HTTP client of an upstream OCI registry, with the bearer-token challenge flow.

A request answered ``401`` with ``WWW-Authenticate: Bearer realm=...,service=...,scope=...``
makes the client fetch a token from the realm (with Basic credentials when configured,
anonymously otherwise), cache it per scope until it expires, and retry once. A ``Basic``
challenge is answered with the configured credentials. Credentials come from the
repository's ``username``/``password`` or the ``artifactd_upstream_auth`` hook and are
never logged. Redirects (blob storage) are followed; urllib3 drops Authorization when a
redirect leaves the host.
"""
from __future__ import annotations

import base64
import json
import logging
import re
import threading
import time
from typing import Any, Callable
from urllib.parse import urlencode, urlsplit

import urllib3

from artifactd.errors import UpstreamError, UpstreamTimeout

log = logging.getLogger(__name__)

_PARAM = re.compile(r'(\w+)\s*=\s*(?:"([^"]*)"|([^\s,]+))')


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """``Bearer realm="x",service="y"`` → ("bearer", {"realm": "x", "service": "y"})."""
    scheme, _, rest = header.strip().partition(" ")
    return scheme.lower(), {m.group(1).lower(): m.group(2) if m.group(2) is not None else m.group(3)
                            for m in _PARAM.finditer(rest)}


class Upstream:
    def __init__(self, url: str, timeout: float, credentials: tuple[str, str] | None,
                 before_request: Callable[[], object] | None = None) -> None:
        parts = urlsplit(url)
        self.before_request = before_request  # e.g. hand back the database connection while waiting
        self.base = f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"
        self.prefix = parts.path.strip("/")  # a path in the URL is a namespace prefix of every image name
        self.credentials = credentials
        self.pool = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=timeout, read=timeout),
            retries=urllib3.Retry(total=5, connect=0, read=0, status=0, other=0, redirect=5),
        )
        self._tokens: dict[str, tuple[str, float]] = {}
        self._lock = threading.Lock()

    def name(self, image: str) -> str:
        return f"{self.prefix}/{image}" if self.prefix else image

    def _basic(self) -> str | None:
        if not self.credentials:
            return None
        raw = f"{self.credentials[0]}:{self.credentials[1]}".encode()
        return "Basic " + base64.b64encode(raw).decode()

    def request(self, method: str, path: str, scope: str, headers: dict[str, str] | None = None,
                stream: bool = False) -> Any:
        """``path`` starts with /v2/. Returns the urllib3 response (any status but 401)."""
        if self.before_request is not None:
            self.before_request()
        hdrs = dict(headers or {})
        with self._lock:
            tok = self._tokens.get(scope)
        if tok and tok[1] > time.time():
            hdrs["Authorization"] = tok[0]
        resp = self._send(method, path, hdrs, stream)
        if resp.status != 401:
            return resp
        challenge = resp.headers.get("WWW-Authenticate", "")
        resp.drain_conn()
        resp.release_conn()
        scheme, params = parse_challenge(challenge)
        if scheme == "bearer" and params.get("realm"):
            auth = self._token(params, scope)
        elif scheme == "basic" and self.credentials:
            auth = self._basic() or ""
        else:
            raise UpstreamError(f"the upstream registry requires authentication ({scheme or 'no challenge'})")
        hdrs["Authorization"] = auth
        resp = self._send(method, path, hdrs, stream)
        if resp.status == 401:
            resp.release_conn()
            raise UpstreamError("the upstream registry refused the credentials")
        return resp

    def _send(self, method: str, path: str, headers: dict[str, str], stream: bool) -> Any:
        try:
            return self.pool.request(method, self.base + path, headers=headers, preload_content=not stream)
        except urllib3.exceptions.TimeoutError as exc:
            raise UpstreamTimeout(f"the upstream registry timed out: {exc}") from None
        except urllib3.exceptions.HTTPError as exc:
            raise UpstreamError(f"the upstream registry is unreachable: {type(exc).__name__}") from None

    def _token(self, params: dict[str, str], scope: str) -> str:
        realm = params["realm"]
        if not re.match(r"^https?://", realm):
            raise UpstreamError("the upstream registry sent a token realm that is not http(s)")
        query = {"service": params.get("service", "")}
        query["scope"] = params.get("scope") or scope
        headers = {}
        basic = self._basic()
        if basic:
            headers["Authorization"] = basic
        try:
            resp = self.pool.request("GET", f"{realm}?{urlencode(query)}", headers=headers)
        except urllib3.exceptions.HTTPError as exc:
            raise UpstreamError(f"the upstream token service is unreachable: {type(exc).__name__}") from None
        if resp.status != 200:
            raise UpstreamError(f"the upstream token service answered {resp.status}")
        try:
            doc = json.loads(resp.data)
            token = doc.get("token") or doc.get("access_token")
            lifetime = float(doc.get("expires_in") or 60)
        except (ValueError, AttributeError):
            raise UpstreamError("the upstream token service sent no token") from None
        if not isinstance(token, str) or not token:
            raise UpstreamError("the upstream token service sent no token")
        value = f"Bearer {token}"
        with self._lock:
            self._tokens[scope] = (value, time.time() + max(lifetime - 10, 5))
        return value
