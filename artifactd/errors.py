"""One error tree for artifactd.

Every error a user can cause carries the HTTP status it maps to; only the HTTP
edge (``artifactd.http``) and the CLI translate these into responses or exit codes.
Messages are single lines, safe to show to the client (never credentials).
"""
from __future__ import annotations


class ArtifactdError(Exception):
    """Base of every expected failure."""

    http_status = 500
    reason = "Internal Server Error"

    def __init__(self, message: str = "", *, status: int | None = None) -> None:
        super().__init__(message or self.reason)
        if status is not None:
            self.http_status = status

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else self.reason


class ConfigError(ArtifactdError):
    """The configuration file is invalid (names the key and line)."""


class BadRequest(ArtifactdError):
    http_status = 400
    reason = "Bad Request"


class InvalidDistribution(BadRequest):
    """An uploaded file is not a valid wheel/sdist or its metadata is unusable."""


class DigestMismatch(BadRequest):
    """Bytes received do not match a digest the client (or upstream) declared."""


class Unauthorized(ArtifactdError):
    http_status = 401
    reason = "Unauthorized"


class Forbidden(ArtifactdError):
    http_status = 403
    reason = "Forbidden"


class NotFound(ArtifactdError, LookupError):
    http_status = 404
    reason = "Not Found"


class ProjectNotFound(NotFound):
    """The repository does not know this project (a group asks its next member)."""


class FileNotFound(NotFound):
    """The project exists but this file does not."""


class RepositoryNotFound(NotFound):
    """No repository by that name."""


class MethodNotAllowed(ArtifactdError):
    http_status = 405
    reason = "Method Not Allowed"


class Conflict(ArtifactdError):
    http_status = 409
    reason = "Conflict"


class FileExists(Conflict):
    """A different file already exists under this filename (twine looks for the phrase)."""

    reason = "File already exists"


class Gone(ArtifactdError):
    http_status = 410
    reason = "Gone"


class LengthRequired(ArtifactdError):
    http_status = 411
    reason = "Length Required"


class PayloadTooLarge(ArtifactdError):
    http_status = 413
    reason = "Payload Too Large"


class RangeNotSatisfiable(ArtifactdError):
    http_status = 416
    reason = "Range Not Satisfiable"


class TooManyRequests(ArtifactdError):
    http_status = 429
    reason = "Too Many Requests"


class UpstreamError(ArtifactdError):
    """An upstream index failed and nothing usable is cached."""

    http_status = 502
    reason = "Bad Gateway"


class UpstreamTimeout(UpstreamError):
    http_status = 504
    reason = "Gateway Timeout"


class InsufficientStorage(ArtifactdError):
    """The disk is full: nothing was committed."""

    http_status = 507
    reason = "Insufficient Storage"


class StoreDamaged(ArtifactdError):
    """A stored blob is missing or does not match its digest: never served; 'artifactd fsck' reports it."""

    http_status = 500
    reason = "Internal Server Error"


class ServiceUnavailable(ArtifactdError):
    """Temporarily overloaded (e.g. the database stayed locked past the busy timeout): retry later."""

    http_status = 503
    reason = "Service Unavailable"
    retry_after = 1
