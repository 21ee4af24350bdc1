"""Small helpers shared by the built-in plugins (not a plugin itself)."""
from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from artifactd.text import escape_text

if TYPE_CHECKING:
    from artifactd.model import Artifact

__all__ = ["classifiers_of", "escape_text", "iter_releases", "last_download", "meta_value", "releases"]

def meta_value(metadata: Mapping[str, Any], *names: str) -> Any:
    """A core-metadata field from either artifactd's parsed form (``license_expression``) or
    the raw header spelling a proxy may pass (``License-Expression``)."""
    for name in names:
        for key in _spellings(name):
            value = metadata.get(key)
            if value not in (None, "", [], ()):
                return value
    return None


@functools.lru_cache(maxsize=None)
def _spellings(name: str) -> tuple[str, ...]:
    # called for every release of a report (50,000 of them): build the spellings once per name
    return tuple(dict.fromkeys((name, name.replace("_", "-"), "-".join(p.capitalize() for p in name.split("_")))))


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
        if (key := _release_key(art)) is not None:
            out.setdefault(key, []).append(art)
    for files in out.values():
        _wheels_first(files)
    return out


def _release_key(art: "Artifact") -> tuple[str, str] | None:
    if art.kind != "pypi" or not art.project or not art.version:
        return None
    return art.project, art.version


def _wheels_first(files: list["Artifact"]) -> list["Artifact"]:
    files.sort(key=lambda a: (a.packagetype != "bdist_wheel", a.filename or a.path))
    return files


def iter_releases(artifacts: Iterable["Artifact"]) -> Iterator[tuple[tuple[str, str], list["Artifact"]]]:
    """``releases(artifacts).items()``, one release at a time.

    Given the streaming rows of a report (``release_ordered``: one release's files come one after
    another) it holds one release at a time; given anything else it groups the whole input first.
    """
    if not getattr(artifacts, "release_ordered", False):
        yield from releases(artifacts).items()
        return
    key: tuple[str, str] | None = None
    files: list[Artifact] = []
    for art in artifacts:
        if (k := _release_key(art)) is None:
            continue
        if k != key:
            if key is not None:
                yield key, _wheels_first(files)
            key, files = k, []
        files.append(art)
    if key is not None:
        yield key, _wheels_first(files)


def last_download(files: Iterable["Artifact"]) -> str | None:
    times = [a.last_download for a in files if a.last_download]
    return max(times) if times else None
