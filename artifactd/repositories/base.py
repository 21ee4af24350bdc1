"""What every repository answers, whatever its kind (hosted, proxy, group).

Three calls serve an index: ``projects()``, ``project(name)`` and ``open_file(...)``;
``state()`` returns a string that changes whenever any answer could change, which
is what page caches and ETags are keyed on.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from artifactd.model import Artifact, ProjectPage, ProjectRef, StoredFile

if TYPE_CHECKING:
    from artifactd.config import RepoConfig


class Repository(Protocol):
    config: "RepoConfig"

    @property
    def name(self) -> str: ...

    def state(self) -> str:
        """Changes whenever ``projects()`` or any ``project()`` answer may change."""

    def projects(self) -> list[ProjectRef]:
        """Every project, sorted by normalized name."""

    def project(self, normalized: str) -> ProjectPage:
        """The project's files. Raises ProjectNotFound (a group then asks its next member)."""

    def open_file(self, project: str, filename: str) -> tuple[StoredFile, Artifact | None]:
        """A stored distribution file. Raises ProjectNotFound / FileNotFound."""

    def open_metadata(self, project: str, filename: str) -> StoredFile:
        """PEP 658 core metadata of a wheel. Raises FileNotFound."""
