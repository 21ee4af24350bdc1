"""Core metadata of uploaded distributions (STANDARDS R14, R38-R40; RELIABILITY §3 #21-#25).

:func:`extract_metadata` reads a wheel's ``*.dist-info/METADATA`` or an sdist's
``<top>/PKG-INFO`` straight from the archive on disk and never extracts
anything. Untrusted archives are bounded before the stdlib touches them:

* zip (wheel, ``.zip`` sdist): the end-of-central-directory record is read
  first, so a directory larger than :data:`MAX_CENTRAL_DIRECTORY_BYTES` or
  holding more than :data:`MAX_ENTRIES` entries is refused before it is read;
  its entries are then decoded one at a time (:func:`_zip_entries`), not built
  into a table of every member as :class:`zipfile.ZipFile` would;
* the metadata member's declared size must be at most
  :data:`MAX_METADATA_BYTES`, and it is read through zipfile's own reader in
  chunks that stop one byte past the limit, whatever the header claims (the
  reader stops at the declared size and checks the CRC, so a lying header fails
  too);
* ``.tar.gz``: decompressed through :class:`_BudgetReader`, which caps the
  bytes decompressed (:data:`MAX_SCAN_BYTES`) and the size of any single read,
  so a gzip bomb or an oversized pax/GNU long-name header cannot exhaust
  memory or time.

The zip "overlap" bomb (CVE-2024-0450) needs a reader that inflates every
entry; only one or two small members are read here, and zipfile's own errors
(``BadZipFile: Overlapped entries`` on patched Pythons) are translated.

Every failure caused by the file is :class:`~artifactd.errors.InvalidDistribution`
(HTTP 400) with a one-line message; ``OSError`` with an errno (the disk, not
the data) propagates unchanged.
"""
from __future__ import annotations

import email.errors
import email.header
import email.parser
import logging
import lzma
import os
import re
import stat
import struct
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields
from typing import IO, TYPE_CHECKING, Any, BinaryIO, TypeVar

from packaging.version import InvalidVersion, Version

from artifactd.errors import BadRequest, InvalidDistribution
from artifactd.formats.pypi.names import DistFilename, normalize, safe_repr, validate_project_name

if TYPE_CHECKING:  # imported where an sdist is read: wheels need neither (~0.5 MB of modules)
    import gzip
    import tarfile

__all__ = [
    "MAX_CENTRAL_DIRECTORY_BYTES",
    "MAX_ENTRIES",
    "MAX_METADATA_BYTES",
    "MAX_SCAN_BYTES",
    "CoreMetadata",
    "extract_metadata",
    "parse_core_metadata",
]

log = logging.getLogger(__name__)

MAX_METADATA_BYTES = 1 << 20
"""Largest METADATA / PKG-INFO accepted (1 MiB)."""
MAX_ENTRIES = 20_000
"""Most members an archive may hold."""
MAX_CENTRAL_DIRECTORY_BYTES = 16 << 20
"""Largest zip central directory read into memory (zipfile reads it whole)."""
MAX_SCAN_BYTES = 1 << 30
"""Most bytes decompressed while scanning a ``.tar.gz`` sdist."""
MAX_TAR_READ = 1 << 20
"""Largest single read tarfile may make (bounds pax and GNU long-name headers)."""
MAX_LINK_TARGET_BYTES = 4096
"""Largest symlink target read from a zip member."""

_CHUNK = 64 << 10
_T = TypeVar("_T")
_NO_PKG_INFO = "sdist contains no PKG-INFO in its top-level directory"
_TWO_PKG_INFO = "sdist contains more than one top-level PKG-INFO; exactly one is allowed"
_LICENSE_FILE_SINCE = Version("2.4")

# Zip structures (APPNOTE 4.3.12, 4.3.14-4.3.16), as zipfile reads them.
_EOCD = struct.Struct("<4s4H2LH")
_EOCD_SIG = b"PK\x05\x06"
_ZIP64_LOCATOR = struct.Struct("<4sLQL")
_ZIP64_LOCATOR_SIG = b"PK\x06\x07"
_ZIP64_EOCD = struct.Struct("<4sQ2H2L4Q")
_ZIP64_EOCD_SIG = b"PK\x06\x06"
_CENTRAL_HEADER = struct.Struct("<4s4B4HL2L5H2L")
_CENTRAL_HEADER_SIG = b"PK\x01\x02"
_LOCAL_HEADER = struct.Struct("<4s2B4HL2L2H")
_LOCAL_HEADER_SIG = b"PK\x03\x04"
_UTF8_NAME = 0x800  # general purpose flag bit 11: the name is UTF-8

_ARCHIVE_ERRORS: tuple[type[BaseException], ...] = (
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    EOFError,
    zlib.error,
    lzma.LZMAError,
    struct.error,
    NotImplementedError,  # unsupported zip compression method
    UnicodeDecodeError,  # zip member name flagged UTF-8 but is not
)


@dataclass(frozen=True)
class CoreMetadata:
    """The fields of a distribution's core metadata that artifactd uses.

    ``raw`` is the exact METADATA / PKG-INFO bytes (served as ``<file>.metadata``,
    R14). ``version`` is the string as written (whitespace stripped) and PEP 440-valid;
    ``license_expression`` is SPDX-canonical when packaging can canonicalize it.
    ``project_urls`` entries are ``"label, url"`` as in the metadata.
    ``license_files`` is empty when Metadata-Version is below 2.4.
    """

    raw: bytes
    metadata_version: str
    name: str
    version: str
    summary: str | None
    requires_python: str | None
    requires_dist: tuple[str, ...]
    provides_extra: tuple[str, ...]
    license: str | None
    license_expression: str | None
    classifiers: tuple[str, ...]
    author: str | None
    author_email: str | None
    home_page: str | None
    project_urls: tuple[str, ...]
    description_content_type: str | None
    license_files: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """Every field except ``raw``, JSON-serializable (tuples become lists)."""
        out: dict[str, Any] = {}
        for f in fields(self):
            if f.name == "raw":
                continue
            value = getattr(self, f.name)
            out[f.name] = list(value) if isinstance(value, tuple) else value
        return out


# --- parsing ----------------------------------------------------------------------


def parse_core_metadata(raw: bytes) -> CoreMetadata:
    """Parse METADATA / PKG-INFO bytes leniently (unknown or malformed optional fields are ignored).

    Requires Metadata-Version (major 1 or 2), a PEP 508 Name and a PEP 440
    Version. License-File is dropped below Metadata-Version 2.4 (as twine does);
    License-Expression is canonicalized when valid and kept verbatim otherwise.
    Raises :class:`InvalidDistribution` when the metadata is unusable.
    """
    if len(raw) > MAX_METADATA_BYTES:
        raise InvalidDistribution(f"metadata is larger than {MAX_METADATA_BYTES} bytes")
    try:
        parsed, unparsed = _header_fields(_header_block(raw))
    except (ValueError, LookupError, email.errors.MessageError) as exc:
        raise InvalidDistribution(f"metadata cannot be parsed: {_describe(exc)}") from exc
    if unparsed:
        log.debug("ignoring malformed metadata fields: %s", sorted(unparsed))
    metadata_version = _metadata_version(parsed, unparsed)
    if Version(metadata_version) < _LICENSE_FILE_SINCE:
        parsed.pop("license_files", None)
    return CoreMetadata(
        raw=raw,
        metadata_version=metadata_version,
        name=_metadata_name(parsed, unparsed),
        version=_metadata_version_field(parsed, unparsed),
        summary=parsed.get("summary"),
        requires_python=parsed.get("requires_python"),
        requires_dist=tuple(parsed.get("requires_dist", ())),
        provides_extra=tuple(parsed.get("provides_extra", ())),
        license=parsed.get("license"),
        license_expression=_license_expression(parsed.get("license_expression")),
        classifiers=tuple(parsed.get("classifiers", ())),
        author=parsed.get("author"),
        author_email=parsed.get("author_email"),
        home_page=parsed.get("home_page"),
        project_urls=tuple(f"{label}, {url}" for label, url in parsed.get("project_urls", {}).items()),
        description_content_type=parsed.get("description_content_type"),
        license_files=tuple(parsed.get("license_files", ())),
    )


#: The core metadata fields artifactd keeps, by lower-case name: (key, may appear more than once).
_FIELDS: dict[str, tuple[str, bool]] = {
    "metadata-version": ("metadata_version", False),
    "name": ("name", False),
    "version": ("version", False),
    "summary": ("summary", False),
    "requires-python": ("requires_python", False),
    "license": ("license", False),
    "license-expression": ("license_expression", False),
    "author": ("author", False),
    "author-email": ("author_email", False),
    "home-page": ("home_page", False),
    "description-content-type": ("description_content_type", False),
    "requires-dist": ("requires_dist", True),
    "provides-extra": ("provides_extra", True),
    "classifier": ("classifiers", True),
    "project-url": ("project_urls", True),
    "license-file": ("license_files", True),
}


def _header_fields(block: bytes) -> tuple[dict[str, Any], set[str]]:
    """The :data:`_FIELDS` of a METADATA header block, and the names of those that are unusable.

    This reads the fields exactly as ``packaging.metadata.parse_email`` does (the stdlib email
    parser with its default compat32 policy, values decoded as UTF-8) -- the tests hold the two
    side by side -- without importing ``packaging.metadata``: it pulls in ``email.policy``,
    ``packaging.requirements``/``markers``/``tags``, ``sysconfig`` and ``subprocess``, ~1.7 MB of
    modules that stayed in every server's memory after its first upload. Unusable: a single-use
    field given more than once, a value that is not UTF-8, a Project-URL label given twice.
    """
    msg = email.parser.BytesHeaderParser().parsebytes(block)
    parsed: dict[str, Any] = {}
    unusable: set[str] = set()
    for name in {k.lower() for k in msg.keys()}:
        known = _FIELDS.get(name)
        if known is None:
            continue
        key, multiple = known
        values: list[str] = []
        for header in msg.get_all(name) or ():
            if isinstance(header, email.header.Header):
                # Bytes that are not ASCII come back as a Header holding them as "unknown-8bit";
                # UTF-8 is the only encoding core metadata allows.
                chunks = [(bytes(data), "utf-8") for data, _ in email.header.decode_header(header)]
                try:
                    for data, _ in chunks:
                        data.decode("utf-8")
                except UnicodeDecodeError:
                    unusable.add(name)
                    break
                values.append(str(email.header.make_header(chunks)))  # type: ignore[arg-type]
            else:
                values.append(header)
        if name in unusable:
            continue
        if not multiple:
            if len(values) == 1:
                parsed[key] = values[0]
            else:
                unusable.add(name)
        elif key == "project_urls":
            urls: dict[str, str] = {}
            for pair in values:
                label, _, url = (part.strip() for part in pair.partition(","))
                if label in urls:
                    unusable.add(name)
                    break
                urls[label] = url
            else:
                parsed[key] = urls
        else:
            parsed[key] = values
    return parsed, unusable


_BLANK_LINE = re.compile(rb"\n\r?\n")


def _header_block(raw: bytes) -> bytes:
    """The header fields of METADATA, up to and with the blank line: the body after it is the long
    description, which artifactd does not use. The email parser split it into lines and put them
    together again: ~40% of the parse of a typical wheel's METADATA, and of the memory it churned.
    The served ``.metadata`` file is ``raw``, the whole of it."""
    m = _BLANK_LINE.search(raw)
    return raw[: m.end()] if m else raw


def _required(parsed: dict[str, Any], unparsed: set[str], key: str, header: str) -> str:
    value = parsed.get(key)
    if isinstance(value, str) and value.strip():
        return value.strip()
    if header.lower() in unparsed:
        raise InvalidDistribution(f"metadata field {header} is repeated or not valid UTF-8")
    raise InvalidDistribution(f"metadata has no {header} field")


def _metadata_version(parsed: dict[str, Any], unparsed: set[str]) -> str:
    text = _required(parsed, unparsed, "metadata_version", "Metadata-Version")
    try:
        version = Version(text)
    except InvalidVersion:
        raise InvalidDistribution(f"metadata Metadata-Version {safe_repr(text)} is not a version") from None
    if version.major not in (1, 2):
        raise InvalidDistribution(f"unsupported Metadata-Version {safe_repr(text)}")
    return text


def _metadata_name(parsed: dict[str, Any], unparsed: set[str]) -> str:
    name = _required(parsed, unparsed, "name", "Name")
    try:
        return validate_project_name(name)
    except BadRequest as exc:
        raise InvalidDistribution(f"metadata Name: {exc.message}") from None


def _metadata_version_field(parsed: dict[str, Any], unparsed: set[str]) -> str:
    text = _required(parsed, unparsed, "version", "Version")
    try:
        Version(text)
    except InvalidVersion:
        raise InvalidDistribution(f"metadata Version {safe_repr(text)} is not a valid PEP 440 version") from None
    return text


def _license_expression(value: str | None) -> str | None:
    if value is None:
        return None
    from packaging.licenses import InvalidLicenseExpression, canonicalize_license_expression  # ~0.4 MB: when used

    try:
        return str(canonicalize_license_expression(value))
    except InvalidLicenseExpression:
        return value


# --- archives ---------------------------------------------------------------------


def extract_metadata(path: os.PathLike[str] | str, dist: DistFilename) -> CoreMetadata:
    """Read, parse and cross-check the core metadata of the distribution at ``path``.

    ``dist`` (from :func:`~artifactd.formats.pypi.names.parse_filename`) selects
    the archive type. The metadata's normalized Name and its Version must equal
    the filename's. Raises :class:`InvalidDistribution` for any problem with the
    file; nothing is extracted and memory stays bounded (see the module doc).
    """
    with open(path, "rb") as fh:
        if dist.kind == "wheel":
            raw = _wheel_metadata(fh, dist)
        elif dist.filename.endswith(".zip"):
            raw = _zip_sdist_metadata(fh)
        else:
            raw = _tar_sdist_metadata(fh)
    meta = parse_core_metadata(raw)
    _cross_check(meta, dist)
    return meta


def _cross_check(meta: CoreMetadata, dist: DistFilename) -> None:
    if normalize(meta.name) != dist.normalized:
        raise InvalidDistribution(
            f"metadata name {safe_repr(meta.name)} does not match filename {safe_repr(dist.filename)}"
        )
    if Version(meta.version) != dist.version:
        raise InvalidDistribution(
            f"metadata version {safe_repr(meta.version)} does not match filename version "
            f"{safe_repr(str(dist.version))}"
        )


@contextmanager
def _archive_errors(what: str, more: tuple[type[BaseException], ...] = ()) -> Iterator[None]:
    """Translate the data errors zipfile/tarfile/gzip raise into :class:`InvalidDistribution`
    (``more``: the errors of a module imported only for this archive)."""
    try:
        yield
    except _ARCHIVE_ERRORS + more as exc:
        raise InvalidDistribution(f"{what}: {_describe(exc)}") from exc
    except OSError as exc:
        if exc.errno is not None:  # the disk, not the data
            raise
        raise InvalidDistribution(f"{what}: {_describe(exc)}") from exc  # BadGzipFile, bz2 data errors


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    cleaned = "".join(ch if ch.isascii() and ch.isprintable() else "?" for ch in text)
    return cleaned if len(cleaned) <= 200 else cleaned[:200] + "..."


def _member_problem(name: str) -> str | None:
    """Why an archive member name (or link target) is unsafe, or None."""
    if not name:
        return "has an empty member name"
    if "\x00" in name:
        return "has a member name containing NUL"
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[0].isalpha() and name[1] == ":"):
        return f"has an absolute member path {safe_repr(name)}"
    if ".." in name.replace("\\", "/").split("/"):
        return f"has a member path containing '..': {safe_repr(name)}"
    return None


def _check_member(name: str, link_target: str | None, what: str) -> None:
    problem = _member_problem(name)
    if problem is None and link_target is not None:
        target_problem = _member_problem(link_target)
        if target_problem is not None:
            problem = f"has a link {safe_repr(name)} pointing outside the archive ({safe_repr(link_target)})"
    if problem is not None:
        raise InvalidDistribution(f"{what} {problem}")


def _path_parts(name: str) -> list[str]:
    """Components of a member name, ignoring empty and ``.`` components."""
    return [p for p in name.split("/") if p not in ("", ".")]


def _check_top_level(tops: set[str], what: str) -> None:
    if len(tops) != 1:
        raise InvalidDistribution(
            f"{what} must contain a single top-level directory (found {len(tops)})"
        )


def _check_size(size: int, limit: int, label: str) -> None:
    if size > limit:
        raise InvalidDistribution(f"{label} is {size} bytes, over the {limit}-byte limit")


def _read_bounded(stream: "IO[bytes] | zipfile.ZipExtFile", limit: int, label: str) -> bytes:
    """Read at most ``limit`` bytes; one byte more means the member is too big."""
    buf = bytearray()
    while len(buf) <= limit:
        chunk = stream.read(min(_CHUNK, limit + 1 - len(buf)))
        if not chunk:
            return bytes(buf)
        buf += chunk
    raise InvalidDistribution(f"{label} is larger than {limit} bytes")


# --- zip --------------------------------------------------------------------------


def _central_directory(fh: BinaryIO) -> tuple[int, int, int, int]:
    """Locate the central directory as :mod:`zipfile` does: (declared entries, start, size, and the
    bytes prepended to the archive, which every member's recorded offset is short by)."""
    file_size = fh.seek(0, os.SEEK_END)
    tail_len = min(file_size, _EOCD.size + 0xFFFF)
    fh.seek(file_size - tail_len)
    tail = fh.read(tail_len)
    if tail[-_EOCD.size:][:4] == _EOCD_SIG and tail[-2:] == b"\x00\x00":
        pos = len(tail) - _EOCD.size
    else:
        pos = tail.rfind(_EOCD_SIG)
        if pos < 0 or pos + _EOCD.size > len(tail):
            raise zipfile.BadZipFile("no end of central directory record")
    _, disk, disk_dir, _, entries, dir_size, dir_offset, _ = _EOCD.unpack_from(tail, pos)
    end = file_size - tail_len + pos  # the directory (or the zip64 records) ends here
    if end >= _ZIP64_LOCATOR.size + _ZIP64_EOCD.size:
        fh.seek(end - _ZIP64_LOCATOR.size)
        if fh.read(_ZIP64_LOCATOR.size)[:4] == _ZIP64_LOCATOR_SIG:
            fh.seek(end - _ZIP64_LOCATOR.size - _ZIP64_EOCD.size)
            record = fh.read(_ZIP64_EOCD.size)
            if record[:4] == _ZIP64_EOCD_SIG:
                _, _, _, _, disk, disk_dir, _, entries, dir_size, dir_offset = _ZIP64_EOCD.unpack(record)
                end -= _ZIP64_LOCATOR.size + _ZIP64_EOCD.size
    if disk or disk_dir:
        raise zipfile.BadZipFile("multi-disk zip files are not supported")
    if dir_size > end:
        raise zipfile.BadZipFile("bad central directory size")
    concat = end - dir_size - dir_offset
    if concat < 0:
        raise zipfile.BadZipFile("bad offset for central directory")
    return entries, end - dir_size, dir_size, concat


class _Entry:
    """One member as the central directory records it: what artifactd reads of it."""

    __slots__ = ("name", "raw_name", "flags", "method", "crc", "csize", "usize", "offset", "mode")

    def __init__(self, name: str, raw_name: bytes, flags: int, method: int, crc: int, csize: int, usize: int,
                 offset: int, mode: int) -> None:
        self.name, self.raw_name, self.flags, self.method = name, raw_name, flags, method
        self.crc, self.csize, self.usize, self.offset, self.mode = crc, csize, usize, offset, mode

    def is_symlink(self) -> bool:
        return stat.S_ISLNK(self.mode)

    def is_dir(self) -> bool:
        return self.name.endswith("/")


def _zip_entries(fh: BinaryIO, what: str) -> Iterator[_Entry]:
    """The members of a zip, one at a time, from its central directory read once and bounded first.

    zipfile.ZipFile builds a ZipInfo (with its name, extra and date tuple) for every member up
    front: ~1.3 MB of short-lived objects for botocore's 2,100 members, left behind as partly used
    arenas of Python's allocator. Here one member at a time is decoded -- as zipfile decodes it:
    names UTF-8 when flagged, cp437 otherwise; zip64 sizes and offsets from the extra field --
    and only the one or two read are kept. The members are read with zipfile's own decompressing
    reader (:func:`_read_entry`)."""
    entries, start, size, concat = _central_directory(fh)
    if entries > MAX_ENTRIES:
        raise InvalidDistribution(f"{what} has {entries} entries, more than the limit of {MAX_ENTRIES}")
    if size > MAX_CENTRAL_DIRECTORY_BYTES:
        raise InvalidDistribution(f"{what} has a {size}-byte zip directory, over the limit")
    fh.seek(start)
    data = fh.read(size)
    if len(data) != size:
        raise zipfile.BadZipFile("truncated central directory")
    pos = count = 0
    while pos < size:
        if pos + _CENTRAL_HEADER.size > size or data[pos : pos + 4] != _CENTRAL_HEADER_SIG:
            raise zipfile.BadZipFile("bad central directory entry")
        (_, _, _, _, _, flags, method, _, _, crc, csize, usize, name_len, extra_len, comment_len, _, _,
         external, offset) = _CENTRAL_HEADER.unpack_from(data, pos)
        pos += _CENTRAL_HEADER.size
        count += 1
        if count > MAX_ENTRIES:
            raise InvalidDistribution(f"{what} has more than {MAX_ENTRIES} entries")
        if pos + name_len + extra_len + comment_len > size:
            raise zipfile.BadZipFile("truncated central directory entry")
        raw_name = data[pos : pos + name_len]
        extra = data[pos + name_len : pos + name_len + extra_len]
        pos += name_len + extra_len + comment_len
        name = raw_name.decode("utf-8" if flags & _UTF8_NAME else "cp437")
        if 0xFFFFFFFF in (usize, csize, offset):
            usize, csize, offset = _zip64_fields(extra, usize, csize, offset)
        yield _Entry(name, raw_name, flags, method, crc, csize, usize, offset + concat, external >> 16)


def _zip64_fields(extra: bytes, usize: int, csize: int, offset: int) -> tuple[int, int, int]:
    """The sizes and offset a zip64 extra field holds for those recorded as 0xFFFFFFFF (APPNOTE 4.5.3)."""
    pos = 0
    while pos + 4 <= len(extra):
        kind, length = struct.unpack_from("<2H", extra, pos)
        if kind == 0x0001:
            values = extra[pos + 4 : pos + 4 + length]
            out = []
            for value in (usize, csize, offset):
                if value == 0xFFFFFFFF:
                    if len(values) < 8:
                        raise zipfile.BadZipFile("corrupt zip64 extra field")
                    value, values = struct.unpack_from("<Q", values)[0], values[8:]
                out.append(value)
            return out[0], out[1], out[2]
        pos += 4 + length
    raise zipfile.BadZipFile("zip64 sizes without a zip64 extra field")


def _read_entry(fh: BinaryIO, entry: _Entry, limit: int, label: str) -> bytes:
    """A member's bytes, at most ``limit`` of them: its local header checked against the central
    directory as zipfile checks it, then zipfile's reader (inflate, bzip2 or lzma, and the CRC)."""
    if entry.flags & 0x1:
        raise InvalidDistribution(f"{label} is encrypted")
    _check_size(entry.usize, limit, label)
    fh.seek(entry.offset)
    header = fh.read(_LOCAL_HEADER.size)
    if len(header) != _LOCAL_HEADER.size or header[:4] != _LOCAL_HEADER_SIG:
        raise zipfile.BadZipFile("bad magic number for file header")
    _, _, _, flags, _, _, _, _, _, _, name_len, extra_len = _LOCAL_HEADER.unpack(header)
    if flags & 0x20:
        raise NotImplementedError("compressed patched data (flag bit 5)")
    if fh.read(name_len) != entry.raw_name:
        raise zipfile.BadZipFile(f"file name in directory and header differ: {safe_repr(entry.name)}")
    fh.seek(extra_len, os.SEEK_CUR)
    info = zipfile.ZipInfo(entry.name)
    info.compress_type, info.flag_bits, info.CRC = entry.method, entry.flags, entry.crc
    info.compress_size, info.file_size = entry.csize, entry.usize
    with zipfile.ZipExtFile(fh, "r", info) as stream:  # (does not close fh)
        return _read_bounded(stream, limit, label)


def _checked_zip_entries(fh: BinaryIO, what: str) -> Iterator[_Entry]:
    """Every member, after refusing an unsafe name or a symlink whose target leaves the archive."""
    for entry in _zip_entries(fh, what):
        target = None
        if entry.is_symlink():
            raw = _read_entry(fh, entry, MAX_LINK_TARGET_BYTES, f"{what} symlink target")
            target = raw.decode("utf-8", "replace")
        _check_member(entry.name, target, what)
        yield entry


def _wheel_metadata(fh: BinaryIO, dist: DistFilename) -> bytes:
    """The single top-level ``<name>-<version>.dist-info/METADATA`` entry's bytes (pip's rule, R38)."""
    what = "wheel"
    with _archive_errors(f"not a valid {what} (zip) file"):
        dist_info_dirs: set[str] = set()
        candidates: list[_Entry] = []
        for entry in _checked_zip_entries(fh, what):
            parts = entry.name.split("/")
            if len(parts) > 1 and parts[0].endswith(".dist-info"):
                dist_info_dirs.add(parts[0])
                if len(parts) == 2 and parts[1] == "METADATA":
                    candidates.append(entry)
        if not dist_info_dirs:
            raise InvalidDistribution("wheel contains no .dist-info/METADATA")
        if len(dist_info_dirs) > 1:
            raise InvalidDistribution(
                f"wheel contains {len(dist_info_dirs)} .dist-info directories; exactly one is allowed"
            )
        (dist_info,) = dist_info_dirs
        _check_dist_info_name(dist_info, dist)
        wanted = f"{dist_info}/METADATA"
        found = [entry for entry in candidates if entry.name == wanted]
        if not found:
            raise InvalidDistribution(f"wheel contains no {safe_repr(wanted)}")
        if len(found) > 1:
            raise InvalidDistribution(
                f"wheel contains {len(found)} {safe_repr(wanted)} entries; exactly one is allowed"
            )
        return _read_entry(fh, found[0], MAX_METADATA_BYTES, wanted)


def _check_dist_info_name(dist_info: str, dist: DistFilename) -> None:
    stem = dist_info[: -len(".dist-info")]
    name, sep, _ = stem.rpartition("-")
    if not sep or normalize(name) != dist.normalized:
        raise InvalidDistribution(
            f"wheel .dist-info directory {safe_repr(dist_info)} does not match project "
            f"{safe_repr(dist.name)} (expected <name>-<version>.dist-info)"
        )


def _zip_sdist_metadata(fh: BinaryIO) -> bytes:
    what = "sdist"
    with _archive_errors(f"not a valid {what} (zip) file"):
        tops: set[str] = set()
        found: list[_Entry] = []
        for entry in _checked_zip_entries(fh, what):
            parts = _path_parts(entry.name)
            if parts:
                tops.add(parts[0])
            if len(parts) == 2 and parts[1] == "PKG-INFO" and not entry.is_dir():
                found.append(entry)
        _check_top_level(tops, what)
        entry = _single_pkg_info(found)
        if entry.is_symlink():
            raise InvalidDistribution("sdist PKG-INFO is not a regular file")
        return _read_entry(fh, entry, MAX_METADATA_BYTES, "PKG-INFO")


def _single_pkg_info(found: list[_T]) -> _T:
    if not found:
        raise InvalidDistribution(_NO_PKG_INFO)
    if len(found) > 1:
        raise InvalidDistribution(_TWO_PKG_INFO)
    return found[0]


# --- tar.gz -----------------------------------------------------------------------


class _BudgetReader:
    """A seekable view of a decompressed stream that refuses to decompress too much.

    Every byte read or skipped counts against ``budget`` (a backwards seek in a
    gzip stream re-decompresses from the start, so it costs its target offset);
    a single read may not exceed ``max_read``. Exceeding either raises
    :class:`InvalidDistribution` from inside tarfile.
    """

    def __init__(self, stream: gzip.GzipFile, budget: int, max_read: int) -> None:
        self._stream = stream
        self._budget = budget
        self._max_read = max_read
        self._spent = 0

    def _spend(self, amount: int) -> None:
        self._spent += amount
        if self._spent > self._budget:
            raise InvalidDistribution(f"sdist decompresses to more than {self._budget} bytes")

    def tell(self) -> int:
        return self._stream.tell()

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0 or size > self._max_read:
            raise InvalidDistribution("sdist has a tar header or member read larger than the limit")
        self._spend(size)
        return self._stream.read(size)

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        if whence != os.SEEK_SET:
            raise InvalidDistribution("sdist tar stream requested an unsupported seek")
        current = self._stream.tell()
        self._spend(offset - current if offset >= current else offset)
        return self._stream.seek(offset)


def _tar_sdist_metadata(fh: BinaryIO) -> bytes:
    import gzip
    import tarfile

    what = "sdist"
    with _archive_errors(f"not a valid {what} (tar.gz) file", (tarfile.TarError,)):
        if fh.read(2) != b"\x1f\x8b":
            raise InvalidDistribution(f"not a valid {what} (tar.gz) file: not gzip-compressed")
        fh.seek(0)
        with gzip.GzipFile(fileobj=fh, mode="rb") as gz:
            reader = _BudgetReader(gz, MAX_SCAN_BYTES, MAX_TAR_READ)
            # tarfile's stub wants write()/close() too; reading only needs read/seek/tell.
            with tarfile.open(fileobj=reader, mode="r:") as tf:  # type: ignore[call-overload]
                return _scan_tar(tf, what)


def _scan_tar(tf: tarfile.TarFile, what: str) -> bytes:
    """One pass over the members: check each, remember the top-level PKG-INFO bytes."""
    tops: set[str] = set()
    pkg_info: bytes | None = None
    count = 0
    while (member := tf.next()) is not None:
        count += 1
        if count > MAX_ENTRIES:
            raise InvalidDistribution(f"{what} has more than {MAX_ENTRIES} entries")
        link = member.linkname if (member.issym() or member.islnk()) else None
        _check_member(member.name, link, what)
        if member.ischr() or member.isblk() or member.isfifo():
            raise InvalidDistribution(f"{what} contains a device or FIFO member {safe_repr(member.name)}")
        parts = _path_parts(member.name)
        if parts:
            tops.add(parts[0])
        if len(parts) == 2 and parts[1] == "PKG-INFO" and not member.isdir():
            if pkg_info is not None:  # refuse at once: never hold more than one in memory
                raise InvalidDistribution(_TWO_PKG_INFO)
            pkg_info = _read_tar_pkg_info(tf, member)
    _check_top_level(tops, what)
    if pkg_info is None:
        raise InvalidDistribution(_NO_PKG_INFO)
    return pkg_info


def _read_tar_pkg_info(tf: tarfile.TarFile, member: tarfile.TarInfo) -> bytes:
    if not member.isfile():
        raise InvalidDistribution("sdist PKG-INFO is not a regular file")
    _check_size(member.size, MAX_METADATA_BYTES, "PKG-INFO")
    stream = tf.extractfile(member)
    if stream is None:  # pragma: no cover - isfile() members always have data
        raise InvalidDistribution("sdist PKG-INFO cannot be read")
    with stream:
        return _read_bounded(stream, MAX_METADATA_BYTES, "PKG-INFO")
