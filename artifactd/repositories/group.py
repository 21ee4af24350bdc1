"""Groups: ordered members answering as one index, with dependency-confusion protection.

For each project the first member that has it owns it; later members' files for
that project are hidden unless the project is on the group's ``merge`` list. A
member's ProjectNotFound means "ask the next"; any other error propagates (502),
never a silent fall-through to a later member.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any


from artifactd.errors import ArtifactdError, FileNotFound, ProjectNotFound
from artifactd.formats.pypi.names import normalize
from artifactd.model import Artifact, DistFile, ProjectPage, ProjectRef, StoredFile
from artifactd.repositories.base import FileFetch, GroupBase, open_or_fetch, project_state
from artifactd.repositories.hosted import sort_files, sorted_versions

if TYPE_CHECKING:
    from artifactd.app import App
    from artifactd.config import RepoConfig
    from artifactd.repositories.base import Repository


class GroupPypi(GroupBase):
    def __init__(self, app: "App", config: "RepoConfig") -> None:
        super().__init__(app, config)
        self._merge = frozenset(normalize(m) for m in config.merge)

    def members(self) -> list["Repository"]:
        return super().members()

    def projects(self) -> list[ProjectRef]:
        seen: dict[str, ProjectRef] = {}
        for m in self.members():
            for p in m.projects():
                seen.setdefault(p.normalized, p)
        return [seen[k] for k in sorted(seen)]

    def project_state(self, normalized: str) -> str:
        """The members' states for this project, in the same first-match order as ``resolve``."""
        parts = [self.name]
        found = False
        for m in self.members():
            try:
                parts.append(project_state(m, normalized))
            except ProjectNotFound:
                parts.append(f"{m.name}:-")
                continue
            found = True
            if normalized not in self._merge:
                break
        if not found:
            raise ProjectNotFound(f"project {normalized!r} not found in {self.name}")
        return "|".join(parts)

    def resolve(self, normalized: str, *, explain: bool = False
                ) -> tuple[list[tuple[str, ProjectPage]], list[str]]:
        """(member pages that serve the project, in order; members hidden by first-match).

        Without ``explain`` the members after the owner are not asked at all (unless the
        project is on the merge list): they cannot change the answer, and a proxy behind
        a hosted owner must not cost an upstream request or turn its outage into a 502.
        With ``explain`` they are asked, to report what is hidden (``artifactd why``).
        """
        serving: list[tuple[str, ProjectPage]] = []
        hidden: list[str] = []
        for m in self.members():
            if serving and normalized not in self._merge and not explain:
                break
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

    def explain(self, normalized: str) -> dict[str, Any]:
        """Which member serves the project, and what first-match hid (``artifactd why``)."""
        merged = normalized in self._merge
        rows: list[dict[str, Any]] = []
        owner: str | None = None
        for m in self.members():
            row: dict[str, Any] = {"member": m.name, "type": m.config.type}
            try:
                page = m.project(normalized)
            except ProjectNotFound:
                row["result"] = "not found"
                rows.append(row)
                continue
            except ArtifactdError as exc:
                row["result"] = "error"
                row["error"] = exc.message
                rows.append(row)
                if owner is None:
                    break  # the group answers 502 here: later members are never reached
                continue
            row["files"] = len(page.files)
            row["versions"] = list(page.versions)
            if page.owner and page.owner != m.name:
                row["via"] = page.owner
            if owner is None:
                owner = m.name
                row["result"] = "serves"
            elif merged:
                row["result"] = "serves (merged)"
            else:
                row["result"] = "hidden"
            rows.append(row)
        hidden = [r["member"] for r in rows if r["result"] == "hidden"]
        return {"group": self.name, "project": normalized, "owner": owner, "merge_listed": merged,
                "hidden": hidden, "members": rows}

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

    def open_or_fetch(self, project: str, filename: str) -> tuple["StoredFile | FileFetch", Artifact | None]:
        return open_or_fetch(self._owner_of(project, filename), project, filename)

    def open_metadata(self, project: str, filename: str) -> StoredFile:
        return self._owner_of(project, filename).open_metadata(project, filename)
