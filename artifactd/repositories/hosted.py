"""Hosted repositories: the authoritative copy, backed by the metadata store and blobs."""
from __future__ import annotations

from typing import TYPE_CHECKING

from packaging.version import InvalidVersion, Version

from artifactd.errors import FileNotFound, ProjectNotFound
from artifactd.model import Artifact, DistFile, ProjectPage, ProjectRef, StoredFile
from artifactd.store.verify import verifier

if TYPE_CHECKING:
    from artifactd.app import App
    from artifactd.config import RepoConfig


def version_key(v: str) -> tuple[int, Version | str]:
    try:
        return (1, Version(v))
    except InvalidVersion:
        return (0, v)


def sort_files(files: list[DistFile]) -> list[DistFile]:
    return sorted(files, key=lambda f: (version_key(f.version), f.filename))


def sorted_versions(files: list[DistFile]) -> tuple[str, ...]:
    seen: dict[str, None] = {}
    for f in sorted(files, key=lambda f: version_key(f.version)):
        seen.setdefault(f.version, None)
    return tuple(seen)


def stored(app: "App", sha256: str, size: int | None = None) -> StoredFile:
    """A blob ready to serve, verified first (store/verify.py): damaged or missing → StoreDamaged (500)."""
    path = app.blobs.path(sha256)
    st = verifier(app.blobs).check(sha256, path, size)
    return StoredFile(path=path, sha256=sha256, size=st.st_size, mtime=st.st_mtime)


class HostedPypi:
    def __init__(self, app: "App", config: "RepoConfig") -> None:
        self.app = app
        self.config = config

    @property
    def name(self) -> str:
        return self.config.name

    def state(self) -> str:
        return f"{self.name}:{self.app.db.serial(self.name)}"

    def project_state(self, normalized: str) -> str:
        """``state()``, after checking (one indexed query) that the project exists."""
        if not self.app.db.has_project(self.name, normalized):
            raise ProjectNotFound(f"project {normalized!r} not found in {self.name}")
        return self.state()

    def projects(self) -> list[ProjectRef]:
        return [ProjectRef(name=display or norm, normalized=norm) for norm, display in self.app.db.projects(self.name)]

    def project(self, normalized: str) -> ProjectPage:
        arts = self.app.db.project_artifacts(self.name, normalized)
        if not arts:
            raise ProjectNotFound(f"project {normalized!r} not found in {self.name}")
        files = sort_files([a.to_dist_file() for a in arts])
        display = arts[-1].project_name or normalized
        return ProjectPage(name=display, normalized=normalized, files=tuple(files),
                           versions=sorted_versions(files), owner=self.name)

    def _artifact(self, project: str, filename: str) -> Artifact:
        art = self.app.db.get_by_filename(self.name, filename)
        if art is None or art.project != project:
            raise FileNotFound(f"{filename} not found in {self.name}")
        return art

    def open_file(self, project: str, filename: str) -> tuple[StoredFile, Artifact | None]:
        art = self._artifact(project, filename)
        return stored(self.app, art.sha256, art.size), art

    def open_metadata(self, project: str, filename: str) -> StoredFile:
        art = self._artifact(project, filename)
        if not art.metadata_sha256:
            raise FileNotFound(f"no core metadata for {filename}")
        return stored(self.app, art.metadata_sha256)
