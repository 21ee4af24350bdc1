"""The built-in ``health`` plugin: OSV vulnerability advisories as a report and an optional gate.

Configuration (``artifactd.toml``)::

    [plugins.health]
    advisories = "/path/to/osv"   # a folder of OSV .json/.yaml files, or an OSV bulk zip (all.zip)
    block-on = "none"             # report only (default); or "critical", "high", "medium", "low"; or "any"

Without ``advisories`` the plugin does nothing. The parsed index is cached as JSON under
``<data>/cache/osv`` and reloaded when the source changes (checked at most every
:data:`STALE_CHECK_SECONDS`). Matching is :mod:`artifactd_plugins.osv` (RELIABILITY.md §4).

``block-on`` refuses uploads, first proxy fetches, promotions and build dependencies that have
an advisory at or above the threshold (``malicious`` records always count; ``unknown`` severity
only with ``"any"``; ``unverifiable`` findings count like affected ones: never "clean").
When the database cannot be loaded and ``block-on`` is set, those gates deny (fail closed).

The plugin keeps one configuration per process (the last ``artifactd_configure`` call).
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from artifactd import hookimpl
from artifactd.errors import ConfigError
from artifactd.model import Verdict

from artifactd_plugins._common import iter_releases, last_download

if TYPE_CHECKING:
    # The advisory machinery (artifactd_plugins.osv) is imported when first needed, not at start-up.
    from artifactd_plugins.osv import AdvisoryDB, MergedFinding

    from artifactd.app import App
    from artifactd.config import Config
    from artifactd.model import Artifact

log = logging.getLogger(__name__)

NAME = "health"
BLOCK_ON = ("none", "any", "critical", "high", "medium", "low")
_KEYS = {"advisories", "block-on"}
STALE_CHECK_SECONDS = 5.0


@dataclass(frozen=True)
class HealthSettings:
    """``[plugins.health]``, validated."""

    advisories: Path | None = None
    block_on: str = "none"
    cache_dir: Path | None = None


def parse_settings(section: Mapping[str, Any], data_dir: Path | None) -> HealthSettings:
    """Validate ``[plugins.health]``. Raises ConfigError naming the bad key."""
    for key in section:
        if key not in _KEYS:
            raise ConfigError(f"plugins.health: unknown key {key!r} (expected one of {', '.join(sorted(_KEYS))})")
    block_on = section.get("block-on", "none")
    if not isinstance(block_on, str) or block_on.lower() not in BLOCK_ON:
        raise ConfigError(f"plugins.health.block-on: expected one of {', '.join(BLOCK_ON)}, got {block_on!r}")
    raw = section.get("advisories")
    advisories = None
    if raw is not None:
        if not isinstance(raw, str) or not raw.strip():
            raise ConfigError(f"plugins.health.advisories: expected a path, got {raw!r}")
        advisories = Path(raw).expanduser()
        if not advisories.is_absolute() and data_dir is not None:
            advisories = data_dir / advisories
    return HealthSettings(
        advisories=advisories,
        block_on=block_on.lower(),
        cache_dir=data_dir / "cache" / "osv" if data_dir is not None else None,
    )


def blocking(findings: Sequence[MergedFinding], block_on: str) -> list[MergedFinding]:
    """The findings that ``block-on`` refuses."""
    if block_on == "none":
        return []
    if block_on == "any":
        return list(findings)
    from artifactd_plugins.osv import SEVERITIES

    rank = {s: i for i, s in enumerate(SEVERITIES)}
    limit = rank[block_on]
    return [f for f in findings if f.malicious or rank[f.severity] <= limit]


def describe(f: MergedFinding) -> str:
    label = "malicious" if f.malicious else f.severity
    if f.status == "unverifiable":
        label += ", unverifiable"
    return f"{'/'.join(f.ids)} ({label})"


class _State:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.settings = HealthSettings()
        self.db: AdvisoryDB | None = None
        self.error: str | None = None
        self.checked_at = 0.0

    def configure(self, settings: HealthSettings) -> None:
        with self.lock:
            if settings.advisories != self.settings.advisories:
                self.db, self.error, self.checked_at = None, None, 0.0
            self.settings = settings

    @property
    def enabled(self) -> bool:
        return self.settings.advisories is not None

    def database(self) -> AdvisoryDB | None:
        """The loaded database (loading or reloading it when needed), or None if unavailable."""
        settings = self.settings
        if settings.advisories is None:
            return None
        with self.lock:
            now = time.monotonic()
            due = self.db is None and self.error is None or now - self.checked_at >= STALE_CHECK_SECONDS
            if due and (self.db is None or self.db.stale()):
                try:
                    from artifactd_plugins.osv import AdvisoryDB

                    self.db = AdvisoryDB.load(settings.advisories, settings.cache_dir)
                    self.error = None
                    log.info("advisories loaded: %r (%d records, cache %s)", self.db.source, self.db.count,
                             "hit" if self.db.from_cache else "miss")
                except (OSError, ValueError) as exc:
                    self.error = f"cannot load advisories from {settings.advisories}: {exc}"
                    log.error("%s", self.error)
            if due:
                self.checked_at = now
            return self.db


STATE = _State()


def _gate(name: str | None, version: str | None) -> Verdict | None:
    if not STATE.enabled or not name or not version:
        return None
    block_on = STATE.settings.block_on
    db = STATE.database()
    if db is None:
        if block_on != "none":
            return Verdict.deny(f"{name} {version}: advisory database unavailable ({STATE.error})")
        return None
    findings = db.match_merged(name, version)
    if not findings:
        return None
    blocked = blocking(findings, block_on)
    if blocked:
        return Verdict.deny(
            f"{name} {version} has advisories (block-on {block_on}): " + ", ".join(describe(f) for f in blocked)
        )
    return Verdict("review", f"{name} {version} has advisories (report only): " + ", ".join(describe(f) for f in findings))


# --- hooks -----------------------------------------------------------------------------------


@hookimpl
def artifactd_configure(config: "Config") -> None:
    data_dir = config.path.parent if config.path is not None else None
    STATE.configure(parse_settings(config.plugins.get(NAME, {}), data_dir))


@hookimpl
def artifactd_startup(app: "App") -> None:
    if STATE.enabled:  # warm the index in the background so the first upload does not pay for it
        threading.Thread(target=STATE.database, name="artifactd-health-load", daemon=True).start()


@hookimpl
def artifactd_check_upload(artifact: "Artifact") -> Verdict | None:
    if artifact.kind != "pypi":
        return None
    return _gate(artifact.project, artifact.version)


@hookimpl
def artifactd_check_proxy_fetch(project: str, version: str) -> Verdict | None:
    return _gate(project, version)


@hookimpl
def artifactd_check_promotion(artifact: "Artifact") -> Verdict | None:
    if artifact.kind != "pypi":
        return None
    return _gate(artifact.project, artifact.version)


@hookimpl
def artifactd_check_dependency(name: str, version: str) -> Verdict | None:
    return _gate(name, version)


@hookimpl
def artifactd_health_checks() -> list[dict[str, Any]] | None:
    if not STATE.enabled:
        return None
    db, error = STATE.db, STATE.error
    if error:
        return [{"name": "health-advisories", "ok": False, "detail": error}]
    if db is None:
        return [{"name": "health-advisories", "ok": True, "detail": f"{STATE.settings.advisories}: not loaded yet"}]
    return [{"name": "health-advisories", "ok": True,
             "detail": f"{db.source}: {db.count} advisories, newest modified {db.latest_modified}"}]


@hookimpl
def artifactd_check_report(repository: str, artifacts: Sequence["Artifact"]) -> dict[str, Any] | None:
    if not STATE.enabled:
        return None
    from artifactd_plugins.osv import SEVERITIES

    block_on = STATE.settings.block_on
    db = STATE.database()
    section: dict[str, Any] = {
        "plugin": NAME,
        "policy": {"block_on": block_on},
        "database": db.describe() if db is not None else None,
        "error": STATE.error,
    }
    counts = {k: 0 for k in ("malicious", *SEVERITIES, "unverifiable")}
    findings_total = dict(counts)
    packages: list[dict[str, Any]] = []
    n_releases = 0
    for (project, version), files in iter_releases(artifacts):
        n_releases += 1
        merged = db.match_merged(project, version) if db is not None else []
        if not merged:
            continue
        worst = merged[0]  # merge_findings sorts malicious first, then severity
        bucket = "malicious" if worst.malicious else worst.severity
        counts[bucket] += 1
        if all(f.status == "unverifiable" for f in merged):
            counts["unverifiable"] += 1
        for f in merged:
            findings_total["malicious" if f.malicious else f.severity] += 1
            findings_total["unverifiable"] += f.status == "unverifiable"
        packages.append({
            "package": project,
            "name": files[0].project_name or project,
            "version": version,
            "files": [a.filename for a in files],
            "worst": bucket,
            "status": "affected" if any(f.status == "affected" for f in merged) else "unverifiable",
            "quarantined": bool(blocking(merged, block_on)),
            "last_download": last_download(files),
            "findings": [f.to_json() for f in merged],
        })
    order = {k: i for i, k in enumerate(("malicious", *SEVERITIES))}
    packages.sort(key=lambda p: (not p["quarantined"], order[p["worst"]], p["package"], p["version"]))
    section["summary"] = {
        "releases": n_releases,
        "affected": len(packages),
        "by_worst_severity": counts,
        "findings": findings_total,
        "quarantined": [f"{p['package']}=={p['version']}" for p in packages if p["quarantined"]],
    }
    section["packages"] = packages
    return section
