"""Policy use cases shared by the CLI and (later) HTTP: the health/license report, cleanup, pins.

* :func:`check_report` asks every plugin's ``artifactd_check_report`` for its section, per repository.
* :func:`plan_cleanup` unions ``artifactd_retention_select`` proposals, drops those vetoed by
  ``artifactd_retention_keep``, caps the run, and computes the exact bytes the deletion frees
  after dedup (a blob is freed only when no remaining row in any repository references it).
* :func:`apply_cleanup` deletes the rows (atomically re-checking pins and protecting properties),
  writes one audit record per deletion, fires ``after_delete``, then removes exactly the blobs
  this run left unreferenced — safely against a concurrent upload of the same bytes.
"""
from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from artifactd.errors import BadRequest, NotFound, RepositoryNotFound
from artifactd.formats.pypi.names import normalize
from artifactd.model import Artifact, Deletion, Principal, SYSTEM, isotime, utcnow
from artifactd.text import escape_text  # noqa: F401  (re-exported: plugins import it from here)

if TYPE_CHECKING:
    from artifactd.app import App

log = logging.getLogger(__name__)

#: Properties whose presence protects an artifact from cleanup: the extension point for promotion
#: (set ``promoted`` on what you promote) and for operators (``retain``).
PROTECT_PROPERTIES: tuple[str, ...] = ("promoted", "retain")

#: Default cap on deletions per cleanup run (RELIABILITY.md §6: cap deletions per run).
DEFAULT_MAX_DELETIONS = 1000


# --- check ----------------------------------------------------------------------------------------

def check_report(app: "App", repository: str | None = None) -> dict[str, Any]:
    """The ``artifactd check`` report: per repository, every plugin's section.

    Group and proxy repositories are reported by their stored rows (a group holds none itself:
    check its members).
    """
    if repository is not None and app.config.repo(repository) is None:
        raise RepositoryNotFound(f"no repository named {repository!r}")
    names = [repository] if repository else [n for n, r in app.config.repositories.items() if r.type != "group"]
    repos = []
    for name in names:
        # A plugin that is not configured answers None whatever it is given: ask with no files
        # first, so that a repository of 50,000 files is not loaded (~1 s, ~200 MB) for no section.
        if not app.hooks.check_report(app, name, []):
            repos.append({"repository": name, "files": app.db.count_artifacts(name)[0],
                          "releases": app.db.count_releases(name), "sections": {}})
            continue
        # The rows stream from the database, one release after another, to each plugin in turn.
        artifacts = app.db.artifact_rows(name)
        sections = {s.get("plugin", f"section{i}"): s for i, s in enumerate(app.hooks.check_report(app, name, artifacts))}
        repos.append({"repository": name, "files": len(artifacts), "releases": app.db.count_releases(name),
                      "sections": sections})
    return {"generated": isotime(utcnow()), "repositories": repos}


# --- cleanup ---------------------------------------------------------------------------------------

@dataclass
class CleanupPlan:
    """What a cleanup would delete or keep, and the bytes it frees; after --apply, what it did."""

    deletions: list[Deletion] = field(default_factory=list)
    kept: list[tuple[Deletion, str]] = field(default_factory=list)
    capped: int = 0
    bytes_freed: int = 0          # blobs no remaining row references: what --apply reclaims
    bytes_selected: int = 0       # sum of the selected files' sizes (before dedup)
    freed_digests: dict[str, int] = field(default_factory=dict)
    policies: list[str] = field(default_factory=list)
    applied: bool = False
    deleted: int = 0
    skipped: list[dict[str, Any]] = field(default_factory=list)  # protected between plan and apply
    blobs_removed: int = 0

    def to_dict(self) -> dict[str, Any]:
        def row(d: Deletion) -> dict[str, Any]:
            a = d.artifact
            return {"repository": a.repo, "path": a.path, "project": a.project, "version": a.version,
                    "size": a.size, "sha256": a.sha256, "created": a.created, "last_download": a.last_download,
                    "policy": d.policy, "reason": d.reason}
        return {
            "applied": self.applied,
            "policies": self.policies,
            "deletions": [row(d) for d in self.deletions],
            "kept": [dict(row(d), kept_because=why) for d, why in self.kept],
            "capped": self.capped,
            "bytes_selected": self.bytes_selected,
            "bytes_freed": self.bytes_freed,
            "blobs_freed": len(self.freed_digests),
            "deleted": self.deleted,
            "skipped": self.skipped,
            "blobs_removed": self.blobs_removed,
        }


def plan_cleanup(app: "App", policy: str | None = None, *, now: float | None = None,
                 max_deletions: int = DEFAULT_MAX_DELETIONS) -> CleanupPlan:
    """What cleanup would delete, why, what protections kept, and the exact bytes freed."""
    now = time.time() if now is None else now
    if policy is not None and policy not in app.config.cleanup:
        known = ", ".join(sorted(app.config.cleanup)) or "none configured"
        raise NotFound(f"no cleanup policy named {policy!r} ({known})")
    plan = CleanupPlan(policies=[policy] if policy else sorted(app.config.cleanup))
    repos: list[str] = []
    for name in plan.policies:
        for r in app.config.cleanup[name].get("repositories", []):
            if r not in repos:
                repos.append(r)
    seen: set[int] = set()
    for repo in repos:
        cfg = app.config.repo(repo)
        if cfg is None:
            log.warning("cleanup: repository %r is not defined; skipped", repo)
            continue
        artifacts = app.db.artifact_rows(repo)  # streams: the plugins keep only what they propose
        proposals = [d for d in app.hooks.retention_select(app, repo, artifacts, now)
                     if d.policy in plan.policies and d.artifact.id not in seen]
        proposals.sort(key=lambda d: (d.artifact.created, d.artifact.path))
        for d in proposals:
            if d.artifact.id in seen:
                continue
            seen.add(d.artifact.id)
            why = app.hooks.retention_keep(app, repo, d.artifact)
            if why:
                plan.kept.append((d, why))
            elif len(plan.deletions) >= max_deletions:
                plan.capped += 1
            else:
                plan.deletions.append(d)
    plan.bytes_selected = sum(d.artifact.size for d in plan.deletions)
    plan.freed_digests = freed_blobs(app, [d.artifact for d in plan.deletions])
    plan.bytes_freed = sum(plan.freed_digests.values())
    return plan


def freed_blobs(app: "App", deleting: list[Artifact]) -> dict[str, int]:
    """{digest: size} of blobs that no row outside ``deleting`` references (file and metadata blobs)."""
    ids = {a.id for a in deleting}
    candidates: dict[str, int | None] = {}
    for a in deleting:
        candidates[a.sha256] = a.size
        if a.metadata_sha256:
            candidates.setdefault(a.metadata_sha256, None)
    out: dict[str, int] = {}
    for sha, size in candidates.items():
        if app.db.referencing_ids(sha) - ids:
            continue
        if size is None:
            try:
                size = app.blobs.path(sha).stat().st_size
            except FileNotFoundError:
                continue
        out[sha] = size
    return out


def apply_cleanup(app: "App", plan: CleanupPlan, principal: Principal = SYSTEM) -> CleanupPlan:
    """Delete the planned rows, audit each, then remove the blobs left unreferenced.

    Each row is deleted in a transaction that re-checks ``pinned`` and the protecting
    properties, and the keep hooks are asked again just before, so a pin or promotion that
    raced the plan wins. Bytes freed are recomputed from what was actually deleted.
    """
    started_ns = time.time_ns()
    deleted: list[Artifact] = []
    for d in plan.deletions:
        why = app.hooks.retention_keep(app, d.artifact.repo, d.artifact)
        art = None if why else app.db.delete_unprotected(d.artifact.id, PROTECT_PROPERTIES)
        if art is None:
            plan.skipped.append({"path": d.artifact.path, "repository": d.artifact.repo,
                                 "reason": why or "gone or protected since the plan"})
            continue
        deleted.append(art)
        app.db.audit(isotime(utcnow()), principal.user, None, "cleanup-delete", art.repo, art.path,
                     {"policy": d.policy, "reason": d.reason, "sha256": art.sha256, "size": art.size})
        app.hooks.after_delete(art.repo, art, f"cleanup {d.policy}: {d.reason}")
    plan.applied = True
    plan.deleted = len(deleted)
    freed = 0
    removed = 0
    for sha in freed_blobs(app, deleted):
        size = remove_blob_if_unreferenced(app, sha, started_ns)
        if size is not None:
            freed += size
            removed += 1
    plan.bytes_freed = freed
    plan.blobs_removed = removed
    return plan


def remove_blob_if_unreferenced(app: "App", sha: str, older_than_ns: int) -> int | None:
    """Remove one blob that no row references, without racing an identical upload.

    Protocol (with :meth:`BlobStore._link_into_place` refreshing the mtime when it finds the
    bytes already stored): move the blob aside atomically, then look again — if any row
    references it, or a writer touched it since ``older_than_ns``, link it back. A writer that
    comes after the move links its own copy. Returns bytes freed, or None when kept.
    """
    path = app.blobs.path(sha)
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    if st.st_mtime_ns >= older_than_ns or app.db.is_referenced(sha):
        return None
    aside = app.layout.tmp / f"cleanup-{os.urandom(16).hex()}-{sha}"
    try:
        os.rename(path, aside)
    except FileNotFoundError:
        return None
    if app.db.is_referenced(sha) or aside.stat().st_mtime_ns >= older_than_ns:
        try:
            os.link(aside, path)
        except FileExistsError:
            pass
        os.unlink(aside)
        return None
    size = aside.stat().st_size
    os.unlink(aside)
    return size


# --- pins ------------------------------------------------------------------------------------------

def set_pinned(app: "App", repo: str, project: str, version: str, pinned: bool = True,
               principal: Principal = SYSTEM) -> int:
    """Pin (or unpin) every file of ``project==version`` in ``repo``: cleanup never deletes pinned files."""
    if app.config.repo(repo) is None:
        raise RepositoryNotFound(f"no repository named {repo!r}")
    if not version:
        raise BadRequest("a version is required")
    norm = normalize(project)
    n = app.db.set_pinned(repo, norm, version, pinned)
    if n == 0:
        raise NotFound(f"{project} {version} not found in {repo}")
    app.db.audit(isotime(utcnow()), principal.user, None, "pin" if pinned else "unpin", repo,
                 f"{norm}/{version}", {"files": n})
    return n
