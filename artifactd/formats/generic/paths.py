"""Generic-repository paths and Artifactory-style matrix parameters.

``PUT /repository/<repo>/models/fraud/1.0/model.pkl;accuracy=0.94;tags=a,b`` stores the
file at ``models/fraud/1.0/model.pkl`` with the properties ``accuracy=[0.94]`` and
``tags=[a, b]``. Matrix parameters are split off the LAST path segment only, before
percent-decoding, so an encoded ``%3B``/``%3D``/``%2C`` stays part of a name or value.
Every other segment is decoded exactly once by the HTTP layer, which already refuses
``.``, ``..``, backslashes, NUL and encoded slashes.
"""
from __future__ import annotations

import re
from typing import Iterable
from urllib.parse import unquote

from artifactd.errors import BadRequest

MAX_PATH = 1024
MAX_KEY = 255
MAX_VALUE = 4096
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

Properties = dict[str, list[str]]


def split_matrix(raw_path: str) -> tuple[str, str]:
    """``("/a/b/c", "k=v;k2=v")`` from ``/a/b/c;k=v;k2=v`` (raw, still percent-encoded)."""
    head, sep, tail = raw_path.rpartition("/")
    name, semi, matrix = tail.partition(";")
    return head + sep + name, matrix if semi else ""


def parse_matrix(matrix: str) -> Properties:
    """``k=v1,v2;flag`` → ``{"k": ["v1", "v2"], "flag": [""]}``; keys and values decoded once."""
    props: Properties = {}
    for part in matrix.split(";"):
        if not part:
            continue
        rawkey, _, rawvalues = part.partition("=")
        key = _decode(rawkey)
        values = [_decode(v) for v in rawvalues.split(",")] if rawvalues else [""]
        check_property(key, values)
        props.setdefault(key, [])
        props[key].extend(v for v in values if v not in props[key])
    return props


def _decode(s: str) -> str:
    try:
        return unquote(s, errors="strict")
    except UnicodeDecodeError:
        raise BadRequest("matrix parameter is not valid UTF-8") from None


def check_property(key: str, values: Iterable[str]) -> None:
    if not key or len(key) > MAX_KEY or _CONTROL.search(key) or any(c in key for c in "=;,"):
        raise BadRequest(f"invalid property key {key!r}")
    for v in values:
        if len(v) > MAX_VALUE or _CONTROL.search(v):
            raise BadRequest(f"invalid value for property {key!r}")


def parse_assignments(items: Iterable[str]) -> Properties:
    """Command-line ``key=value`` / ``key=v1,v2`` items → properties (no percent-decoding)."""
    props: Properties = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise BadRequest(f"expected key=value, got {item!r}")
        values = value.split(",") if value else [""]
        check_property(key, values)
        props.setdefault(key, [])
        props[key].extend(v for v in values if v not in props[key])
    return props


def parse_filters(items: Iterable[str]) -> list[tuple[str, str | None]]:
    """Search filters: ``key=value`` (exact) or ``key`` (has the key)."""
    out: list[tuple[str, str | None]] = []
    for item in items:
        key, sep, value = item.partition("=")
        check_property(key, [value])
        out.append((key, value if sep else None))
    return out


def clean_path(path: str, *, folder_ok: bool = True) -> str:
    """Validate a relative path given as text (CLI, JSON API); returns it without a leading '/'.

    A trailing '/' (a folder) is kept when ``folder_ok``. Refuses '.', '..', empty
    segments, backslashes, control characters and over-long paths.
    """
    p = path.lstrip("/")
    if len(p) > MAX_PATH:
        raise BadRequest(f"path longer than {MAX_PATH} characters")
    if p == "":
        if folder_ok:
            return ""
        raise BadRequest("empty path")
    segs = p.split("/")
    if segs[-1] == "":
        if not folder_ok:
            raise BadRequest(f"{path!r} is a folder, not a file")
        segs = segs[:-1]
    for s in segs:
        if s in ("", ".", "..") or "\\" in s or _CONTROL.search(s):
            raise BadRequest(f"invalid path {path!r}")
    return p


def join_segments(segs: list[str]) -> str:
    """Decoded URL segments (after the repository name) → relative path; '' for the root."""
    path = "/".join(segs)
    if len(path) > MAX_PATH:
        raise BadRequest(f"path longer than {MAX_PATH} characters")
    return path
