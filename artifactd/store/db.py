"""SQLite metadata: artifacts, serials, users, tokens, properties, builds, promotions, audit.

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
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

from artifactd.errors import BadRequest, Conflict, FileExists, InsufficientStorage, NotFound, ServiceUnavailable
from artifactd.fifo import FifoGate
from artifactd.model import Artifact, TokenInfo, same_version

SCHEMA_VERSION = 4

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
CREATE TABLE IF NOT EXISTS permissions(
    user TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
    repo TEXT NOT NULL,
    level TEXT NOT NULL,
    PRIMARY KEY(user, repo)
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

#: Schema migrations: version → statements that bring a version-1 database to it.
#: Applied in order, each in its own transaction, by ``_init_schema``; the base
#: ``_SCHEMA`` above is version 1 and never changes.
_MIGRATIONS: dict[int, str | tuple[str, ...]] = {
    2: """
CREATE TABLE IF NOT EXISTS builds(
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    number TEXT NOT NULL,
    created TEXT NOT NULL,
    created_by TEXT,
    vcs_json TEXT NOT NULL DEFAULT '{}',
    properties_json TEXT NOT NULL DEFAULT '{}',
    status TEXT,
    scan_json TEXT,
    UNIQUE(name, number)
);
CREATE TABLE IF NOT EXISTS build_artifacts(
    build_id INTEGER NOT NULL REFERENCES builds(id) ON DELETE CASCADE,
    repo TEXT NOT NULL,
    path TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    size INTEGER NOT NULL,
    PRIMARY KEY(build_id, repo, path)
);
CREATE TABLE IF NOT EXISTS build_deps(
    build_id INTEGER NOT NULL REFERENCES builds(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    version TEXT NOT NULL,
    hashes TEXT NOT NULL DEFAULT '',
    PRIMARY KEY(build_id, name, version)
);
CREATE TABLE IF NOT EXISTS build_status(
    id INTEGER PRIMARY KEY,
    build_id INTEGER NOT NULL REFERENCES builds(id) ON DELETE CASCADE,
    time TEXT NOT NULL,
    user TEXT,
    status TEXT NOT NULL,
    repo TEXT,
    comment TEXT,
    forced INTEGER NOT NULL DEFAULT 0,
    move INTEGER NOT NULL DEFAULT 0,
    detail_json TEXT
);
CREATE INDEX IF NOT EXISTS build_status_build ON build_status(build_id);
CREATE TABLE IF NOT EXISTS promotions(
    id INTEGER PRIMARY KEY,
    time TEXT NOT NULL,
    user TEXT,
    source TEXT NOT NULL,
    target TEXT NOT NULL,
    path TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    move INTEGER NOT NULL DEFAULT 0,
    forced INTEGER NOT NULL DEFAULT 0,
    build_id INTEGER REFERENCES builds(id) ON DELETE SET NULL,
    comment TEXT
);
CREATE INDEX IF NOT EXISTS promotions_target ON promotions(target, path);
CREATE INDEX IF NOT EXISTS promotions_source ON promotions(source, path);
""",
    # Per-project serials, kept by triggers on every write path, so that a project page stays
    # cached (and its ETag valid) while other projects of its repository change. Download
    # counters and pins are not on index pages and do not bump it.
    3: (
        "CREATE TABLE IF NOT EXISTS project_serials(repo TEXT NOT NULL, project TEXT NOT NULL, "
        "serial INTEGER NOT NULL, PRIMARY KEY(repo, project))",
        "INSERT OR IGNORE INTO project_serials(repo, project, serial) "
        "SELECT repo, project, 1 FROM artifacts WHERE project IS NOT NULL GROUP BY repo, project",
        """CREATE TRIGGER IF NOT EXISTS project_serial_insert AFTER INSERT ON artifacts
           WHEN NEW.project IS NOT NULL BEGIN
             INSERT INTO project_serials(repo, project, serial) VALUES(NEW.repo, NEW.project, 1)
             ON CONFLICT(repo, project) DO UPDATE SET serial = serial + 1;
           END""",
        """CREATE TRIGGER IF NOT EXISTS project_serial_delete AFTER DELETE ON artifacts
           WHEN OLD.project IS NOT NULL BEGIN
             UPDATE project_serials SET serial = serial + 1 WHERE repo = OLD.repo AND project = OLD.project;
           END""",
        """CREATE TRIGGER IF NOT EXISTS project_serial_update
           AFTER UPDATE OF repo, path, sha256, size, project, project_name, version, filename, requires_python,
                           metadata_sha256, yanked, yanked_reason, created ON artifacts
           WHEN NEW.project IS NOT NULL OR OLD.project IS NOT NULL BEGIN
             INSERT INTO project_serials(repo, project, serial) VALUES(NEW.repo, NEW.project, 1)
             ON CONFLICT(repo, project) DO UPDATE SET serial = serial + 1;
             UPDATE project_serials SET serial = serial + 1 WHERE repo = OLD.repo AND project = OLD.project
               AND (OLD.repo IS NOT NEW.repo OR OLD.project IS NOT NEW.project);
           END""",
    ),
    # The project list (root page) reads only the index: GROUP BY project with MAX(project_name)
    # no longer visits every artifact row (37 -> 20 ms cold for 50,000 files). It also serves
    # every (repo, project) lookup the index it replaces did.
    4: (
        "CREATE INDEX IF NOT EXISTS artifacts_project_name ON artifacts(repo, project, project_name)",
        "DROP INDEX IF EXISTS artifacts_project",
    ),
}

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
    """An artifact row to insert (the database assigns the id)."""

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


@dataclass(frozen=True)
class AuditEntry:
    """An audit record to write together with another change (time/repo/target come from it)."""

    user: str | None
    address: str | None
    action: str
    detail: dict[str, Any] | None = None


class ArtifactRows(Sequence[Artifact]):
    """A repository's rows as a read-only sequence that streams when iterated.

    ``artifactd check`` and the health pages hand this to every plugin's ``artifactd_check_report``.
    Iterating reads the rows from the database in (project, version, path) order, one batch at a
    time, and may be repeated; ``len()`` is a COUNT. Indexing or slicing reads every row once and
    keeps the list, so a plugin that wants random access still gets it, at the old memory cost.
    """

    release_ordered = True  # equal (project, version) rows are consecutive: see plugins' iter_releases

    def __init__(self, db: "MetadataStore", repo: str) -> None:
        self._db, self._repo = db, repo
        self._len: int | None = None
        self._all: list[Artifact] | None = None

    def __iter__(self) -> Iterator[Artifact]:
        return iter(self._all) if self._all is not None else self._db.iter_artifacts(self._repo)

    def __len__(self) -> int:
        if self._all is not None:
            return len(self._all)
        if self._len is None:
            self._len = self._db.count_artifacts(self._repo)[0]
        return self._len

    def __getitem__(self, index: Any) -> Any:
        if self._all is None:
            self._all = list(self._db.iter_artifacts(self._repo))
        return self._all[index]

    def __repr__(self) -> str:
        return f"<ArtifactRows {self._repo!r}>"


class MetadataStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._idle: list[sqlite3.Connection] = []  # released by finished requests, ready for the next
        self._lock = threading.Lock()
        self._returned = threading.Condition(self._lock)  # a connection came back, or one was closed
        self._opening = 0  # connections being opened (counted against MAX_OPEN before they exist)
        self._kept: set[sqlite3.Connection] = set()  # kept by their thread between requests (end_request)
        self._writers = FifoGate(1)
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
        """This thread's connection: taken from the idle pool, or opened."""
        con = getattr(self._local, "con", None)
        if con is None:
            con = self._take()
            self._local.con = con
        return con

    #: Idle connections kept open for the next request. The server releases its connection after
    #: every request (and before long sends and upload bodies), so the number of connections
    #: follows the requests that use the database at the same moment, not the open TCP connections.
    MAX_IDLE = 4
    #: Connections open at once before a thread waits for one to come back. Each is ~0.2 MB of
    #: schema, statement cache and page cache; uv's ~50 parallel downloads had 20-30 open. The cap
    #: is soft: after MAX_WAIT seconds a thread opens one anyway, so no request ever waits on
    #: another request that is itself waiting (a single-flight proxy fetch, a slow client).
    #: 4, not 8 (since the eighth session): the GIL runs one query at a time anyway, and with 8 the
    #: 200-client mixed load did less (19,900-20,000 requests in 30 s against 21,400-23,200, write
    #: p99 0.88-0.93 s against 0.45-0.48 s) and peak RSS over uv installs was 0.5-1 MB higher.
    MAX_OPEN = 4
    MAX_WAIT = 0.25

    def _take(self) -> sqlite3.Connection:
        deadline = None
        with self._lock:
            while not self._idle and len(self._all) - len(self._kept) + self._opening >= self.MAX_OPEN:
                now = time.monotonic()
                if deadline is None:
                    deadline = now + self.MAX_WAIT
                elif now >= deadline:
                    break
                self._returned.wait(deadline - now)
            if self._idle:
                return self._idle.pop()
            self._opening += 1
        try:
            return self._connect()
        finally:
            with self._lock:
                self._opening -= 1

    def set_aside(self) -> None:
        """Before waiting on a client or an upstream: hand this thread's connection back (the next
        use takes one again), unless a transaction is open on it."""
        con = getattr(self._local, "con", None)
        if con is not None and not con.in_transaction:
            self.release_thread()

    def end_request(self) -> None:
        """After a request on a thread that keeps its connection for the next one (the connection
        loop's: one thread answering requests back to back). A kept connection does not count
        against MAX_OPEN, so it never makes another thread wait; a transaction left open ends it,
        as release_thread() does."""
        con = getattr(self._local, "con", None)
        if con is None:
            return
        if con.in_transaction:
            self.release_thread()
        elif con not in self._kept:
            with self._lock:
                self._kept.add(con)
                self._returned.notify()

    def release_thread(self) -> None:
        """Hand this thread's connection back: to the idle pool, or closed when the pool is full."""
        con = getattr(self._local, "con", None)
        if con is None:
            return
        self._local.con = None
        if con in self._kept:
            with self._lock:
                self._kept.discard(con)
        if con.in_transaction:  # a failed request left a transaction open: never reuse it as is
            try:
                con.rollback()
            except sqlite3.Error:
                pass
        with self._lock:
            self._returned.notify()
            if len(self._idle) < self.MAX_IDLE and con in self._all:
                self._idle.append(con)
                return
            try:
                self._all.remove(con)
            except ValueError:
                pass
        try:
            con.close()
        except sqlite3.Error:
            pass

    def close_idle(self) -> int:
        """Close the pooled connections no thread holds (each keeps its own SQLite page cache);
        returns how many. Connections in use are untouched."""
        with self._lock:
            idle, self._idle = self._idle, []
            for con in idle:
                self._all.remove(con)
        for con in idle:
            try:
                con.close()
            except sqlite3.Error:
                pass
        return len(idle)

    def close(self) -> None:
        with self._lock:
            for con in self._all:
                try:
                    con.close()
                except sqlite3.Error:
                    pass
            self._all.clear()
            self._idle.clear()
            self._kept.clear()
        self._local = threading.local()

    def _init_schema(self) -> None:
        con = self.con
        try:
            if self.schema_version() == SCHEMA_VERSION:
                return  # the usual start: fully set up, no DDL and no write transaction needed
        except sqlite3.OperationalError:
            pass  # a new database: no meta table yet
        from artifactd.store import oci_db, web_sessions

        con.execute("BEGIN IMMEDIATE")
        try:
            for stmt in _SCHEMA.split(";"):
                if stmt.strip():
                    con.execute(stmt)
            oci_db.create(con)  # additive schema step: OCI tables
            web_sessions.create(con)  # additive schema step: web interface sessions
            # The base schema is version 1; the migrations below bring it up to date.
            con.execute("INSERT OR IGNORE INTO meta(key, value) VALUES('schema', '1')")
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        self._migrate()

    def schema_version(self) -> int:
        row = self.con.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
        return int(row[0]) if row else 0

    def _migrate(self) -> None:
        """Apply every migration above the stored schema version, each in one transaction."""
        current = self.schema_version()
        if current > SCHEMA_VERSION:
            raise RuntimeError(f"{self.path} has schema {current}, newer than this artifactd ({SCHEMA_VERSION})")
        for version in range(current + 1, SCHEMA_VERSION + 1):
            con = self.con
            con.execute("BEGIN IMMEDIATE")
            try:
                # Re-read under the write lock: another process may have migrated meanwhile.
                if self.schema_version() >= version:
                    con.execute("COMMIT")
                    continue
                step = _MIGRATIONS[version]
                for stmt in step if isinstance(step, tuple) else step.split(";"):
                    if stmt.strip():
                        con.execute(stmt)
                con.execute("UPDATE meta SET value = ? WHERE key = 'schema'", (str(version),))
                con.execute("COMMIT")
            except BaseException:
                _rollback(con)
                raise

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """A ``BEGIN IMMEDIATE`` transaction; disk-full becomes InsufficientStorage.

        Writers of this process queue in arrival order on an in-process gate before they ask
        SQLite for its write lock: SQLite's own busy handler polls with sleeps of up to 100 ms,
        which under many concurrent uploads made waits long and unfair. Other processes (the
        CLI) still meet at SQLite's lock, with the busy timeout. A writer holds no connection while
        it waits its turn (many uploads at once must not use up the connection cap).
        """
        self.set_aside()
        with self._writers:
            con = self.con
            try:
                con.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                if "locked" in str(exc).lower() or "busy" in str(exc).lower():
                    # Still locked after busy_timeout: overloaded, retryable (twine retries 5xx); nothing written.
                    raise ServiceUnavailable(f"database busy, try again: {exc}") from exc
                raise
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

    # --- counters (in the meta table; e.g. a proxy's cache generation) ------
    def counter(self, key: str) -> int:
        row = self.con.execute("SELECT value FROM meta WHERE key = ?", ("counter:" + key,)).fetchone()
        return int(row[0]) if row else 0

    def bump_counter(self, key: str) -> int:
        with self.write() as con:
            con.execute(
                "INSERT INTO meta(key, value) VALUES(?, '1') "
                "ON CONFLICT(key) DO UPDATE SET value = CAST(CAST(value AS INTEGER) + 1 AS TEXT)",
                ("counter:" + key,),
            )
            row = con.execute("SELECT value FROM meta WHERE key = ?", ("counter:" + key,)).fetchone()
            return int(row[0])

    # --- artifacts ---------------------------------------------------------
    def add_artifact(self, a: NewArtifact, *, idempotent_same_sha: bool = True,
                     audit: AuditEntry | None = None) -> tuple[Artifact, bool]:
        """Insert a row. Returns (artifact, created).

        Same path (or, for PyPI, same filename or distribution key) with the same
        sha256 → the existing row, created=False. With different bytes → FileExists.
        ``audit`` is recorded in the same transaction when a row is created (one
        synchronous commit per upload, not two).
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
            if audit is not None:
                self._insert_audit(con, a.created, audit.user, audit.address, audit.action, a.repo, a.path,
                                   audit.detail)
            row = con.execute(f"SELECT {_ARTIFACT_COLS} FROM artifacts WHERE id = ?", (cur.lastrowid,)).fetchone()
            return _row_to_artifact(row), True

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

    def project_serial(self, repo: str, project: str) -> int | None:
        """The project's own serial (bumped by triggers on any change to its rows); None if absent."""
        row = self.con.execute(
            "SELECT serial FROM project_serials WHERE repo = ? AND project = ? "
            "AND EXISTS(SELECT 1 FROM artifacts WHERE repo = ? AND project = ?)",
            (repo, project, repo, project),
        ).fetchone()
        return row[0] if row else None

    def has_project(self, repo: str, project: str) -> bool:
        row = self.con.execute("SELECT 1 FROM artifacts WHERE repo = ? AND project = ? LIMIT 1", (repo, project)).fetchone()
        return row is not None

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

    def iter_artifacts(self, repo: str, batch: int = 500) -> Iterator[Artifact]:
        """A repository's rows one at a time, ordered by (project, version, path): one release's
        files are consecutive. Read from one statement in batches, so a report that looks at one
        release at a time holds one release, not the repository (50,000 rows held whole: ~200 MB).

        The statement runs on a read-only connection of its own, closed when the iteration ends
        or is dropped: the consumer may hand this thread's pooled connection back (``set_aside``,
        every ``write()``) between rows without the open statement going with it, and it reads
        one snapshot of the repository however long it takes."""
        con = sqlite3.connect(self.path, timeout=30.0, isolation_level=None, check_same_thread=False)
        try:
            con.execute("PRAGMA query_only=ON")
            cur = con.execute(f"SELECT {_ARTIFACT_COLS} FROM artifacts WHERE repo = ? ORDER BY project, version, path",
                              (repo,))
            while rows := cur.fetchmany(batch):
                for r in rows:
                    yield _row_to_artifact(r)
        finally:
            con.close()

    def artifact_rows(self, repo: str) -> "ArtifactRows":
        return ArtifactRows(self, repo)

    def count_artifacts(self, repo: str) -> tuple[int, int]:
        row = self.con.execute("SELECT COUNT(*), COALESCE(SUM(size), 0) FROM artifacts WHERE repo = ?", (repo,)).fetchone()
        return row[0], row[1]

    def blob_users(self) -> Iterator[tuple[str, str, str, str | None]]:
        """(repo, path, sha256, metadata_sha256) of every row, read one at a time (fsck: no
        Artifact and no parsed metadata per row; 50,000 rows held whole were ~200 MB)."""
        for row in self.con.execute("SELECT repo, path, sha256, metadata_sha256 FROM artifacts"):
            yield row[0], row[1], row[2], row[3]

    def count_releases(self, repo: str) -> int:
        """Distinct (project, version) pairs of the repository's PyPI files."""
        row = self.con.execute("SELECT COUNT(*) FROM (SELECT DISTINCT project, version FROM artifacts "
                               "WHERE repo = ? AND kind = 'pypi')", (repo,)).fetchone()
        return int(row[0])

    def set_yanked(self, repo: str, project: str, version: str | None, filename: str | None,
                   yanked: bool, reason: str | None) -> int:
        """Yank/unyank every file of a release (or one file). Returns the number of files changed."""
        with self.write() as con:
            rows = con.execute(
                "SELECT id, version, filename FROM artifacts WHERE repo = ? AND project = ? AND kind = 'pypi'",
                (repo, project),
            ).fetchall()
            ids = [r[0] for r in rows if (filename is None or r[2] == filename) and (version is None or same_version(r[1], version))]
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

    # --- retention (pin, protections, exact reclaim) -------------------------
    def set_pinned(self, repo: str, project: str, version: str, pinned: bool) -> int:
        """Pin/unpin every file of a release (cleanup never deletes pinned files). Returns files changed."""
        with self.write() as con:
            rows = con.execute("SELECT id, version FROM artifacts WHERE repo = ? AND project = ?",
                               (repo, project)).fetchall()
            ids = [r[0] for r in rows if same_version(r[1], version)]
            con.executemany("UPDATE artifacts SET pinned = ? WHERE id = ?", [(int(pinned), i) for i in ids])
            return len(ids)

    def protecting_property(self, artifact_id: int, keys: Sequence[str]) -> tuple[str, str] | None:
        """The first (key, value) property among ``keys`` set on an artifact (e.g. ``promoted``)."""
        marks = ",".join("?" * len(keys))
        row = self.con.execute(
            f"SELECT key, value FROM properties WHERE artifact_id = ? AND key IN ({marks}) ORDER BY key LIMIT 1",
            (artifact_id, *keys),
        ).fetchone()
        return (row[0], row[1]) if row else None

    def delete_unprotected(self, artifact_id: int, keys: Sequence[str]) -> Artifact | None:
        """Delete a row unless, in the same transaction, it is pinned or carries one of ``keys``.

        Returns the deleted artifact, or None when it is gone or now protected (a concurrent
        pin or promotion wins over cleanup).
        """
        marks = ",".join("?" * len(keys))
        with self.write() as con:
            row = con.execute(f"SELECT {_ARTIFACT_COLS} FROM artifacts WHERE id = ?", (artifact_id,)).fetchone()
            if row is None:
                return None
            art = _row_to_artifact(row)
            if art.pinned or con.execute(
                f"SELECT 1 FROM properties WHERE artifact_id = ? AND key IN ({marks}) LIMIT 1", (artifact_id, *keys)
            ).fetchone():
                return None
            con.execute("DELETE FROM artifacts WHERE id = ?", (artifact_id,))
            self._bump(con, art.repo)
            return art

    def referencing_ids(self, sha256: str) -> set[int]:
        """Ids of every row (any repository) whose file or core-metadata blob is ``sha256``."""
        rows = self.con.execute("SELECT id FROM artifacts WHERE sha256 = ? OR metadata_sha256 = ?",
                                (sha256, sha256)).fetchall()
        return {r[0] for r in rows}

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
        from artifactd.store import oci_db

        out: set[str] = set()
        for sha, meta in self.con.execute("SELECT sha256, metadata_sha256 FROM artifacts"):
            out.add(sha)
            if meta:
                out.add(meta)
        out |= oci_db.referenced(self.con)
        return out

    def is_referenced(self, sha256: str) -> bool:
        from artifactd.store import oci_db

        row = self.con.execute(
            "SELECT 1 FROM artifacts WHERE sha256 = ? OR metadata_sha256 = ? LIMIT 1", (sha256, sha256)
        ).fetchone()
        return row is not None or oci_db.is_referenced(self.con, sha256)

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

    def delete_user(self, name: str) -> None:
        with self.write() as con:
            if con.execute("DELETE FROM users WHERE name = ?", (name,)).rowcount == 0:
                raise NotFound(f"no user named {name!r}")

    def set_password(self, name: str, password_hash: str | None) -> None:
        with self.write() as con:
            cur = con.execute("UPDATE users SET password_hash = ? WHERE name = ?", (password_hash, name))
            if cur.rowcount == 0:
                raise NotFound(f"no user named {name!r}")

    # --- per-repository permissions (repo "*" = every repository) -------------
    def grant(self, user: str, repo: str, level: str) -> None:
        with self.write() as con:
            con.execute("INSERT INTO permissions(user, repo, level) VALUES(?,?,?) "
                        "ON CONFLICT(user, repo) DO UPDATE SET level = excluded.level", (user, repo, level))

    def revoke(self, user: str, repo: str) -> bool:
        with self.write() as con:
            return con.execute("DELETE FROM permissions WHERE user = ? AND repo = ?", (user, repo)).rowcount > 0

    def permissions(self, user: str | None = None) -> list[tuple[str, str, str]]:
        """(user, repo, level) rows, sorted."""
        sql = "SELECT user, repo, level FROM permissions"
        args: tuple[Any, ...] = ()
        if user is not None:
            sql += " WHERE user = ?"
            args = (user,)
        return [(r[0], r[1], r[2]) for r in self.con.execute(sql + " ORDER BY user, repo", args)]

    # --- audit ---------------------------------------------------------------
    def audit(self, time: str, user: str | None, address: str | None, action: str, repo: str | None,
              target: str | None, detail: dict[str, Any] | None = None) -> None:
        with self.write() as con:
            self._insert_audit(con, time, user, address, action, repo, target, detail)

    @staticmethod
    def _insert_audit(con: sqlite3.Connection, time: str, user: str | None, address: str | None, action: str,
                      repo: str | None, target: str | None, detail: dict[str, Any] | None) -> None:
        con.execute(
            "INSERT INTO audit(time, user, address, action, repo, target, detail) VALUES(?,?,?,?,?,?,?)",
            (time, user, address, action, repo, target, json.dumps(detail) if detail else None),
        )

    def audit_records(self, since: str | None = None, limit: int | None = 1000) -> list[dict[str, Any]]:
        sql = "SELECT id, time, user, address, action, repo, target, detail FROM audit"
        args: list[Any] = []
        if since:
            sql += " WHERE time >= ?"
            args.append(since)
        sql += " ORDER BY id DESC LIMIT ?"
        args.append(-1 if limit is None else limit)
        cols = ("id", "time", "user", "address", "action", "repo", "target", "detail")
        out = []
        for r in self.con.execute(sql, args):
            d = dict(zip(cols, r))
            d["detail"] = json.loads(d["detail"]) if d["detail"] else None
            out.append(d)
        return out

    # --- generic files and properties ------------------------------------------
    def put_generic(self, a: NewArtifact, properties: Mapping[str, Sequence[str]], *,
                    overwrite: bool, audit: AuditEntry | None = None) -> tuple[Artifact, str, str | None]:
        """Write a generic file's row and its properties in one transaction.

        Returns ``(artifact, outcome, previous_sha256)`` where outcome is ``"created"``,
        ``"unchanged"`` (same bytes already there: the given properties are set on it) or
        ``"replaced"`` (different bytes; only when ``overwrite``: the old row and its
        properties are replaced). Different bytes without ``overwrite`` → FileExists.
        ``audit`` (who, from where) is recorded in the same transaction when anything changed.
        """

        def record(con: sqlite3.Connection, outcome: str, previous: str | None) -> None:
            if audit is None or (outcome == "unchanged" and not properties):
                return
            detail: dict[str, Any] = {"sha256": a.sha256, "size": a.size, "outcome": outcome}
            if previous and outcome == "replaced":
                detail["previous_sha256"] = previous
            if properties:
                detail["properties"] = {k: list(v) for k, v in properties.items()}
            action = "upload" if outcome != "unchanged" else "properties-set"
            self._insert_audit(con, a.created, audit.user, audit.address, action, a.repo, a.path, detail)

        with self.write() as con:
            old = con.execute("SELECT id, sha256 FROM artifacts WHERE repo = ? AND path = ?",
                              (a.repo, a.path)).fetchone()
            if old is not None and old[1] == a.sha256:
                self._set_props(con, old[0], properties)
                if properties:
                    self._bump(con, a.repo)
                record(con, "unchanged", old[1])
                row = con.execute(f"SELECT {_ARTIFACT_COLS} FROM artifacts WHERE id = ?", (old[0],)).fetchone()
                return _row_to_artifact(row), "unchanged", old[1]
            if old is not None and not overwrite:
                raise FileExists(f"File already exists: {a.path} with different content (overwrite is disabled)")
            if old is not None:
                con.execute("DELETE FROM artifacts WHERE id = ?", (old[0],))
            cur = con.execute(
                "INSERT INTO artifacts(repo, path, sha256, size, created, created_by, kind, filename) "
                "VALUES(?,?,?,?,?,?,?,?)",
                (a.repo, a.path, a.sha256, a.size, a.created, a.created_by, a.kind, a.filename),
            )
            aid = int(cur.lastrowid or 0)
            self._set_props(con, aid, properties)
            self._bump(con, a.repo)
            outcome = "replaced" if old is not None else "created"
            record(con, outcome, old[1] if old else None)
            row = con.execute(f"SELECT {_ARTIFACT_COLS} FROM artifacts WHERE id = ?", (aid,)).fetchone()
            return _row_to_artifact(row), outcome, (old[1] if old else None)

    @staticmethod
    def _set_props(con: sqlite3.Connection, artifact_id: int, properties: Mapping[str, Sequence[str]]) -> None:
        for key, values in properties.items():
            con.execute("DELETE FROM properties WHERE artifact_id = ? AND key = ?", (artifact_id, key))
            con.executemany("INSERT OR IGNORE INTO properties(artifact_id, key, value) VALUES(?,?,?)",
                            [(artifact_id, key, v) for v in values])

    def properties(self, artifact_id: int) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for k, v in self.con.execute(
            "SELECT key, value FROM properties WHERE artifact_id = ? ORDER BY key, rowid", (artifact_id,)
        ):
            out.setdefault(k, []).append(v)
        return out

    def properties_of(self, ids: Iterable[int]) -> dict[int, dict[str, list[str]]]:
        """Properties of many artifacts at once (search results)."""
        ids = list(ids)
        out: dict[int, dict[str, list[str]]] = {i: {} for i in ids}
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            marks = ",".join("?" * len(chunk))
            for aid, k, v in self.con.execute(
                f"SELECT artifact_id, key, value FROM properties WHERE artifact_id IN ({marks}) ORDER BY key, rowid",
                chunk,
            ):
                out[aid].setdefault(k, []).append(v)
        return out

    def set_properties(self, artifact_id: int, properties: Mapping[str, Sequence[str]]) -> None:
        """Replace the values of the given keys (other keys are kept)."""
        with self.write() as con:
            row = con.execute("SELECT repo FROM artifacts WHERE id = ?", (artifact_id,)).fetchone()
            if row is None:
                raise NotFound(f"artifact {artifact_id} not found")
            self._set_props(con, artifact_id, properties)
            self._bump(con, row[0])

    def delete_properties(self, artifact_id: int, keys: Iterable[str]) -> int:
        """Remove the given keys. Returns the number of values removed."""
        with self.write() as con:
            row = con.execute("SELECT repo FROM artifacts WHERE id = ?", (artifact_id,)).fetchone()
            if row is None:
                raise NotFound(f"artifact {artifact_id} not found")
            n = 0
            for k in keys:
                n += con.execute("DELETE FROM properties WHERE artifact_id = ? AND key = ?", (artifact_id, k)).rowcount
            self._bump(con, row[0])
            return n

    def under(self, repo: str, prefix: str) -> list[Artifact]:
        """Every row of ``repo`` whose path starts with ``prefix`` (a folder ending in '/', or '').

        A range scan on the (repo, path) unique index: no full-table scan.
        """
        if not prefix:
            rows = self.con.execute(f"SELECT {_ARTIFACT_COLS} FROM artifacts WHERE repo = ? ORDER BY path",
                                    (repo,)).fetchall()
        else:
            upper = prefix[:-1] + chr(ord(prefix[-1]) + 1)
            rows = self.con.execute(
                f"SELECT {_ARTIFACT_COLS} FROM artifacts WHERE repo = ? AND path >= ? AND path < ? ORDER BY path",
                (repo, prefix, upper),
            ).fetchall()
        return [_row_to_artifact(r) for r in rows]

    def has_under(self, repo: str, prefix: str) -> bool:
        upper = prefix[:-1] + chr(ord(prefix[-1]) + 1)
        row = self.con.execute("SELECT 1 FROM artifacts WHERE repo = ? AND path >= ? AND path < ? LIMIT 1",
                               (repo, prefix, upper)).fetchone()
        return row is not None

    def search(self, repos: Sequence[str] | None, props: Sequence[tuple[str, str | None]],
               limit: int = 100_000, path_filter: Callable[[str], bool] | None = None) -> list[Artifact]:
        """Rows in ``repos`` (None: all) having every ``(key, value)`` property; value None: the key at all.

        Newest first (created, then id). With ``path_filter``, the first ``limit`` rows whose path it
        accepts: rows are read one at a time and only matches are built (a name glob over 50,000
        files must not hold them all, metadata parsed, in memory).
        """
        sql = f"SELECT {_ARTIFACT_COLS} FROM artifacts a"
        where: list[str] = []
        args: list[Any] = []
        if repos is not None:
            if not repos:
                return []
            where.append(f"a.repo IN ({','.join('?' * len(repos))})")
            args.extend(repos)
        for key, value in props:
            if value is None:
                where.append("EXISTS(SELECT 1 FROM properties p WHERE p.artifact_id = a.id AND p.key = ?)")
                args.append(key)
            else:
                where.append("EXISTS(SELECT 1 FROM properties p WHERE p.artifact_id = a.id AND p.key = ? AND p.value = ?)")
                args.extend((key, value))
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY a.created DESC, a.id DESC"
        if path_filter is None:
            args.append(limit)
            return [_row_to_artifact(r) for r in self.con.execute(sql + " LIMIT ?", args).fetchall()]
        out: list[Artifact] = []
        if limit <= 0:
            return out
        for r in self.con.execute(sql, args):
            if path_filter(r[2]):
                out.append(_row_to_artifact(r))
                if len(out) >= limit:
                    break
        return out

    def delete_repository_rows(self, repo: str) -> int:
        """Every row of a repository in one transaction (their properties go with them)."""
        with self.write() as con:
            n = con.execute("DELETE FROM artifacts WHERE repo = ?", (repo,)).rowcount
            if n:
                self._bump(con, repo)
            return int(n)

    def delete_artifacts(self, ids: Sequence[int]) -> list[Artifact]:
        """Delete several rows in one transaction (a generic folder)."""
        out: list[Artifact] = []
        with self.write() as con:
            repos: set[str] = set()
            for aid in ids:
                row = con.execute(f"SELECT {_ARTIFACT_COLS} FROM artifacts WHERE id = ?", (aid,)).fetchone()
                if row is None:
                    continue
                art = _row_to_artifact(row)
                con.execute("DELETE FROM artifacts WHERE id = ?", (aid,))
                repos.add(art.repo)
                out.append(art)
            for r in repos:
                self._bump(con, r)
        return out

    # --- promotion -----------------------------------------------------------------
    def promote(self, items: Sequence[tuple[int, str]], *, move: bool, overwrite: bool, time: str,
                user: str | None, forced: bool = False, comment: str | None = None,
                build_id: int | None = None, status: str | None = None,
                detail: dict[str, Any] | None = None) -> list[tuple[Artifact, Artifact, str]]:
        """Copy (or move) artifact rows to target repositories in ONE transaction.

        ``items`` are ``(artifact_id, target_repo)``. Each copy is a new row with the same
        sha256 (no blob is written) and the same properties; ``move`` deletes the source
        row in the same transaction, so a crash leaves the file in the source or the
        target, never in neither. Returns ``(source, copy, outcome)`` with outcome
        ``"copied"``, ``"moved"`` or ``"unchanged"`` (identical file already in the target).

        A different file already at the target path (or, PyPI, the same filename or
        distribution) → FileExists, unless ``overwrite`` (generic targets), which
        replaces it. With ``build_id`` and ``status``, a history entry is written too.
        """
        out: list[tuple[Artifact, Artifact, str]] = []
        with self.write() as con:
            touched: set[str] = set()
            for aid, target in items:
                row = con.execute(f"SELECT {_ARTIFACT_COLS}, dist_key FROM artifacts WHERE id = ?", (aid,)).fetchone()
                if row is None:
                    raise NotFound(f"artifact {aid} not found (deleted meanwhile?)")
                src = _row_to_artifact(row)
                dkey = row[-1]
                if src.repo == target:
                    raise BadRequest(f"{src.path} is already in {target}")
                existing = con.execute(f"SELECT {_ARTIFACT_COLS} FROM artifacts WHERE repo = ? AND path = ?",
                                       (target, src.path)).fetchone()
                if existing is None and src.kind == "pypi":
                    existing = con.execute(
                        f"SELECT {_ARTIFACT_COLS} FROM artifacts WHERE repo = ? AND "
                        "((kind = 'pypi' AND filename = ?) OR (dist_key IS NOT NULL AND dist_key = ?))",
                        (target, src.filename, dkey),
                    ).fetchone()
                outcome = "moved" if move else "copied"
                if existing is not None:
                    ex = _row_to_artifact(existing)
                    if ex.sha256 == src.sha256:
                        copy = ex
                        outcome = "unchanged"
                        self._set_props(con, ex.id, self._props(con, src.id))
                    elif overwrite and src.kind != "pypi":
                        con.execute("DELETE FROM artifacts WHERE id = ?", (ex.id,))
                        existing = None
                    else:
                        raise FileExists(f"File already exists: {target}:{ex.path} holds different content")
                if existing is None:
                    cur = con.execute(
                        "INSERT INTO artifacts(repo, path, sha256, size, created, created_by, kind, project, "
                        "project_name, version, filename, dist_key, packagetype, requires_python, metadata_sha256, "
                        "metadata_json, yanked, yanked_reason, pinned) "
                        "SELECT ?, path, sha256, size, created, created_by, kind, project, project_name, version, "
                        "filename, dist_key, packagetype, requires_python, metadata_sha256, metadata_json, yanked, "
                        "yanked_reason, pinned FROM artifacts WHERE id = ?",
                        (target, src.id),
                    )
                    new_id = int(cur.lastrowid or 0)
                    con.execute("INSERT INTO properties(artifact_id, key, value) "
                                "SELECT ?, key, value FROM properties WHERE artifact_id = ?", (new_id, src.id))
                    copy = _row_to_artifact(con.execute(f"SELECT {_ARTIFACT_COLS} FROM artifacts WHERE id = ?",
                                                        (new_id,)).fetchone())
                # Retention never deletes what was promoted: mark the copy, and the source it came from.
                con.execute("INSERT OR IGNORE INTO properties(artifact_id, key, value) VALUES(?, 'promoted', ?)",
                            (copy.id, f"from {src.repo}"))
                if not move:
                    con.execute("INSERT OR IGNORE INTO properties(artifact_id, key, value) VALUES(?, 'promoted', ?)",
                                (src.id, f"to {target}"))
                if move:
                    con.execute("DELETE FROM artifacts WHERE id = ?", (src.id,))
                    if build_id is not None:
                        con.execute("UPDATE build_artifacts SET repo = ? WHERE build_id = ? AND repo = ? AND path = ?",
                                    (target, build_id, src.repo, src.path))
                    touched.add(src.repo)
                con.execute(
                    "INSERT INTO promotions(time, user, source, target, path, sha256, move, forced, build_id, comment) "
                    "VALUES(?,?,?,?,?,?,?,?,?,?)",
                    (time, user, src.repo, target, src.path, src.sha256, int(move), int(forced), build_id, comment),
                )
                touched.add(target)
                out.append((src, copy, outcome))
            if build_id is not None and status is not None:
                repos = sorted({t for _, t in items})
                con.execute(
                    "INSERT INTO build_status(build_id, time, user, status, repo, comment, forced, move, detail_json) "
                    "VALUES(?,?,?,?,?,?,?,?,?)",
                    (build_id, time, user, status, ",".join(repos), comment, int(forced), int(move),
                     json.dumps(detail) if detail else None),
                )
                con.execute("UPDATE builds SET status = ? WHERE id = ?", (status, build_id))
            for r in touched:
                self._bump(con, r)
        return out

    @staticmethod
    def _props(con: sqlite3.Connection, artifact_id: int) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for k, v in con.execute("SELECT key, value FROM properties WHERE artifact_id = ?", (artifact_id,)):
            out.setdefault(k, []).append(v)
        return out

    def promotions(self, repo: str | None = None, path: str | None = None) -> list[dict[str, Any]]:
        sql = ("SELECT id, time, user, source, target, path, sha256, move, forced, build_id, comment "
               "FROM promotions")
        where, args = [], []
        if repo is not None:
            where.append("(source = ? OR target = ?)")
            args += [repo, repo]
        if path is not None:
            where.append("path = ?")
            args.append(path)
        if where:
            sql += " WHERE " + " AND ".join(where)
        cols = ("id", "time", "user", "source", "target", "path", "sha256", "move", "forced", "build_id", "comment")
        out = []
        for r in self.con.execute(sql + " ORDER BY id", args):
            d = dict(zip(cols, r))
            d["move"], d["forced"] = bool(d["move"]), bool(d["forced"])
            out.append(d)
        return out

    # --- builds ----------------------------------------------------------------------
    def add_build(self, name: str, number: str, created: str, created_by: str | None,
                  artifacts: Sequence[Artifact], deps: Sequence[tuple[str, str, Sequence[str]]],
                  vcs: Mapping[str, Any], properties: Mapping[str, Sequence[str]]) -> int:
        """Record a build; tags its artifacts with ``build.name``/``build.number`` properties.

        An existing NAME/NUMBER → Conflict.
        """
        with self.write() as con:
            if con.execute("SELECT 1 FROM builds WHERE name = ? AND number = ?", (name, number)).fetchone():
                raise Conflict(f"build {name}/{number} already exists")
            cur = con.execute(
                "INSERT INTO builds(name, number, created, created_by, vcs_json, properties_json) VALUES(?,?,?,?,?,?)",
                (name, number, created, created_by, json.dumps(dict(vcs)),
                 json.dumps({k: list(v) for k, v in properties.items()})),
            )
            bid = int(cur.lastrowid or 0)
            for art in artifacts:
                con.execute("INSERT OR IGNORE INTO build_artifacts(build_id, repo, path, sha256, size) VALUES(?,?,?,?,?)",
                            (bid, art.repo, art.path, art.sha256, art.size))
                self._set_props(con, art.id, {"build.name": [name], "build.number": [number]})
            con.executemany("INSERT OR IGNORE INTO build_deps(build_id, name, version, hashes) VALUES(?,?,?,?)",
                            [(bid, n, v, ",".join(h)) for n, v, h in deps])
            con.execute("INSERT INTO build_status(build_id, time, user, status) VALUES(?,?,?,?)",
                        (bid, created, created_by, "published"))
            con.execute("UPDATE builds SET status = 'published' WHERE id = ?", (bid,))
            for r in {a.repo for a in artifacts}:
                self._bump(con, r)
            return bid

    def build(self, name: str, number: str) -> dict[str, Any] | None:
        row = self.con.execute(
            "SELECT id, name, number, created, created_by, vcs_json, properties_json, status, scan_json "
            "FROM builds WHERE name = ? AND number = ?", (name, number)).fetchone()
        if row is None:
            return None
        bid = row[0]
        out: dict[str, Any] = {
            "id": bid, "name": row[1], "number": row[2], "created": row[3], "created_by": row[4],
            "vcs": json.loads(row[5] or "{}"), "properties": json.loads(row[6] or "{}"), "status": row[7],
            "scan": json.loads(row[8]) if row[8] else None,
        }
        out["artifacts"] = [
            {"repo": r[0], "path": r[1], "sha256": r[2], "size": r[3]}
            for r in self.con.execute("SELECT repo, path, sha256, size FROM build_artifacts WHERE build_id = ? "
                                      "ORDER BY path", (bid,))
        ]
        out["dependencies"] = [
            {"name": r[0], "version": r[1], "hashes": [h for h in r[2].split(",") if h]}
            for r in self.con.execute("SELECT name, version, hashes FROM build_deps WHERE build_id = ? ORDER BY name",
                                      (bid,))
        ]
        out["history"] = [
            {"time": r[0], "user": r[1], "status": r[2], "repo": r[3], "comment": r[4], "forced": bool(r[5]),
             "move": bool(r[6]), "detail": json.loads(r[7]) if r[7] else None}
            for r in self.con.execute("SELECT time, user, status, repo, comment, forced, move, detail_json "
                                      "FROM build_status WHERE build_id = ? ORDER BY id", (bid,))
        ]
        return out

    def builds(self, name: str | None = None) -> list[dict[str, Any]]:
        sql = "SELECT id, name, number, created, created_by, status FROM builds"
        args: tuple[Any, ...] = ()
        if name is not None:
            sql += " WHERE name = ?"
            args = (name,)
        cols = ("id", "name", "number", "created", "created_by", "status")
        return [dict(zip(cols, r)) for r in self.con.execute(sql + " ORDER BY name, id", args)]

    def set_build_scan(self, build_id: int, scan: dict[str, Any], time: str, user: str | None) -> None:
        with self.write() as con:
            con.execute("UPDATE builds SET scan_json = ? WHERE id = ?", (json.dumps(scan), build_id))
            con.execute("INSERT INTO build_status(build_id, time, user, status, detail_json) VALUES(?,?,?,?,?)",
                        (build_id, time, user, f"scan {scan.get('result')}", json.dumps(scan)))


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
