"""Project names and distribution filenames (PEP 503, PEP 508, STANDARDS R37).

Everything here is pure and cheap: no I/O. A filename is validated character by
character first (packaging's own parsers accept names such as ``ev/il`` and
``C:\\evil``, RELIABILITY §2), then by the rules of packaging's wheel and sdist
filename parsers (as of packaging 26.3), checked here rather than called: they live
in ``packaging.utils``, which imports ``packaging.tags`` and with it ``sysconfig``
and the manylinux/musllinux probes, modules a server would keep for good after
its first upload. A filename that passes
:func:`parse_filename` contains only ``[A-Za-z0-9._+!-]``, so it can never name a
path, carry CR/LF into a header or markup into a page; files are stored by hash
anyway. Every rejection is a :class:`~artifactd.errors.BadRequest` (HTTP 400)
with a single-line message that never echoes raw control characters.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from packaging.version import InvalidVersion, Version

from artifactd.errors import BadRequest

__all__ = [
    "MAX_FILENAME_LENGTH",
    "MAX_NAME_LENGTH",
    "DistFilename",
    "canonical_version",
    "filename_bytes_ok",
    "normalize",
    "parse_filename",
    "safe_repr",
    "validate_project_name",
    "wheel_build_and_tags",
]

MAX_NAME_LENGTH = 200
MAX_FILENAME_LENGTH = 255

# PEP 508 names. re.ASCII keeps IGNORECASE from matching look-alikes such as
# U+212A KELVIN SIGN for "k"; fullmatch() keeps "$" from accepting a trailing "\n".
_NAME_RE = re.compile(r"^([A-Z0-9]|[A-Z0-9][A-Z0-9._-]*[A-Z0-9])$", re.IGNORECASE | re.ASCII)
_NORMALIZE_RE = re.compile(r"[-_.]+")
# Every character a valid wheel or sdist filename can contain (name, PEP 440
# version with epoch "!" and local "+", build tag, compatibility tags).
_FILENAME_CHARS_RE = re.compile(r"[A-Za-z0-9._+!-]+", re.ASCII)
_DRIVE_RE = re.compile(r"[A-Za-z]:")
_WHEEL_TAG_RE = re.compile(r"[A-Za-z0-9_.]+", re.ASCII)  # PEP 425 tag sets (compressed with ".")
_WHEEL_BUILD_RE = re.compile(r"[0-9][A-Za-z0-9_]*", re.ASCII)  # PEP 427: starts with a digit
_WHEEL_BUILD_SPLIT_RE = re.compile(r"(\d+)(.*)", re.ASCII)  # the build number, then the rest

WHEEL_SUFFIX = ".whl"
SDIST_SUFFIXES = (".tar.gz", ".zip")


@dataclass(frozen=True)
class DistFilename:
    """A validated distribution filename.

    ``name`` is spelled as in the filename (wheels escape ``-`` as ``_``);
    ``normalized`` is its PEP 503 form. ``python_tag`` is ``"source"`` for an
    sdist, otherwise the wheel's python tag field as written (``"py2.py3"``).
    """

    filename: str
    name: str
    normalized: str
    version: Version
    kind: Literal["wheel", "sdist"]
    python_tag: str
    packagetype: Literal["bdist_wheel", "sdist"]


def canonical_version(version: Version) -> str:
    """The version with trailing zeros of its release dropped (``1.0.0`` → ``1``, ``2.0rc1`` →
    ``2rc1``): ``packaging.utils.canonicalize_version``, PEP 625's form."""
    text = str(version)
    prefix = f"{version.epoch}!" if version.epoch else ""
    release = ".".join(map(str, version.release))
    assert text.startswith(prefix + release)
    kept = list(version.release)
    while len(kept) > 1 and kept[-1] == 0:
        kept.pop()
    return prefix + ".".join(map(str, kept)) + text[len(prefix) + len(release):]


def wheel_build_and_tags(dist: DistFilename) -> tuple[str, list[str]]:
    """A wheel's build tag and its expanded, lower-cased, sorted compatibility tags, spelled as
    ``packaging.utils.parse_wheel_filename`` gives them: ``("()", ["py2-none-any", "py3-none-any"])``
    for ``x-1.0-py2.py3-none-any.whl``, ``"(1, 'a')"`` for a build tag ``1a``."""
    parts = dist.filename[: -len(WHEEL_SUFFIX)].split("-")
    build = "()"
    if len(parts) == 6:
        m = _WHEEL_BUILD_SPLIT_RE.fullmatch(parts[2])
        assert m is not None  # parse_filename checked it
        build = f"({int(m[1])}, {m[2]!r})"
    interpreters, abis, platforms = (p.lower().split(".") for p in parts[-3:])
    tags = sorted({f"{i}-{a}-{p}" for i in interpreters for a in abis for p in platforms})
    return build, tags


def safe_repr(value: str, limit: int = 80) -> str:
    """Quote ``value`` for an error message: ASCII-only, one line, at most ``limit`` chars.

    Control characters, CR/LF, NUL and non-ASCII are shown as escapes, so the
    result is safe in a log line, an HTTP reason phrase (latin-1) or a text body.
    """
    if len(value) > limit:
        return ascii(value[:limit]) + "..."
    return ascii(value)


def normalize(name: str) -> str:
    """PEP 503 normalization: lowercase, each run of ``-``, ``_``, ``.`` becomes ``-``.

    Pure string transform; it does not validate (see :func:`validate_project_name`).
    """
    return _NORMALIZE_RE.sub("-", name).lower()


def validate_project_name(name: str) -> str:
    """Return ``name`` unchanged if it is a valid PEP 508 project name.

    Valid: 1 to 200 ASCII letters, digits, ``.``, ``_`` and ``-``, starting and
    ending with a letter or digit. Anything else (``<script>``, CR/LF, ``/``,
    spaces, non-ASCII) raises :class:`BadRequest`.
    """
    if not name:
        raise BadRequest("project name is empty")
    if len(name) > MAX_NAME_LENGTH:
        raise BadRequest(f"project name is longer than {MAX_NAME_LENGTH} characters")
    if _NAME_RE.fullmatch(name) is None:
        raise BadRequest(
            f"invalid project name {safe_repr(name)}: use ASCII letters, digits, '.', '_' and '-', "
            "starting and ending with a letter or digit"
        )
    return name


def filename_bytes_ok(raw: bytes) -> str:
    """Decode a client-supplied filename as strict UTF-8 (no validation beyond that).

    Raises :class:`BadRequest` if the bytes are not valid UTF-8. Pass the result
    to :func:`parse_filename`.
    """
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest("filename is not valid UTF-8") from None


def parse_filename(filename: str) -> DistFilename:
    """Validate and parse a wheel (``.whl``) or sdist (``.tar.gz``/``.zip``) filename.

    The characters are checked first (no separators, ``%``, ``..``, drive letters,
    control characters, leading ``.``; at most 255 characters), then the
    extension, then packaging's parser; the name must be a PEP 508 name and the
    version PEP 440. Raises :class:`BadRequest` on any failure.
    """
    _check_filename_characters(filename)
    if filename.endswith(WHEEL_SUFFIX):
        return _parse_wheel(filename)
    if filename.endswith(SDIST_SUFFIXES):
        return _parse_sdist(filename)
    raise BadRequest(
        f"unsupported file type {safe_repr(filename)}: expected a .whl, .tar.gz or .zip distribution"
    )


def _check_filename_characters(filename: str) -> None:
    """Reject anything that is not a plain, single-component, printable ASCII name."""
    if not filename:
        raise BadRequest("filename is empty")
    if len(filename) > MAX_FILENAME_LENGTH:
        raise BadRequest(f"filename is longer than {MAX_FILENAME_LENGTH} characters")
    if "\x00" in filename:
        raise BadRequest("filename contains a NUL byte")
    if not filename.isprintable():
        raise BadRequest(f"filename {safe_repr(filename)} contains control or non-printable characters")
    if "%" in filename:
        raise BadRequest(f"filename {safe_repr(filename)} contains '%': percent-encoding is not allowed")
    if _DRIVE_RE.match(filename):
        raise BadRequest(f"filename {safe_repr(filename)} starts with a drive letter")
    if "/" in filename or "\\" in filename:
        raise BadRequest(f"filename {safe_repr(filename)} contains a path separator")
    if filename.startswith("."):
        raise BadRequest(f"filename {safe_repr(filename)} starts with '.'")
    if ".." in filename:
        raise BadRequest(f"filename {safe_repr(filename)} contains '..'")
    if _FILENAME_CHARS_RE.fullmatch(filename) is None:
        bad = next(ch for ch in filename if _FILENAME_CHARS_RE.fullmatch(ch) is None)
        raise BadRequest(f"filename {safe_repr(filename)} contains the disallowed character {ascii(bad)}")


def _parse_version(text: str) -> Version:
    try:
        return Version(text)
    except InvalidVersion:
        raise BadRequest(f"version {safe_repr(text)} in the filename is not a valid PEP 440 version") from None


def _parse_wheel(filename: str) -> DistFilename:
    parts = filename[: -len(WHEEL_SUFFIX)].split("-")
    if len(parts) not in (5, 6):
        raise BadRequest(
            f"invalid wheel filename {safe_repr(filename)}: "
            "expected name-version[-build]-python-abi-platform.whl"
        )
    name = validate_project_name(parts[0])
    version = _parse_version(parts[1])
    build, tags = parts[2:-3], parts[-3:]
    if any(_WHEEL_BUILD_RE.fullmatch(b) is None for b in build) or any(
        _WHEEL_TAG_RE.fullmatch(t) is None or "" in t.split(".") for t in tags
    ):
        raise BadRequest(f"invalid wheel filename {safe_repr(filename)}: malformed build or compatibility tag")
    if "__" in parts[0]:  # PEP 427 escapes each run of -_. as a single _
        raise BadRequest(f"invalid wheel filename {safe_repr(filename)}: '__' in the project name")
    if not all(interpreter.isidentifier() for interpreter in tags[0].split(".")):
        raise BadRequest(f"invalid wheel filename {safe_repr(filename)}: invalid python tag {safe_repr(tags[0])}")
    return DistFilename(
        filename=filename,
        name=name,
        normalized=normalize(name),
        version=version,
        kind="wheel",
        python_tag=parts[-3],
        packagetype="bdist_wheel",
    )


def _parse_sdist(filename: str) -> DistFilename:
    suffix = next(s for s in SDIST_SUFFIXES if filename.endswith(s))
    name, sep, version_text = filename[: -len(suffix)].rpartition("-")
    if not sep or not name:
        raise BadRequest(f"invalid sdist filename {safe_repr(filename)}: expected name-version{suffix}")
    validate_project_name(name)
    version = _parse_version(version_text)
    return DistFilename(
        filename=filename,
        name=name,
        normalized=normalize(name),
        version=version,
        kind="sdist",
        python_tag="source",
        packagetype="sdist",
    )
