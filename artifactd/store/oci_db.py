"""SQLite tables of OCI repositories (an additive schema step of :mod:`artifactd.store.db`).

    oci_manifests     (repo, name, digest) → the manifest blob, media type, artifactType, subject
    oci_manifest_refs the digests a manifest references (config, layers, index children): GC marks them
    oci_tags          (repo, name, tag) → digest; ``updated`` is also a proxy's revalidation time
    oci_blob_links    which (repo, name) may see which blob: pull, mount and permission isolation
    oci_uploads       chunked upload sessions (bytes in ``tmp/oci-<uuid>.upload``); survive a restart
    oci_digest_alias  sha512 digests → the sha256 path the bytes are stored under

All writes use ``BEGIN IMMEDIATE`` through :meth:`MetadataStore.write` and bump the serial.
"""
from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterable

if TYPE_CHECKING:
    from artifactd.store.db import MetadataStore

SCHEMA = """
CREATE TABLE IF NOT EXISTS oci_manifests(
    repo TEXT NOT NULL,
    name TEXT NOT NULL,
    digest TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    media_type TEXT NOT NULL,
    artifact_type TEXT,
    subject_digest TEXT,
    annotations TEXT,
    size INTEGER NOT NULL,
    created TEXT NOT NULL,
    created_by TEXT,
    last_pull TEXT,
    PRIMARY KEY(repo, name, digest)
);
CREATE INDEX IF NOT EXISTS oci_manifests_subject ON oci_manifests(repo, name, subject_digest);
CREATE INDEX IF NOT EXISTS oci_manifests_sha256 ON oci_manifests(sha256);
CREATE TABLE IF NOT EXISTS oci_manifest_refs(
    repo TEXT NOT NULL,
    name TEXT NOT NULL,
    manifest TEXT NOT NULL,
    digest TEXT NOT NULL,
    sha256 TEXT,
    PRIMARY KEY(repo, name, manifest, digest)
);
CREATE INDEX IF NOT EXISTS oci_manifest_refs_sha256 ON oci_manifest_refs(sha256);
CREATE TABLE IF NOT EXISTS oci_tags(
    repo TEXT NOT NULL,
    name TEXT NOT NULL,
    tag TEXT NOT NULL,
    digest TEXT NOT NULL,
    updated TEXT NOT NULL,
    PRIMARY KEY(repo, name, tag)
);
CREATE TABLE IF NOT EXISTS oci_blob_links(
    repo TEXT NOT NULL,
    name TEXT NOT NULL,
    digest TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    size INTEGER NOT NULL,
    created TEXT NOT NULL,
    PRIMARY KEY(repo, name, digest)
);
CREATE INDEX IF NOT EXISTS oci_blob_links_sha256 ON oci_blob_links(sha256);
CREATE INDEX IF NOT EXISTS oci_blob_links_digest ON oci_blob_links(repo, digest);
CREATE TABLE IF NOT EXISTS oci_uploads(
    uuid TEXT PRIMARY KEY,
    repo TEXT NOT NULL,
    name TEXT NOT NULL,
    offset INTEGER NOT NULL DEFAULT 0,
    started TEXT NOT NULL,
    updated TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS oci_digest_alias(
    digest TEXT PRIMARY KEY,
    sha256 TEXT NOT NULL,
    size INTEGER NOT NULL
);
"""


@dataclass(frozen=True)
class ManifestRow:
    repo: str
    name: str
    digest: str
    sha256: str
    media_type: str
    artifact_type: str | None
    subject: str | None
    annotations: dict[str, str]
    size: int
    created: str
    last_pull: str | None


@dataclass(frozen=True)
class Upload:
    uuid: str
    repo: str
    name: str
    offset: int
    started: str
    updated: str


_M_COLS = "repo, name, digest, sha256, media_type, artifact_type, subject_digest, annotations, size, created, last_pull"


def _manifest(r: Any) -> ManifestRow:
    return ManifestRow(r[0], r[1], r[2], r[3], r[4], r[5], r[6], json.loads(r[7]) if r[7] else {}, r[8], r[9], r[10])


def create(con: sqlite3.Connection) -> None:
    for stmt in SCHEMA.split(";"):
        if stmt.strip():
            con.execute(stmt)


def referenced(con: sqlite3.Connection) -> set[str]:
    """sha256 of every manifest, every digest a manifest references, every linked blob."""
    out: set[str] = set()
    for sql in ("SELECT sha256 FROM oci_manifests", "SELECT sha256 FROM oci_manifest_refs WHERE sha256 IS NOT NULL",
                "SELECT sha256 FROM oci_blob_links"):
        out.update(r[0] for r in con.execute(sql))
    return out


def is_referenced(con: sqlite3.Connection, sha256: str) -> bool:
    for sql in ("SELECT 1 FROM oci_manifests WHERE sha256 = ? LIMIT 1",
                "SELECT 1 FROM oci_manifest_refs WHERE sha256 = ? LIMIT 1",
                "SELECT 1 FROM oci_blob_links WHERE sha256 = ? LIMIT 1"):
        if con.execute(sql, (sha256,)).fetchone():
            return True
    return False


class OciMeta:
    """The OCI queries, over the shared :class:`MetadataStore` connection and transactions."""

    def __init__(self, db: "MetadataStore") -> None:
        self.db = db

    # --- digests and blobs ---------------------------------------------------------------
    def sha256_of(self, digest: str) -> str | None:
        algo, _, hexpart = digest.partition(":")
        if algo == "sha256":
            return hexpart
        row = self.db.con.execute("SELECT sha256 FROM oci_digest_alias WHERE digest = ?", (digest,)).fetchone()
        return row[0] if row else None

    def add_alias(self, digest: str, sha256: str, size: int) -> None:
        if digest.startswith("sha256:"):
            return
        with self.db.write() as con:
            con.execute("INSERT OR IGNORE INTO oci_digest_alias(digest, sha256, size) VALUES(?,?,?)", (digest, sha256, size))

    def link(self, repo: str, name: str, digest: str, sha256: str, size: int, now: str) -> None:
        with self.db.write() as con:
            con.execute(
                "INSERT INTO oci_blob_links(repo, name, digest, sha256, size, created) VALUES(?,?,?,?,?,?) "
                "ON CONFLICT(repo, name, digest) DO UPDATE SET created = excluded.created",
                (repo, name, digest, sha256, size, now))
            self.db._bump(con, repo)

    def linked(self, repo: str, name: str, digest: str) -> tuple[str, int] | None:
        row = self.db.con.execute("SELECT sha256, size FROM oci_blob_links WHERE repo = ? AND name = ? AND digest = ?",
                                  (repo, name, digest)).fetchone()
        return (row[0], row[1]) if row else None

    def unlink(self, repo: str, name: str, digest: str) -> bool:
        with self.db.write() as con:
            n = con.execute("DELETE FROM oci_blob_links WHERE repo = ? AND name = ? AND digest = ?",
                            (repo, name, digest)).rowcount
            if n:
                self.db._bump(con, repo)
            return n > 0

    def name_exists(self, repo: str, name: str) -> bool:
        con = self.db.con
        return bool(con.execute("SELECT 1 FROM oci_manifests WHERE repo = ? AND name = ? LIMIT 1", (repo, name)).fetchone()
                    or con.execute("SELECT 1 FROM oci_blob_links WHERE repo = ? AND name = ? LIMIT 1", (repo, name)).fetchone())

    def names(self, repo: str) -> list[str]:
        rows = self.db.con.execute(
            "SELECT name FROM oci_manifests WHERE repo = ? UNION SELECT name FROM oci_tags WHERE repo = ? ORDER BY 1",
            (repo, repo)).fetchall()
        return [r[0] for r in rows]

    # --- manifests and tags ------------------------------------------------------------------
    def put_manifest(self, m: ManifestRow, refs: Iterable[tuple[str, str | None]], tag: str | None,
                     created_by: str | None) -> None:
        with self.db.write() as con:
            con.execute(
                f"INSERT INTO oci_manifests({_M_COLS}, created_by) VALUES(?,?,?,?,?,?,?,?,?,?,?,?) "
                "ON CONFLICT(repo, name, digest) DO NOTHING",
                (m.repo, m.name, m.digest, m.sha256, m.media_type, m.artifact_type, m.subject,
                 json.dumps(m.annotations) if m.annotations else None, m.size, m.created, None, created_by))
            for digest, sha in refs:
                con.execute("INSERT OR IGNORE INTO oci_manifest_refs(repo, name, manifest, digest, sha256) VALUES(?,?,?,?,?)",
                            (m.repo, m.name, m.digest, digest, sha))
            if tag is not None:
                con.execute(
                    "INSERT INTO oci_tags(repo, name, tag, digest, updated) VALUES(?,?,?,?,?) "
                    "ON CONFLICT(repo, name, tag) DO UPDATE SET digest = excluded.digest, updated = excluded.updated",
                    (m.repo, m.name, tag, m.digest, m.created))
            self.db._bump(con, m.repo)

    def manifest(self, repo: str, name: str, digest: str) -> ManifestRow | None:
        row = self.db.con.execute(f"SELECT {_M_COLS} FROM oci_manifests WHERE repo = ? AND name = ? AND digest = ?",
                                  (repo, name, digest)).fetchone()
        return _manifest(row) if row else None

    def manifests(self, repo: str, name: str | None = None) -> list[ManifestRow]:
        sql, args = f"SELECT {_M_COLS} FROM oci_manifests WHERE repo = ?", [repo]
        if name is not None:
            sql += " AND name = ?"
            args.append(name)
        return [_manifest(r) for r in self.db.con.execute(sql + " ORDER BY name, created", args)]

    def tag(self, repo: str, name: str, tag: str) -> tuple[str, str] | None:
        """(digest, updated) of a tag."""
        row = self.db.con.execute("SELECT digest, updated FROM oci_tags WHERE repo = ? AND name = ? AND tag = ?",
                                  (repo, name, tag)).fetchone()
        return (row[0], row[1]) if row else None

    def set_tag(self, repo: str, name: str, tag: str, digest: str, now: str) -> None:
        with self.db.write() as con:
            con.execute(
                "INSERT INTO oci_tags(repo, name, tag, digest, updated) VALUES(?,?,?,?,?) "
                "ON CONFLICT(repo, name, tag) DO UPDATE SET digest = excluded.digest, updated = excluded.updated",
                (repo, name, tag, digest, now))
            self.db._bump(con, repo)

    def tags(self, repo: str, name: str) -> list[tuple[str, str, str]]:
        """(tag, digest, updated), sorted by tag."""
        rows = self.db.con.execute("SELECT tag, digest, updated FROM oci_tags WHERE repo = ? AND name = ? ORDER BY tag",
                                   (repo, name)).fetchall()
        return [(r[0], r[1], r[2]) for r in rows]

    def delete_tag(self, repo: str, name: str, tag: str) -> bool:
        with self.db.write() as con:
            n = con.execute("DELETE FROM oci_tags WHERE repo = ? AND name = ? AND tag = ?", (repo, name, tag)).rowcount
            if n:
                self.db._bump(con, repo)
            return n > 0

    def delete_manifest(self, repo: str, name: str, digest: str) -> bool:
        """Remove the manifest and the tags pointing at it; its blobs are left to GC."""
        with self.db.write() as con:
            n = con.execute("DELETE FROM oci_manifests WHERE repo = ? AND name = ? AND digest = ?",
                            (repo, name, digest)).rowcount
            con.execute("DELETE FROM oci_manifest_refs WHERE repo = ? AND name = ? AND manifest = ?", (repo, name, digest))
            con.execute("DELETE FROM oci_tags WHERE repo = ? AND name = ? AND digest = ?", (repo, name, digest))
            if n:
                self.db._bump(con, repo)
            return n > 0

    def referrers(self, repo: str, name: str, subject: str) -> list[ManifestRow]:
        rows = self.db.con.execute(
            f"SELECT {_M_COLS} FROM oci_manifests WHERE repo = ? AND name = ? AND subject_digest = ? ORDER BY created, digest",
            (repo, name, subject)).fetchall()
        return [_manifest(r) for r in rows]

    def referenced_by_index(self, repo: str, name: str, digest: str) -> bool:
        return self.db.con.execute(
            "SELECT 1 FROM oci_manifest_refs r JOIN oci_manifests m ON m.repo = r.repo AND m.name = r.name "
            "AND m.digest = r.manifest WHERE r.repo = ? AND r.name = ? AND r.digest = ? LIMIT 1",
            (repo, name, digest)).fetchone() is not None

    def record_pull(self, repo: str, name: str, digest: str, now: str) -> None:
        try:
            with self.db.write() as con:
                con.execute("UPDATE oci_manifests SET last_pull = ? WHERE repo = ? AND name = ? AND digest = ?",
                            (now, repo, name, digest))
        except sqlite3.OperationalError:  # best effort, never fails a pull
            pass

    # --- uploads ------------------------------------------------------------------------------
    def add_upload(self, uuid: str, repo: str, name: str, now: str) -> None:
        with self.db.write() as con:
            con.execute("INSERT INTO oci_uploads(uuid, repo, name, offset, started, updated) VALUES(?,?,?,0,?,?)",
                        (uuid, repo, name, now, now))

    def upload(self, uuid: str) -> Upload | None:
        row = self.db.con.execute("SELECT uuid, repo, name, offset, started, updated FROM oci_uploads WHERE uuid = ?",
                                  (uuid,)).fetchone()
        return Upload(*row) if row else None

    def set_upload_offset(self, uuid: str, offset: int, now: str) -> None:
        with self.db.write() as con:
            con.execute("UPDATE oci_uploads SET offset = ?, updated = ? WHERE uuid = ?", (offset, now, uuid))

    def delete_upload(self, uuid: str) -> None:
        with self.db.write() as con:
            con.execute("DELETE FROM oci_uploads WHERE uuid = ?", (uuid,))

    def uploads(self) -> list[Upload]:
        return [Upload(*r) for r in self.db.con.execute(
            "SELECT uuid, repo, name, offset, started, updated FROM oci_uploads ORDER BY started")]

    # --- gc ------------------------------------------------------------------------------------
    _STALE = (
        "l.created < ? AND NOT EXISTS ("
        " SELECT 1 FROM oci_manifest_refs r JOIN oci_manifests m ON m.repo = r.repo AND m.name = r.name"
        " AND m.digest = r.manifest WHERE r.repo = l.repo AND r.name = l.name AND r.digest = l.digest)"
        " AND NOT EXISTS (SELECT 1 FROM oci_manifests m2 WHERE m2.repo = l.repo AND m2.name = l.name"
        " AND m2.digest = l.digest)"
    )

    def stale_links(self, before: str) -> list[tuple[str, str, str]]:
        """Links older than ``before`` that no manifest of the same (repo, name) references."""
        rows = self.db.con.execute(
            f"SELECT l.repo, l.name, l.digest FROM oci_blob_links l WHERE {self._STALE}", (before,)).fetchall()
        return [(r[0], r[1], r[2]) for r in rows]

    def delete_stale_links(self, before: str) -> int:
        """Delete them, re-checking in the same transaction (a manifest may just have been pushed)."""
        with self.db.write() as con:
            return con.execute(
                f"DELETE FROM oci_blob_links AS l WHERE {self._STALE}", (before,)).rowcount
