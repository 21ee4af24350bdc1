"""What every repository answers, whatever its kind (hosted, proxy, group).

Three calls serve an index: ``projects()``, ``project(name)`` and ``open_file(...)``;
``state()`` returns a string that changes whenever any answer could change, which
is what page caches and ETags are keyed on.
"""
from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any, Callable, Protocol

from artifactd.model import Artifact, ProjectPage, ProjectRef, StoredFile

if TYPE_CHECKING:
    from artifactd.app import App
    from artifactd.config import RepoConfig


class WouldWait(Exception):
    """Raised, on a thread that must not wait (the HTTP server's connection loop), where an answer
    would need the network or another request: a proxy page due for revalidation, say. The caller
    has answered nothing yet and passes the request to a thread that may wait."""


_thread_state = threading.local()


def forbid_waiting() -> None:
    """From now on this thread gets :class:`WouldWait` instead of waiting (see ``may_wait``)."""
    _thread_state.no_wait = True


def may_wait() -> bool:
    return not getattr(_thread_state, "no_wait", False)


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


class RepositoryBase:
    """What every kind shares: its app, its configuration, its name, and a state that
    follows the repository's serial (bumped in the same transaction as every write)."""

    def __init__(self, app: "App", config: "RepoConfig") -> None:
        self.app = app
        self.config = config

    @property
    def name(self) -> str:
        return self.config.name

    def state(self) -> str:
        return f"{self.name}:{self.app.db.serial(self.name)}"


class GroupBase(RepositoryBase):
    """An ordered list of members; its state is theirs, so any member's write shows."""

    def members(self) -> list[Any]:
        return [self.app.repository(m) for m in self.config.members]

    def state(self) -> str:
        return "|".join([self.name] + [m.state() for m in self.members()])


class FileFetch(Protocol):
    """A first download from an upstream, to be run by exactly one caller.

    ``start()`` runs the plugin gate and opens the upstream response; it returns the
    declared length (None when unknown). ``run(sink)`` streams the body into the blob
    store, passing each chunk to ``sink`` (the client) except the last one, which is
    passed only after the sha256 was verified and the blob committed. Either call
    raises (UpstreamError, Forbidden, ...) and then nothing is cached.
    """

    sha256: str
    stream_to_client: bool

    def start(self) -> int | None: ...

    def run(self, sink: Callable[[bytes], object] | None = None) -> tuple[StoredFile, Artifact | None]: ...

    def cancel(self) -> None: ...


def project_state(repo: Repository, normalized: str) -> str:
    """A state string for one project page, cheap except that a proxy may revalidate
    with its upstream here (at most once per TTL). Raises ProjectNotFound when the
    repository can tell cheaply that it does not have the project.
    """
    fn = getattr(repo, "project_state", None)
    if fn is not None:
        return str(fn(normalized))
    return repo.state()


def open_or_fetch(repo: Repository, project: str, filename: str) -> tuple["StoredFile | FileFetch", Artifact | None]:
    """Like ``open_file``, but a proxy may return a :class:`FileFetch` for the caller to stream."""
    fn = getattr(repo, "open_or_fetch", None)
    if fn is not None:
        result: tuple[StoredFile | FileFetch, Artifact | None] = fn(project, filename)
        return result
    return repo.open_file(project, filename)


def lazy_kind(module: str, name: str) -> "Callable[[Any, Any], Any]":
    """A repository factory that imports ``module`` only when a repository of its kind is made.

    Keeps start-up (and every CLI command) from importing HTTP clients and parsers of
    repository kinds the configuration does not use.
    """
    import importlib

    def factory(app: Any, config: Any) -> Any:
        return getattr(importlib.import_module(module), name)(app, config)

    factory.__qualname__ = f"lazy_kind({module}.{name})"
    return factory
