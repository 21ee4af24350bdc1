"""The plugin contract: every hook artifactd calls, grouped by phase.

Each spec is an empty function whose docstring is the contract. Implementations
use ``@artifactd.hookimpl`` and may accept fewer arguments than the spec, so specs
can grow. Callers never use ``pm.hook`` directly: see :class:`artifactd.plugins.Hooks`.

Families:

* setup — ``artifactd_addhooks``, ``artifactd_register_formats``,
  ``artifactd_register_repository_kinds``, ``artifactd_register_commands``,
  ``artifactd_startup``, ``artifactd_shutdown``;
* gates — ``artifactd_check_upload``, ``artifactd_check_proxy_fetch``,
  ``artifactd_check_promotion``, ``artifactd_check_dependency``: every implementation runs, each returns a
  :class:`~artifactd.model.Verdict` or None; any ``deny`` wins and every reason is reported;
* providers (first non-None result wins) — ``artifactd_license_of``, ``artifactd_upstream_auth``;
* reports — ``artifactd_health_checks``, ``artifactd_check_report``;
* retention — ``artifactd_retention_select`` (unioned), ``artifactd_retention_keep`` (veto);
* events after commit — ``artifactd_after_upload``, ``artifactd_after_download``,
  ``artifactd_after_delete``, ``artifactd_after_promotion``: errors are logged, never fatal.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

import pluggy

if TYPE_CHECKING:
    from pathlib import Path

    import click
    import pluggy as _pluggy

    from artifactd.app import App
    from artifactd.config import Config
    from artifactd.model import Artifact, Deletion, Verdict

hookspec = pluggy.HookspecMarker("artifactd")

# --- setup ---------------------------------------------------------------------


@hookspec(historic=True)
def artifactd_addhooks(pluginmanager: "_pluggy.PluginManager") -> None:
    """Add further hookspecs (``pluginmanager.add_hookspecs(module)``) for other plugins to implement."""


@hookspec
def artifactd_register_formats(registry: dict[str, Any]) -> None:
    """Register repository formats: ``registry["pypi"] = format_object``.

    :param registry: format name → format object; a later registration of the same name replaces it.
    """


@hookspec
def artifactd_register_repository_kinds(registry: dict[str, Any]) -> None:
    """Register repository kinds: ``registry[("hosted", "pypi")] = factory``.

    A factory is called as ``factory(app, repo_config)`` and returns a repository object.
    """


@hookspec
def artifactd_register_commands(cli: "click.Group") -> None:
    """Add click commands or groups to the ``artifactd`` command line."""


@hookspec
def artifactd_configure(config: "Config") -> None:
    """Called with the configuration at start and after every reload (validate your own section)."""


@hookspec
def artifactd_startup(app: "App") -> None:
    """The server is about to accept connections (start background work here)."""


@hookspec
def artifactd_shutdown(app: "App") -> None:
    """The server is stopping (stop and join background work)."""


# --- gates -----------------------------------------------------------------------


@hookspec
def artifactd_check_upload(repository: str, artifact: "Artifact", blob_path: "Path", metadata: dict[str, Any]) -> "Verdict | None":
    """Before an upload is committed: return ``Verdict.deny(reason)`` to refuse it (403).

    Every implementation runs; any deny wins and every reason is reported.
    :param artifact: the row that would be written (``id`` is 0; not yet visible).
    :param blob_path: the verified bytes on disk (read-only).
    :param metadata: parsed core metadata (PyPI) or properties (generic), may be empty.
    """


@hookspec
def artifactd_check_proxy_fetch(repository: str, project: str, version: str, filename: str, metadata: dict[str, Any]) -> "Verdict | None":
    """Before a proxy repository downloads a file from its upstream for the first time.

    Deny to refuse the download (403 to the client, nothing fetched).
    """


@hookspec
def artifactd_check_promotion(source: str, target: str, artifact: "Artifact") -> "Verdict | None":
    """Before an artifact is copied or moved from ``source`` to ``target``. Deny refuses the promotion."""


@hookspec
def artifactd_check_dependency(name: str, version: str) -> "Verdict | None":
    """A Python dependency of a build (``name==version``, not necessarily stored here).

    Called by ``artifactd build scan`` and before ``build promote`` for every dependency
    the build record lists (from a requirements/lock file or ``pip freeze``). Deny to fail
    the scan and refuse the promotion (unless forced); ``review`` passes but is reported.
    Every implementation runs; any deny wins and every reason is reported.

    :param name: the distribution name as recorded (not necessarily normalized).
    :param version: the exact version string (``==`` pin).
    """


# --- providers -------------------------------------------------------------------


@hookspec(firstresult=True)
def artifactd_license_of(artifact: "Artifact", metadata: dict[str, Any]) -> str | None:
    """The SPDX license expression of a distribution, or None if unknown. Stops at first non-None result."""


@hookspec(firstresult=True)
def artifactd_upstream_auth(url: str) -> tuple[str, str] | None:
    """(username, password) for an upstream URL, or None. Stops at first non-None result."""


# --- reports ---------------------------------------------------------------------


@hookspec
def artifactd_health_checks(app: "App") -> list[dict[str, Any]] | None:
    """Liveness/readiness checks: each ``{"name", "ok": bool, "detail"}``; any not ok → 503 on /-/health."""


@hookspec
def artifactd_check_report(app: "App", repository: str, artifacts: Sequence["Artifact"]) -> dict[str, Any] | None:
    """A section of ``artifactd check``: ``{"plugin": name, "packages": [...], "summary": {...}}``.

    Return None only when the plugin is not configured: each report first asks with an empty
    ``artifacts`` list and reads the repository's rows only if some plugin answers.

    For a whole repository ``artifacts`` is a sequence that streams from the database when
    iterated, ordered so that one release's files are consecutive (``release_ordered``); look at
    one release at a time (``artifactd_plugins.iter_releases``) and the report holds one
    release in memory, not the repository. Indexing it reads every row into a list first.
    """


# --- retention -------------------------------------------------------------------


@hookspec
def artifactd_retention_select(app: "App", repository: str, artifacts: Sequence["Artifact"], now: float) -> list["Deletion"] | None:
    """Propose deletions (each with the policy and rule that matched). Results of all plugins are unioned.

    ``artifacts`` streams from the database each time it is iterated, as for ``artifactd_check_report``.
    """


@hookspec(firstresult=True)
def artifactd_retention_keep(app: "App", repository: str, artifact: "Artifact") -> str | None:
    """Veto a deletion: return the reason to keep ``artifact`` (latest, promoted, pinned), else None."""


# --- events ----------------------------------------------------------------------


@hookspec
def artifactd_after_upload(repository: str, artifact: "Artifact") -> None:
    """An upload was committed. Errors are logged, never fatal."""


@hookspec
def artifactd_after_download(repository: str, artifact: "Artifact", cached: bool) -> None:
    """A file was served (``cached``: from the store, not fetched upstream now)."""


@hookspec
def artifactd_after_delete(repository: str, artifact: "Artifact", reason: str) -> None:
    """An artifact's metadata was deleted (its blob goes at the next gc)."""


@hookspec
def artifactd_after_promotion(source: str, target: str, artifact: "Artifact") -> None:
    """An artifact was promoted (copied or moved) from ``source`` to ``target``."""
