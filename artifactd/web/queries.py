"""Read-only queries the web pages need that the store's interface does not offer: pages of
projects (LIMIT/OFFSET on the (repo, project) index), per-repository totals with the
deduplicated size, and the repositories a build touches. Every statement is parameterized.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence

if TYPE_CHECKING:
    from artifactd.app import App

PAGE_SIZE = 50


@dataclass(frozen=True)
class ProjectRow:
    normalized: str
    name: str
    versions: int
    files: int
    size: int
    updated: str | None
    repo: str


def _like(q: str) -> str:
    return "%" + q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def project_page(app: "App", repos: Sequence[str], q: str = "", page: int = 1,
                 per_page: int = PAGE_SIZE) -> tuple[list[ProjectRow], int]:
    """One page of projects across ``repos`` (first repository wins a name), and the total count."""
    if not repos:
        return [], 0
    marks = ",".join("?" * len(repos))
    where = f"repo IN ({marks}) AND kind = 'pypi' AND project IS NOT NULL"
    args: list[Any] = list(repos)
    if q:
        where += " AND (project LIKE ? ESCAPE '\\' OR project_name LIKE ? ESCAPE '\\')"
        args += [_like(q.lower()), _like(q)]
    con = app.db.con
    total = con.execute(f"SELECT COUNT(DISTINCT project) FROM artifacts WHERE {where}", args).fetchone()[0]
    offset = max(0, page - 1) * per_page
    if len(repos) == 1:
        rows = con.execute(
            f"SELECT project, MAX(project_name), COUNT(DISTINCT version), COUNT(*), SUM(size), MAX(created), "
            f"MIN(repo) FROM artifacts WHERE {where} GROUP BY project ORDER BY project LIMIT ? OFFSET ?",
            args + [per_page, offset]).fetchall()
        return [ProjectRow(*r) for r in rows], total
    # Several members (a group): first member that has a project owns it.
    order = {r: i for i, r in enumerate(repos)}
    names = [r[0] for r in con.execute(
        f"SELECT DISTINCT project FROM artifacts WHERE {where} ORDER BY project LIMIT ? OFFSET ?",
        args + [per_page, offset]).fetchall()]
    out: list[ProjectRow] = []
    for name in names:
        rows = con.execute(
            f"SELECT repo, MAX(project_name), COUNT(DISTINCT version), COUNT(*), SUM(size), MAX(created) "
            f"FROM artifacts WHERE repo IN ({marks}) AND kind = 'pypi' AND project = ? GROUP BY repo",
            list(repos) + [name]).fetchall()
        owner = min(rows, key=lambda r: order[r[0]])
        out.append(ProjectRow(name, owner[1], owner[2], owner[3], owner[4], owner[5], owner[0]))
    return out, total


def totals(app: "App", repos: Sequence[str]) -> tuple[int, int, int]:
    """(files, stored bytes, deduplicated bytes: each distinct blob counted once) over ``repos``."""
    if not repos:
        return 0, 0, 0
    marks = ",".join("?" * len(repos))
    con = app.db.con
    files, stored = con.execute(f"SELECT COUNT(*), COALESCE(SUM(size), 0) FROM artifacts WHERE repo IN ({marks})",
                                list(repos)).fetchone()
    dedup = con.execute(f"SELECT COALESCE(SUM(size), 0) FROM (SELECT sha256, MAX(size) AS size FROM artifacts "
                        f"WHERE repo IN ({marks}) GROUP BY sha256)", list(repos)).fetchone()[0]
    return files, stored, dedup


def project_count(app: "App", repos: Sequence[str]) -> int:
    if not repos:
        return 0
    marks = ",".join("?" * len(repos))
    return int(app.db.con.execute(f"SELECT COUNT(DISTINCT project) FROM artifacts WHERE repo IN ({marks}) "
                                  f"AND kind = 'pypi'", list(repos)).fetchone()[0])


def oci_totals(app: "App", repo: str) -> tuple[int, int, int]:
    """(images, stored bytes of linked blobs, deduplicated bytes) of a docker repository."""
    con = app.db.con
    images = con.execute("SELECT COUNT(*) FROM (SELECT name FROM oci_manifests WHERE repo = ? "
                         "UNION SELECT name FROM oci_tags WHERE repo = ?)", (repo, repo)).fetchone()[0]
    stored = con.execute("SELECT COALESCE(SUM(size), 0) FROM oci_blob_links WHERE repo = ?", (repo,)).fetchone()[0]
    stored += con.execute("SELECT COALESCE(SUM(size), 0) FROM oci_manifests WHERE repo = ?", (repo,)).fetchone()[0]
    dedup = con.execute("SELECT COALESCE(SUM(size), 0) FROM (SELECT sha256, MAX(size) AS size FROM oci_blob_links "
                        "WHERE repo = ? GROUP BY sha256)", (repo,)).fetchone()[0]
    return images, stored, dedup


def project_activity(app: "App", repos: Sequence[str], project: str) -> str:
    """Changes when a file of the project is downloaded or pinned (neither bumps the serial)."""
    if not repos:
        return ""
    marks = ",".join("?" * len(repos))
    row = app.db.con.execute(f"SELECT MAX(last_download), SUM(downloads), SUM(pinned) FROM artifacts "
                             f"WHERE repo IN ({marks}) AND project = ?", list(repos) + [project]).fetchone()
    return f"{row[0]}:{row[1]}:{row[2]}"


def build_repos(app: "App") -> dict[int, set[str]]:
    """Build id → the repositories of its artifacts."""
    out: dict[int, set[str]] = {}
    for bid, repo in app.db.con.execute("SELECT DISTINCT build_id, repo FROM build_artifacts"):
        out.setdefault(bid, set()).add(repo)
    return out


def builds_of_artifact(app: "App", repo: str, path: str) -> list[tuple[str, str]]:
    return [(r[0], r[1]) for r in app.db.con.execute(
        "SELECT b.name, b.number FROM build_artifacts ba JOIN builds b ON b.id = ba.build_id "
        "WHERE ba.repo = ? AND ba.path = ? ORDER BY b.id", (repo, path))]
