"""Small helpers shared by the built-in plugins (not a plugin itself)."""
from __future__ import annotations

import html
import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from artifactd.model import Artifact

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2066-\u2069]")


def escape_text(text: str | None, limit: int = 300) -> str:
    """Terminal/HTML-safe one-line text: markup escaped, control characters shown as ``\\xNN``.

    Advisory summaries and license strings come from third parties (OSV ``details`` is Markdown):
    never print them raw. JSON output keeps the raw text.
    """
    if not text:
        return ""
    one_line = " ".join(text.split())
    escaped = _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}" if ord(m.group()) < 256 else f"\\u{ord(m.group()):04x}",
                           one_line)
    escaped = html.escape(escaped, quote=False)
    return escaped if len(escaped) <= limit else escaped[: limit - 1] + "…"


def meta_value(metadata: Mapping[str, Any], *names: str) -> Any:
    """A core-metadata field from either artifactd's parsed form (``license_expression``) or
    the raw header spelling a proxy may pass (``License-Expression``)."""
    for name in names:
        for key in (name, name.replace("_", "-"), "-".join(p.capitalize() for p in name.split("_"))):
            value = metadata.get(key)
            if value not in (None, "", [], ()):
                return value
    return None


def classifiers_of(metadata: Mapping[str, Any]) -> list[str]:
    value = meta_value(metadata, "classifiers", "classifier")
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value]


def releases(artifacts: Iterable["Artifact"]) -> dict[tuple[str, str], list["Artifact"]]:
    """PyPI artifacts grouped by (normalized project, version), wheels before sdists."""
    out: dict[tuple[str, str], list[Artifact]] = {}
    for art in artifacts:
        if art.kind != "pypi" or not art.project or not art.version:
            continue
        out.setdefault((art.project, art.version), []).append(art)
    for files in out.values():
        files.sort(key=lambda a: (a.packagetype != "bdist_wheel", a.filename or a.path))
    return out


def last_download(files: Iterable["Artifact"]) -> str | None:
    times = [a.last_download for a in files if a.last_download]
    return max(times) if times else None
