"""Helpers for the web interface tests: a cookie-keeping HTTP client, an HTML checker, sample data."""
from __future__ import annotations

import dataclasses
import http.client
import json
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

from artifactd import service
from tests.dists import make_wheel

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}
# SVG shapes are written with explicit end tags; <p> and <li> are always closed by our builder.


class Checker(HTMLParser):
    """Strict-enough validity check: tags balance, one <html>, no scripts, no inline handlers or styles."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.doctype = False
        self.text: list[str] = []
        self.ids: set[str] = set()

    def handle_decl(self, decl: str) -> None:
        self.doctype = decl.lower() == "doctype html"

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "script":
            self.errors.append("a <script> element")
        for k, v in attrs:
            if k.startswith("on") or k == "style":
                self.errors.append(f"attribute {k} on <{tag}>")
            if k in ("href", "src", "action") and v and re.match(r"\s*(javascript|data|vbscript):", v, re.I):
                self.errors.append(f"{k}={v!r} on <{tag}>")
            if k == "id" and v:
                if v in self.ids:
                    self.errors.append(f"duplicate id {v!r}")
                self.ids.add(v)
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in VOID and tag not in ("rect", "path", "circle", "line"):
            self.errors.append(f"self-closing <{tag}/>")

    def handle_endtag(self, tag: str) -> None:
        if tag in VOID:
            self.errors.append(f"end tag for void <{tag}>")
            return
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes <{self.stack[-1] if self.stack else 'nothing'}>")
            if tag in self.stack:
                while self.stack and self.stack.pop() != tag:
                    pass
            return
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def check_html(body: str) -> Checker:
    c = Checker()
    c.feed(body)
    c.close()
    if not c.doctype:
        c.errors.append("no <!DOCTYPE html>")
    if c.stack:
        c.errors.append(f"unclosed: {c.stack}")
    return c


class Client:
    """HTTP/1.1 client that keeps cookies (like a browser with JavaScript off)."""

    def __init__(self, base: str) -> None:
        u = urlsplit(base)
        self.host, self.port = u.hostname or "127.0.0.1", u.port or 80
        self.cookies: dict[str, str] = {}
        self.last_set_cookies: list[str] = []

    def request(self, method: str, path: str, form: dict[str, str] | None = None,
                headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], str]:
        con = http.client.HTTPConnection(self.host, self.port, timeout=30)
        hdrs = dict(headers or {})
        if self.cookies:
            hdrs["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        body = None
        if form is not None:
            body = urlencode(form).encode()
            hdrs["Content-Type"] = "application/x-www-form-urlencoded"
        try:
            con.request(method, path, body=body, headers=hdrs)
            r = con.getresponse()
            data = r.read().decode("utf-8", "replace")
            self.last_set_cookies = r.headers.get_all("Set-Cookie") or []
            for c in self.last_set_cookies:
                name, _, rest = c.partition("=")
                value = rest.split(";", 1)[0]
                if "Max-Age=0" in c:
                    self.cookies.pop(name, None)
                else:
                    self.cookies[name] = value
            return r.status, {k.lower(): v for k, v in r.getheaders()}, data
        finally:
            con.close()

    def get(self, path: str, **kw: Any) -> tuple[int, dict[str, str], str]:
        return self.request("GET", path, **kw)

    def post(self, path: str, form: dict[str, str], **kw: Any) -> tuple[int, dict[str, str], str]:
        return self.request("POST", path, form=form, **kw)

    def csrf(self, path: str) -> str:
        _, _, body = self.get(path)
        m = re.search(r'name="csrf" value="([^"]*)"', body)
        assert m, f"no csrf field on {path}"
        return m.group(1)

    def login(self, user: str, password: str) -> tuple[int, dict[str, str], str]:
        token = self.csrf("/ui/login/")
        return self.post("/ui/login", {"csrf": token, "username": user, "password": password, "next": "/ui/"})


OSV_REQUESTS = {
    "schema_version": "1.6.0",
    "id": "PYSEC-2014-14",
    "modified": "2024-01-01T00:00:00Z",
    "published": "2014-10-15T00:00:00Z",
    "aliases": ["CVE-2014-1830"],
    "summary": "requests leaks Proxy-Authorization on redirect <b>not bold</b>",
    "details": "Details in *Markdown* <script>alert(1)</script>",
    "severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:N/A:N"}],
    "affected": [{"package": {"ecosystem": "PyPI", "name": "requests"},
                  "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "2.3.0"}]}]}],
    "references": [{"type": "WEB", "url": "javascript:alert(1)"}, {"type": "ADVISORY", "url": "https://advisories.example/PYSEC-2014-14"}],
}


def write_osv(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "PYSEC-2014-14.json").write_text(json.dumps(OSV_REQUESTS))
    return directory


def configure(app: Any, tmp: Path, *, private: bool = True, cleanup: bool = True) -> None:
    """Advisories, a license policy, a cleanup policy and a private repository."""
    from artifactd.config import make_repo

    plugins = {"health": {"advisories": str(write_osv(tmp / "osv"))}}
    cfg = dataclasses.replace(app.config, plugins=plugins,
                              cleanup={"dev-cleanup": {"repositories": ["pypi-local"], "keep-latest": 1}} if cleanup else {})
    if private:
        cfg = cfg.with_repo(make_repo(name="secret", type="hosted", format="pypi", anonymous_read=False))
    app.set_config(cfg)


LICENSE_POLICY = {"allow": ["MIT", "BSD-3-Clause", "Apache-2.0"], "deny": ["AGPL-3.0-only"], "unknown": "review"}


def populate(app: Any, tmp: Path) -> None:
    """Sample releases, then a license policy that denies one of them (set after the upload: the
    license gate would refuse it otherwise)."""
    wheels = tmp / "wheels"
    for name, ver, lic in (("requests", "2.2.1", "Apache-2.0"), ("requests", "2.31.0", "Apache-2.0"),
                           ("tinylib", "1.0", "MIT"), ("copyleft", "0.1", "AGPL-3.0-only")):
        service.upload_file(app, "pypi-local", make_wheel(wheels, name, ver, license_expression=lic,
                                                          requires=["urllib3>=1.21"], requires_python=">=3.8"))
    service.upload_file(app, "secret", make_wheel(wheels / "s", "hidden-thing", "1.0", license_expression="MIT"))
    app.set_config(dataclasses.replace(app.config, plugins={**app.config.plugins, "license": LICENSE_POLICY}))
