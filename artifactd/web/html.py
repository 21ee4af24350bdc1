"""Tiny HTML builder: everything is escaped unless it is already :class:`Safe`.

There are no templates: pages are built from :func:`el` calls, whose text children and
attribute values go through ``html.escape`` (quotes included). Only this module creates
``Safe`` strings from markup it wrote itself, so an uploaded name, summary, property or
advisory text can never become markup.
"""
from __future__ import annotations

import html
import re
from typing import Iterable, Union
from urllib.parse import quote, urlencode

_NAME = re.compile(r"^[a-z][a-z0-9-]*$")
VOID = frozenset({"br", "hr", "img", "input", "meta", "link", "col", "wbr", "source", "area", "base"})


class Safe(str):
    """Markup built by this module (already escaped)."""

    __slots__ = ()


Node = Union["Safe", str, int, float, None, Iterable["Node"]]


def esc(value: object) -> Safe:
    if isinstance(value, Safe):
        return value
    return Safe(html.escape(str(value), quote=True))


def render(node: Node) -> Safe:
    """Escape a text, keep Safe markup, flatten lists; None and False render as nothing."""
    if node is None or node is False:
        return Safe("")
    if isinstance(node, Safe):
        return node
    if isinstance(node, (str, int, float)):
        return esc(node)
    return Safe("".join(render(n) for n in node))


def el(tag: str, attrs: dict[str, object] | None = None, *children: Node) -> Safe:
    """``<tag attr="...">children</tag>``; attributes with None/False values are left out."""
    if not _NAME.match(tag):
        raise ValueError(f"invalid tag name {tag!r}")
    parts = [tag]
    for k, v in (attrs or {}).items():
        name = k.rstrip("_").replace("_", "-")
        if not _NAME.match(name):
            raise ValueError(f"invalid attribute name {k!r}")
        if v is None or v is False:
            continue
        parts.append(name if v is True else f'{name}="{esc(v)}"')
    open_tag = "<" + " ".join(parts) + ">"
    if tag in VOID:
        return Safe(open_tag)
    return Safe(open_tag + render(list(children)) + f"</{tag}>")


def url(*segments: str, query: dict[str, object] | None = None, folder: bool = True) -> str:
    """``/ui/`` plus percent-encoded segments (each one a path segment, '/' included)."""
    path = "/ui/" + "/".join(quote(s, safe="") for s in segments if s != "")
    if folder and segments and not path.endswith("/"):
        path += "/"
    q = {k: v for k, v in (query or {}).items() if v not in (None, "")}
    return path + ("?" + urlencode(q, doseq=True) if q else "")


def a(href: str, *children: Node, **attrs: object) -> Safe:
    return el("a", {"href": href, **attrs}, *children)


def table(headers: Iterable[Node], rows: Iterable[Iterable[Node]], cls: str | None = None,
          empty: str = "nothing here") -> Safe:
    rows = list(rows)
    if not rows:
        return el("p", {"class": "empty"}, empty)
    head = el("thead", None, el("tr", None, [el("th", {"scope": "col"}, h) for h in headers]))
    body = el("tbody", None, [el("tr", None, [el("td", None, c) for c in r]) for r in rows])
    return el("table", {"class": cls}, head, body)


def dl(items: Iterable[tuple[Node, Node]]) -> Safe:
    return el("dl", None, [[el("dt", None, k), el("dd", None, v)] for k, v in items])


def size(n: int | None) -> str:
    if n is None:
        return "-"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"


def when(iso: str | None) -> Safe:
    if not iso:
        return esc("-")
    short = iso.replace("T", " ")[:19]
    return el("time", {"datetime": iso}, short)


def badge(text: str, kind: str) -> Safe:
    return el("span", {"class": f"badge badge-{kind}"}, text)


def code_block(text: str) -> Safe:
    return el("pre", {"class": "snippet"}, el("code", None, text))


def hidden(name: str, value: str) -> Safe:
    return el("input", {"type": "hidden", "name": name, "value": value})
