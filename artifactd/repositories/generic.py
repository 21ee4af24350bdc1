"""Generic repositories: files at arbitrary paths, with properties.

A hosted generic repository answers from its own rows; a group answers path by path:
the first member (in order, groups recursively) that has the path wins. Folders are
implicit: a path with rows below it.
"""
from __future__ import annotations

from typing import Any, Iterator

from artifactd.errors import MethodNotAllowed, ProjectNotFound
from artifactd.model import Artifact, ProjectPage, ProjectRef, StoredFile
from artifactd.repositories.base import GroupBase, RepositoryBase


class _NoSimpleIndex:
    """Generic repositories have no PEP 503 index."""

    def projects(self) -> list[ProjectRef]:
        return []

    def project(self, normalized: str) -> ProjectPage:
        raise ProjectNotFound("generic repositories have no Python package index")

    def open_file(self, project: str, filename: str) -> tuple[StoredFile, Artifact | None]:
        raise ProjectNotFound("generic repositories have no Python package index")

    def open_metadata(self, project: str, filename: str) -> StoredFile:
        raise ProjectNotFound("generic repositories have no Python package index")


class HostedGeneric(RepositoryBase, _NoSimpleIndex):
    def leaves(self) -> list[str]:
        """The hosted repositories this one reads from (itself)."""
        return [self.name]

    def lookup(self, path: str) -> Artifact | None:
        return self.app.db.get_artifact(self.name, path)

    def under(self, prefix: str) -> Iterator[Artifact]:
        yield from self.app.db.under(self.name, prefix)

    def is_folder(self, prefix: str) -> bool:
        return prefix == "" or self.app.db.has_under(self.name, prefix)

    def writable(self) -> None:
        return None


class GroupGeneric(GroupBase, _NoSimpleIndex):
    def leaves(self) -> list[str]:
        out: list[str] = []
        for m in self.members():
            out.extend(x for x in m.leaves() if x not in out)
        return out

    def lookup(self, path: str) -> Artifact | None:
        for m in self.members():
            art: Artifact | None = m.lookup(path)
            if art is not None:
                return art
        return None

    def under(self, prefix: str) -> Iterator[Artifact]:
        """Rows below ``prefix``; for a path several members hold, the first member's only."""
        seen: set[str] = set()
        for m in self.members():
            for art in m.under(prefix):
                if art.path not in seen:
                    seen.add(art.path)
                    yield art

    def is_folder(self, prefix: str) -> bool:
        return prefix == "" or any(m.is_folder(prefix) for m in self.members())

    def writable(self) -> None:
        raise MethodNotAllowed(f"{self.name!r} is a group: upload to one of its hosted members")


def children(rows: Iterator[Artifact], prefix: str) -> list[dict[str, Any]]:
    """The immediate children of folder ``prefix`` ('' or ending in '/'): files and sub-folders."""
    folders: dict[str, None] = {}
    files: list[dict[str, Any]] = []
    for art in rows:
        rest = art.path[len(prefix):]
        head, sep, _ = rest.partition("/")
        if sep:
            folders.setdefault(head, None)
        else:
            files.append({"name": head, "type": "file", "path": art.path, "size": art.size, "sha256": art.sha256,
                          "created": art.created, "repo": art.repo})
    out = [{"name": f, "type": "folder", "path": prefix + f + "/"} for f in folders]
    return sorted(out + files, key=lambda c: (c["type"] != "folder", c["name"]))
