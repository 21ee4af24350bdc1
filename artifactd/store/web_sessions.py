"""Browser sessions of the web interface: one row per login, keyed by the hash of its id.

The cookie carries a random session id; only its sha256 is stored, so a copy of the
database does not hand out live sessions. Each session has its own CSRF token and an
expiry; an expired row is deleted when next looked up (and by ``purge``).
"""
from __future__ import annotations

import hashlib
import secrets
import sqlite3
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from artifactd.store.db import MetadataStore

SCHEMA = """
CREATE TABLE IF NOT EXISTS web_sessions(
    id_hash TEXT PRIMARY KEY,
    user TEXT NOT NULL,
    token_hash TEXT,
    csrf TEXT NOT NULL,
    created TEXT NOT NULL,
    expires TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS web_sessions_expires ON web_sessions(expires);
"""


def create(con: sqlite3.Connection) -> None:
    """Additive schema step (called by MetadataStore._init_schema inside its transaction)."""
    for stmt in SCHEMA.split(";"):
        if stmt.strip():
            con.execute(stmt)


@dataclass(frozen=True)
class WebSession:
    id_hash: str
    user: str
    token_hash: str | None  # set when the login used a token: the session lives only as long as the token
    csrf: str
    created: str
    expires: str


def hash_id(session_id: str) -> str:
    return hashlib.sha256(session_id.encode("utf-8", "surrogateescape")).hexdigest()


class WebSessions:
    def __init__(self, db: "MetadataStore") -> None:
        self.db = db

    def add(self, user: str, token_hash: str | None, now: str, expires: str) -> tuple[str, WebSession]:
        """A new session: (the id for the cookie, the stored row)."""
        sid = secrets.token_urlsafe(32)
        row = WebSession(hash_id(sid), user, token_hash, secrets.token_urlsafe(32), now, expires)
        with self.db.write() as con:
            con.execute("DELETE FROM web_sessions WHERE expires < ?", (now,))
            con.execute("INSERT INTO web_sessions(id_hash, user, token_hash, csrf, created, expires) VALUES(?,?,?,?,?,?)",
                        (row.id_hash, row.user, row.token_hash, row.csrf, row.created, row.expires))
        return sid, row

    def get(self, session_id: str, now: str) -> WebSession | None:
        r = self.db.con.execute("SELECT id_hash, user, token_hash, csrf, created, expires FROM web_sessions "
                                "WHERE id_hash = ?", (hash_id(session_id),)).fetchone()
        if r is None:
            return None
        s = WebSession(*r)
        if s.expires < now:
            self.delete(session_id)
            return None
        return s

    def delete(self, session_id: str) -> None:
        with self.db.write() as con:
            con.execute("DELETE FROM web_sessions WHERE id_hash = ?", (hash_id(session_id),))

    def purge(self, now: str) -> int:
        with self.db.write() as con:
            return con.execute("DELETE FROM web_sessions WHERE expires < ?", (now,)).rowcount
