"""Streaming ``multipart/form-data`` reader for the legacy upload API (STANDARDS.md §7).

The request body is read in fixed-size chunks and fed to
:class:`python_multipart.MultipartParser`; the bytes of the ``content`` part go
straight into a :class:`~artifactd.store.blobs.BlobWriter` (which hashes them and
enforces its own size cap) and are never held in memory. Every other part is
kept as text under a total byte budget, so memory stays bounded whatever the
client sends (RELIABILITY.md §3 items 1-3, 10-12).

Failure contract: every failure raises an :class:`~artifactd.errors.ArtifactdError`
subclass after the blob writer (if one was opened) has been aborted, so no
temporary file survives a bad or interrupted upload. After any failure the body
may be partly unread: the caller must close the connection instead of reusing it.
"""
from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from email.message import Message
from typing import BinaryIO
from urllib.parse import unquote_to_bytes

from python_multipart import MultipartParser
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import parse_options_header

from artifactd.errors import BadRequest, LengthRequired, PayloadTooLarge
from artifactd.store.blobs import CHUNK, BlobWriter

__all__ = [
    "MAX_PARTS",
    "MAX_TEXT_FILE_PART",
    "UploadForm",
    "read_upload_form",
]

log = logging.getLogger(__name__)

CONTENT_PART = "content"
"""Name of the part that carries the distribution file."""

MAX_TEXT_FILE_PART = 1 << 20
"""A file part other than ``content`` (``gpg_signature``, ``attestations``) larger than
this is dropped (not an error: the upload API ignores those parts or may drop them)."""

MAX_PARTS = 4096
"""Most parts accepted in one form (twine sends a few dozen, plus one per classifier and
requirement); bounds the number of objects a body of tiny parts could create."""

_DIGITS = re.compile(r"[0-9]+")
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_IDENTITY_ENCODINGS = frozenset({"7bit", "8bit", "binary"})

HeaderSource = Mapping[str, str] | Message
"""Request headers: an :class:`http.client.HTTPMessage` (case-insensitive) or any mapping."""


@dataclass
class UploadForm:
    """The parsed upload form.

    ``fields`` maps every part other than ``content`` to its values, in body order
    (repeatable fields such as ``classifiers`` keep every value). Small non-``content``
    file parts are included as text; oversized or non-UTF-8 ones are left out.

    ``writer`` is ``None`` exactly when the body had no ``content`` part, in which case
    ``filename`` is ``None`` too. Otherwise ``writer`` holds every byte of the part and
    is still open and NOT committed: the caller verifies its digests and commits it, or
    aborts it (``with form.writer:`` does the abort on any exit without a commit).
    ``filename`` is the part's filename as sent (UTF-8 decoded, otherwise unvalidated).
    """

    fields: dict[str, list[str]] = field(default_factory=dict)
    filename: str | None = None
    writer: BlobWriter | None = None

    def get(self, key: str, default: str | None = None) -> str | None:
        """First value of field ``key``, or ``default`` if the form has none."""
        values = self.fields.get(key)
        return values[0] if values else default

    def getall(self, key: str) -> list[str]:
        """Every value of field ``key`` in body order (a new list; empty if absent)."""
        return list(self.fields.get(key, ()))


def read_upload_form(
    rfile: BinaryIO,
    headers: HeaderSource,
    open_writer: Callable[["UploadForm"], BlobWriter],
    *,
    max_body: int,
    max_fields_bytes: int = 16 * 2**20,
    chunk: int = CHUNK,
) -> UploadForm:
    """Read one ``multipart/form-data`` upload body from ``rfile``.

    Checks, in order, before reading any byte of the body:

    * ``Transfer-Encoding`` present (e.g. ``chunked``) or ``Content-Length`` missing →
      :class:`LengthRequired`; a malformed or conflicting ``Content-Length`` → :class:`BadRequest`;
    * ``Content-Length`` above ``max_body`` → :class:`PayloadTooLarge` (the caller closes
      the connection);
    * ``Content-Type`` not ``multipart/form-data`` with a usable boundary → :class:`BadRequest`.

    Then reads exactly ``Content-Length`` bytes, ``chunk`` bytes at a time. The ``content``
    part streams into ``open_writer(form)`` (called once, when that part's headers end, with the
    form as read so far: the fields sent before the file, such as its digests); its
    own errors (``PayloadTooLarge`` for its size cap, ``InsufficientStorage``) propagate.
    Other parts are decoded as UTF-8 (a non-UTF-8 field → :class:`BadRequest`) and their
    names plus values may total at most ``max_fields_bytes`` (→ :class:`PayloadTooLarge`).

    Raises :class:`BadRequest` when: the body ends before ``Content-Length`` bytes (client
    disconnect), the closing boundary never arrives, the multipart syntax is invalid, a part
    lacks a ``form-data`` Content-Disposition with a ``name``, a part uses a non-identity
    Content-Transfer-Encoding, a second ``content`` part appears, or the ``content`` part
    has no filename.

    On any exception the writer, if opened, is aborted (its temporary file removed) before
    the exception propagates. On success the writer is returned open and uncommitted.
    """
    if chunk < 1:
        raise ValueError(f"chunk must be positive, not {chunk!r}")
    length = _content_length(headers, max_body)
    boundary = _boundary(headers)

    reader = _FormReader(open_writer, max_fields_bytes)
    try:
        try:
            parser = MultipartParser(
                boundary,
                callbacks={
                    "on_part_begin": reader.on_part_begin,
                    "on_header_field": reader.on_header_field,
                    "on_header_value": reader.on_header_value,
                    "on_header_end": reader.on_header_end,
                    "on_headers_finished": reader.on_headers_finished,
                    "on_part_data": reader.on_part_data,
                    "on_part_end": reader.on_part_end,
                    "on_end": reader.on_end,
                },
            )
        except FormParserError as exc:
            raise BadRequest(f"unusable multipart boundary: {exc}") from exc

        remaining = length
        while remaining > 0:
            data = _read(rfile, min(chunk, remaining))
            if len(data) > remaining:  # a misbehaving reader: never parse past the body
                data = data[:remaining]
            remaining -= len(data)
            try:
                parser.write(data)
            except FormParserError as exc:
                raise BadRequest(f"malformed multipart body: {exc}") from exc
        parser.finalize()
        if not reader.ended:
            raise BadRequest("multipart body is not terminated")
    except BaseException:
        reader.abort()
        raise
    return reader.form


def _read(rfile: BinaryIO, size: int) -> bytes:
    """One read from the client; a disconnect or short body becomes :class:`BadRequest`."""
    try:
        data = rfile.read(size)
    except TimeoutError as exc:
        raise BadRequest("timed out reading the request body") from exc
    except ConnectionError as exc:
        raise BadRequest("request body ended early") from exc
    if not data:
        raise BadRequest("request body ended early")
    return data


def _header(headers: HeaderSource, name: str) -> str | None:
    """Case-insensitive single header lookup (``Message`` is, a plain mapping may not be)."""
    value = headers.get(name)
    if value is None and isinstance(headers, Mapping):
        lower = name.lower()
        for key, val in headers.items():
            if key.lower() == lower:
                return val
    return value


def _header_values(headers: HeaderSource, name: str) -> list[str]:
    """Every value of a header (several only when ``headers`` is a ``Message``)."""
    if isinstance(headers, Message):
        return [str(v) for v in headers.get_all(name, [])]
    value = _header(headers, name)
    return [] if value is None else [value]


def _content_length(headers: HeaderSource, max_body: int) -> int:
    """The body length, refusing bodies not framed by one valid ``Content-Length``
    (411/400) or longer than ``max_body`` (413)."""
    if _header_values(headers, "Transfer-Encoding"):
        raise LengthRequired("chunked or encoded request bodies are not accepted; send a Content-Length")
    values = {v.strip() for v in _header_values(headers, "Content-Length")}
    if not values:
        raise LengthRequired("a Content-Length header is required")
    if len(values) > 1:
        raise BadRequest("conflicting Content-Length headers")
    (value,) = values
    if not _DIGITS.fullmatch(value):
        raise BadRequest("invalid Content-Length header")
    digits = value.lstrip("0") or "0"
    # Compare digit counts first: int() refuses strings of more than 4300 digits.
    if len(digits) > len(str(max_body)) or int(digits) > max_body:
        shown = digits if len(digits) <= 20 else digits[:20] + "..."
        raise PayloadTooLarge(f"request body of {shown} bytes exceeds the limit of {max_body} bytes")
    return int(digits)


def _boundary(headers: HeaderSource) -> bytes:
    """The multipart boundary from ``Content-Type``, or :class:`BadRequest`."""
    content_type = _header(headers, "Content-Type")
    try:
        ctype, options = parse_options_header(content_type)
    except (ValueError, UnicodeError) as exc:
        raise BadRequest("request body is not multipart/form-data") from exc
    boundary = options.get(b"boundary")
    if ctype != b"multipart/form-data" or not boundary:
        raise BadRequest("request body is not multipart/form-data")
    return boundary


def _show(text: str, limit: int = 80) -> str:
    """A client-supplied string made safe for a one-line, latin-1 error message."""
    return ascii(text if len(text) <= limit else text[:limit] + "...")


def _utf8(raw: str, what: str) -> str:
    """Re-decode a latin-1 header string as the UTF-8 its bytes really are."""
    try:
        return raw.encode("latin-1").decode("utf-8")
    except UnicodeError as exc:
        raise BadRequest(f"{what} is not valid UTF-8") from exc


_PLAIN_DISPOSITION = re.compile(r'form-data; name="([^"\\]*)"(?:; filename="([^"\\]*)")?')
"""What every uploader sends for nearly every part (a twine upload has ~45 parts): parsed by one
regex match, with the same result as :func:`_parse_disposition_full` (no escapes, no odd spacing)."""


def _parse_disposition(raw: str) -> tuple[str, dict[str, str]]:
    """Split a Content-Disposition value (latin-1 decoded) into its type and parameters."""
    m = _PLAIN_DISPOSITION.fullmatch(raw)
    if m is None:
        return _parse_disposition_full(raw)
    params = {"name": m.group(1)}
    if m.group(2) is not None:
        params["filename"] = m.group(2)
    return "form-data", params


def _parse_disposition_full(raw: str) -> tuple[str, dict[str, str]]:
    """Split a Content-Disposition value (latin-1 decoded) into its type and parameters.

    Quoted values keep backslashes, except that ``\\"`` and ``\\\\`` are unescaped:
    clients (urllib3, browsers) send paths such as ``C:\\x.whl`` unescaped, and they must
    reach filename validation intact rather than be stripped to ``x.whl`` (what
    ``parse_options_header`` does) or lose their backslashes.
    """
    malformed = BadRequest(f"malformed Content-Disposition header: {_show(raw)}")
    n = len(raw)
    i = 0

    def skip_ws() -> None:
        nonlocal i
        while i < n and raw[i] in " \t":
            i += 1

    skip_ws()
    m = _TOKEN.match(raw, i)
    if m is None:
        raise malformed
    disposition = m.group().lower()
    i = m.end()
    params: dict[str, str] = {}
    while True:
        skip_ws()
        if i >= n:
            break
        if raw[i] != ";":
            raise malformed
        i += 1
        skip_ws()
        if i >= n:  # a trailing ';'
            break
        m = _TOKEN.match(raw, i)
        if m is None:
            raise malformed
        key = m.group().lower()
        i = m.end()
        skip_ws()
        if i >= n or raw[i] != "=":
            raise malformed
        i += 1
        skip_ws()
        if i < n and raw[i] == '"':
            i += 1
            out: list[str] = []
            while True:
                if i >= n:
                    raise malformed  # unterminated quoted string
                c = raw[i]
                if c == '"':
                    i += 1
                    break
                if c == "\\" and i + 1 < n and raw[i + 1] in '"\\':
                    out.append(raw[i + 1])
                    i += 2
                    continue
                out.append(c)
                i += 1
            value = "".join(out)
        else:
            start = i
            while i < n and raw[i] not in "; \t":
                i += 1
            value = raw[start:i]
        if key in params:
            raise BadRequest(f"duplicate {key!r} parameter in Content-Disposition")
        params[key] = value
    return disposition, params


def _ext_filename(value: str) -> str:
    """Decode an RFC 5987 ``filename*`` value (``UTF-8''percent-encoded``)."""
    charset, sep1, rest = value.partition("'")
    _lang, sep2, encoded = rest.partition("'")
    if not (sep1 and sep2) or charset.lower() not in ("utf-8", "us-ascii"):
        raise BadRequest(f"unsupported filename* parameter: {_show(value)}")
    try:
        return unquote_to_bytes(encoded).decode("utf-8")
    except UnicodeError as exc:
        raise BadRequest("filename is not valid UTF-8") from exc


class _FormReader:
    """Parser callbacks: route each part to the blob writer or the text fields."""

    def __init__(self, open_writer: Callable[[UploadForm], BlobWriter], max_fields_bytes: int) -> None:
        self.form = UploadForm()
        self.ended = False
        self._open_writer = open_writer
        self._budget = max_fields_bytes
        self._used = 0
        self._parts = 0
        self._header_name = bytearray()
        self._header_value = bytearray()
        self._headers: dict[str, str] = {}
        # Current part: "content", "field", "file" (buffered text file) or "skip".
        self._kind = "skip"
        self._name = ""
        self._buf = bytearray()

    # --- headers ------------------------------------------------------------------

    def on_part_begin(self) -> None:
        self._parts += 1
        if self._parts > MAX_PARTS:
            raise PayloadTooLarge(f"the form has more than {MAX_PARTS} parts")
        self._headers = {}
        self._header_name.clear()
        self._header_value.clear()
        self._kind = "skip"
        self._name = ""
        self._buf = bytearray()

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def on_header_end(self) -> None:
        # The parser caps header count and line size, so this dict stays small.
        name = self._header_name.decode("latin-1").strip().lower()
        value = self._header_value.decode("latin-1").strip(" \t")
        self._header_name.clear()
        self._header_value.clear()
        if name in self._headers:
            raise BadRequest(f"duplicate {_show(name)} header in a multipart part")
        self._headers[name] = value

    def on_headers_finished(self) -> None:
        raw = self._headers.get("content-disposition")
        if raw is None:
            raise BadRequest("a multipart part has no Content-Disposition header")
        disposition, params = _parse_disposition(raw)
        if disposition != "form-data":
            raise BadRequest(f"a multipart part is {_show(disposition)}, not form-data")
        if "name" not in params:
            raise BadRequest("a multipart part has no name")
        name = _utf8(params["name"], "a part name")
        filename: str | None
        if "filename" in params:
            filename = _utf8(params["filename"], "filename")
        elif "filename*" in params:
            filename = _ext_filename(params["filename*"])
        else:
            filename = None
        encoding = self._headers.get("content-transfer-encoding", "binary").strip().lower()
        if encoding not in _IDENTITY_ENCODINGS:
            raise BadRequest(f"Content-Transfer-Encoding {_show(encoding)} is not supported")

        self._name = name
        if name == CONTENT_PART:
            if self.form.writer is not None:
                raise BadRequest("multiple 'content' parts")
            if filename is None:
                raise BadRequest("the 'content' part has no filename")
            self.form.filename = filename
            self.form.writer = self._open_writer(self.form)
            self._kind = "content"
        else:
            self._charge(len(name.encode("utf-8")), name, optional=False)
            self._kind = "field" if filename is None else "file"

    # --- data -----------------------------------------------------------------------

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        kind = self._kind
        if kind == "content":
            assert self.form.writer is not None
            self.form.writer.write(memoryview(data)[start:end])
        elif kind == "field":
            self._charge(end - start, self._name, optional=False)
            self._buf += memoryview(data)[start:end]
        elif kind == "file":
            if len(self._buf) + (end - start) > MAX_TEXT_FILE_PART or not self._charge(
                end - start, self._name, optional=True
            ):
                log.warning("dropping oversized file part %s from an upload", _show(self._name))
                self._used -= len(self._buf)
                self._buf = bytearray()
                self._kind = "skip"
                return
            self._buf += memoryview(data)[start:end]

    def on_part_end(self) -> None:
        kind = self._kind
        if kind == "field":
            try:
                text = self._buf.decode("utf-8")
            except UnicodeError as exc:
                raise BadRequest(f"form field {_show(self._name)} is not valid UTF-8") from exc
            self.form.fields.setdefault(self._name, []).append(text)
        elif kind == "file":
            try:
                text = self._buf.decode("utf-8")
            except UnicodeError:
                log.warning("dropping non-UTF-8 file part %s from an upload", _show(self._name))
                self._used -= len(self._buf)
            else:
                self.form.fields.setdefault(self._name, []).append(text)
        self._buf = bytearray()
        self._kind = "skip"

    def on_end(self) -> None:
        self.ended = True

    # --- helpers ----------------------------------------------------------------------

    def _charge(self, n: int, name: str, *, optional: bool) -> bool:
        """Count ``n`` more bytes of text; over budget → False if optional, else 413."""
        if self._used + n > self._budget:
            if optional:
                return False
            raise PayloadTooLarge(
                f"form fields exceed the limit of {self._budget} bytes (at field {_show(name)})"
            )
        self._used += n
        return True

    def abort(self) -> None:
        """Drop the writer's temporary file (if a writer was opened) and the buffered text."""
        writer = self.form.writer
        self.form.writer = None
        self._buf = bytearray()
        if writer is not None:
            writer.abort()
