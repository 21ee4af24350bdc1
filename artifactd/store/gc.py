"""Integrity check (fsck) and garbage collection of unreferenced blobs.

GC is mark-and-sweep with a grace period: a blob is removed only when it is not
referenced by any row, older than the grace period (so an upload that has linked
its blob but not yet written its row keeps it), and still unreferenced when
re-checked just before deletion. ``tmp/`` leftovers older than the grace period go too.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from artifactd.model import isotime, utcnow

if TYPE_CHECKING:
    from artifactd.app import App

DEFAULT_GRACE = 24 * 3600.0


@dataclass
class FsckReport:
    checked: int = 0
    bytes_checked: int = 0
    missing: list[dict[str, Any]] = field(default_factory=list)
    corrupt: list[dict[str, Any]] = field(default_factory=list)
    orphans: list[dict[str, Any]] = field(default_factory=list)
    temp_files: list[str] = field(default_factory=list)

    @property
    def damaged(self) -> bool:
        return bool(self.missing or self.corrupt)

    def to_dict(self) -> dict[str, Any]:
        return {
            "checked": self.checked, "bytes_checked": self.bytes_checked, "missing": self.missing,
            "corrupt": self.corrupt, "orphans": self.orphans, "temp_files": self.temp_files,
            "ok": not self.damaged,
        }


def fsck(app: "App", *, rehash: bool = True) -> FsckReport:
    report = FsckReport()
    referenced: dict[str, list[str]] = {}
    for repo, row_path, sha256, metadata_sha256 in app.db.blob_users():
        referenced.setdefault(sha256, []).append(f"{repo}:{row_path}")
        if metadata_sha256:
            referenced.setdefault(metadata_sha256, []).append(f"{repo}:{row_path}.metadata")
    for sha in app.db.referenced_digests():  # OCI manifests, their blobs and linked blobs
        referenced.setdefault(sha, ["oci"])
    for sha, users in sorted(referenced.items()):
        report.checked += 1
        path = app.blobs.path(sha)
        if not path.is_file():
            report.missing.append({"sha256": sha, "used_by": users})
            continue
        report.bytes_checked += path.stat().st_size
        if rehash:
            got = app.blobs.rehash(sha)
            if got != sha:
                report.corrupt.append({"sha256": sha, "actual": got, "used_by": users})
    for sha, path in app.blobs.iter_digests():
        if sha not in referenced:
            st = path.stat()
            report.orphans.append({"sha256": sha, "size": st.st_size, "age_seconds": int(time.time() - st.st_mtime)})
    if app.layout.tmp.is_dir():
        report.temp_files = sorted(p.name for p in app.layout.tmp.iterdir())
    return report


@dataclass
class GcReport:
    removed: list[dict[str, Any]] = field(default_factory=list)
    kept_young: int = 0
    bytes_freed: int = 0
    temp_removed: int = 0
    applied: bool = False
    oci: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"applied": self.applied, "removed": self.removed, "bytes_freed": self.bytes_freed,
                "kept_within_grace": self.kept_young, "temp_files_removed": self.temp_removed, "oci": self.oci}


def gc(app: "App", *, apply: bool = False, grace: float = DEFAULT_GRACE) -> GcReport:
    report = GcReport(applied=apply)
    now = time.time()
    from artifactd.repositories.oci_retention import housekeeping

    report.oci = housekeeping(app, apply=apply, grace=grace, now=now)  # expired uploads, stale blob links
    referenced = app.db.referenced_digests()
    for sha, path in list(app.blobs.iter_digests()):
        if sha in referenced:
            continue
        try:
            st = path.stat()
        except FileNotFoundError:
            continue
        if now - st.st_mtime < grace:
            report.kept_young += 1
            continue
        if apply:
            if app.db.is_referenced(sha):  # re-check under the current state
                continue
            try:  # an upload of the same bytes refreshes the mtime (BlobStore._link_into_place)
                if now - path.stat().st_mtime < grace:
                    report.kept_young += 1
                    continue
            except FileNotFoundError:
                continue
            report.bytes_freed += app.blobs.delete(sha)
        else:
            report.bytes_freed += st.st_size
        report.removed.append({"sha256": sha, "size": st.st_size})
    if app.layout.tmp.is_dir():
        for p in app.layout.tmp.iterdir():
            try:
                if now - p.stat().st_mtime >= grace:
                    if apply:
                        os.unlink(p)
                    report.temp_removed += 1
            except FileNotFoundError:
                continue
    if apply and (report.removed or report.temp_removed):
        from artifactd.accounts import local_principal

        app.db.audit(isotime(utcnow()), local_principal().user, "local", "gc", None, None,
                     {"blobs": len(report.removed), "bytes_freed": report.bytes_freed,
                      "temp_files": report.temp_removed})
    return report
