"""The built-in ``retention`` plugin: named cleanup policies and the protections that veto them.

Configuration (``artifactd.toml``), one table per policy::

    [cleanup.dev-cleanup]
    repositories = ["py-dev"]
    older-than = "30d"              # uploaded at least this long ago
    not-downloaded-for = "90d"      # last download (or upload, if never downloaded) this long ago
    keep-latest = 5                 # not among the 5 highest versions of its project
    prereleases-only = true         # only pre-/dev-releases
    name-pattern = "acme-*"         # glob on the normalized project name (generic files: the path)

Criteria are ANDed within a policy (as in Nexus): a file is selected only when every criterion
the policy names matches; a policy must name at least one. Several policies on one repository
are unioned. ``artifactd cleanup`` lists the selection (dry run); ``--apply`` deletes.

Protections (``artifactd_retention_keep``; a veto always wins over a selection):

* the only release, the latest release and the latest final release of a project;
* pinned files (``artifactd pin REPO PROJECT VERSION``);
* files carrying a property named in :data:`PROTECT_PROPERTIES` (``promoted``, ``retain``):
  promotion records it, and anyone may set ``retain``. Other plugins can add their own veto
  by implementing ``artifactd_retention_keep``.
"""
from __future__ import annotations

import fnmatch
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from packaging.version import InvalidVersion, Version

from artifactd import hookimpl
from artifactd.config import parse_duration
from artifactd.errors import ConfigError
from artifactd.model import Deletion, parse_isotime

if TYPE_CHECKING:
    from artifactd.app import App
    from artifactd.config import Config
    from artifactd.model import Artifact

NAME = "retention"
_KEYS = {"repositories", "older-than", "not-downloaded-for", "keep-latest", "prereleases-only", "name-pattern"}
_CRITERIA = _KEYS - {"repositories"}


@dataclass(frozen=True)
class Policy:
    """One ``[cleanup.<name>]`` policy, validated: every criterion set must match."""

    name: str
    repositories: tuple[str, ...]
    older_than: float | None = None
    not_downloaded_for: float | None = None
    keep_latest: int | None = None
    prereleases_only: bool = False
    name_pattern: str | None = None


def parse_policies(cleanup: Mapping[str, Mapping[str, Any]]) -> dict[str, Policy]:
    """Validate every ``[cleanup.NAME]`` table. Raises ConfigError naming the policy and key."""
    out: dict[str, Policy] = {}
    for name, table in cleanup.items():
        where = f"cleanup.{name}"
        for key in table:
            if key not in _KEYS:
                raise ConfigError(f"{where}: unknown key {key!r} (expected one of {', '.join(sorted(_KEYS))})")
        repos = table.get("repositories")
        if not isinstance(repos, list) or not repos or not all(isinstance(r, str) for r in repos):
            raise ConfigError(f"{where}.repositories: expected a non-empty list of repository names")
        if not any(k in table for k in _CRITERIA):
            raise ConfigError(f"{where}: name at least one criterion ({', '.join(sorted(_CRITERIA))})")
        keep = table.get("keep-latest")
        if keep is not None and (isinstance(keep, bool) or not isinstance(keep, int) or keep < 1):
            raise ConfigError(f"{where}.keep-latest: expected a positive integer, got {keep!r}")
        pre = table.get("prereleases-only", False)
        if not isinstance(pre, bool):
            raise ConfigError(f"{where}.prereleases-only: expected true or false, got {pre!r}")
        pattern = table.get("name-pattern")
        if pattern is not None and (not isinstance(pattern, str) or not pattern):
            raise ConfigError(f"{where}.name-pattern: expected a glob such as 'acme-*', got {pattern!r}")
        out[name] = Policy(
            name=name,
            repositories=tuple(repos),
            older_than=parse_duration(table["older-than"], f"{where}.older-than") if "older-than" in table else None,
            not_downloaded_for=(parse_duration(table["not-downloaded-for"], f"{where}.not-downloaded-for")
                                if "not-downloaded-for" in table else None),
            keep_latest=keep,
            prereleases_only=pre,
            name_pattern=pattern,
        )
    return out


def _days(seconds: float) -> str:
    days = seconds / 86400
    return f"{days:.0f}d" if days >= 1 else f"{seconds / 3600:.1f}h"


def _version(v: str | None) -> Version | None:
    try:
        return Version(v) if v else None
    except InvalidVersion:
        return None


def _ranks(artifacts: Iterable["Artifact"]) -> dict[tuple[str, str], int]:
    """(project, version) → 0 for the highest version of its project, 1 for the next..."""
    versions: dict[str, set[str]] = {}
    for a in artifacts:
        if a.kind == "pypi" and a.project and a.version:
            versions.setdefault(a.project, set()).add(a.version)
    ranks: dict[tuple[str, str], int] = {}
    for project, vs in versions.items():
        ordered = sorted(vs, key=lambda v: (_version(v) is not None, _version(v) or Version("0")), reverse=True)
        for i, v in enumerate(ordered):
            ranks[(project, v)] = i
    return ranks


def evaluate(policy: Policy, art: "Artifact", now: float, rank: int | None) -> list[str] | None:
    """The reasons every criterion of ``policy`` matches ``art``, or None if one does not."""
    reasons: list[str] = []
    created = parse_isotime(art.created).timestamp()
    if policy.older_than is not None:
        age = now - created
        if age < policy.older_than:
            return None
        reasons.append(f"uploaded {_days(age)} ago (older-than {_days(policy.older_than)})")
    if policy.not_downloaded_for is not None:
        last = parse_isotime(art.last_download).timestamp() if art.last_download else created
        idle = now - last
        if idle < policy.not_downloaded_for:
            return None
        what = f"last downloaded {_days(idle)} ago" if art.last_download else f"never downloaded in {_days(idle)}"
        reasons.append(f"{what} (not-downloaded-for {_days(policy.not_downloaded_for)})")
    if policy.keep_latest is not None:
        if rank is None or rank < policy.keep_latest:
            return None
        reasons.append(f"release #{rank + 1} of its project (keep-latest {policy.keep_latest})")
    if policy.prereleases_only:
        v = _version(art.version)
        if v is None or not v.is_prerelease:
            return None
        reasons.append(f"prerelease {art.version}")
    if policy.name_pattern is not None:
        names = [n for n in (art.project, art.project_name) if n] if art.kind == "pypi" else [art.path]
        if not any(fnmatch.fnmatchcase(n.lower(), policy.name_pattern.lower()) for n in names):
            return None
        reasons.append(f"name matches {policy.name_pattern!r}")
    return reasons


class _State:
    def __init__(self) -> None:
        self.policies: dict[str, Policy] = {}
        self.lock = threading.Lock()
        self.latest_cache: dict[tuple[str, str, str], tuple[int, dict[str, str]]] = {}


STATE = _State()


def latest_of(app: "App", repository: str, project: str) -> dict[str, str]:
    """{"count", "latest", "latest_final"} for one project, cached per repository serial."""
    serial = app.db.serial(repository)
    key = (str(app.layout.root), repository, project)
    with STATE.lock:
        hit = STATE.latest_cache.get(key)
        if hit is not None and hit[0] == serial:
            return hit[1]
    versions = {a.version for a in app.db.project_artifacts(repository, project) if a.kind == "pypi" and a.version}
    parsed = [(v, p) for v in versions if (p := _version(v)) is not None]
    info = {"count": str(len(versions))}
    if parsed:
        info["latest"] = max(parsed, key=lambda vp: vp[1])[0]
        finals = [vp for vp in parsed if not vp[1].is_prerelease]
        if finals:
            info["latest_final"] = max(finals, key=lambda vp: vp[1])[0]
    with STATE.lock:
        if len(STATE.latest_cache) > 10000:
            STATE.latest_cache.clear()
        STATE.latest_cache[key] = (serial, info)
    return info


# --- hooks -----------------------------------------------------------------------------------


@hookimpl
def artifactd_configure(config: "Config") -> None:
    STATE.policies = parse_policies(config.cleanup)


@hookimpl
def artifactd_retention_select(repository: str, artifacts: Sequence["Artifact"], now: float) -> list[Deletion]:
    policies = [p for p in STATE.policies.values() if repository in p.repositories]
    if not policies:
        return []
    ranks = _ranks(artifacts) if any(p.keep_latest for p in policies) else {}
    out: list[Deletion] = []
    for art in artifacts:
        rank = ranks.get((art.project or "", art.version or ""))
        for policy in policies:
            reasons = evaluate(policy, art, now, rank)
            if reasons is not None:
                out.append(Deletion(art, policy.name, "; ".join(reasons)))
    return out


@hookimpl
def artifactd_retention_keep(app: "App", repository: str, artifact: "Artifact") -> str | None:
    fresh = app.db.get_by_id(artifact.id) or artifact
    if fresh.pinned:
        return "pinned"
    from artifactd.policy import PROTECT_PROPERTIES  # here: the server starts without the policy module

    prop = app.db.protecting_property(artifact.id, PROTECT_PROPERTIES)
    if prop is not None:
        return f"protected by property {prop[0]}={prop[1]}"
    if artifact.kind != "pypi" or not artifact.project or not artifact.version:
        return None
    info = latest_of(app, repository, artifact.project)
    if info.get("count") == "1":
        return f"only release of {artifact.project}"
    if artifact.version == info.get("latest"):
        return f"latest release of {artifact.project}"
    if artifact.version == info.get("latest_final"):
        return f"latest final release of {artifact.project}"
    return None
