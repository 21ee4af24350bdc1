"""Hosted OCI/Docker repositories: images pushed here, stored in the shared blob store.

An OCI repository answers for many *image names* (``team/app``); the HTTP layer has
already split ``docker-hosted/team/app`` into this repository and the name. Reads:
:meth:`get_manifest`, :meth:`get_blob`, :meth:`tags`, :meth:`referrers` (proxies and
groups answer the same four). Writes (hosted only): upload sessions, monolithic
blobs, mounts, manifests, deletions.

Nothing is visible before it is verified: upload bytes live in ``tmp/oci-<uuid>.upload``
and a session row until the final PUT re-hashes them and links the blob into place;
a manifest is linked only after its blobs are checked and the ``check_upload`` gate passed.
"""
from __future__ import annotations

import hashlib
import logging
import os
import threading
import uuid as uuidlib
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Iterator

from artifactd.errors import DigestMismatch
from artifactd.formats.oci import spec
from artifactd.formats.oci.spec import OciError
from artifactd.model import Artifact, Principal, isotime, parse_isotime, utcnow
from artifactd.store.oci_db import ManifestRow, OciMeta, Upload

if TYPE_CHECKING:
    from artifactd.app import App
    from artifactd.config import RepoConfig

log = logging.getLogger(__name__)

_upload_locks: dict[str, threading.Lock] = {}
_upload_locks_guard = threading.Lock()


def _lock_for(uuid: str) -> threading.Lock:
    with _upload_locks_guard:
        return _upload_locks.setdefault(uuid, threading.Lock())


def upload_path(app: "App", uuid: str) -> Path:
    return app.layout.tmp / f"oci-{uuid}.upload"


def docker_artifact(repo: str, name: str, ref: str, sha256: str, size: int, created: str,
                    user: str | None = None) -> Artifact:
    """The :class:`Artifact` gates and events see for an image manifest (kind ``docker``)."""
    sep = "@" if spec.is_digest(ref) else ":"
    return Artifact(id=0, repo=repo, path=f"{name}{sep}{ref}", sha256=sha256, size=size, created=created,
                    created_by=user, kind="docker", project=name, project_name=name, version=ref,
                    filename=f"{name}{sep}{ref}")


class OciReadMixin:
    """Reads from this repository's own rows (hosted, and a proxy's cache)."""

    app: "App"
    config: "RepoConfig"
    meta: OciMeta

    @property
    def name(self) -> str:
        return self.config.name

    def state(self) -> str:
        return f"{self.name}:{self.app.db.serial(self.name)}"

    def local_manifest(self, name: str, ref: str) -> ManifestRow | None:
        if spec.is_digest(ref):
            spec.parse_digest(ref)
            return self.meta.manifest(self.name, name, ref)
        spec.validate_tag(ref)
        found = self.meta.tag(self.name, name, ref)
        return self.meta.manifest(self.name, name, found[0]) if found else None

    def local_blob(self, name: str, digest: str) -> tuple[str, int] | None:
        spec.parse_digest(digest)
        hit = self.meta.linked(self.name, name, digest)
        if hit is None:
            m = self.meta.manifest(self.name, name, digest)  # a manifest is fetchable as a blob too
            hit = (m.sha256, m.size) if m else None
        if hit is None or not self.app.blobs.exists(hit[0]):
            return None
        return hit

    def record_pull(self, row: ManifestRow) -> None:
        now = utcnow()
        if row.last_pull and (now - parse_isotime(row.last_pull)).total_seconds() < 60:
            return  # at most one write a minute per manifest
        self.meta.record_pull(self.name, row.name, row.digest, isotime(now))

    def local_tags(self, name: str) -> list[str]:
        return [t for t, _, _ in self.meta.tags(self.name, name)]

    def referrers(self, name: str, digest: str) -> list[ManifestRow]:
        spec.parse_digest(digest)
        return self.meta.referrers(self.name, name, digest)

    def names(self) -> list[str]:
        return self.meta.names(self.name)

    def max_size(self) -> int:
        return self.config.max_upload_size or self.app.config.server.max_upload_size

    def store_blob(self, name: str, digest: str, chunks: Iterable[bytes]) -> tuple[str, int]:
        """Stream into a BlobWriter, verify ``digest`` (sha256 or sha512), commit, link."""
        algo, hexpart = spec.parse_digest(digest)
        other = hashlib.new(algo) if algo != "sha256" else None
        with self.app.blobs.writer(max_size=self.max_size()) as w:
            for chunk in chunks:
                w.write(chunk)
                if other is not None:
                    other.update(chunk)
            got = other.hexdigest() if other is not None else w.sha256
            if got != hexpart:
                raise spec.digest_invalid(f"content does not match digest {digest}", digest)
            blob = w.commit()
        self.meta.add_alias(digest, blob.sha256, blob.size)
        self.meta.link(self.name, name, digest, blob.sha256, blob.size, isotime(utcnow()))
        return blob.sha256, blob.size


class HostedOci(OciReadMixin):
    kind = "hosted"

    def __init__(self, app: "App", config: "RepoConfig") -> None:
        self.app = app
        self.config = config
        self.meta = OciMeta(app.db)

    # --- reads ---------------------------------------------------------------------------
    def get_manifest(self, name: str, ref: str) -> ManifestRow:
        row = self.local_manifest(name, ref)
        if row is None:
            raise spec.manifest_unknown(ref)
        return row

    def get_blob(self, name: str, digest: str) -> tuple[str, int]:
        hit = self.local_blob(name, digest)
        if hit is None:
            raise spec.blob_unknown(digest)
        return hit

    def tags(self, name: str) -> list[str]:
        if not self.meta.name_exists(self.name, name):
            raise spec.name_unknown(name)
        return self.local_tags(name)

    def writable(self) -> "HostedOci":
        return self

    # --- blobs -----------------------------------------------------------------------------
    def put_blob(self, name: str, digest: str, chunks: Iterable[bytes]) -> None:
        """Monolithic upload (``POST ?digest=``)."""
        self.store_blob(name, digest, chunks)

    def mount(self, name: str, digest: str, source_repo: str, source_name: str) -> bool:
        """Link a blob another (repository, name) already has; False when it has not."""
        spec.parse_digest(digest)
        hit = self.meta.linked(source_repo, source_name, digest)
        if hit is None or not self.app.blobs.exists(hit[0]):
            return False
        self.meta.link(self.name, name, digest, hit[0], hit[1], isotime(utcnow()))
        return True

    def find_in_repo(self, digest: str) -> tuple[str, str] | None:
        """Some name in this repository that has the blob (mount without ``from``)."""
        row = self.app.db.con.execute("SELECT name FROM oci_blob_links WHERE repo = ? AND digest = ? LIMIT 1",
                                      (self.name, digest)).fetchone()
        return (self.name, row[0]) if row else None

    def delete_blob(self, name: str, digest: str) -> None:
        spec.parse_digest(digest)
        if not self.meta.unlink(self.name, name, digest):
            raise spec.blob_unknown(digest)

    # --- upload sessions --------------------------------------------------------------------
    def start_upload(self, name: str) -> str:
        uuid = str(uuidlib.uuid4())
        upload_path(self.app, uuid).touch(exist_ok=False)
        self.meta.add_upload(uuid, self.name, name, isotime(utcnow()))
        return uuid

    def session(self, name: str, uuid: str) -> Upload:
        up = self.meta.upload(uuid)
        if up is None or up.repo != self.name or up.name != name:
            raise spec.upload_unknown(uuid)
        age = (utcnow() - parse_isotime(up.updated)).total_seconds()
        if age > self.config.upload_expiry or not upload_path(self.app, uuid).is_file():
            self.cancel_upload(name, uuid)
            raise spec.upload_unknown(uuid)
        return up

    def append(self, name: str, uuid: str, chunks: Iterable[bytes], start: int | None = None,
               end: int | None = None) -> int:
        """Append a chunk at the session's offset; returns the new offset.

        ``start`` (from Content-Range) must equal the current offset, else 416 with the
        Range received so far. The bytes are fsynced before the offset is recorded.
        """
        with _lock_for(uuid):
            up = self.session(name, uuid)
            if start is not None and start != up.offset:
                raise OciError("BLOB_UPLOAD_INVALID", f"chunk starts at {start}, expected {up.offset}", 416,
                               {"offset": up.offset}, headers=range_headers(uuid, up.offset))
            path = upload_path(self.app, uuid)
            offset = up.offset
            limit = self.max_size()
            with open(path, "r+b") as fh:
                fh.truncate(offset)  # drop bytes of an earlier, unacknowledged attempt
                fh.seek(offset)
                for chunk in chunks:
                    offset += len(chunk)
                    if offset > limit:
                        fh.truncate(up.offset)
                        raise OciError("SIZE_INVALID", f"blob exceeds the size limit of {limit} bytes", 413)
                    fh.write(chunk)
                if end is not None and start is not None and end - start + 1 != offset - up.offset:
                    fh.truncate(up.offset)
                    raise OciError("BLOB_UPLOAD_INVALID", "Content-Range does not match the bytes sent", 416,
                                   {"offset": up.offset}, headers=range_headers(uuid, up.offset))
                fh.flush()
                os.fsync(fh.fileno())
            self.meta.set_upload_offset(uuid, offset, isotime(utcnow()))
            return offset

    def finish_upload(self, name: str, uuid: str, digest: str, chunks: Iterable[bytes],
                      start: int | None = None, end: int | None = None) -> None:
        """Final PUT: append the last chunk (if any), re-hash everything, commit, link."""
        spec.parse_digest(digest)
        self.append(name, uuid, chunks, start, end)
        with _lock_for(uuid):
            self.session(name, uuid)
            path = upload_path(self.app, uuid)
            try:
                with open(path, "rb") as fh:
                    self.store_blob(name, digest, _read_file(fh))
            except (OciError, DigestMismatch):
                self.cancel_upload(name, uuid)
                raise
            self.cancel_upload(name, uuid)

    def cancel_upload(self, name: str, uuid: str) -> None:
        self.meta.delete_upload(uuid)
        try:
            upload_path(self.app, uuid).unlink()
        except FileNotFoundError:
            pass
        with _upload_locks_guard:
            _upload_locks.pop(uuid, None)

    # --- manifests ---------------------------------------------------------------------------
    def put_manifest(self, name: str, ref: str, body: bytes, content_type: str | None,
                     principal: Principal) -> ManifestRow:
        parsed = spec.parse_manifest(body, content_type)
        if spec.is_digest(ref):
            algo, _ = spec.parse_digest(ref)
            digest, tag = spec.digest_of(body, algo), None
            if digest != ref:
                raise spec.digest_invalid("manifest content does not match the digest in the URL", ref)
        else:
            tag, digest = spec.validate_tag(ref), spec.digest_of(body)
        refs: list[tuple[str, str | None]] = []
        for d in parsed.blobs:
            hit = self.local_blob(name, d)
            if hit is None:
                raise OciError("MANIFEST_BLOB_UNKNOWN", "manifest references a blob unknown to this repository",
                               400, {"digest": d})
            refs.append((d, hit[0]))
        for d in parsed.manifests:
            child = self.meta.manifest(self.name, name, d)
            # An index may be pushed before (or without) some of its children: the spec allows it.
            refs.append((d, child.sha256 if child else None))
        now = isotime(utcnow())
        with self.app.blobs.writer(max_size=spec.MAX_MANIFEST) as w:
            w.write(body)
            w.flush()
            candidate = docker_artifact(self.name, name, ref, w.sha256, len(body), now, principal.user)
            gate = self.app.hooks.check_upload(self.name, candidate, w.tmp_path, {
                "mediaType": parsed.media_type, "artifactType": parsed.artifact_type,
                "annotations": parsed.annotations, "subject": parsed.subject, "digest": digest,
                "blobs": list(parsed.blobs), "manifests": list(parsed.manifests)})
            if gate.denied:
                raise OciError("DENIED", "push refused: " + "; ".join(gate.reasons), 403)
            blob = w.commit()
        self.meta.add_alias(digest, blob.sha256, blob.size)
        row = ManifestRow(self.name, name, digest, blob.sha256, parsed.media_type, parsed.artifact_type,
                          parsed.subject, parsed.annotations, blob.size, now, None)
        self.meta.put_manifest(row, refs, tag, principal.user)
        self.app.db.audit(now, principal.user, None, "oci-push", self.name, candidate.path,
                          {"digest": digest, "mediaType": parsed.media_type})
        self.app.hooks.after_upload(self.name, candidate)
        return self.meta.manifest(self.name, name, digest) or row

    def delete_manifest(self, name: str, ref: str, principal: Principal) -> None:
        """By digest: the manifest and its tags; by tag: the tag only. Blobs stay for GC."""
        if spec.is_digest(ref):
            spec.parse_digest(ref)
            row = self.meta.manifest(self.name, name, ref)
            if row is None or not self.meta.delete_manifest(self.name, name, ref):
                raise spec.manifest_unknown(ref)
        else:
            spec.validate_tag(ref)
            found = self.meta.tag(self.name, name, ref)
            row = self.meta.manifest(self.name, name, found[0]) if found else None
            if not self.meta.delete_tag(self.name, name, ref):
                raise spec.manifest_unknown(ref)
        now = isotime(utcnow())
        target = f"{name}@{ref}" if spec.is_digest(ref) else f"{name}:{ref}"
        self.app.db.audit(now, principal.user, None, "oci-delete", self.name, target, None)
        if row is not None:
            self.app.hooks.after_delete(self.name, docker_artifact(self.name, name, ref, row.sha256, row.size,
                                                                   row.created), "deleted by request")


def range_headers(uuid: str, offset: int) -> dict[str, str]:
    """What an upload session has received (the HTTP layer adds Location)."""
    return {"Range": f"0-{max(offset - 1, 0)}", "Docker-Upload-UUID": uuid}


def _read_file(fh: "object") -> Iterator[bytes]:
    read = getattr(fh, "read")
    while chunk := read(1 << 20):
        yield chunk
