"""Consistent backups: ``export DIR`` and ``import DIR``, safe while a server runs.

Export order: (1) the SQLite backup API copies the database as one consistent
snapshot, even while other processes write; (2) every blob the *snapshot*
references is hard-linked (blobs are immutable, read-only files) or copied when
DIR is on another filesystem; (3) ``manifest.json`` — counts and the snapshot's
sha256 — is written last, so a DIR without a manifest is an unfinished export.
Blobs written after the snapshot are simply not part of it.

Import refuses a non-empty data directory unless ``force``; it checks the
manifest, places blobs first (verifying each digest), then moves the database in
with one rename — blobs before rows, like every other write — and never copies
a credential file.

    DIR/
      manifest.json       format, created, counts, database sha256
      artifactd.db        the snapshot
      artifactd.toml      the configuration
      blobs/sha256/ab/cd/<hex>
"""
from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from artifactd import __version__
from artifactd.errors import ArtifactdError, BadRequest, Conflict, StoreDamaged
from artifactd.model import isotime, utcnow
from artifactd.store.blobs import CHUNK
from artifactd.store.layout import Layout

FORMAT = "artifactd-export/1"
MANIFEST = "manifest.json"


@dataclass
class TransferReport:
    blobs: int = 0
    bytes: int = 0
    linked: int = 0
    copied: int = 0
    artifacts: int = 0

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _place(src: Path, dest: Path, copy: bool, report: TransferReport) -> None:
    """Hard-link src to dest (same filesystem), else copy via a temporary name and rename."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.exists():
        return
    if not copy:
        try:
            os.link(src, dest)
            report.linked += 1
            return
        except OSError as exc:
            if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP):
                raise
    tmp = dest.with_name(dest.name + ".part")
    shutil.copyfile(src, tmp)
    with open(tmp, "rb") as fh:
        os.fsync(fh.fileno())
    os.chmod(tmp, 0o444)
    os.replace(tmp, dest)
    report.copied += 1


def _referenced(db: Path) -> set[str]:
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        out: set[str] = set()
        for sha, meta in con.execute("SELECT sha256, metadata_sha256 FROM artifacts"):
            out.add(sha)
            if meta:
                out.add(meta)
        return out
    finally:
        con.close()


def _counts(db: Path) -> dict[str, int]:
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        out = {}
        for table in ("artifacts", "users", "tokens", "permissions", "audit"):
            try:
                out[table] = con.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]  # noqa: S608 - fixed names
            except sqlite3.OperationalError:
                out[table] = 0
        return out
    finally:
        con.close()


def export(layout: Layout, dest: Path, *, copy: bool = False) -> dict[str, Any]:
    """Write a consistent snapshot of the data directory into ``dest`` (empty or new)."""
    dest = Path(dest)
    if dest.exists() and any(dest.iterdir()):
        raise Conflict(f"{dest} is not empty")
    dest.mkdir(parents=True, exist_ok=True)
    snap = dest / "artifactd.db"
    src = sqlite3.connect(layout.database, timeout=30.0)
    try:
        out = sqlite3.connect(snap)
        try:
            src.backup(out)  # a consistent snapshot, page by page, restarting on concurrent writes
            out.execute("PRAGMA journal_mode=DELETE")
        finally:
            out.close()
    finally:
        src.close()
    shutil.copyfile(layout.config, dest / "artifactd.toml")
    report = TransferReport()
    target = Layout(dest)
    for sha in sorted(_referenced(snap)):
        blob = layout.blob(sha)
        try:
            size = blob.stat().st_size
        except FileNotFoundError:
            raise StoreDamaged(f"blob {sha} is referenced but missing; run 'artifactd fsck'") from None
        _place(blob, target.blob(sha), copy, report)
        report.blobs += 1
        report.bytes += size
    counts = _counts(snap)
    report.artifacts = counts["artifacts"]
    manifest = {
        "format": FORMAT, "created": isotime(utcnow()), "artifactd": __version__, "source": str(layout.root),
        "database_sha256": _sha256_file(snap), "blobs": report.blobs, "bytes": report.bytes, "counts": counts,
    }
    tmp = dest / (MANIFEST + ".part")
    tmp.write_text(json.dumps(manifest, indent=2) + "\n")
    os.replace(tmp, dest / MANIFEST)
    return manifest | {"linked": report.linked, "copied": report.copied}


def import_(src: Path, layout: Layout, *, force: bool = False, copy: bool = False) -> dict[str, Any]:
    """Restore an export into a data directory (empty, or anything with ``force``)."""
    src = Path(src)
    try:
        manifest = json.loads((src / MANIFEST).read_text())
    except FileNotFoundError:
        raise BadRequest(f"{src} has no {MANIFEST}: not an artifactd export, or an unfinished one") from None
    if manifest.get("format") != FORMAT:
        raise BadRequest(f"{src}: unsupported export format {manifest.get('format')!r}")
    snap = src / "artifactd.db"
    if _sha256_file(snap) != manifest["database_sha256"]:
        raise StoreDamaged(f"{snap} does not match the manifest's sha256; the export is damaged")
    root = layout.root
    if root.exists() and any(root.iterdir()) and not force:
        raise Conflict(f"{root} is not empty (use --force to import over it)")
    layout.ensure()
    report = TransferReport()
    source = Layout(src)
    for sha in sorted(_referenced(snap)):
        blob = source.blob(sha)
        if not blob.is_file():
            raise StoreDamaged(f"the export lacks blob {sha}")
        if _sha256_file(blob) != sha:
            raise StoreDamaged(f"blob {sha} in the export is corrupt")
        _place(blob, layout.blob(sha), copy, report)
        report.blobs += 1
        report.bytes += blob.stat().st_size
    tmp = layout.root / "artifactd.db.import"
    shutil.copyfile(snap, tmp)
    with open(tmp, "rb") as fh:
        os.fsync(fh.fileno())
    for suffix in ("-wal", "-shm"):
        try:
            os.unlink(str(layout.database) + suffix)
        except FileNotFoundError:
            pass
    os.replace(tmp, layout.database)
    cfg_tmp = layout.root / "artifactd.toml.import"
    shutil.copyfile(src / "artifactd.toml", cfg_tmp)
    os.replace(cfg_tmp, layout.config)
    report.artifacts = manifest.get("counts", {}).get("artifacts", 0)
    return {"source": str(src), "into": str(root)} | report.to_dict()


__all__ = ["export", "import_", "ArtifactdError"]
