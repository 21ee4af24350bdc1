"""SQLite metadata: artifacts, serials, users, tokens, properties, audit.

All SQL lives here, behind :class:`MetadataStore`, so another backend can be
added later. WAL mode, ``synchronous=FULL``, a busy timeout, foreign keys on;
one connection per thread; writers use ``BEGIN IMMEDIATE`` and bump the
repository serial in the same transaction, which is what invalidates cached
index pages (also across processes: the CLI and the server share the file).
"""
from __future__ import annotations

import json
import sqlite3
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

from artifactd.errors import Conflict, FileExists, InsufficientStorage, NotFound
from artifactd.model import Artifact, TokenInfo

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS serials(repo TEXT PRIMARY KEY, serial INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS artifacts(
    id INTEGER PRIMARY KEY,
    repo TEXT NOT NULL,
    path TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    size INTEGER NOT NULL,
    created TEXT NOT NULL,
    created_by TEXT,
    kind TEXT NOT NULL DEFAULT 'pypi',
    project TEXT,
    project_name TEXT,
    version TEXT,
    filename TEXT,
    dist_key TEXT,
    packagetype TEXT,
    requires_python TEXT,
    metadata_sha256 TEXT,
    metadata_json TEXT,
    yanked INTEGER NOT NULL DEFAULT 0,
    yanked_reason TEXT,
    downloads INTEGER NOT NULL DEFAULT 0,
    last_download TEXT,
    pinned INTEGER NOT NULL DEFAULT 0,
    UNIQUE(repo, path)
);
CREATE INDEX IF NOT EXISTS artifacts_project ON artifacts(repo, project);
CREATE UNIQUE INDEX IF NOT EXISTS artifacts_filename ON artifacts(repo, filename) WHERE kind = 'pypi';
CREATE UNIQUE INDEX IF NOT EXISTS artifacts_dist_key ON artifacts(repo, dist_key) WHERE dist_key IS NOT NULL;
CREATE INDEX IF NOT EXISTS artifacts_sha256 ON artifacts(sha256);
CREATE INDEX IF NOT EXISTS artifacts_metadata ON artifacts(metadata_sha256);
CREATE TABLE IF NOT EXISTS properties(
    artifact_id INTEGER NOT NULL REFERENCES artifacts(id) ON DELETE CASCADE,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY(artifact_id, key, value)
);
CREATE INDEX IF NOT EXISTS properties_kv ON properties(key, value);
CREATE TABLE IF NOT EXISTS users(
    name TEXT PRIMARY KEY,
    password_hash TEXT,
    is_admin INTEGER NOT NULL DEFAULT 0,
    created TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS tokens(
    id INTEGER PRIMARY KEY,
    user TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
    name TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    scopes TEXT NOT NULL,
    repos TEXT NOT NULL DEFAULT '',
    created TEXT NOT NULL,
    expires TEXT,
    last_used TEXT,
    revoked INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS audit(
    id INTEGER PRIMARY KEY,
    time TEXT NOT NULL,
    user TEXT,
    address TEXT,
    action TEXT NOT NULL,
    repo TEXT,
    target TEXT,
    detail TEXT
);
"""

_ARTIFACT_COLS = (
    "id, repo, path, sha256, size, created, created_by, kind, project, project_name, version, filename, "
    "packagetype, requires_python, metadata_sha256, metadata_json, yanked, yanked_reason, downloads, "
    "last_download, pinned"
)


def _row_to_artifact(r: Sequence[Any]) -> Artifact:
    return Artifact(
        id=r[0], repo=r[1], path=r[2], sha256=r[3], size=r[4], created=r[5], created_by=r[6], kind=r[7],
        project=r[8], project_name=r[9], version=r[10], filename=r[11], packagetype=r[12],
        requires_python=r[13], metadata_sha256=r[14], metadata=json.loads(r[15]) if r[15] else {},
        yanked=bool(r[16]), yanked_reason=r[17], downloads=r[18], last_download=r[19], pinned=bool(r[20]),
    )


@dataclass(frozen=True)
class NewArtifact:
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
    dist_key: str | None = None
    packagetype: str | None = None
    requires_python: str | None = None
    metadata_sha256: str | None = None
    metadata_json: str | None = None


class MetadataStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._init_schema()

    # --- connections -------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        con = sqlite3.connect(self.path, timeout=30.0, isolation_level=None, check_same_thread=False)
        con.execute("PRAGMA journal_mode=WAL")
        con.execute("PRAGMA synchronous=FULL")
        con.execute("PRAGMA foreign_keys=ON")
        con.execute("PRAGMA busy_timeout=30000")
        with self._lock:
            self._all.append(con)
        return con

    @property
    def con(self) -> sqlite3.Connection:
        con = getattr(self._local, "con", None)
        if con is None:
            con = self._local.con = self._connect()
        return con

    def close(self) -> None:
        with self._lock:
            for con in self._all:
                try:
                    con.close()
                except sqlite3.Error:
                    pass
            self._all.clear()
        self._local = threading.local()

    def _init_schema(self) -> None:
        con = self.con
        con.execute("BEGIN IMMEDIATE")
        try:
            for stmt in _SCHEMA.split(";"):
                if stmt.strip():
                    con.execute(stmt)
            con.execute("INSERT OR IGNORE INTO meta(key, value) VALUES('schema', ?)", (str(SCHEMA_VERSION),))
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """A ``BEGIN IMMEDIATE`` transaction; disk-full becomes InsufficientStorage."""
        con = self.con
        con.execute("BEGIN IMMEDIATE")
        try:
            yield con
            con.execute("COMMIT")
        except sqlite3.OperationalError as exc:
            _rollback(con)
            if "disk" in str(exc).lower() or "full" in str(exc).lower():
                raise InsufficientStorage(f"database write failed: {exc}") from exc
            raise
        except BaseException:
            _rollback(con)
            raise

    def _bump(self, con: sqlite3.Connection, repo: str) -> None:
        con.execute(
            "INSERT INTO serials(repo, serial) VALUES(?, 1) "
            "ON CONFLICT(repo) DO UPDATE SET serial = serial + 1",
            (repo,),
        )

    # --- serials -----------------------------------------------------------
    def serial(self, repo: str) -> int:
        row = self.con.execute("SELECT serial FROM serials WHERE repo = ?", (repo,)).fetchone()
        return row[0] if row else 0

    def serials(self) -> dict[str, int]:
        return dict(self.con.execute("SELECT repo, serial FROM serials").fetchall())

    def bump_serial(self, repo: str) -> None:
        with self.write() as con:
            self._bump(con, repo)

    # --- artifacts ---------------------------------------------------------
    def add_artifact(self, a: NewArtifact, *, idempotent_same_sha: bool = True) -> tuple[Artifact, bool]:
        """Insert a row. Returns (artifact, created).

        Same path (or, for PyPI, same filename or distribution key) with the same
        sha256 → the existing row, created=False. With different bytes → FileExists.
        """
        with self.write() as con:
            existing = self._find_conflict(con, a)
            if existing is not None:
                if existing.sha256 == a.sha256 and idempotent_same_sha:
                    return existing, False
                if existing.filename and a.filename and existing.filename != a.filename:
                    raise FileExists(
                        f"File already exists: {existing.filename} is the same distribution as {a.filename}"
                    )
                raise FileExists(f"File already exists: {a.filename or a.path} with different content")
            cur = con.execute(
                "INSERT INTO artifacts(repo, path, sha256, size, created, created_by, kind, project, "
                "project_name, version, filename, dist_key, packagetype, requires_python, metadata_sha256, "
                "metadata_json) VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (a.repo, a.path, a.sha256, a.size, a.created, a.created_by, a.kind, a.project, a.project_name,
                 a.version, a.filename, a.dist_key, a.packagetype, a.requires_python, a.metadata_sha256,
                 a.metadata_json),
            )
            self._bump(con, a.repo)
            row = con.execute(f"SELECT {_ARTIFACT_COLS} FROM artifacts WHERE id = ?", (cur.lastrowid,)).fetchone()
            return _row_to_artifact(row), True

    def replace_artifact(self, a: NewArtifact) -> Artifact:
        """Insert or overwrite the row at (repo, path), keeping properties only if the bytes are equal."""
        with self.write() as con:
            old = con.execute("SELECT id, sha256 FROM artifacts WHERE repo = ? AND path = ?", (a.repo, a.path)).fetchone()
            if old is not None:
                con.execute("DELETE FROM artifacts WHERE id = ?", (old[0],))
            cur = con.execute(
                "INSERT INTO artifacts(repo, path, sha256, size, created, created_by, kind, project, "
                "project_name, version, filename, dist_key, packagetype, requires_python, metadata_sha256, "
                "metadata_json) VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (a.repo, a.path, a.sha256, a.size, a.created, a.created_by, a.kind, a.project, a.project_name,
                 a.version, a.filename, a.dist_key, a.packagetype, a.requires_python, a.metadata_sha256,
                 a.metadata_json),
            )
            self._bump(con, a.repo)
            row = con.execute(f"SELECT {_ARTIFACT_COLS} FROM artifacts WHERE id = ?", (cur.lastrowid,)).fetchone()
            return _row_to_artifact(row)

    def _find_conflict(self, con: sqlite3.Connection, a: NewArtifact) -> Artifact | None:
        row = con.execute(f"SELECT {_ARTIFACT_COLS} FROM artifacts WHERE repo = ? AND path = ?", (a.repo, a.path)).fetchone()
        if row is None and a.kind == "pypi" and a.filename:
            row = con.execute(
                f"SELECT {_ARTIFACT_COLS} FROM artifacts WHERE repo = ? AND kind = 'pypi' AND filename = ?",
                (a.repo, a.filename),
            ).fetchone()
        if row is None and a.dist_key:
            row = con.execute(
                f"SELECT {_ARTIFACT_COLS} FROM artifacts WHERE repo = ? AND dist_key = ?", (a.repo, a.dist_key)
            ).fetchone()
        return _row_to_artifact(row) if row else None

    def project_artifacts(self, repo: str, project: str) -> list[Artifact]:
        rows = self.con.execute(
            f"SELECT {_ARTIFACT_COLS} FROM artifacts WHERE repo = ? AND project = ? ORDER BY id", (repo, project)
        ).fetchall()
        return [_row_to_artifact(r) for r in rows]

    def project_files(self, repo: str, project: str) -> list[tuple[Any, ...]]:
        """The columns an index page needs, in id order, without the metadata JSON (hot path).

        Rows: (filename, path, project, version, sha256, size, created, requires_python,
        yanked, yanked_reason, metadata_sha256, packagetype, project_name).
        """
        return self.con.execute(
            "SELECT filename, path, project, version, sha256, size, created, requires_python, yanked, "
            "yanked_reason, metadata_sha256, packagetype, project_name FROM artifacts "
            "WHERE repo = ? AND project = ? ORDER BY id", (repo, project)
        ).fetchall()

    def projects(self, repo: str) -> list[tuple[str, str]]:
        """(normalized, display name) for every project in a repository, sorted."""
        rows = self.con.execute(
            "SELECT project, MAX(project_name) FROM artifacts WHERE repo = ? AND project IS NOT NULL "
            "GROUP BY project ORDER BY project",
            (repo,),
        ).fetchall()
        return [(r[0], r[1]) for r in rows]

    def get_artifact(self, repo: str, path: str) -> Artifact | None:
        row = self.con.execute(f"SELECT {_ARTIFACT_COLS} FROM artifacts WHERE repo = ? AND path = ?", (repo, path)).fetchone()
        return _row_to_artifact(row) if row else None

    def get_by_filename(self, repo: str, filename: str) -> Artifact | None:
        row = self.con.execute(
            f"SELECT {_ARTIFACT_COLS} FROM artifacts WHERE repo = ? AND kind = 'pypi' AND filename = ?", (repo, filename)
        ).fetchone()
        return _row_to_artifact(row) if row else None

    def get_by_id(self, artifact_id: int) -> Artifact | None:
        row = self.con.execute(f"SELECT {_ARTIFACT_COLS} FROM artifacts WHERE id = ?", (artifact_id,)).fetchone()
        return _row_to_artifact(row) if row else None

    def artifacts(self, repo: str | None = None, kind: str | None = None) -> list[Artifact]:
        sql = f"SELECT {_ARTIFACT_COLS} FROM artifacts"
        where, args = [], []
        if repo is not None:
            where.append("repo = ?")
            args.append(repo)
        if kind is not None:
            where.append("kind = ?")
            args.append(kind)
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY repo, path"
        return [_row_to_artifact(r) for r in self.con.execute(sql, args).fetchall()]

    def count_artifacts(self, repo: str) -> tuple[int, int]:
        row = self.con.execute("SELECT COUNT(*), COALESCE(SUM(size), 0) FROM artifacts WHERE repo = ?", (repo,)).fetchone()
        return row[0], row[1]

    def set_yanked(self, repo: str, project: str, version: str | None, filename: str | None,
                   yanked: bool, reason: str | None) -> int:
        """Yank/unyank every file of a release (or one file). Returns the number of files changed."""
        with self.write() as con:
            rows = con.execute(
                "SELECT id, version, filename FROM artifacts WHERE repo = ? AND project = ? AND kind = 'pypi'",
                (repo, project),
            ).fetchall()
            ids = [r[0] for r in rows if (filename is None or r[2] == filename) and (version is None or _same_version(r[1], version))]
            for i in ids:
                con.execute("UPDATE artifacts SET yanked = ?, yanked_reason = ? WHERE id = ?",
                            (int(yanked), reason if yanked else None, i))
            if ids:
                self._bump(con, repo)
            return len(ids)

    def delete_artifact(self, artifact_id: int) -> Artifact:
        with self.write() as con:
            row = con.execute(f"SELECT {_ARTIFACT_COLS} FROM artifacts WHERE id = ?", (artifact_id,)).fetchone()
            if row is None:
                raise NotFound(f"artifact {artifact_id} not found")
            art = _row_to_artifact(row)
            con.execute("DELETE FROM artifacts WHERE id = ?", (artifact_id,))
            self._bump(con, art.repo)
            return art

    def record_download(self, artifact_id: int, when: str) -> None:
        # Best effort, never blocks a download for long.
        try:
            with self.write() as con:
                con.execute("UPDATE artifacts SET downloads = downloads + 1, last_download = ? WHERE id = ?",
                            (when, artifact_id))
        except sqlite3.OperationalError:
            pass

    def record_downloads(self, counts: dict[int, tuple[int, str]]) -> None:
        """Add download counts in one transaction: ``{artifact_id: (count, last_time)}``."""
        with self.write() as con:
            con.executemany(
                "UPDATE artifacts SET downloads = downloads + ?, last_download = ? WHERE id = ?",
                [(n, when, aid) for aid, (n, when) in counts.items()],
            )

    def referenced_digests(self) -> set[str]:
        out: set[str] = set()
        for sha, meta in self.con.execute("SELECT sha256, metadata_sha256 FROM artifacts"):
            out.add(sha)
            if meta:
                out.add(meta)
        return out

    def is_referenced(self, sha256: str) -> bool:
        row = self.con.execute(
            "SELECT 1 FROM artifacts WHERE sha256 = ? OR metadata_sha256 = ? LIMIT 1", (sha256, sha256)
        ).fetchone()
        return row is not None

    # --- users and tokens --------------------------------------------------
    def add_user(self, name: str, password_hash: str | None, is_admin: bool, created: str) -> None:
        with self.write() as con:
            if con.execute("SELECT 1 FROM users WHERE name = ?", (name,)).fetchone():
                raise Conflict(f"user {name!r} already exists")
            con.execute("INSERT INTO users(name, password_hash, is_admin, created) VALUES(?,?,?,?)",
                        (name, password_hash, int(is_admin), created))

    def get_user(self, name: str) -> tuple[str, str | None, bool] | None:
        row = self.con.execute("SELECT name, password_hash, is_admin FROM users WHERE name = ?", (name,)).fetchone()
        return (row[0], row[1], bool(row[2])) if row else None

    def users(self) -> list[tuple[str, bool, str]]:
        return [(r[0], bool(r[1]), r[2]) for r in self.con.execute("SELECT name, is_admin, created FROM users ORDER BY name")]

    def add_token(self, user: str, name: str, token_hash: str, scopes: Iterable[str], repos: Iterable[str],
                  created: str, expires: str | None) -> int:
        with self.write() as con:
            cur = con.execute(
                "INSERT INTO tokens(user, name, token_hash, scopes, repos, created, expires) VALUES(?,?,?,?,?,?,?)",
                (user, name, token_hash, ",".join(scopes), ",".join(repos), created, expires),
            )
            return int(cur.lastrowid or 0)

    def token_by_hash(self, token_hash: str) -> tuple[TokenInfo, bool] | None:
        row = self.con.execute(
            "SELECT t.id, t.user, t.name, t.scopes, t.repos, t.created, t.expires, t.last_used, t.revoked, u.is_admin "
            "FROM tokens t JOIN users u ON u.name = t.user WHERE t.token_hash = ?",
            (token_hash,),
        ).fetchone()
        if row is None:
            return None
        return _token(row), bool(row[9])

    def tokens(self, user: str | None = None) -> list[TokenInfo]:
        sql = "SELECT id, user, name, scopes, repos, created, expires, last_used, revoked FROM tokens"
        args: tuple[Any, ...] = ()
        if user:
            sql += " WHERE user = ?"
            args = (user,)
        return [_token(r) for r in self.con.execute(sql + " ORDER BY id", args)]

    def revoke_token(self, token_id: int) -> None:
        with self.write() as con:
            cur = con.execute("UPDATE tokens SET revoked = 1 WHERE id = ?", (token_id,))
            if cur.rowcount == 0:
                raise NotFound(f"no token with id {token_id}")

    def touch_token(self, token_id: int, when: str) -> None:
        try:
            with self.write() as con:
                con.execute("UPDATE tokens SET last_used = ? WHERE id = ?", (when, token_id))
        except sqlite3.OperationalError:
            pass

    # --- audit ---------------------------------------------------------------
    def audit(self, time: str, user: str | None, address: str | None, action: str, repo: str | None,
              target: str | None, detail: dict[str, Any] | None = None) -> None:
        with self.write() as con:
            con.execute(
                "INSERT INTO audit(time, user, address, action, repo, target, detail) VALUES(?,?,?,?,?,?,?)",
                (time, user, address, action, repo, target, json.dumps(detail) if detail else None),
            )

    def audit_records(self, since: str | None = None, limit: int = 1000) -> list[dict[str, Any]]:
        sql = "SELECT id, time, user, address, action, repo, target, detail FROM audit"
        args: list[Any] = []
        if since:
            sql += " WHERE time >= ?"
            args.append(since)
        sql += " ORDER BY id DESC LIMIT ?"
        args.append(limit)
        cols = ("id", "time", "user", "address", "action", "repo", "target", "detail")
        out = []
        for r in self.con.execute(sql, args):
            d = dict(zip(cols, r))
            d["detail"] = json.loads(d["detail"]) if d["detail"] else None
            out.append(d)
        return out


def _token(r: Sequence[Any]) -> TokenInfo:
    return TokenInfo(
        id=r[0], user=r[1], name=r[2], scopes=tuple(s for s in r[3].split(",") if s),
        repos=tuple(s for s in (r[4] or "").split(",") if s), created=r[5], expires=r[6], last_used=r[7],
        revoked=bool(r[8]),
    )


def _rollback(con: sqlite3.Connection) -> None:
    try:
        con.execute("ROLLBACK")
    except sqlite3.Error:
        pass


def _same_version(a: str | None, b: str) -> bool:
    from packaging.version import InvalidVersion, Version

    if a is None:
        return False
    try:
        return Version(a) == Version(b)
    except InvalidVersion:
        return a == b
