"""Retention and housekeeping of Docker/OCI repositories.

Integration points for the cleanup machinery (``artifactd cleanup`` / retention hooks):

* :func:`select_prune` is pure selection (no writes): it returns :class:`PruneItem`\\ s with
  a reason each, so a dry-run preview is the default; :func:`apply_prune` deletes tag and
  manifest rows only. Blobs are reclaimed by ``artifactd gc`` (mark-and-sweep with a grace
  period), so a layer another image shares, or one a push in flight has just uploaded or
  mounted, is never lost.
* :func:`housekeeping` is called by ``store.gc.gc``: it purges upload sessions idle
  longer than the repository's ``upload-expiry`` and drops blob links that no manifest
  references once they are older than the GC grace period.

Criteria are ANDed, as in the Nexus policies: a tag is pruned when it is not among the
newest ``keep_tags`` of its image, *and* older than ``older_than``, *and* not pulled for
``unpulled_for`` (each criterion applies only when given). A manifest whose last tag goes
is pruned with it unless an index or a kept manifest still refers to it; referrers
(signatures, SBOMs) of pruned manifests go too.
"""
from __future__ import annotations

import datetime
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from artifactd.model import isotime, parse_isotime, utcnow
from artifactd.repositories.oci_hosted import docker_artifact, upload_path
from artifactd.store.oci_db import OciMeta

if TYPE_CHECKING:
    from artifactd.app import App

log = logging.getLogger(__name__)
DEFAULT_UPLOAD_EXPIRY = 86400.0


@dataclass(frozen=True)
class PruneItem:
    repo: str
    name: str
    tag: str | None  # None: an untagged manifest
    digest: str
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {"repo": self.repo, "name": self.name, "tag": self.tag, "digest": self.digest, "reason": self.reason}


def select_prune(app: "App", repo: str, *, keep_tags: int | None = None, older_than: float | None = None,
                 unpulled_for: float | None = None, now: float | None = None) -> list[PruneItem]:
    """What a prune would delete, with reasons. Nothing is written."""
    meta = OciMeta(app.db)
    now = time.time() if now is None else now
    out: list[PruneItem] = []
    for name in meta.names(repo):
        manifests = {m.digest: m for m in meta.manifests(repo, name)}
        tags = sorted(meta.tags(repo, name), key=lambda t: t[2], reverse=True)  # newest first
        pruned_tags: set[str] = set()
        for i, (tag, digest, updated) in enumerate(tags):
            reasons = []
            if keep_tags is not None:
                if i < keep_tags:
                    continue
                reasons.append(f"not among the newest {keep_tags} tags")
            age = now - parse_isotime(updated).timestamp()
            if older_than is not None:
                if age < older_than:
                    continue
                reasons.append(f"tagged {int(age // 86400)}d ago")
            if unpulled_for is not None:
                m = manifests.get(digest)
                last = parse_isotime(m.last_pull).timestamp() if m and m.last_pull else (
                    parse_isotime(m.created).timestamp() if m else 0.0)
                if now - last < unpulled_for:
                    continue
                reasons.append(f"not pulled for {int((now - last) // 86400)}d")
            if not reasons:
                continue  # no criterion given: never prune everything
            out.append(PruneItem(repo, name, tag, digest, "; ".join(reasons)))
            pruned_tags.add(tag)
        still_tagged = {d for t, d, _ in tags if t not in pruned_tags}
        doomed = {i.digest for i in out if i.name == name} - still_tagged
        # an index that stays keeps its children; a kept manifest keeps its referrers' subject
        for d in list(doomed):
            if _referenced_by_kept(meta, repo, name, d, doomed):
                doomed.discard(d)
        for d in sorted(doomed):
            for ref in meta.referrers(repo, name, d):
                if ref.digest not in still_tagged:
                    out.append(PruneItem(repo, name, None, ref.digest, f"referrer of pruned {d}"))
    return out


def _referenced_by_kept(meta: OciMeta, repo: str, name: str, digest: str, doomed: set[str]) -> bool:
    rows = meta.db.con.execute(
        "SELECT manifest FROM oci_manifest_refs WHERE repo = ? AND name = ? AND digest = ?", (repo, name, digest)).fetchall()
    return any(r[0] not in doomed for r in rows)


def apply_prune(app: "App", items: list[PruneItem]) -> int:
    """Delete the selected tags, then manifests left without tags. Returns rows deleted."""
    meta = OciMeta(app.db)
    n = 0
    now = isotime(utcnow())
    for item in items:
        if item.tag is not None and meta.delete_tag(item.repo, item.name, item.tag):
            n += 1
    for item in items:
        tagged = any(d == item.digest for _, d, _ in meta.tags(item.repo, item.name))
        if tagged or meta.referenced_by_index(item.repo, item.name, item.digest):
            continue
        row = meta.manifest(item.repo, item.name, item.digest)
        if row is not None and meta.delete_manifest(item.repo, item.name, item.digest):
            n += 1
            app.db.audit(now, None, None, "oci-prune", item.repo, f"{item.name}@{item.digest}", {"reason": item.reason})
            app.hooks.after_delete(item.repo, docker_artifact(item.repo, item.name, item.digest, row.sha256,
                                                              row.size, row.created), item.reason)
    return n


def housekeeping(app: "App", *, apply: bool, grace: float, now: float | None = None) -> dict[str, int]:
    """Expired upload sessions and stale blob links (called by ``gc`` before it marks)."""
    meta = OciMeta(app.db)
    now = time.time() if now is None else now
    expired = 0
    for up in meta.uploads():
        cfg = app.config.repo(up.repo)
        expiry = cfg.upload_expiry if cfg is not None else DEFAULT_UPLOAD_EXPIRY
        if now - parse_isotime(up.updated).timestamp() < expiry:
            continue
        expired += 1
        if apply:
            meta.delete_upload(up.uuid)
            try:
                upload_path(app, up.uuid).unlink()
            except FileNotFoundError:
                pass
    before = isotime(datetime.datetime.fromtimestamp(now - grace, datetime.timezone.utc))
    links = meta.delete_stale_links(before) if apply else len(meta.stale_links(before))
    return {"expired_uploads": expired, "stale_blob_links": links}
