"""Small helpers shared by the built-in plugins (not a plugin itself)."""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from artifactd.policy import escape_text

if TYPE_CHECKING:
    from artifactd.model import Artifact

__all__ = ["classifiers_of", "escape_text", "last_download", "meta_value", "releases"]

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
