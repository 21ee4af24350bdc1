"""Use cases shared by the HTTP server and the command line.

Each function takes the :class:`~artifactd.app.App` and plain values, enforces the
rules (validation, permissions are checked by the caller, plugin gates, durability
order: blob first, metadata row last) and returns model objects or raises
:mod:`artifactd.errors`.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Mapping

from packaging.version import InvalidVersion, Version

from artifactd import auth
from artifactd.config import RepoConfig, make_repo, validate_repo_name
from artifactd.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    Gone,
    NotFound,
    RepositoryNotFound,
)
from artifactd.formats.pypi.metadata import extract_metadata
from artifactd.formats.pypi.names import DistFilename, canonical_version, normalize, parse_filename, wheel_build_and_tags
from artifactd.model import Artifact, Principal, SYSTEM, TokenInfo, isotime, utcnow
from artifactd.store.blobs import BlobWriter
from artifactd.store.db import AuditEntry, NewArtifact

if TYPE_CHECKING:
    from artifactd.app import App
    from artifactd.store.blobs import BlobWriter

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class UploadResult:
    artifact: Artifact
    created: bool  # False: the same bytes were already there (idempotent re-upload)


def hosted_repo(app: "App", repo: str, fmt: str = "pypi") -> RepoConfig:
    """The configuration of a hosted repository of format ``fmt`` (uploads go only there)."""
    cfg = app.config.repo(repo)
    if cfg is None:
        raise RepositoryNotFound(f"no repository named {repo!r}")
    if cfg.type != "hosted":
        raise BadRequest(f"repository {repo!r} is a {cfg.type} repository; upload to a hosted repository")
    if cfg.format != fmt:
        raise BadRequest(f"repository {repo!r} has format {cfg.format!r}, not {fmt!r}")
    return cfg


def max_upload(app: "App", repo: str) -> int:
    cfg = app.config.repo(repo)
    if cfg is not None and cfg.max_upload_size is not None:
        return cfg.max_upload_size
    return app.config.server.max_upload_size


def dist_key(dist: DistFilename) -> str:
    """Two files with the same key are the same distribution (``1.0`` vs ``1.0.0``)."""
    version = canonical_version(dist.version)
    if dist.kind == "sdist":
        return f"sdist:{dist.normalized}:{version}"
    build, tags = wheel_build_and_tags(dist)
    return f"wheel:{dist.normalized}:{version}:{build}:{'.'.join(tags)}"


# --- PyPI upload ------------------------------------------------------------------

def check_form(form_fields: Mapping[str, list[str]], dist: DistFilename) -> None:
    """STANDARDS R29/R30: the form's name/version/filetype/pyversion agree with the filename."""

    def first(key: str) -> str | None:
        vals = form_fields.get(key)
        return vals[0] if vals else None

    action = first(":action")
    if action not in (None, "file_upload"):
        raise BadRequest(f"unsupported :action {action!r}")
    protocol = first("protocol_version")
    if protocol not in (None, "1"):
        raise BadRequest(f"unsupported protocol_version {protocol!r}")
    name = first("name")
    if name is not None and normalize(name) != dist.normalized:
        raise BadRequest(f"name field {name!r} does not match the filename {dist.filename!r}")
    version = first("version")
    if version is not None:
        try:
            if Version(version) != dist.version:
                raise BadRequest(f"version field {version!r} does not match the filename {dist.filename!r}")
        except InvalidVersion:
            raise BadRequest(f"version field {version!r} is not a valid PEP 440 version") from None
    filetype = first("filetype")
    if filetype is not None and filetype != dist.packagetype:
        raise BadRequest(f"filetype {filetype!r} does not fit {dist.filename!r} (expected {dist.packagetype!r})")
    pyversion = first("pyversion")
    if dist.kind == "sdist" and pyversion not in (None, "", "source"):
        raise BadRequest(f"an sdist's pyversion must be 'source', got {pyversion!r}")


def commit_pypi_upload(
    app: "App",
    repo: str,
    writer: BlobWriter,
    filename: str,
    *,
    principal: Principal,
    digests: Mapping[str, str] | None = None,
    form_fields: Mapping[str, list[str]] | None = None,
    address: str | None = None,
) -> UploadResult:
    """Validate a fully received upload, run the gates, commit blob then row.

    ``writer`` holds the received bytes (not yet committed); it is aborted on any failure.
    """
    hosted_repo(app, repo)
    dist = parse_filename(filename)
    if form_fields is not None:
        check_form(form_fields, dist)
    if digests is not None:
        if not any(digests.get(k) for k in ("sha256", "md5", "blake2_256")):
            raise BadRequest("the upload carries no digest (sha256_digest, blake2_256_digest or md5_digest)")
        writer.verify(dict(digests))
    writer.flush()
    meta = extract_metadata(writer.tmp_path, dist)
    now = isotime(utcnow())
    candidate = Artifact(
        id=0, repo=repo, path=f"{dist.normalized}/{dist.version}/{dist.filename}", sha256=writer.sha256,
        size=writer.size, created=now, created_by=principal.user, kind="pypi", project=dist.normalized,
        project_name=meta.name, version=str(dist.version), filename=dist.filename, packagetype=dist.packagetype,
        requires_python=meta.requires_python, metadata=meta.to_dict(),
    )
    existing = app.db.get_by_filename(repo, dist.filename)
    if existing is not None and existing.sha256 == writer.sha256:
        return UploadResult(existing, False)
    gate = app.hooks.check_upload(repo, candidate, writer.tmp_path, meta.to_dict())
    if gate.denied:
        raise Forbidden("upload refused: " + "; ".join(gate.reasons))
    blob = writer.commit()
    meta_sha = app.blobs.put_bytes(meta.raw).sha256 if dist.kind == "wheel" else None
    art, created = app.db.add_artifact(NewArtifact(
        repo=repo, path=candidate.path, sha256=blob.sha256, size=blob.size, created=now,
        created_by=principal.user, kind="pypi", project=dist.normalized, project_name=meta.name,
        version=str(dist.version), filename=dist.filename, dist_key=dist_key(dist),
        packagetype=dist.packagetype, requires_python=meta.requires_python, metadata_sha256=meta_sha,
        metadata_json=json.dumps(meta.to_dict()),
    ), audit=audit_entry(principal, "upload", {"sha256": blob.sha256, "size": blob.size}, address))
    if created:
        app.hooks.after_upload(repo, art)
    return UploadResult(art, created)


def upload_file(app: "App", repo: str, path: Path, principal: Principal = SYSTEM) -> UploadResult:
    """Import a local wheel/sdist (``artifactd upload``)."""
    hosted_repo(app, repo)
    filename = path.name
    parse_filename(filename)
    limit = max_upload(app, repo)
    with open(path, "rb") as src, app.blobs.writer(max_size=limit) as w:
        w.copy_from(src)
        return commit_pypi_upload(app, repo, w, filename, principal=principal)


_FORM_DIGESTS = (("md5", "md5_digest"), ("blake2_256", "blake2_256_digest"))
"""The upload API's digests besides sha256: (BlobWriter algorithm, form field)."""


def receive_legacy_upload(app: "App", repo: str, rfile: BinaryIO, headers: Any, principal: Principal,
                          address: str | None = None) -> UploadResult:
    """The legacy upload API (twine, uv publish, poetry, pdm): stream the form, then commit."""
    from artifactd.formats.pypi.multipart import UploadForm, read_upload_form

    hosted_repo(app, repo)
    limit = max_upload(app, repo)
    # sha256 always streams, and so does each other digest the client sent before the file (twine
    # and uv send them first): hashed while the bytes arrive, in the gaps between reads, not after
    # the upload while the client waits. A digest sent after the file is checked from the received
    # file (BlobWriter.verify); none is computed that was not sent (twine ≥ 6.2 sends no md5).
    def open_writer(so_far: UploadForm) -> BlobWriter:
        announced = [algo for algo, field in _FORM_DIGESTS if so_far.get(field)]
        return app.blobs.writer(max_size=limit, extra_digests=announced)

    form = read_upload_form(rfile, headers, open_writer, max_body=limit + 64 * 2**20)
    writer = form.writer
    try:
        action = form.get(":action")
        if action in ("submit", "verify"):
            raise _NoOp()
        if action == "doc_upload":
            raise Gone("documentation upload is not supported")
        if action not in (None, "file_upload"):
            raise BadRequest(f"unsupported :action {action!r}")
        if writer is None or not form.filename:
            raise BadRequest("missing 'content' file part")
        digests = {"sha256": form.get("sha256_digest") or ""}
        digests.update((algo, form.get(field) or "") for algo, field in _FORM_DIGESTS)
        return commit_pypi_upload(app, repo, writer, form.filename, principal=principal, digests=digests,
                                  form_fields=form.fields, address=address)
    finally:
        if writer is not None and writer.blob is None:
            writer.abort()


class _NoOp(Exception):
    """A legacy ``submit``/``verify`` action: answer 200 and do nothing."""


NoOp = _NoOp


# --- yank ---------------------------------------------------------------------------

def yank(app: "App", repo: str, project: str, version: str | None, *, filename: str | None = None,
         reason: str | None = None, undo: bool = False, principal: Principal | None = None,
         address: str | None = None) -> int:
    hosted_repo(app, repo)
    norm = normalize(project)
    n = app.db.set_yanked(repo, norm, version, filename, not undo, reason)
    if n == 0:
        what = filename or (f"{project} {version}" if version else project)
        raise NotFound(f"{what} not found in {repo}")
    _audit(app, principal, "unyank" if undo else "yank", repo, f"{norm}/{version or '*'}",
           {"files": n, "reason": reason, "file": filename}, address)
    return n


# --- repositories ---------------------------------------------------------------------

def create_repository(app: "App", name: str, rtype: str, fmt: str = "pypi", *, members: tuple[str, ...] = (),
                      merge: tuple[str, ...] = (), url: str | None = None, who: Principal | None = None,
                      **extra: Any) -> RepoConfig:
    validate_repo_name(name)
    if app.config.repo(name) is not None:
        raise Conflict(f"repository {name!r} already exists")
    repo = make_repo(name=name, type=rtype, format=fmt, members=tuple(members), merge=tuple(merge), url=url,
                     **{k: v for k, v in extra.items() if v is not None})
    app.set_config(app.config.with_repo(repo))
    _audit(app, who, "repo-create", name, None, {"type": rtype, "format": fmt})
    return repo


def delete_repository(app: "App", name: str, *, force: bool = False, who: Principal | None = None) -> int:
    """Remove a repository's definition and its rows (blobs go at the next gc)."""
    if app.config.repo(name) is None:
        raise RepositoryNotFound(f"no repository named {name!r}")
    users = [r.name for r in app.config.repositories.values() if name in r.members]
    if users:
        raise Conflict(f"repository {name!r} is a member of {', '.join(users)}; remove it there first")
    count, _ = app.db.count_artifacts(name)
    if count and not force:
        raise Conflict(f"repository {name!r} holds {count} files; use --force to delete them too")
    # One transaction, not one per file: 50,000 files took ~9 s (and ~200 MB to list them first)
    # where this takes 0.6 s, and a crash half-way left half of them.
    app.db.delete_repository_rows(name)
    app.set_config(app.config.without_repo(name))
    _audit(app, who, "repo-delete", name, None, {"files": count})
    return count


def describe_repository(app: "App", name: str) -> dict[str, Any]:
    cfg = app.config.repo(name)
    if cfg is None:
        raise RepositoryNotFound(f"no repository named {name!r}")
    out: dict[str, Any] = {"name": cfg.name, "type": cfg.type, "format": cfg.format}
    if cfg.type == "group":
        out["members"] = list(cfg.members)
        out["merge"] = list(cfg.merge)
    if cfg.url:
        out["url"] = redact_url(cfg.url)
    count, size = app.db.count_artifacts(name)
    out["files"] = count
    out["bytes"] = size
    out["serial"] = app.db.serial(name)
    repo = app.repository(name)
    status = getattr(repo, "status", None)
    if callable(status):
        out.update(status())
    return out


def redact_url(url: str) -> str:
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.username or parts.password:
        host = parts.hostname or ""
        if parts.port:
            host += f":{parts.port}"
        return urlunsplit((parts.scheme, f"***@{host}", parts.path, parts.query, parts.fragment))
    return url


def audit_entry(who: Principal | None, action: str, detail: dict[str, Any] | None = None,
                address: str | None = None) -> AuditEntry:
    """Who did it: a request's principal, else (CLI) the local OS user, and from where."""
    from artifactd.accounts import local_principal

    if who is None or who is SYSTEM:
        who = local_principal()
        address = address or "local"
    return AuditEntry(who.user, address, action, detail)


def _audit(app: "App", who: Principal | None, action: str, repo: str | None, target: str | None,
           detail: dict[str, Any] | None = None, address: str | None = None) -> None:
    """Record a write: who, what, when, from where."""
    e = audit_entry(who, action, detail, address)
    app.db.audit(isotime(utcnow()), e.user, e.address, e.action, repo, target, e.detail)


# --- tokens ---------------------------------------------------------------------------

SCOPES = ("read", "write", "delete", "admin")


def create_token(app: "App", user: str, name: str, scopes: tuple[str, ...] = ("write",),
                 repos: tuple[str, ...] = (), expires_in: float | None = None, who: Principal | None = None,
                 address: str | None = None) -> tuple[str, TokenInfo]:
    import datetime as dt

    for s in scopes:
        if s not in SCOPES:
            raise BadRequest(f"unknown scope {s!r} (choose from {', '.join(SCOPES)})")
    for r in repos:
        if app.config.repo(r) is None:
            raise RepositoryNotFound(f"no repository named {r!r}")
    if app.db.get_user(user) is None:
        raise NotFound(f"no user named {user!r}")
    from artifactd.accounts import check_token_scopes

    check_token_scopes(app, user, scopes, repos)
    token = auth.new_token()
    now = utcnow()
    expires = isotime(now + dt.timedelta(seconds=expires_in)) if expires_in else None
    tid = app.db.add_token(user, name, auth.hash_token(token), scopes, repos, isotime(now), expires)
    _audit(app, who, "token-create", None, str(tid), {"user": user, "scopes": list(scopes), "repos": list(repos)},
           address)
    info = next(t for t in app.db.tokens(user) if t.id == tid)
    return token, info


# --- proxies and groups -----------------------------------------------------------------

def invalidate_cache(app: "App", name: str, project: str | None = None) -> dict[str, int]:
    """Drop cached index pages of a proxy (or of every proxy in a group). Files stay.

    Returns ``{proxy name: pages dropped}``. Running servers notice through the
    cache generation counter in the database.
    """
    cfg = app.config.repo(name)
    if cfg is None:
        raise RepositoryNotFound(f"no repository named {name!r}")
    out: dict[str, int] = {}

    def visit(n: str) -> None:
        c = app.config.repo(n)
        if c is None or n in out:
            return
        if c.type == "proxy":
            repo = app.repository(n)
            out[n] = repo.invalidate(project)  # type: ignore[attr-defined]
        elif c.type == "group":
            for m in c.members:
                visit(m)

    visit(name)
    if not out:
        raise BadRequest(f"repository {name!r} is a {cfg.type} repository and holds no proxy cache")
    app.db.audit(isotime(utcnow()), None, None, "cache-invalidate", name, project, out)
    return out


def explain_group(app: "App", group: str, project: str) -> dict[str, Any]:
    """Which member of a group serves ``project`` and which members' files are hidden."""
    cfg = app.config.repo(group)
    if cfg is None:
        raise RepositoryNotFound(f"no repository named {group!r}")
    if cfg.type != "group":
        raise BadRequest(f"repository {group!r} is a {cfg.type} repository, not a group")
    repo = app.repository(group)
    result: dict[str, Any] = repo.explain(normalize(project))  # type: ignore[attr-defined]
    return result
