"""Hosted repositories: the authoritative copy, backed by the metadata store and blobs."""
from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING, Any

from packaging.version import InvalidVersion, Version

from artifactd.errors import FileNotFound, ProjectNotFound
from artifactd.model import Artifact, DistFile, ProjectPage, ProjectRef, StoredFile
from artifactd.repositories.base import RepositoryBase
from artifactd.store.verify import verifier

if TYPE_CHECKING:
    from artifactd.app import App
    from artifactd.config import RepoConfig


def version_key(v: str) -> tuple[int, Version | str]:
    try:
        return (1, Version(v))
    except InvalidVersion:
        return (0, v)


@lru_cache(maxsize=8192)
def order_key(v: str) -> tuple[Any, ...]:
    """Orders exactly as :func:`version_key`, but with plain tuples that compare in C.

    Sorting a 2,000-version page by ``Version`` objects spent most of a cold render in
    ``Version.__lt__``/``__eq__``; this mirrors packaging's comparison key using only the
    public attributes (infinities become small ints) and is memoized per version string.
    """
    try:
        ver = Version(v)
    except InvalidVersion:
        return (0, v)
    release = list(ver.release)
    while release and release[-1] == 0:
        release.pop()
    pre, post, dev, local = ver.pre, ver.post, ver.dev, ver.local
    if pre is None and post is None and dev is not None:
        pre_k: tuple[Any, ...] = (0,)
    elif pre is None:
        pre_k = (2,)
    else:
        pre_k = (1, pre[0], pre[1])
    post_k = (0,) if post is None else (1, post)
    dev_k = (1,) if dev is None else (0, dev)
    if local is None:
        local_k: tuple[Any, ...] = (0,)
    else:
        local_k = (1, tuple((1, int(p), "") if p.isdigit() else (0, 0, p) for p in local.split(".")))
    return (1, (ver.epoch, tuple(release), pre_k, post_k, dev_k, local_k))


def sort_files(files: list[DistFile]) -> list[DistFile]:
    return sorted(files, key=lambda f: (order_key(f.version), f.filename))


def sorted_versions(files: list[DistFile]) -> tuple[str, ...]:
    seen: dict[str, None] = {}
    for f in sorted(files, key=lambda f: order_key(f.version)):
        seen.setdefault(f.version, None)
    return tuple(seen)


def stored(app: "App", sha256: str, size: int | None = None) -> StoredFile:
    """A blob ready to serve, verified first (store/verify.py): damaged or missing → StoreDamaged (500)."""
    path = app.blobs.path(sha256)
    st = verifier(app.blobs).check(sha256, path, size)
    return StoredFile(path=path, sha256=sha256, size=st.st_size, mtime=st.st_mtime)


class HostedPypi(RepositoryBase):
    def __init__(self, app: "App", config: "RepoConfig") -> None:
        super().__init__(app, config)
        self._projects: tuple[int, list[ProjectRef]] | None = None

    def project_state(self, normalized: str) -> str:
        """The project's own serial (one indexed query): other projects' uploads leave it alone."""
        serial = self.app.db.project_serial(self.name, normalized)
        if serial is None:
            raise ProjectNotFound(f"project {normalized!r} not found in {self.name}")
        return f"{self.name}:{normalized}:{serial}"

    def projects(self) -> list[ProjectRef]:
        # The GROUP BY behind this list is most of a cold root page (10,000 projects: ~12 ms);
        # keep it while the serial holds, like the page cache, so each media type and each
        # group containing this repository does not run it again. The serial is read first:
        # a concurrent upload can only make the entry look stale, never hide the upload.
        serial = self.app.db.serial(self.name)
        hit = self._projects
        if hit is not None and hit[0] == serial:
            return list(hit[1])
        refs = [ProjectRef(name=display or norm, normalized=norm) for norm, display in self.app.db.projects(self.name)]
        self._projects = (serial, refs)
        return list(refs)

    def project(self, normalized: str) -> ProjectPage:
        # Only the columns a page needs (no metadata JSON to decode), straight into DistFiles:
        # the same values Artifact.to_dist_file() gives, without the intermediate objects.
        rows = self.app.db.project_files(self.name, normalized)
        if not rows:
            raise ProjectNotFound(f"project {normalized!r} not found in {self.name}")
        repo = self.name
        files = sort_files([
            DistFile(filename=fn or path.rsplit("/", 1)[-1], project=proj or "", version=ver or "", sha256=sha,
                     size=size, upload_time=created, requires_python=rp, yanked=bool(y), yanked_reason=yr,
                     metadata_sha256=msha, packagetype=pt, repo=repo)
            for fn, path, proj, ver, sha, size, created, rp, y, yr, msha, pt, _ in rows
        ])
        display = rows[-1][12] or normalized
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
