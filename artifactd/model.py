"""Frozen dataclasses that cross layers (store ↔ repositories ↔ service ↔ http/cli)."""
from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

Decision = Literal["allow", "deny", "review"]


def utcnow() -> _dt.datetime:
    return _dt.datetime.now(_dt.timezone.utc)


def isotime(t: _dt.datetime) -> str:
    """``YYYY-MM-DDTHH:MM:SS.ffffffZ`` in UTC, exactly six fraction digits (STANDARDS R13)."""
    return t.astimezone(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def same_version(a: str | None, b: str) -> bool:
    """PEP 440 equality (``1.0 == 1.0.0``); plain string equality for versions that do not parse."""
    from packaging.version import InvalidVersion, Version

    if a is None:
        return False
    try:
        return Version(a) == Version(b)
    except InvalidVersion:
        return a == b


def parse_isotime(s: str) -> _dt.datetime:
    return _dt.datetime.fromisoformat(s.replace("Z", "+00:00"))


@dataclass(frozen=True)
class ProjectRef:
    """A project as the root page lists it."""

    name: str  # display name as uploaded
    normalized: str


@dataclass(frozen=True)
class DistFile:
    """One distribution file as an index page lists it."""

    filename: str
    project: str  # normalized project name
    version: str
    sha256: str
    size: int | None  # None only for a proxy file whose upstream (HTML) did not say and is not cached yet
    upload_time: str | None = None
    requires_python: str | None = None
    yanked: bool = False
    yanked_reason: str | None = None
    metadata_sha256: str | None = None  # PEP 658 core metadata blob
    packagetype: str | None = None
    repo: str = ""  # the repository that holds it (a group's member)
    # PEP 658/714 ``true``: core metadata is served but its hash is not known yet (a proxied
    # wheel whose upstream gave no metadata hash; known once the wheel is cached).
    metadata_advertised: bool = False

    @property
    def yanked_value(self) -> bool | str:
        if not self.yanked:
            return False
        return self.yanked_reason or True


@dataclass(frozen=True)
class ProjectPage:
    """Everything one project page shows: its files and versions, and who answered."""

    name: str  # display name
    normalized: str
    files: tuple[DistFile, ...]
    versions: tuple[str, ...]
    owner: str = ""  # repository that answered (group: the owning member)
    hidden: tuple[str, ...] = ()  # group: members whose files were hidden
    status: str | None = None


@dataclass(frozen=True)
class StoredFile:
    """A file ready to be served from the blob store."""

    path: Path
    sha256: str
    size: int
    mtime: float
    content_type: str = "application/octet-stream"


@dataclass(frozen=True)
class Artifact:
    """A stored artifact row (PyPI file or generic file)."""

    id: int
    repo: str
    path: str
    sha256: str
    size: int
    created: str
    created_by: str | None = None
    kind: str = "pypi"
    project: str | None = None
    project_name: str | None = None
    version: str | None = None
    filename: str | None = None
    packagetype: str | None = None
    requires_python: str | None = None
    metadata_sha256: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)
    yanked: bool = False
    yanked_reason: str | None = None
    downloads: int = 0
    last_download: str | None = None
    pinned: bool = False

    def to_dist_file(self) -> DistFile:
        return DistFile(
            filename=self.filename or self.path.rsplit("/", 1)[-1],
            project=self.project or "",
            version=self.version or "",
            sha256=self.sha256,
            size=self.size,
            upload_time=self.created,
            requires_python=self.requires_python,
            yanked=self.yanked,
            yanked_reason=self.yanked_reason,
            metadata_sha256=self.metadata_sha256,
            packagetype=self.packagetype,
            repo=self.repo,
        )


@dataclass(frozen=True)
class Verdict:
    """A gate's answer: ``allow`` passes, ``deny`` refuses, ``review`` passes but is reported."""

    decision: Decision
    reason: str
    plugin: str = ""

    @classmethod
    def deny(cls, reason: str, plugin: str = "") -> "Verdict":
        return cls("deny", reason, plugin)

    @classmethod
    def allow(cls, reason: str = "", plugin: str = "") -> "Verdict":
        return cls("allow", reason, plugin)


@dataclass(frozen=True)
class Deletion:
    """A retention policy's proposal to delete an artifact, with the rule that matched."""

    artifact: Artifact
    policy: str
    reason: str


@dataclass(frozen=True)
class TokenInfo:
    """An API token's row (the secret itself is never stored)."""

    id: int
    user: str
    name: str
    scopes: tuple[str, ...]
    repos: tuple[str, ...]  # empty: every repository
    created: str
    expires: str | None
    last_used: str | None
    revoked: bool


LEVELS = {"read": 0, "write": 1, "delete": 2, "admin": 3}


@dataclass(frozen=True)
class Principal:
    """Who is making a request.

    ``scopes`` cap what this credential may do (a token's scopes; a password gets all);
    ``grants`` are the user's per-repository levels, loaded at authentication
    (repo ``"*"`` = every repository). ``grants=None`` means scopes alone decide
    (internal principals such as SYSTEM). Both must allow an action.
    """

    user: str | None  # None: anonymous
    scopes: tuple[str, ...] = ()
    repos: tuple[str, ...] = ()
    is_admin: bool = False
    grants: tuple[tuple[str, str], ...] | None = None

    @property
    def anonymous(self) -> bool:
        return self.user is None

    def level(self, repo: str) -> int:
        """The user's granted level on ``repo`` (-1: none)."""
        if self.grants is None:
            return LEVELS["admin"]
        return max((LEVELS.get(lvl, -1) for r, lvl in self.grants if r in (repo, "*")), default=-1)

    def can(self, action: str, repo: str) -> bool:
        if self.user is None:
            return False
        if self.repos and repo not in self.repos:
            return False
        if self.is_admin:
            return True
        need = LEVELS.get(action, LEVELS["admin"])
        if not any(LEVELS.get(s, -1) >= need for s in self.scopes):
            return False
        return self.level(repo) >= need


ANONYMOUS = Principal(user=None)
SYSTEM = Principal(user="system", scopes=("admin",), is_admin=True)
