"""Docker proxies: a pull-through cache of an upstream registry.

* Content by digest (manifests and blobs) is immutable: once verified and stored, it is
  served from the store forever and the upstream is not asked again.
* Tags are revalidated after ``metadata-ttl`` (a HEAD compares the upstream digest with
  the cached one; only a changed tag fetches the manifest again).
* stale-if-error: when the upstream fails (unreachable, 5xx, refused credentials), a
  cached tag is served as it is; with nothing cached the answer is 502.
* Every upstream byte is verified against its digest before it is linked; a mismatch is
  dropped and reported as 502. ``check_proxy_fetch`` gates run before the first fetch.
* Pushes are refused (405 ``UNSUPPORTED``); ``offline = true`` serves the cache only.
"""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from artifactd.errors import Forbidden, UpstreamError
from artifactd.formats.oci import spec
from artifactd.formats.oci.spec import OciError
from artifactd.model import isotime, parse_isotime, utcnow
from artifactd.repositories.oci_hosted import OciReadMixin, docker_artifact
from artifactd.repositories.oci_upstream import Upstream
from artifactd.store.oci_db import ManifestRow, OciMeta

if TYPE_CHECKING:
    from artifactd.app import App
    from artifactd.config import RepoConfig

log = logging.getLogger(__name__)
ACCEPT = ", ".join(spec.MANIFEST_TYPES)


class ProxyOci(OciReadMixin):
    kind = "proxy"

    def __init__(self, app: "App", config: "RepoConfig") -> None:
        self.app = app
        self.config = config
        self.meta = OciMeta(app.db)
        assert config.url
        creds: tuple[str, str] | None = None
        if config.username is not None:
            creds = (config.username, config.password or "")
        else:
            creds = app.hooks.upstream_auth(config.url)
        self.upstream = Upstream(config.url, config.timeout, creds, before_request=app.db.set_aside)

    def writable(self) -> None:
        return None

    def _scope(self, name: str) -> str:
        return f"repository:{self.upstream.name(name)}:pull"

    def _path(self, name: str, rest: str) -> str:
        return f"/v2/{self.upstream.name(name)}/{rest}"

    # --- manifests -----------------------------------------------------------------------
    def get_manifest(self, name: str, ref: str) -> ManifestRow:
        cached = self.local_manifest(name, ref)
        if cached is not None and spec.is_digest(ref):
            return cached  # content by digest never changes
        if cached is not None:
            found = self.meta.tag(self.name, name, ref)
            age = (utcnow() - parse_isotime(found[1])).total_seconds() if found else float("inf")
            if age < self.config.metadata_ttl:
                return cached
        if self.config.offline:
            if cached is not None:
                return cached
            raise spec.manifest_unknown(ref)
        try:
            return self._revalidate(name, ref, cached)
        except UpstreamError as exc:
            if cached is not None:
                log.warning("%s: upstream failed (%s); serving the cached %s:%s", self.name, exc.message, name, ref)
                return cached
            raise

    def _revalidate(self, name: str, ref: str, cached: ManifestRow | None) -> ManifestRow:
        up = self.upstream
        if cached is not None:
            resp = up.request("HEAD", self._path(name, f"manifests/{ref}"), self._scope(name), {"Accept": ACCEPT})
            status, digest = resp.status, resp.headers.get("Docker-Content-Digest")
            resp.release_conn()
            if status == 200 and digest == cached.digest:
                self.meta.set_tag(self.name, name, ref, cached.digest, isotime(utcnow()))
                return cached
            if status >= 500:
                raise UpstreamError(f"the upstream registry answered {status}")
        resp = up.request("GET", self._path(name, f"manifests/{ref}"), self._scope(name), {"Accept": ACCEPT})
        if resp.status == 404:
            raise spec.manifest_unknown(ref)
        if resp.status != 200:
            raise UpstreamError(f"the upstream registry answered {resp.status} for {name}:{ref}")
        body: bytes = resp.data
        if len(body) > spec.MAX_MANIFEST:
            raise UpstreamError("the upstream manifest is too large")
        return self._store_manifest(name, ref, body, resp.headers.get("Content-Type"),
                                    resp.headers.get("Docker-Content-Digest"))

    def _store_manifest(self, name: str, ref: str, body: bytes, ctype: str | None, header_digest: str | None) -> ManifestRow:
        if spec.is_digest(ref):
            algo, _ = spec.parse_digest(ref)
            digest = spec.digest_of(body, algo)
            if digest != ref:
                raise UpstreamError(f"the upstream manifest does not match {ref}; not cached")
        else:
            digest = spec.digest_of(body)
            if header_digest and header_digest.startswith("sha256:") and header_digest != digest:
                raise UpstreamError("the upstream manifest does not match its Docker-Content-Digest; not cached")
        existing = self.meta.manifest(self.name, name, digest)
        if existing is None:
            try:
                parsed = spec.parse_manifest(body, ctype)
            except OciError as exc:
                raise UpstreamError(f"unusable upstream manifest: {exc.message}") from None
            self._gate(name, ref)
            blob = self.app.blobs.put_bytes(body)
            self.meta.add_alias(digest, blob.sha256, blob.size)
            now = isotime(utcnow())
            row = ManifestRow(self.name, name, digest, blob.sha256, parsed.media_type, parsed.artifact_type,
                              parsed.subject, parsed.annotations, blob.size, now, None)
            refs = [(d, self.meta.sha256_of(d)) for d in parsed.blobs + parsed.manifests]
            self.meta.put_manifest(row, refs, None if spec.is_digest(ref) else ref, None)
            self.app.hooks.after_upload(self.name, docker_artifact(self.name, name, ref, blob.sha256, blob.size, now))
        elif not spec.is_digest(ref):
            self.meta.set_tag(self.name, name, ref, digest, isotime(utcnow()))
        row2 = self.meta.manifest(self.name, name, digest)
        assert row2 is not None
        return row2

    def _gate(self, name: str, ref: str) -> None:
        gate = self.app.hooks.check_proxy_fetch(self.name, name, ref, f"{name}@{ref}", {"format": "docker"})
        if gate.denied:
            raise Forbidden("fetch refused: " + "; ".join(gate.reasons))

    # --- blobs -----------------------------------------------------------------------------
    def get_blob(self, name: str, digest: str) -> tuple[str, int]:
        hit = self.local_blob(name, digest)
        if hit is not None:
            return hit
        if self.config.offline:
            raise spec.blob_unknown(digest)
        self._gate(name, digest)
        resp = self.upstream.request("GET", self._path(name, f"blobs/{digest}"), self._scope(name), stream=True)
        try:
            if resp.status == 404:
                raise spec.blob_unknown(digest)
            if resp.status != 200:
                raise UpstreamError(f"the upstream registry answered {resp.status} for blob {digest}")
            try:
                return self.store_blob(name, digest, resp.stream(1 << 20))
            except OciError as exc:
                if exc.code == "DIGEST_INVALID":
                    raise UpstreamError(f"the upstream blob does not match {digest}; not cached") from None
                raise
        finally:
            resp.release_conn()

    # --- tags -----------------------------------------------------------------------------
    def tags(self, name: str) -> list[str]:
        if not self.config.offline:
            try:
                return self._upstream_tags(name)
            except UpstreamError as exc:
                log.warning("%s: upstream tag list failed (%s); serving cached tags", self.name, exc.message)
        if not self.meta.name_exists(self.name, name):
            raise spec.name_unknown(name)
        return self.local_tags(name)

    def _upstream_tags(self, name: str) -> list[str]:
        out: list[str] = []
        path: str | None = self._path(name, "tags/list")
        for _ in range(100):
            if path is None:
                break
            resp = self.upstream.request("GET", path, self._scope(name))
            if resp.status == 404:
                raise spec.name_unknown(name)
            if resp.status != 200:
                raise UpstreamError(f"the upstream registry answered {resp.status} for the tag list")
            try:
                doc: dict[str, Any] = resp.json()
            except ValueError:
                raise UpstreamError("the upstream tag list is not JSON") from None
            out.extend(t for t in doc.get("tags") or [] if isinstance(t, str))
            path = _next_link(resp.headers.get("Link"))
        return out


def _next_link(link: str | None) -> str | None:
    if not link or 'rel="next"' not in link:
        return None
    target = link.split(";")[0].strip().strip("<>")
    parts = urlsplit(target)
    return parts.path + (f"?{parts.query}" if parts.query else "") if parts.path.startswith("/v2/") else None
