"""Groups: ordered members answering as one index, with dependency-confusion protection.

For each project the first member that has it owns it; later members' files for
that project are hidden unless the project is on the group's ``merge`` list. A
member's ProjectNotFound means "ask the next"; any other error propagates (502),
never a silent fall-through to a later member.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from packaging.utils import canonicalize_name

from artifactd.errors import FileNotFound, ProjectNotFound
from artifactd.model import Artifact, DistFile, ProjectPage, ProjectRef, StoredFile
from artifactd.repositories.hosted import sort_files, sorted_versions

if TYPE_CHECKING:
    from artifactd.app import App
    from artifactd.config import RepoConfig
    from artifactd.repositories.base import Repository


class GroupPypi:
    def __init__(self, app: "App", config: "RepoConfig") -> None:
        self.app = app
        self.config = config
        self._merge = frozenset(canonicalize_name(m) for m in config.merge)

    @property
    def name(self) -> str:
        return self.config.name

    def members(self) -> list["Repository"]:
        return [self.app.repository(m) for m in self.config.members]

    def state(self) -> str:
        return "|".join([self.name] + [m.state() for m in self.members()])

    def projects(self) -> list[ProjectRef]:
        seen: dict[str, ProjectRef] = {}
        for m in self.members():
            for p in m.projects():
                seen.setdefault(p.normalized, p)
        return [seen[k] for k in sorted(seen)]

    def resolve(self, normalized: str) -> tuple[list[tuple[str, ProjectPage]], list[str]]:
        """(member pages that serve the project, in order; members hidden by first-match)."""
        serving: list[tuple[str, ProjectPage]] = []
        hidden: list[str] = []
        for m in self.members():
            try:
                page = m.project(normalized)
            except ProjectNotFound:
                continue
            if serving and normalized not in self._merge:
                hidden.append(m.name)
                continue
            serving.append((m.name, page))
        if not serving:
            raise ProjectNotFound(f"project {normalized!r} not found in {self.name}")
        return serving, hidden

    def project(self, normalized: str) -> ProjectPage:
        serving, hidden = self.resolve(normalized)
        files: dict[str, DistFile] = {}
        for _, page in serving:
            for f in page.files:
                files.setdefault(f.filename, f)  # first member wins on a duplicate filename
        ordered = sort_files(list(files.values()))
        first = serving[0][1]
        return ProjectPage(name=first.name, normalized=normalized, files=tuple(ordered),
                           versions=sorted_versions(ordered), owner=serving[0][0],
                           hidden=tuple(hidden), status=first.status)

    def _owner_of(self, project: str, filename: str) -> "Repository":
        serving, _ = self.resolve(project)
        for name, page in serving:
            if any(f.filename == filename for f in page.files):
                return self.app.repository(name)
        raise FileNotFound(f"{filename} not found in {self.name}")

    def open_file(self, project: str, filename: str) -> tuple[StoredFile, Artifact | None]:
        return self._owner_of(project, filename).open_file(project, filename)

    def open_metadata(self, project: str, filename: str) -> StoredFile:
        return self._owner_of(project, filename).open_metadata(project, filename)
