"""The OCI distribution spec v1.1 as data: names, tags, digests, media types, error codes.

Pure functions only (no I/O), shared by the HTTP layer, the repositories and the CLI.
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any

from artifactd.errors import ArtifactdError

# --- media types ------------------------------------------------------------------------
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
IMAGE_TYPES = (OCI_MANIFEST, DOCKER_MANIFEST)
INDEX_TYPES = (OCI_INDEX, DOCKER_LIST)
MANIFEST_TYPES = IMAGE_TYPES + INDEX_TYPES
MAX_MANIFEST = 4 * 2**20  # the spec lets registries refuse bigger manifests

# --- names, tags, digests -----------------------------------------------------------------
_COMPONENT = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
NAME_RE = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*$")
TAG_RE = re.compile(r"^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$")
DIGEST_RE = re.compile(r"^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$")
ALGORITHMS = {"sha256": 64, "sha512": 128}


class OciError(ArtifactdError):
    """An error with the spec's code; rendered as ``{"errors": [{code, message, detail}]}``."""

    code = "UNKNOWN"

    def __init__(self, code: str, message: str, status: int, detail: Any = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message, status=status)
        self.code = code
        self.detail = detail
        self.headers = headers or {}

    def body(self) -> bytes:
        err: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.detail is not None:
            err["detail"] = self.detail
        return json.dumps({"errors": [err]}).encode()


def blob_unknown(digest: str) -> OciError:
    return OciError("BLOB_UNKNOWN", "blob unknown to registry", 404, {"digest": digest})


def manifest_unknown(ref: str) -> OciError:
    return OciError("MANIFEST_UNKNOWN", "manifest unknown", 404, {"reference": ref})


def name_unknown(name: str) -> OciError:
    return OciError("NAME_UNKNOWN", "repository name not known to registry", 404, {"name": name})


def upload_unknown(uuid: str) -> OciError:
    return OciError("BLOB_UPLOAD_UNKNOWN", "blob upload unknown to registry", 404, {"uuid": uuid})


def digest_invalid(msg: str, digest: str | None = None) -> OciError:
    return OciError("DIGEST_INVALID", msg, 400, {"digest": digest} if digest else None)


def unsupported(msg: str, status: int = 405) -> OciError:
    return OciError("UNSUPPORTED", msg, status)


def validate_name(name: str) -> str:
    if len(name) > 255 or not NAME_RE.match(name):
        raise OciError("NAME_INVALID", "invalid repository name", 400, {"name": name})
    return name


def is_digest(ref: str) -> bool:
    return ":" in ref


def validate_tag(tag: str) -> str:
    if not TAG_RE.match(tag):
        raise OciError("MANIFEST_INVALID", "invalid tag", 400, {"tag": tag})
    return tag


def parse_digest(digest: str) -> tuple[str, str]:
    """``"sha256:<hex>"`` → ("sha256", hex). Raises DIGEST_INVALID (also for unsupported algorithms)."""
    if not DIGEST_RE.match(digest):
        raise digest_invalid("invalid digest", digest)
    algo, _, hexpart = digest.partition(":")
    want = ALGORITHMS.get(algo)
    if want is None:
        raise OciError("DIGEST_INVALID", f"unsupported digest algorithm {algo!r}", 400, {"digest": digest})
    if len(hexpart) != want or not re.fullmatch(r"[0-9a-f]+", hexpart):
        raise digest_invalid("invalid digest", digest)
    return algo, hexpart


def hasher(algo: str) -> "hashlib._Hash":
    return hashlib.new(algo)


def digest_of(data: bytes, algo: str = "sha256") -> str:
    return f"{algo}:{hashlib.new(algo, data).hexdigest()}"


# --- manifests ----------------------------------------------------------------------------
@dataclass(frozen=True)
class ParsedManifest:
    media_type: str
    blobs: tuple[str, ...] = ()  # config + layers (image manifests)
    manifests: tuple[str, ...] = ()  # children (indexes)
    subject: str | None = None
    artifact_type: str | None = None
    annotations: dict[str, str] = field(default_factory=dict, compare=False, hash=False)


def _descriptor_digest(d: Any, where: str) -> str:
    if not isinstance(d, dict) or not isinstance(d.get("digest"), str):
        raise OciError("MANIFEST_INVALID", f"{where}: descriptor without a digest", 400)
    digest: str = d["digest"]
    try:
        parse_digest(digest)
    except OciError:
        raise OciError("MANIFEST_INVALID", f"{where}: invalid digest {digest!r}", 400) from None
    if not isinstance(d.get("size"), int) or d["size"] < 0:
        raise OciError("MANIFEST_INVALID", f"{where}: descriptor without a valid size", 400)
    return digest


def parse_manifest(body: bytes, content_type: str | None) -> ParsedManifest:
    """Validate a pushed manifest. Raises MANIFEST_INVALID (400)."""
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise OciError("MANIFEST_INVALID", "manifest is not valid JSON", 400) from None
    if not isinstance(doc, dict):
        raise OciError("MANIFEST_INVALID", "manifest is not a JSON object", 400)
    ctype = (content_type or "").split(";")[0].strip()
    declared = doc.get("mediaType")
    if declared is not None and not isinstance(declared, str):
        raise OciError("MANIFEST_INVALID", "mediaType must be a string", 400)
    if ctype and declared and ctype != declared:
        raise OciError("MANIFEST_INVALID", f"Content-Type {ctype!r} does not match mediaType {declared!r}", 400)
    media = ctype or declared or ""
    if not media:
        media = OCI_INDEX if "manifests" in doc else OCI_MANIFEST
    if media not in MANIFEST_TYPES:
        raise OciError("MANIFEST_INVALID", f"unsupported manifest media type {media!r}", 400)
    if doc.get("schemaVersion") != 2:
        raise OciError("MANIFEST_INVALID", "schemaVersion must be 2", 400)
    subject = None
    if doc.get("subject") is not None:
        subject = _descriptor_digest(doc["subject"], "subject")
    annotations = doc.get("annotations") or {}
    if not isinstance(annotations, dict):
        raise OciError("MANIFEST_INVALID", "annotations must be an object", 400)
    artifact_type = doc.get("artifactType")
    if artifact_type is not None and not isinstance(artifact_type, str):
        raise OciError("MANIFEST_INVALID", "artifactType must be a string", 400)
    if media in IMAGE_TYPES:
        config = doc.get("config")
        layers = doc.get("layers")
        if not isinstance(layers, list):
            raise OciError("MANIFEST_INVALID", "image manifest without a layers list", 400)
        blobs = [_descriptor_digest(config, "config")]
        blobs += [_descriptor_digest(layer, f"layers[{i}]") for i, layer in enumerate(layers)]
        if artifact_type is None and isinstance(config, dict) and isinstance(config.get("mediaType"), str):
            artifact_type = config["mediaType"]
        return ParsedManifest(media, tuple(blobs), (), subject, artifact_type, annotations)
    children = doc.get("manifests")
    if not isinstance(children, list):
        raise OciError("MANIFEST_INVALID", "index without a manifests list", 400)
    digests = tuple(_descriptor_digest(m, f"manifests[{i}]") for i, m in enumerate(children))
    return ParsedManifest(media, (), digests, subject, artifact_type, annotations)
