"""Docker groups: ordered members answering as one registry.

A read goes to the members in order; the first that has the manifest, blob or
image name answers (a member's 404 means "ask the next"; any other error, such as
a failing proxy with nothing cached, propagates). Pushes go to ``writable-member``
when one is configured; otherwise they are refused with 405 ``UNSUPPORTED``.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, TypeVar

from artifactd.formats.oci import spec
from artifactd.formats.oci.spec import OciError
from artifactd.repositories.base import GroupBase
from artifactd.store.oci_db import ManifestRow

if TYPE_CHECKING:
    from artifactd.repositories.oci_hosted import HostedOci

T = TypeVar("T")


class GroupOci(GroupBase):
    kind = "group"

    def _first(self, call: Callable[[Any], T], missing: OciError) -> T:
        for m in self.members():
            try:
                return call(m)
            except OciError as exc:
                if exc.http_status != 404:
                    raise
        raise missing

    def get_manifest(self, name: str, ref: str) -> ManifestRow:
        return self._first(lambda m: m.get_manifest(name, ref), spec.manifest_unknown(ref))

    def get_blob(self, name: str, digest: str) -> tuple[str, int]:
        spec.parse_digest(digest)
        return self._first(lambda m: m.get_blob(name, digest), spec.blob_unknown(digest))

    def tags(self, name: str) -> list[str]:
        return self._first(lambda m: m.tags(name), spec.name_unknown(name))

    def referrers(self, name: str, digest: str) -> list[ManifestRow]:
        seen: dict[str, ManifestRow] = {}
        for m in self.members():
            for row in m.referrers(name, digest):
                seen.setdefault(row.digest, row)
        return list(seen.values())

    def record_pull(self, row: ManifestRow) -> None:
        member: Any = self.app.repository(row.repo)  # an OCI repository (the Protocol is PyPI's)
        member.record_pull(row)

    def names(self) -> list[str]:
        out: set[str] = set()
        for m in self.members():
            out.update(m.names())
        return sorted(out)

    def writable(self) -> "HostedOci | None":
        if not self.config.writable_member:
            return None
        member: Any = self.app.repository(self.config.writable_member)
        w: HostedOci | None = member.writable()
        return w
