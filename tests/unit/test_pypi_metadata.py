"""Core metadata extraction from untrusted wheels and sdists (STANDARDS R38-R40; RELIABILITY §3 #21-#25).

Every archive is built here with zipfile/tarfile; the hostile ones (bombs, lying
headers, traversal members) are crafted byte by byte where the stdlib writers refuse.
"""
from __future__ import annotations

import io
import json
import stat
import struct
import tarfile
import tracemalloc
import warnings
import zipfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest

from artifactd.errors import InvalidDistribution
from artifactd.formats.pypi import metadata as md
from artifactd.formats.pypi.metadata import CoreMetadata, extract_metadata, parse_core_metadata
from artifactd.formats.pypi.names import DistFilename, parse_filename

MiB = 1 << 20
WHEEL = "acme_widgets-1.0-py3-none-any.whl"
DIST_INFO = "acme_widgets-1.0.dist-info"
TOP = "acme_widgets-1.0"

ZipEntry = tuple["str | zipfile.ZipInfo", bytes]
TarEntry = tuple[tarfile.TarInfo, bytes]


# --- builders ------------------------------------------------------------------------------


def meta(
    name: str = "acme-widgets",
    version: str = "1.0",
    *,
    metadata_version: str = "2.1",
    extra: Iterable[str] = (),
    body: str = "Long description.\n",
) -> bytes:
    headers = [f"Metadata-Version: {metadata_version}", f"Name: {name}", f"Version: {version}",
               "Summary: Widgets for tests", *extra]
    return ("\n".join(headers) + "\n\n" + body).encode()


def write_zip(path: Path, entries: Iterable[ZipEntry], compression: int = zipfile.ZIP_DEFLATED) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # duplicate names are deliberate in some tests
        with zipfile.ZipFile(path, "w", compression) as zf:
            for name, data in entries:
                zf.writestr(name, data)
    return path


def wheel_entries(metadata: bytes | None = None, dist_info: str = DIST_INFO) -> list[ZipEntry]:
    return [
        ("acme_widgets/__init__.py", b"VALUE = 1\n"),
        (f"{dist_info}/METADATA", meta() if metadata is None else metadata),
        (f"{dist_info}/WHEEL", b"Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n"),
        (f"{dist_info}/RECORD", b""),
    ]


def wheel(
    tmp_path: Path, entries: Iterable[ZipEntry] | None = None, filename: str = WHEEL
) -> tuple[Path, DistFilename]:
    path = write_zip(tmp_path / filename, wheel_entries() if entries is None else entries)
    return path, parse_filename(filename)


def file_member(name: str, data: bytes = b"") -> TarEntry:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, data


def link_member(name: str, target: str, kind: bytes = tarfile.SYMTYPE) -> TarEntry:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info, b""


def tar_entries(metadata: bytes | None = None) -> list[TarEntry]:
    dir_info = tarfile.TarInfo(TOP)
    dir_info.type = tarfile.DIRTYPE
    return [
        (dir_info, b""),
        file_member(f"{TOP}/setup.py", b"from setuptools import setup\nsetup()\n"),
        file_member(f"{TOP}/acme_widgets/__init__.py", b"VALUE = 1\n"),
        file_member(f"{TOP}/PKG-INFO", meta() if metadata is None else metadata),
    ]


def tar_sdist(tmp_path: Path, entries: Iterable[TarEntry] | None = None,
              filename: str = f"{TOP}.tar.gz") -> tuple[Path, DistFilename]:
    path = tmp_path / filename
    with tarfile.open(path, "w:gz", format=tarfile.PAX_FORMAT) as tf:
        for info, data in tar_entries() if entries is None else entries:
            tf.addfile(info, io.BytesIO(data) if info.isfile() else None)
    return path, parse_filename(filename)


def zip_sdist(tmp_path: Path, entries: Iterable[ZipEntry] | None = None) -> tuple[Path, DistFilename]:
    filename = f"{TOP}.zip"
    default: list[ZipEntry] = [
        (f"{TOP}/setup.py", b"from setuptools import setup\nsetup()\n"),
        (f"{TOP}/PKG-INFO", meta()),
    ]
    path = write_zip(tmp_path / filename, default if entries is None else entries)
    return path, parse_filename(filename)


def zip_symlink(name: str, target: str) -> ZipEntry:
    info = zipfile.ZipInfo(name)
    info.create_system = 3
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info, target.encode()


def patch_declared_size(path: Path, member: str, size: int) -> None:
    """Make both the local and the central header claim ``size`` uncompressed bytes."""
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo(member)
        pos = zf.start_dir
    struct.pack_into("<L", data, info.header_offset + 22, size)
    while data[pos : pos + 4] == b"PK\x01\x02":
        n, m, k = struct.unpack_from("<3H", data, pos + 28)
        if data[pos + 46 : pos + 46 + n] == member.encode():
            struct.pack_into("<L", data, pos + 24, size)
        pos += 46 + n + m + k
    path.write_bytes(data)


def rejects(call: Callable[[], Any], match: str) -> InvalidDistribution:
    """``call`` raises exactly InvalidDistribution (HTTP 400) with a one-line message."""
    with pytest.raises(InvalidDistribution, match=match) as info:
        call()
    exc = info.value
    assert type(exc) is InvalidDistribution
    assert exc.http_status == 400
    assert "\n" not in exc.message and "\r" not in exc.message
    return exc


def peak_memory(call: Callable[[], Any]) -> int:
    """Peak Python allocation while running ``call`` (its exception is swallowed)."""
    tracemalloc.start()
    try:
        call()
    except InvalidDistribution:
        pass
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    return peak


# --- parse_core_metadata -----------------------------------------------------------------


def test_parse_core_metadata_fields() -> None:
    raw = meta(extra=[
        "Requires-Python: >=3.9",
        "Requires-Dist: requests>=2",
        "Requires-Dist: rich; extra == 'cli'",
        "Provides-Extra: cli",
        "License: MIT License",
        "Classifier: License :: OSI Approved :: MIT License",
        "Classifier: Programming Language :: Python :: 3",
        "Author: Ada",
        "Author-email: Ada <ada@example.org>",
        "Home-page: https://example.org",
        "Project-URL: Source, https://example.org/src",
        "Description-Content-Type: text/markdown",
        "X-Unknown-Field: ignored",
    ])
    m = parse_core_metadata(raw)
    assert m.raw == raw
    assert (m.metadata_version, m.name, m.version, m.summary) == ("2.1", "acme-widgets", "1.0", "Widgets for tests")
    assert m.requires_python == ">=3.9"
    assert m.requires_dist == ("requests>=2", "rich; extra == 'cli'")
    assert m.provides_extra == ("cli",)
    assert m.license == "MIT License" and m.license_expression is None
    assert m.classifiers == ("License :: OSI Approved :: MIT License", "Programming Language :: Python :: 3")
    assert (m.author, m.author_email, m.home_page) == ("Ada", "Ada <ada@example.org>", "https://example.org")
    assert m.project_urls == ("Source, https://example.org/src",)
    assert m.description_content_type == "text/markdown"
    as_dict = m.to_dict()
    assert "raw" not in as_dict
    assert as_dict["requires_dist"] == ["requests>=2", "rich; extra == 'cli'"]
    assert json.loads(json.dumps(as_dict)) == as_dict


@pytest.mark.parametrize("eol", [b"\n", b"\r\n"])
def test_the_description_body_is_not_parsed(eol: bytes) -> None:
    """Only the header block is parsed: a body line that looks like a field, or bytes that are not
    UTF-8, change nothing; the raw bytes are kept whole (they are the served .metadata)."""
    head = eol.join([b"Metadata-Version: 2.1", b"Name: demo", b"Version: 1.0", b"Requires-Dist: idna",
                     b"Description-Content-Type: text/markdown", b"", b""])
    body = eol.join([b"# demo", b"Name: evil", b"Requires-Dist: evil", b"\xff\xfe not UTF-8", b""])
    meta = parse_core_metadata(head + body)
    assert (meta.name, meta.version, meta.requires_dist) == ("demo", "1.0", ("idna",))
    assert meta.description_content_type == "text/markdown"
    assert meta.raw == head + body
    # With no body (and no blank line) at all: the same fields.
    assert parse_core_metadata(head.rstrip()).requires_dist == ("idna",)


def test_license_expression_is_canonicalized_in_metadata_2_4() -> None:
    m = parse_core_metadata(meta(metadata_version="2.4", extra=["License-Expression: mit or apache-2.0",
                                                                "License-File: LICENSE"]))
    assert m.license_expression == "MIT OR Apache-2.0"
    assert m.license_files == ("LICENSE",)


def test_unknown_license_expression_is_kept_verbatim() -> None:
    m = parse_core_metadata(meta(metadata_version="2.4", extra=["License-Expression: Use-it-after-midnight"]))
    assert m.license_expression == "Use-it-after-midnight"


def test_license_file_is_dropped_below_metadata_2_4() -> None:  # setuptools emits it under 2.1
    m = parse_core_metadata(meta(metadata_version="2.1", extra=["License-File: LICENSE"]))
    assert m.license_files == ()
    assert "license_files" in m.to_dict()


@pytest.mark.parametrize(
    ("raw", "match"),
    [
        (b"Metadata-Version: 2.1\nVersion: 1.0\n", "no Name field"),
        (b"Metadata-Version: 2.1\nName: x\n", "no Version field"),
        (b"Name: x\nVersion: 1.0\n", "no Metadata-Version field"),
        (b"", "no Metadata-Version field"),
        (b"\x00\xff\xfe garbage", "no Metadata-Version field"),
        (meta(version="latest"), "Version 'latest' is not a valid PEP 440 version"),
        (meta(name="<script>alert(1)</script>"), "metadata Name: invalid project name"),
        (meta(name="ev/il"), "metadata Name: invalid project name"),
        (meta(extra=["Name: other"]), "Name is repeated"),
        (meta(metadata_version="3.0"), "unsupported Metadata-Version '3.0'"),
        (meta(metadata_version="two"), "Metadata-Version 'two' is not a version"),
        (b"Metadata-Version: 2.1\nName: \xff\xfe\nVersion: 1.0\n", "Name is repeated or not valid UTF-8"),
    ],
)
def test_unusable_metadata_is_rejected(raw: bytes, match: str) -> None:
    rejects(lambda: parse_core_metadata(raw), match)


_TRICKY_HEADERS = [
    b"Metadata-Version: 2.1\nName: demo\nVersion: 1.0\n",
    # folded (continued) values, tabs, CRLF, spaces around the colon, header case
    b"Metadata-Version: 2.1\r\nname:  demo\r\nVERSION: 1.0\r\nSummary: one\r\n  two\r\n\tthree\r\n",
    b"Metadata-Version: 2.4\nName: demo\nVersion: 1.0\nLicense: line one\n        line two\n        \n",
    # UTF-8 values, and values that are not UTF-8 (in a single-use and in a multiple-use field)
    "Metadata-Version: 2.1\nName: demo\nVersion: 1.0\nAuthor: Zo\u00eb \u5f20\nSummary: caf\u00e9 \u2603\n".encode(),
    b"Metadata-Version: 2.1\nName: demo\nVersion: 1.0\nAuthor: Zo\xeb\nClassifier: A\nClassifier: B \xff\n",
    # repeated single-use fields; repeated and duplicate-label Project-URLs; unknown fields
    b"Metadata-Version: 2.1\nName: demo\nName: demo2\nVersion: 1.0\nSummary: a\nSummary: b\nX-Thing: 1\n",
    b"Metadata-Version: 2.1\nName: demo\nVersion: 1.0\nProject-URL: Home, https://a\nProject-URL: Docs,https://b\n",
    b"Metadata-Version: 2.1\nName: demo\nVersion: 1.0\nProject-URL: Home, https://a\nProject-URL: Home, https://b\n",
    b"Metadata-Version: 2.1\nName: demo\nVersion: 1.0\nProject-URL: no comma\nRequires-Dist: a\nRequires-Dist: b; extra == 'x'\n",
    # empty values, a line that is not a header, RFC 2047-looking text, a "From " line
    b"Metadata-Version: 2.1\nName: demo\nVersion: 1.0\nSummary:\nKeywords: a,b\n",
    b"Metadata-Version: 2.1\nName: demo\nVersion: 1.0\nnot a header line\nAuthor: x\n",
    b"Metadata-Version: 2.1\nName: demo\nVersion: 1.0\nSummary: =?utf-8?q?caf=C3=A9?=\n",
    b"From nobody\nMetadata-Version: 2.1\nName: demo\nVersion: 1.0\n",
    b"",
    b"\x00\xff\xfe garbage",
]


@pytest.mark.parametrize("raw", _TRICKY_HEADERS)
def test_header_fields_read_as_packaging_reads_them(raw: bytes) -> None:
    """artifactd reads METADATA's fields itself to keep ``packaging.metadata`` (and the ~1.7 MB of
    modules it imports) out of the server; what it reads must be what packaging reads."""
    assert_read_as_packaging_reads(raw)


def assert_read_as_packaging_reads(raw: bytes, what: object = None) -> None:
    """The fields artifactd keeps, and the unusable ones among them, are packaging's."""
    from packaging.metadata import parse_email

    theirs, their_unparsed = parse_email(raw)
    ours, our_unusable = md._header_fields(raw)
    keys = {key for key, _ in md._FIELDS.values()}
    assert ours == {k: v for k, v in theirs.items() if k in keys}, what
    assert our_unusable == {name for name in their_unparsed if name in md._FIELDS}, what


def test_real_metadata_reads_as_packaging_reads_it() -> None:
    """The METADATA of every wheel installed here (setuptools, flit, hatchling, poetry, maturin...)."""
    from importlib.metadata import distributions

    checked = 0
    for dist in distributions():
        text = dist.read_text("METADATA")
        if not text:
            continue
        assert_read_as_packaging_reads(md._header_block(text.encode("utf-8", "surrogateescape")), dist)
        checked += 1
    assert checked >= 10


def test_reading_a_wheel_imports_neither_packaging_metadata_nor_tarfile(tmp_path: Path) -> None:
    """Modules imported by an upload stay in the server's memory for good."""
    import subprocess
    import sys

    path, _ = wheel(tmp_path)
    code = (
        "import sys\n"
        "from artifactd.formats.pypi.metadata import extract_metadata\n"
        "from artifactd.formats.pypi.names import parse_filename\n"
        f"extract_metadata({str(path)!r}, parse_filename({path.name!r}))\n"
        "print(' '.join(m for m in ('packaging.metadata', 'packaging.requirements', 'email.policy',\n"
        "                           'tarfile', 'gzip') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == ""


# --- wheels ------------------------------------------------------------------------------


def test_good_wheel(tmp_path: Path) -> None:
    path, dist = wheel(tmp_path)
    m = extract_metadata(path, dist)
    assert isinstance(m, CoreMetadata)
    assert (m.name, m.version) == ("acme-widgets", "1.0")
    assert m.raw == meta()  # the exact bytes, for <file>.metadata (R14)


def test_wheel_accepts_equal_version_spelling_and_nested_dist_info(tmp_path: Path) -> None:
    entries = wheel_entries(meta(name="Acme.Widgets", version="1.0.0"))
    entries.append(("acme_widgets/_vendor/other-2.0.dist-info/METADATA", meta(name="other", version="2.0")))
    path, dist = wheel(tmp_path, entries)
    assert extract_metadata(path, dist).name == "Acme.Widgets"


def test_wheel_that_is_not_a_zip(tmp_path: Path) -> None:  # #21
    path = tmp_path / WHEEL
    path.write_bytes(b"<html>not a wheel</html>" * 100)
    rejects(lambda: extract_metadata(path, parse_filename(WHEEL)), r"not a valid wheel \(zip\) file")


def test_truncated_wheel(tmp_path: Path) -> None:
    path, dist = wheel(tmp_path)
    path.write_bytes(path.read_bytes()[:-30])
    rejects(lambda: extract_metadata(path, dist), r"not a valid wheel \(zip\) file")


def test_wheel_without_dist_info(tmp_path: Path) -> None:  # #22
    path, dist = wheel(tmp_path, [("acme_widgets/__init__.py", b"")])
    rejects(lambda: extract_metadata(path, dist), r"wheel contains no \.dist-info/METADATA")


def test_wheel_without_metadata(tmp_path: Path) -> None:  # #22
    entries = [e for e in wheel_entries() if not str(e[0]).endswith("/METADATA")]
    path, dist = wheel(tmp_path, entries)
    rejects(lambda: extract_metadata(path, dist), r"wheel contains no 'acme_widgets-1\.0\.dist-info/METADATA'")


def test_wheel_with_two_dist_info_directories(tmp_path: Path) -> None:  # #22
    entries = wheel_entries() + [("acme_widgets-1.1.dist-info/METADATA", meta(version="1.1"))]
    path, dist = wheel(tmp_path, entries)
    rejects(lambda: extract_metadata(path, dist), r"2 \.dist-info directories; exactly one is allowed")


def test_wheel_with_duplicate_metadata_entries(tmp_path: Path) -> None:  # #22
    entries = wheel_entries() + [(f"{DIST_INFO}/METADATA", meta(version="6.6.6"))]
    path, dist = wheel(tmp_path, entries)
    rejects(lambda: extract_metadata(path, dist), r"2 'acme_widgets-1\.0\.dist-info/METADATA' entries")


def test_wheel_dist_info_named_after_another_project(tmp_path: Path) -> None:
    path, dist = wheel(tmp_path, wheel_entries(dist_info="other-1.0.dist-info"))
    rejects(lambda: extract_metadata(path, dist), r"\.dist-info directory 'other-1\.0\.dist-info' does not match")


def test_wheel_metadata_at_the_size_limit_is_accepted(tmp_path: Path) -> None:
    head = meta(body="")
    raw = head + b"x" * (md.MAX_METADATA_BYTES - len(head))
    path, dist = wheel(tmp_path, wheel_entries(raw))
    assert len(extract_metadata(path, dist).raw) == md.MAX_METADATA_BYTES


def test_wheel_metadata_over_1_mib(tmp_path: Path) -> None:  # #23
    head = meta(body="")
    raw = head + b"x" * (md.MAX_METADATA_BYTES + 1 - len(head))
    path, dist = wheel(tmp_path, wheel_entries(raw))
    rejects(lambda: extract_metadata(path, dist), r"METADATA is 1048577 bytes, over the 1048576-byte limit")


def _bomb(tmp_path: Path, mib: int) -> tuple[Path, DistFilename]:
    """A wheel whose METADATA inflates to ``mib`` MiB of zeros, written in 1 MiB chunks."""
    path = write_zip(tmp_path / WHEEL, [e for e in wheel_entries() if not str(e[0]).endswith("/METADATA")])
    with zipfile.ZipFile(path, "a", zipfile.ZIP_DEFLATED) as zf, zf.open(f"{DIST_INFO}/METADATA", "w") as fh:
        chunk = bytes(MiB)
        for _ in range(mib):
            fh.write(chunk)
    return path, parse_filename(WHEEL)


def _rewrite_central_entry(path: Path, member: str, zip64: bool = True) -> None:
    """Record ``member``'s sizes and offset in the central directory as 0xFFFFFFFF, with the real
    values in a zip64 extra field (as writers do past 4 GiB); ``zip64=False``: without the field."""
    data = path.read_bytes()
    eocd = len(data) - 22
    _, _, _, _, count, size, start, comment = struct.unpack_from("<4s4H2LH", data, eocd)
    out, pos = bytearray(), start
    for _ in range(count):
        fixed = bytearray(data[pos : pos + 46])
        n, m, k = struct.unpack_from("<3H", fixed, 28)
        name, extra, rest = data[pos + 46 : pos + 46 + n], data[pos + 46 + n : pos + 46 + n + m], data[pos + 46 + n + m : pos + 46 + n + m + k]
        if name == member.encode():
            csize, usize = struct.unpack_from("<2L", fixed, 20)
            (offset,) = struct.unpack_from("<L", fixed, 42)
            struct.pack_into("<2L", fixed, 20, 0xFFFFFFFF, 0xFFFFFFFF)
            struct.pack_into("<L", fixed, 42, 0xFFFFFFFF)
            if zip64:
                extra = struct.pack("<2H3Q", 1, 24, usize, csize, offset) + extra
            struct.pack_into("<H", fixed, 30, len(extra))
        out += fixed + name + extra + rest
        pos += 46 + n + m + k
    end = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, count, count, len(out), start, comment)
    path.write_bytes(data[:start] + bytes(out) + end)


def test_wheel_with_zip64_sizes_in_the_central_directory(tmp_path: Path) -> None:
    path, dist = wheel(tmp_path)
    _rewrite_central_entry(path, f"{DIST_INFO}/METADATA")
    assert zipfile.ZipFile(path).read(f"{DIST_INFO}/METADATA") == meta()  # zipfile reads it so too
    assert extract_metadata(path, dist).raw == meta()
    path, dist = wheel(tmp_path)
    _rewrite_central_entry(path, f"{DIST_INFO}/METADATA", zip64=False)
    rejects(lambda: extract_metadata(path, dist), r"not a valid wheel \(zip\) file: zip64 sizes without")


def test_wheel_with_bytes_before_the_archive(tmp_path: Path) -> None:
    """A stub prepended to the zip (a self-extracting archive): offsets are found as zipfile finds them."""
    path, dist = wheel(tmp_path)
    path.write_bytes(b"#!/bin/sh\nexit 0\n" * 100 + path.read_bytes())
    assert extract_metadata(path, dist).raw == meta()


@pytest.mark.parametrize("compression", [zipfile.ZIP_STORED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA])
def test_wheel_metadata_compressed_otherwise(tmp_path: Path, compression: int) -> None:
    path = write_zip(tmp_path / WHEEL, wheel_entries(), compression)
    assert extract_metadata(path, parse_filename(WHEEL)).raw == meta()


def test_zip_entries_are_zipfiles_on_real_wheels(tmp_path: Path) -> None:
    """Names, sizes, CRCs and offsets as zipfile reads them: for the wheels bundled with ensurepip,
    the benchmark's real set when it is downloaded, and a wheel built here."""
    import ensurepip

    from tests.dists import make_wheel

    wheels = sorted((Path(ensurepip.__file__).parent / "_bundled").glob("*.whl"))
    wheels += sorted((Path.home() / ".cache" / "artifactd-bench" / "compare" / "wheels").glob("*.whl"))
    wheels.append(make_wheel(tmp_path, "built", "1.0"))
    for whl in wheels:
        with open(whl, "rb") as fh, zipfile.ZipFile(whl) as zf:
            ours = [(e.name, e.usize, e.csize, e.crc, e.offset, e.method) for e in md._zip_entries(fh, "wheel")]
            theirs = [(i.filename, i.file_size, i.compress_size, i.CRC, i.header_offset, i.compress_type)
                      for i in zf.infolist()]
        assert ours == theirs, whl


def test_wheel_whose_local_header_names_another_file(tmp_path: Path) -> None:
    path, dist = wheel(tmp_path)
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as zf:
        offset = zf.getinfo(f"{DIST_INFO}/METADATA").header_offset
    data[offset + 30 : offset + 31] = b"X"  # the local header's copy of the name only
    path.write_bytes(data)
    rejects(lambda: extract_metadata(path, dist), r"file name in directory and header differ")


def test_zip_names_not_flagged_utf8_are_cp437(tmp_path: Path) -> None:
    """As zipfile reads them: a name without the UTF-8 flag is cp437, and still checked."""
    entries = wheel_entries()
    info = zipfile.ZipInfo("acme_widgets/caf\u00e9.py")
    path, dist = wheel(tmp_path, [*entries, (info, b"")])
    data = bytearray(path.read_bytes())
    pos = data.rfind(b"PK\x01\x02")  # the last central entry: that file's
    (flags,) = struct.unpack_from("<H", data, pos + 8)
    struct.pack_into("<H", data, pos + 8, flags & ~0x800)
    path.write_bytes(data)
    assert extract_metadata(path, dist).raw == meta()
    with open(path, "rb") as fh:
        names = [entry.name for entry in md._zip_entries(fh, "wheel")]
    assert names == zipfile.ZipFile(path).namelist() and names[-1] == "acme_widgets/caf\u00e9.py".encode().decode("cp437")
    traversal = ("..\u00e9/../evil.py".encode("cp437")).decode("cp437")
    path, dist = wheel(tmp_path, [*entries, (zipfile.ZipInfo(traversal), b"")])
    rejects(lambda: extract_metadata(path, dist), r"member path containing '\.\.'")


def test_zip_bomb_is_rejected_with_flat_memory(tmp_path: Path) -> None:  # #23
    path, dist = _bomb(tmp_path, 200)
    assert path.stat().st_size < 2 * MiB
    rejects(lambda: extract_metadata(path, dist), r"METADATA is 209715200 bytes, over the 1048576-byte limit")
    assert peak_memory(lambda: extract_metadata(path, dist)) < 2 * MiB


def test_zip_bomb_with_lying_size_header_is_rejected_with_flat_memory(tmp_path: Path) -> None:  # #23
    path, dist = _bomb(tmp_path, 200)
    patch_declared_size(path, f"{DIST_INFO}/METADATA", 1000)
    rejects(lambda: extract_metadata(path, dist), r"not a valid wheel \(zip\) file: Bad CRC-32")
    assert peak_memory(lambda: extract_metadata(path, dist)) < 2 * MiB


def test_zip_with_too_many_entries(tmp_path: Path) -> None:  # #24
    entries = wheel_entries() + [(f"acme_widgets/f{i}", b"") for i in range(md.MAX_ENTRIES + 1)]
    path = write_zip(tmp_path / WHEEL, entries, zipfile.ZIP_STORED)
    dist = parse_filename(WHEEL)
    rejects(lambda: extract_metadata(path, dist), r"wheel has 20005 entries, more than the limit of 20000")
    assert peak_memory(lambda: extract_metadata(path, dist)) < 4 * MiB


def test_zip_whose_end_record_understates_the_entry_count(tmp_path: Path) -> None:  # #24
    entries = wheel_entries() + [(f"acme_widgets/f{i}", b"") for i in range(md.MAX_ENTRIES + 1)]
    path = write_zip(tmp_path / WHEEL, entries, zipfile.ZIP_STORED)
    data = bytearray(path.read_bytes())
    struct.pack_into("<2H", data, len(data) - 22 + 8, 1, 1)  # entries on this disk / in total
    path.write_bytes(data)
    rejects(lambda: extract_metadata(path, parse_filename(WHEEL)), r"wheel has more than 20000 entries")


def test_oversized_zip_central_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(md, "MAX_CENTRAL_DIRECTORY_BYTES", 64)
    path, dist = wheel(tmp_path)
    rejects(lambda: extract_metadata(path, dist), r"zip directory, over the limit")


@pytest.mark.parametrize("member", ["../evil.py", "/etc/evil.py", "acme_widgets/../../evil.py", "C:/evil.py"])
def test_wheel_with_traversal_member(tmp_path: Path, member: str) -> None:
    path, dist = wheel(tmp_path, wheel_entries() + [(member, b"x")])
    rejects(lambda: extract_metadata(path, dist), r"wheel has (an absolute member path|a member path containing '\.\.')")


def test_wheel_name_mismatch(tmp_path: Path) -> None:
    path, dist = wheel(tmp_path, wheel_entries(meta(name="other")))
    rejects(lambda: extract_metadata(path, dist),
            r"metadata name 'other' does not match filename 'acme_widgets-1\.0-py3-none-any\.whl'")


def test_wheel_version_mismatch(tmp_path: Path) -> None:
    path, dist = wheel(tmp_path, wheel_entries(meta(version="1.1")))
    rejects(lambda: extract_metadata(path, dist), r"metadata version '1\.1' does not match filename version '1\.0'")


def test_wheel_metadata_2_4_license_expression(tmp_path: Path) -> None:
    raw = meta(metadata_version="2.4", extra=["License-Expression: mit", "License-File: LICENSE"])
    path, dist = wheel(tmp_path, wheel_entries(raw))
    m = extract_metadata(path, dist)
    assert m.license_expression == "MIT"
    assert m.license_files == ("LICENSE",)


# --- sdists: tar.gz ----------------------------------------------------------------------


def test_good_tar_sdist(tmp_path: Path) -> None:
    path, dist = tar_sdist(tmp_path)
    m = extract_metadata(path, dist)
    assert (m.name, m.version, m.raw) == ("acme-widgets", "1.0", meta())


def test_tar_sdist_with_in_tree_symlink_is_accepted(tmp_path: Path) -> None:
    path, dist = tar_sdist(tmp_path, tar_entries() + [link_member(f"{TOP}/README", "docs/README.md")])
    assert extract_metadata(path, dist).name == "acme-widgets"


@pytest.mark.parametrize(
    ("entry", "match"),
    [
        (link_member(f"{TOP}/evil", "/etc/passwd"),
         r"link '.*/evil' pointing outside the archive \('/etc/passwd'\)"),
        (link_member(f"{TOP}/evil", "../../../etc/passwd"), "pointing outside the archive"),
        (link_member(f"{TOP}/evil", "../../x", tarfile.LNKTYPE), "pointing outside the archive"),
        (file_member(f"{TOP}/../evil.py", b"x"), r"member path containing '\.\.'"),
        (file_member("../evil.py", b"x"), r"member path containing '\.\.'"),
        (file_member("/etc/evil.py", b"x"), "absolute member path '/etc/evil.py'"),
        (file_member(f"{TOP}\\..\\..\\evil.py", b"x"), r"member path containing '\.\.'"),
    ],
)
def test_tar_sdist_with_escaping_member(tmp_path: Path, entry: TarEntry, match: str) -> None:  # #25
    path, dist = tar_sdist(tmp_path, tar_entries() + [entry])
    rejects(lambda: extract_metadata(path, dist), "sdist has .*" + match)


def test_tar_sdist_with_device_member(tmp_path: Path) -> None:
    device = tarfile.TarInfo(f"{TOP}/dev")
    device.type = tarfile.CHRTYPE
    path, dist = tar_sdist(tmp_path, tar_entries() + [(device, b"")])
    rejects(lambda: extract_metadata(path, dist), "device or FIFO member")


def test_tar_sdist_pkg_info_symlink(tmp_path: Path) -> None:
    entries = [e for e in tar_entries() if not e[0].name.endswith("PKG-INFO")]
    entries += [file_member(f"{TOP}/real", meta()), link_member(f"{TOP}/PKG-INFO", "real")]
    path, dist = tar_sdist(tmp_path, entries)
    rejects(lambda: extract_metadata(path, dist), "PKG-INFO is not a regular file")


def test_tar_sdist_without_top_level_pkg_info(tmp_path: Path) -> None:
    entries = [e for e in tar_entries() if not e[0].name.endswith("PKG-INFO")]
    entries.append(file_member(f"{TOP}/acme_widgets.egg-info/PKG-INFO", meta()))  # depth 2 does not count
    path, dist = tar_sdist(tmp_path, entries)
    rejects(lambda: extract_metadata(path, dist), "no PKG-INFO in its top-level directory")


def test_tar_sdist_with_two_pkg_info(tmp_path: Path) -> None:
    path, dist = tar_sdist(tmp_path, tar_entries() + [file_member(f"{TOP}/PKG-INFO", meta(version="6.6"))])
    rejects(lambda: extract_metadata(path, dist), "more than one top-level PKG-INFO")


def test_tar_sdist_with_two_top_level_directories(tmp_path: Path) -> None:
    path, dist = tar_sdist(tmp_path, tar_entries() + [file_member("other/file.py", b"")])
    rejects(lambda: extract_metadata(path, dist), r"single top-level directory \(found 2\)")


def test_tar_sdist_pkg_info_over_1_mib(tmp_path: Path) -> None:
    path, dist = tar_sdist(tmp_path, tar_entries(meta(body="x" * md.MAX_METADATA_BYTES)))
    rejects(lambda: extract_metadata(path, dist), "PKG-INFO is .* bytes, over the 1048576-byte limit")


def test_tar_sdist_not_gzip(tmp_path: Path) -> None:
    path = tmp_path / f"{TOP}.tar.gz"
    path.write_bytes(b"PK\x03\x04 definitely not gzip")
    rejects(lambda: extract_metadata(path, parse_filename(path.name)), r"not a valid sdist \(tar\.gz\) file")


def test_tar_sdist_truncated(tmp_path: Path) -> None:
    path, dist = tar_sdist(tmp_path, tar_entries() + [file_member(f"{TOP}/data.bin", bytes(range(256)) * 4096)])
    path.write_bytes(path.read_bytes()[:2000])
    rejects(lambda: extract_metadata(path, dist), r"not a valid sdist \(tar\.gz\) file")


def test_tar_sdist_gzip_bomb_stops_at_scan_budget(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(md, "MAX_SCAN_BYTES", 4 * MiB)
    path, dist = tar_sdist(tmp_path, tar_entries() + [file_member(f"{TOP}/zeros", bytes(8 * MiB))])
    rejects(lambda: extract_metadata(path, dist), "sdist decompresses to more than 4194304 bytes")


def test_tar_sdist_oversized_pax_header(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(md, "MAX_TAR_READ", 4096)
    long_name = f"{TOP}/" + "d/" * 3000 + "f.py"  # stored in a pax header larger than 4 KiB
    path, dist = tar_sdist(tmp_path, tar_entries() + [file_member(long_name, b"")])
    rejects(lambda: extract_metadata(path, dist), "tar header or member read larger than the limit")


def test_tar_sdist_member_count_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(md, "MAX_ENTRIES", 10)
    extra = [file_member(f"{TOP}/f{i}.py") for i in range(10)]
    path, dist = tar_sdist(tmp_path, tar_entries() + extra)
    rejects(lambda: extract_metadata(path, dist), "sdist has more than 10 entries")


def test_tar_sdist_name_and_version_mismatch(tmp_path: Path) -> None:
    path, dist = tar_sdist(tmp_path, tar_entries(meta(name="acme-gadgets")))
    rejects(lambda: extract_metadata(path, dist), "metadata name 'acme-gadgets' does not match filename")
    path, dist = tar_sdist(tmp_path, tar_entries(meta(version="2.0")))
    rejects(lambda: extract_metadata(path, dist), r"metadata version '2\.0' does not match filename version '1\.0'")


# --- sdists: zip -------------------------------------------------------------------------


def test_good_zip_sdist(tmp_path: Path) -> None:
    path, dist = zip_sdist(tmp_path)
    m = extract_metadata(path, dist)
    assert (m.name, m.version, m.raw) == ("acme-widgets", "1.0", meta())


def test_zip_sdist_not_a_zip(tmp_path: Path) -> None:
    path = tmp_path / f"{TOP}.zip"
    path.write_bytes(b"\x1f\x8b gzip, not zip")
    rejects(lambda: extract_metadata(path, parse_filename(path.name)), r"not a valid sdist \(zip\) file")


def test_zip_sdist_with_escaping_symlink(tmp_path: Path) -> None:  # #25
    path, dist = zip_sdist(tmp_path, [(f"{TOP}/PKG-INFO", meta()), zip_symlink(f"{TOP}/evil", "/etc/passwd")])
    rejects(lambda: extract_metadata(path, dist), r"link '.*/evil' pointing outside the archive")


def test_zip_sdist_with_traversal_member(tmp_path: Path) -> None:  # #25
    path, dist = zip_sdist(tmp_path, [(f"{TOP}/PKG-INFO", meta()), (f"{TOP}/../../evil.py", b"x")])
    rejects(lambda: extract_metadata(path, dist), r"member path containing '\.\.'")


def test_zip_sdist_without_pkg_info(tmp_path: Path) -> None:
    path, dist = zip_sdist(tmp_path, [(f"{TOP}/setup.py", b"")])
    rejects(lambda: extract_metadata(path, dist), "no PKG-INFO in its top-level directory")


def test_zip_sdist_pkg_info_symlink(tmp_path: Path) -> None:
    path, dist = zip_sdist(tmp_path, [(f"{TOP}/real", meta()), zip_symlink(f"{TOP}/PKG-INFO", "real")])
    rejects(lambda: extract_metadata(path, dist), "PKG-INFO is not a regular file")
