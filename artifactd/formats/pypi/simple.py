"""PEP 503 HTML and PEP 691 JSON index pages, and Accept negotiation (STANDARDS §2-§4).

Pure functions: they take model objects and return bytes. File URLs are relative
(``../../packages/<project>/<version>/<filename>``) so they resolve against the page's
own, post-redirect URL (R4) and work behind any host name.
"""
from __future__ import annotations

import html
import json
import re
from functools import lru_cache
from typing import Iterable
from urllib.parse import quote

from artifactd.model import DistFile, ProjectPage, ProjectRef

JSON_V1 = "application/vnd.pypi.simple.v1+json"
HTML_V1 = "application/vnd.pypi.simple.v1+html"
TEXT_HTML = "text/html"
API_VERSION = "1.1"

# Preference on ties (R6): JSON, then v1+html, then text/html.
_OFFERED = (JSON_V1, HTML_V1, TEXT_HTML)
_ALIASES = {
    "application/vnd.pypi.simple.latest+json": JSON_V1,
    "application/vnd.pypi.simple.latest+html": HTML_V1,
}


@lru_cache(maxsize=256)
def negotiate(accept: str | None) -> str | None:
    """The media type to serve for an Accept header, or None when nothing offered is acceptable.

    No header, an empty one or a bare ``*/*`` → text/html (what the public index does).
    Memoized: clients send a handful of distinct Accept headers, and parsing one costs ~3 µs.
    """
    if not accept or not accept.strip():
        return TEXT_HTML
    best: tuple[float, int, str] | None = None
    explicit: dict[str, float] = {}
    wildcard_all: float | None = None
    wildcard_app: float | None = None
    wildcard_text: float | None = None
    for item in accept.split(","):
        parts = [p.strip() for p in item.split(";")]
        mtype = parts[0].lower()
        if not mtype:
            continue
        q = 1.0
        for p in parts[1:]:
            if p.lower().startswith("q="):
                try:
                    q = float(p[2:])
                except ValueError:
                    q = 0.0
                q = min(max(q, 0.0), 1.0)
        mtype = _ALIASES.get(mtype, mtype)
        if mtype == "*/*":
            wildcard_all = q if wildcard_all is None else max(wildcard_all, q)
        elif mtype == "application/*":
            wildcard_app = q if wildcard_app is None else max(wildcard_app, q)
        elif mtype == "text/*":
            wildcard_text = q if wildcard_text is None else max(wildcard_text, q)
        else:
            explicit[mtype] = max(explicit.get(mtype, 0.0), q) if mtype in explicit else q
    if not explicit and wildcard_app is None and wildcard_text is None and wildcard_all is not None:
        return TEXT_HTML if wildcard_all > 0 else None
    for rank, offered in enumerate(_OFFERED):
        if offered in explicit:
            q = explicit[offered]
        elif offered.startswith("application/") and wildcard_app is not None:
            q = wildcard_app
        elif offered.startswith("text/") and wildcard_text is not None:
            q = wildcard_text
        elif wildcard_all is not None:
            q = wildcard_all
        else:
            continue
        if q <= 0:
            continue
        key = (q, -rank, offered)
        if best is None or key > best:
            best = key
    return best[2] if best else None


def content_type(media: str) -> str:
    return f"{media}; charset=utf-8" if media != JSON_V1 else media


_URL_SAFE = re.compile(r"[A-Za-z0-9_.~-]*")


def _quote(s: str) -> str:
    # quote() costs ~7 µs a call; almost every name, version and filename needs no quoting at all.
    return s if _URL_SAFE.fullmatch(s) else quote(s)


_HTML_SPECIAL = re.compile(r"[&<>\"']")


def _esc(s: str) -> str:
    # html.escape() makes five replace() passes; most attribute values have nothing to escape.
    return html.escape(s) if _HTML_SPECIAL.search(s) else s


def file_url(f: DistFile) -> str:
    """Relative URL from a project page (``<repo>/simple/<project>/``) to the file."""
    return f"../../packages/{_quote(f.project)}/{_quote(f.version)}/{_quote(f.filename)}"


# --- root page -------------------------------------------------------------------

def render_root(projects: Iterable[ProjectRef], media: str) -> bytes:
    if media == JSON_V1:
        doc = {
            "meta": {"api-version": API_VERSION},
            "projects": [{"name": p.name} for p in projects],
        }
        return json.dumps(doc, separators=(",", ":")).encode()
    out = [
        "<!DOCTYPE html>\n<html>\n<head>\n"
        f'<meta name="pypi:repository-version" content="{API_VERSION}">\n'
        "<title>Simple index</title>\n</head>\n<body>\n"
    ]
    for p in projects:
        out.append(f'<a href="{_esc(_quote(p.normalized))}/">{_esc(p.name)}</a>\n')
    out.append("</body>\n</html>\n")
    return "".join(out).encode()


# --- project page ----------------------------------------------------------------

def render_project(page: ProjectPage, media: str) -> bytes:
    if media == JSON_V1:
        return json.dumps(project_json(page), separators=(",", ":")).encode()
    esc = _esc
    out = [
        "<!DOCTYPE html>\n<html>\n<head>\n"
        f'<meta name="pypi:repository-version" content="{API_VERSION}">\n'
        f"<title>Links for {esc(page.name)}</title>\n</head>\n<body>\n"
        f"<h1>Links for {esc(page.name)}</h1>\n"
    ]
    for f in page.files:
        attrs = [f'href="{esc(file_url(f))}#sha256={f.sha256}"']
        if f.requires_python:
            attrs.append(f'data-requires-python="{esc(f.requires_python)}"')
        if f.yanked:
            attrs.append(f'data-yanked="{esc(f.yanked_reason or "")}"')
        if f.metadata_sha256:
            attrs.append(f'data-core-metadata="sha256={f.metadata_sha256}"')
            attrs.append(f'data-dist-info-metadata="sha256={f.metadata_sha256}"')
        elif f.metadata_advertised:
            attrs.append('data-core-metadata="true" data-dist-info-metadata="true"')
        if f.upload_time:
            attrs.append(f'data-upload-time="{esc(f.upload_time)}"')
        out.append(f'<a {" ".join(attrs)}>{esc(f.filename)}</a><br>\n')
    out.append("</body>\n</html>\n")
    return "".join(out).encode()


def project_json(page: ProjectPage) -> dict[str, object]:
    files = []
    for f in page.files:
        entry: dict[str, object] = {
            "filename": f.filename,
            "url": file_url(f),
            "hashes": {"sha256": f.sha256},
            "requires-python": f.requires_python,
            "yanked": f.yanked_value,
        }
        if f.size is not None:
            entry["size"] = f.size
        if f.upload_time:
            entry["upload-time"] = f.upload_time
        if f.metadata_sha256:
            # Never the key "dist-info-metadata" in JSON (pip 22.3-23.1 crash on it).
            entry["core-metadata"] = {"sha256": f.metadata_sha256}
        elif f.metadata_advertised:
            entry["core-metadata"] = True  # PEP 714: served, hash not known yet
        files.append(entry)
    return {
        "meta": {"api-version": API_VERSION},
        "name": page.normalized,
        "files": files,
        "versions": list(page.versions),
    }
