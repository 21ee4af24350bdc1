"""Use cases for generic repositories, properties, search, download and promotion.

Shared by the HTTP server (``http/handler``, ``http/api``) and the command line
(``cli/generic_cmds``). Permissions are checked by the caller; durability order is
blob first, metadata row last; promotion is one database transaction and costs no
blob space (a copy is a new row with the same sha256).
"""
from __future__ import annotations

import fnmatch
import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, Protocol, Sequence

from packaging.utils import canonicalize_name

from artifactd.errors import (
    BadRequest,
    DigestMismatch,
    FileNotFound,
    Forbidden,
    NotFound,
    PayloadTooLarge,
    RepositoryNotFound,
)
from artifactd.formats.generic.paths import Properties, check_property, clean_path
from artifactd.model import SYSTEM, Artifact, Principal, isotime, same_version, utcnow
from artifactd.repositories.generic import children
from artifactd.service import audit_entry, hosted_repo, max_upload
from artifactd.store.blobs import CHUNK, BlobWriter
from artifactd.store.db import NewArtifact

if TYPE_CHECKING:
    from artifactd.app import App
    from artifactd.config import RepoConfig

log = logging.getLogger(__name__)

#: Client checksum headers → the digest they declare.
CHECKSUM_HEADERS = {"X-Checksum-Sha256": "sha256", "X-Checksum-Sha1": "sha1", "X-Checksum-Md5": "md5"}


class Readable(Protocol):
    """A request body or an open file: ``read(n)`` returns at most n bytes, b"" at the end."""

    def read(self, size: int, /) -> bytes: ...


@dataclass(frozen=True)
class PutResult:
    artifact: Artifact
    outcome: str  # "created" | "unchanged" | "replaced"
    properties: Properties

    @property
    def created(self) -> bool:
        return self.outcome != "unchanged"


def repo_config(app: "App", repo: str) -> "RepoConfig":
    cfg = app.config.repo(repo)
    if cfg is None:
        raise RepositoryNotFound(f"no repository named {repo!r}")
    return cfg


def hosted_generic(app: "App", repo: str) -> "RepoConfig":
    return hosted_repo(app, repo, "generic")


# --- upload -------------------------------------------------------------------------

def receive_file(app: "App", repo: str, path: str, src: Readable, length: int, *,
                 properties: Properties | None = None, checksums: Mapping[str, str] | None = None,
                 principal: Principal = SYSTEM, address: str | None = None) -> PutResult:
    """Stream ``length`` bytes from ``src`` into ``repo`` at ``path`` with ``properties``.

    Raises PayloadTooLarge before reading anything when ``length`` exceeds the limit;
    DigestMismatch (400) when a declared checksum (sha256/sha1/md5) differs; EOFError
    when ``src`` ends early (a client disconnect). In every failure nothing is stored
    and no temporary file remains.
    """
    cfg = hosted_generic(app, repo)
    path = clean_path(path, folder_ok=False)
    props = dict(properties or {})
    for k, v in props.items():
        check_property(k, v)
    limit = max_upload(app, repo)
    if length > limit:
        raise PayloadTooLarge(f"file of {length} bytes exceeds the size limit of {limit} bytes")
    want = {algo: v.strip().lower() for algo, v in (checksums or {}).items() if v and v.strip()}
    with app.blobs.writer(max_size=limit, extra_digests=[a for a in ("md5", "sha1") if a in want]) as w:
        remaining = length
        while remaining > 0:
            data = src.read(min(CHUNK, remaining))
            if not data:
                raise EOFError(f"input ended {remaining} bytes early")
            w.write(data)
            remaining -= len(data)
        w.verify(want)
        return _commit(app, cfg, w, path, props, principal, address)


def _commit(app: "App", cfg: "RepoConfig", w: BlobWriter, path: str, props: Properties, principal: Principal,
            address: str | None) -> PutResult:
    repo = cfg.name
    now = isotime(utcnow())
    filename = path.rsplit("/", 1)[-1]
    candidate = Artifact(id=0, repo=repo, path=path, sha256=w.sha256, size=w.size, created=now,
                         created_by=principal.user, kind="generic", filename=filename)
    existing = app.db.get_artifact(repo, path)
    if existing is None or existing.sha256 != w.sha256:
        w.flush()
        gate = app.hooks.check_upload(repo, candidate, w.tmp_path, dict(props))
        if gate.denied:
            raise Forbidden("upload refused: " + "; ".join(gate.reasons))
    blob = w.commit()  # blob first ...
    art, outcome, previous = app.db.put_generic(  # ... metadata row (and its audit record) last
        NewArtifact(repo=repo, path=path, sha256=blob.sha256, size=blob.size, created=now,
                    created_by=principal.user, kind="generic", filename=filename),
        props, overwrite=cfg.overwrite_allowed, audit=audit_entry(principal, "upload", None, address),
    )
    if outcome != "unchanged":
        app.hooks.after_upload(repo, art)
    return PutResult(art, outcome, app.db.properties(art.id))


def upload_local(app: "App", repo: str, file: Path, path: str | None = None, *,
                 properties: Properties | None = None, principal: Principal = SYSTEM) -> PutResult:
    """``artifactd upload REPO FILE --path P --prop k=v``: import a local file into a generic repository."""
    target = path if path else file.name
    if target.endswith("/"):
        target += file.name
    size = file.stat().st_size
    with open(file, "rb") as fh:
        return receive_file(app, repo, target, fh, size, properties=properties, principal=principal)


# --- read -------------------------------------------------------------------------------

def lookup(app: "App", repo: str, path: str) -> Artifact | None:
    r: Any = app.repository(repo)
    if not hasattr(r, "lookup"):
        return app.db.get_artifact(repo, path)
    result: Artifact | None = r.lookup(path)
    return result


def get_artifact(app: "App", repo: str, path: str) -> Artifact:
    """The file at ``path`` (a group: the first member that has it). FileNotFound otherwise."""
    path = clean_path(path, folder_ok=False)
    art = lookup(app, repo, path)
    if art is None:
        raise FileNotFound(f"{path} not found in {repo}")
    return art


def folder_listing(app: "App", repo: str, path: str) -> dict[str, Any] | None:
    """``{"repo", "path", "children"}`` when ``path`` is a folder ('' is the root), else None."""
    prefix = path if path == "" or path.endswith("/") else path + "/"
    r: Any = app.repository(repo)
    if not hasattr(r, "under"):
        raise BadRequest(f"repository {repo!r} is not a generic repository")
    if prefix and not r.is_folder(prefix):
        return None
    return {"repo": repo, "path": prefix, "children": children(r.under(prefix), prefix)}


def describe(app: "App", art: Artifact, props: Properties | None = None, *, base_url: str = "") -> dict[str, Any]:
    from urllib.parse import quote

    out: dict[str, Any] = {
        "repo": art.repo, "path": art.path, "size": art.size, "sha256": art.sha256, "created": art.created,
        "created_by": art.created_by, "kind": art.kind,
        "properties": props if props is not None else app.db.properties(art.id),
    }
    if art.kind == "pypi":
        out.update({"project": art.project, "version": art.version, "filename": art.filename})
        out["download_uri"] = f"{base_url}/repository/{quote(art.repo)}/packages/{quote(art.project or '')}/" \
                              f"{quote(art.version or '')}/{quote(art.filename or '')}"
    else:
        out["download_uri"] = f"{base_url}/repository/{quote(art.repo)}/{quote(art.path)}"
    return out


# --- delete -----------------------------------------------------------------------------

def delete_path(app: "App", repo: str, path: str, *, principal: Principal = SYSTEM,
                address: str | None = None) -> list[Artifact]:
    """Delete a file, or every file below a folder, of a hosted generic repository (one transaction)."""
    hosted_generic(app, repo)
    path = clean_path(path)
    art = app.db.get_artifact(repo, path) if path and not path.endswith("/") else None
    if art is not None:
        ids = [art.id]
    else:
        prefix = path if path == "" or path.endswith("/") else path + "/"
        if prefix == "":
            raise BadRequest("refusing to delete a whole repository's content; delete folders one by one")
        ids = [a.id for a in app.db.under(repo, prefix)]
        if not ids:
            raise FileNotFound(f"{path} not found in {repo}")
    deleted = app.db.delete_artifacts(ids)
    now = isotime(utcnow())
    for a in deleted:
        app.db.audit(now, principal.user, address, "delete", repo, a.path, {"sha256": a.sha256, "size": a.size})
        app.hooks.after_delete(repo, a, "deleted by " + (principal.user or "anonymous"))
    return deleted


# --- properties ---------------------------------------------------------------------------

def _row(app: "App", repo: str, path: str) -> Artifact:
    repo_config(app, repo)
    path = clean_path(path, folder_ok=False)
    art = app.db.get_artifact(repo, path)
    if art is None:
        raise FileNotFound(f"{path} not found in {repo}")
    return art


def get_properties(app: "App", repo: str, path: str) -> Properties:
    return app.db.properties(get_artifact(app, repo, path).id)


def set_properties(app: "App", repo: str, path: str, props: Properties, *, principal: Principal = SYSTEM) -> Properties:
    """Replace the values of the given keys on a stored file (PyPI files too); other keys stay."""
    art = _row(app, repo, path)
    for k, v in props.items():
        check_property(k, v)
    app.db.set_properties(art.id, props)
    app.db.audit(isotime(utcnow()), principal.user, None, "properties-set", repo, art.path, {"properties": props})
    return app.db.properties(art.id)


def delete_properties(app: "App", repo: str, path: str, keys: Sequence[str], *,
                      principal: Principal = SYSTEM) -> Properties:
    art = _row(app, repo, path)
    app.db.delete_properties(art.id, keys)
    app.db.audit(isotime(utcnow()), principal.user, None, "properties-delete", repo, art.path, {"keys": list(keys)})
    return app.db.properties(art.id)


# --- search and download -------------------------------------------------------------------

def leaf_repos(app: "App", repo: str) -> list[str]:
    """The hosted repositories a repository reads from (a group: its members, recursively)."""
    cfg = repo_config(app, repo)
    if cfg.type != "group":
        return [repo]
    out: list[str] = []
    for m in cfg.members:
        out.extend(x for x in leaf_repos(app, m) if x not in out)
    return out


def search(app: "App", *, repos: Sequence[str] | None = None, props: Sequence[tuple[str, str | None]] = (),
           name: str | None = None, readable: Callable[[str], bool] | None = None,
           limit: int = 10_000) -> list[tuple[Artifact, Properties]]:
    """Stored files matching every property filter and the basename glob, newest first.

    ``repos`` may name groups (searched through their members); ``readable`` filters
    repositories the caller may not read.
    """
    leaves: list[str] | None = None
    if repos:
        found: list[str] = []
        for r in repos:
            found.extend(x for x in leaf_repos(app, r) if x not in found)
        leaves = found
    if readable is not None:
        allowed = [r for r in (leaves if leaves is not None else list(app.config.repositories)) if readable(r)]
        leaves = allowed
    match = None
    if name:
        def match(path: str) -> bool:
            return fnmatch.fnmatchcase(path.rsplit("/", 1)[-1], name) or fnmatch.fnmatchcase(path, name)
    rows = app.db.search(leaves, props, limit=limit, path_filter=match)
    props_by_id = app.db.properties_of(a.id for a in rows)
    return [(a, props_by_id[a.id]) for a in rows]


def parse_build_ref(ref: str) -> tuple[str, str]:
    name, sep, number = ref.rpartition("/")
    if not sep or not name or not number:
        raise BadRequest(f"expected NAME/NUMBER, got {ref!r}")
    return name, number


def select_downloads(app: "App", repo: str, *, props: Sequence[tuple[str, str | None]] = (),
                     build: str | None = None, name: str | None = None, all_matches: bool = False
                     ) -> list[Artifact]:
    """The files ``artifactd download`` fetches: matches in ``repo`` (a group: its members).

    By default the newest match per path; ``all_matches`` keeps every match. ``build``
    (``NAME/NUMBER``) keeps the files that build recorded (same path and sha256),
    wherever promotion copied them.
    """
    matches = [a for a, _ in search(app, repos=[repo], props=props, name=name, limit=1_000_000)]
    if build:
        bname, bnum = parse_build_ref(build)
        record = app.db.build(bname, bnum)
        if record is None:
            raise NotFound(f"build {bname}/{bnum} not found")
        wanted = {(x["path"], x["sha256"]) for x in record["artifacts"]}
        matches = [a for a in matches if (a.path, a.sha256) in wanted]
    if all_matches:
        return matches
    newest: dict[str, Artifact] = {}
    for a in matches:  # newest first already
        newest.setdefault(a.path, a)
    return list(newest.values())


def download_to(app: "App", arts: Sequence[Artifact], outdir: Path, *, by_repo: bool = False) -> list[dict[str, Any]]:
    """Copy files out of the store into ``outdir/<path>``, verifying each sha256 while copying.

    A file that fails verification is removed and DigestMismatch raised. ``by_repo``
    writes ``outdir/<repo>/<path>`` (several matches of one path).
    """
    out: list[dict[str, Any]] = []
    root = outdir.resolve()
    for a in arts:
        rel = a.filename if a.kind == "pypi" and a.filename else a.path
        dest = (root / a.repo / rel) if by_repo else (root / rel)
        if root not in dest.resolve().parents:
            raise BadRequest(f"refusing to write outside {root}: {rel}")
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(dest.name + ".part")
        h = hashlib.sha256()
        try:
            with app.blobs.open(a.sha256) as src, open(tmp, "wb") as dst:
                while chunk := src.read(CHUNK):
                    h.update(chunk)
                    dst.write(chunk)
        except FileNotFoundError:
            tmp.unlink(missing_ok=True)
            raise FileNotFound(f"blob of {a.repo}:{a.path} is missing from the store (run 'artifactd fsck')") from None
        if h.hexdigest() != a.sha256:
            tmp.unlink(missing_ok=True)
            raise DigestMismatch(f"{a.repo}:{a.path}: sha256 {h.hexdigest()} does not match the recorded {a.sha256}")
        os.replace(tmp, dest)
        out.append({"repo": a.repo, "path": a.path, "file": str(dest), "sha256": a.sha256, "size": a.size,
                    "verified": True})
    return out


# --- promotion ------------------------------------------------------------------------------

@dataclass(frozen=True)
class PromotionResult:
    source: str
    target: str
    items: list[dict[str, Any]]
    move: bool
    forced: bool
    reasons: list[str]  # gate denials overridden by force (empty otherwise)
    reviews: list[str]

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "target": self.target, "move": self.move, "forced": self.forced,
                "overridden": self.reasons, "reviews": self.reviews, "items": self.items}


def promotion_candidates(app: "App", source: str, *, package: str | None = None,
                         path: str | None = None) -> list[Artifact]:
    """The rows a promotion moves: every file of ``NAME==VERSION``, or a file, or a folder's files."""
    cfg = repo_config(app, source)
    if cfg.type != "hosted":
        raise BadRequest(f"promote from a hosted repository; {source!r} is a {cfg.type} repository")
    if (package is None) == (path is None):
        raise BadRequest("give exactly one of --package NAME==VERSION or --path P")
    if package is not None:
        name, sep, version = package.partition("==")
        if not sep or not name.strip() or not version.strip():
            raise BadRequest(f"expected NAME==VERSION, got {package!r}")
        norm = canonicalize_name(name.strip())
        arts = [a for a in app.db.project_artifacts(source, norm) if same_version(a.version, version.strip())]
        if not arts:
            raise NotFound(f"{name}=={version} not found in {source}")
        return arts
    assert path is not None
    p = clean_path(path)
    art = app.db.get_artifact(source, p) if p and not p.endswith("/") else None
    if art is not None:
        return [art]
    prefix = p if p == "" or p.endswith("/") else p + "/"
    arts = app.db.under(source, prefix) if prefix else []
    if not arts:
        raise FileNotFound(f"{path} not found in {source}")
    return arts


def check_target(app: "App", source: str, target: str) -> "RepoConfig":
    scfg, tcfg = repo_config(app, source), repo_config(app, target)
    if tcfg.type != "hosted":
        raise BadRequest(f"promote to a hosted repository; {target!r} is a {tcfg.type} repository")
    if scfg.format != tcfg.format:
        raise BadRequest(f"cannot promote from {source!r} ({scfg.format}) to {target!r} ({tcfg.format})")
    if source == target:
        raise BadRequest("source and target are the same repository")
    return tcfg


def promote(app: "App", source: str, target: str, *, package: str | None = None, path: str | None = None,
            move: bool = False, force: bool = False, comment: str | None = None,
            principal: Principal = SYSTEM, address: str | None = None) -> PromotionResult:
    """Copy (or move) files from ``source`` to ``target`` after the promotion gates.

    Every artifact goes through ``check_promotion``; any deny refuses the whole promotion
    (Forbidden, nothing changed) unless ``force``, which is recorded. The copy is one
    database transaction and writes no blob.
    """
    tcfg = check_target(app, source, target)
    arts = promotion_candidates(app, source, package=package, path=path)
    reasons: list[str] = []
    reviews: list[str] = []
    for a in arts:
        gate = app.hooks.check_promotion(source, target, a)
        reasons += [f"{a.path}: {r}" for r in gate.reasons]
        reviews += [f"{a.path}: {r}" for r in gate.reviews]
    if reasons and not force:
        raise Forbidden("promotion refused: " + "; ".join(reasons))
    now = isotime(utcnow())
    done = app.db.promote([(a.id, target) for a in arts], move=move, overwrite=tcfg.overwrite_allowed, time=now,
                          user=principal.user, forced=bool(reasons), comment=comment)
    items = []
    for src, copy, outcome in done:
        items.append({"path": src.path, "sha256": src.sha256, "size": src.size, "outcome": outcome})
        app.hooks.after_promotion(source, target, copy)
    app.db.audit(now, principal.user, address, "promote", target, package or path,
                 {"source": source, "move": move, "forced": bool(reasons), "overridden": reasons,
                  "files": len(items), "comment": comment})
    return PromotionResult(source, target, items, move, bool(reasons), reasons, reviews)


def dumps(obj: Any) -> bytes:
    return json.dumps(obj, indent=1, default=str).encode()
