"""Tests for the streaming multipart reader of the legacy upload API.

Bodies are built the way twine builds them (``requests_toolbelt.MultipartEncoder`` over a
list of ``(name, value)`` tuples, the file as ``(filename, data, content_type)``), and
headers are parsed by ``http.client`` exactly as ``http.server`` hands them over.
"""
from __future__ import annotations

import hashlib
import http.client
import io
import os
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO, cast

import pytest
from requests_toolbelt import MultipartEncoder

from artifactd.errors import BadRequest, LengthRequired, PayloadTooLarge
from artifactd.formats.pypi.multipart import MAX_TEXT_FILE_PART, UploadForm, read_upload_form
from artifactd.store.blobs import BlobStore, BlobWriter
from artifactd.store.layout import Layout

MiB = 1 << 20
FILENAME = "acme_widgets-1.0-py3-none-any.whl"


# --- helpers -----------------------------------------------------------------------------


class Store:
    """A real BlobStore in a temporary directory that records the writers it opens."""

    def __init__(self, root: Path) -> None:
        self.layout = Layout(root)
        self.layout.ensure()
        self.blobs = BlobStore(self.layout)
        self.opened: list[BlobWriter] = []

    def open_writer(self, max_size: int | None = None) -> Callable[[UploadForm], BlobWriter]:
        def factory(form_so_far: UploadForm) -> BlobWriter:
            writer = self.blobs.writer(max_size=max_size, extra_digests=("md5", "blake2_256"))
            self.opened.append(writer)
            return writer

        return factory

    def tmp_files(self) -> list[Path]:
        return sorted(self.layout.tmp.iterdir())


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "data")


class Body(io.BytesIO):
    """The request body; ``reads`` counts read() calls so tests can prove nothing was read."""

    def __init__(self, data: bytes, *, cut_at: int | None = None) -> None:
        super().__init__(data if cut_at is None else data[:cut_at])
        self.reads = 0

    def read(self, size: int | None = -1, /) -> bytes:
        self.reads += 1
        return super().read(size)


def twine_body(
    fields: list[tuple[str, Any]], content: bytes | None = b"wheel bytes", filename: str = FILENAME
) -> tuple[bytes, str]:
    """(body, content type) as twine's ``Repository._upload`` would send them."""
    data = list(fields)
    if content is not None:
        data.append(("content", (filename, content, "application/octet-stream")))
    encoder = MultipartEncoder(data)
    return encoder.to_string(), encoder.content_type


def parse_headers(content_type: str | None = None, length: int | None = None, **extra: str) -> http.client.HTTPMessage:
    lines = []
    if content_type is not None:
        lines.append(f"Content-Type: {content_type}")
    if length is not None:
        lines.append(f"Content-Length: {length}")
    lines += [f"{k.replace('_', '-')}: {v}" for k, v in extra.items()]
    raw = "".join(f"{line}\r\n" for line in lines) + "\r\n"
    return http.client.parse_headers(io.BytesIO(raw.encode("latin-1")))


def read(
    store: Store,
    body: bytes,
    content_type: str,
    *,
    rfile: BinaryIO | None = None,
    max_body: int = 512 * MiB,
    max_size: int | None = None,
    **kwargs: Any,
) -> UploadForm:
    headers = parse_headers(content_type, len(body))
    return read_upload_form(
        rfile if rfile is not None else io.BytesIO(body),
        headers,
        store.open_writer(max_size),
        max_body=max_body,
        **kwargs,
    )


TWINE_FIELDS: list[tuple[str, Any]] = [
    ("name", "acme-widgets"),
    ("version", "1.0"),
    ("filetype", "bdist_wheel"),
    ("pyversion", "py3"),
    ("metadata_version", "2.4"),
    ("summary", "Widgets \u2014 for everyone \u2603"),
    ("description", "line 1\r\nline 2\n\n--not a boundary\r\n"),
    ("classifiers", "Programming Language :: Python :: 3"),
    ("classifiers", "License :: OSI Approved :: MIT License"),
    ("classifiers", "Operating System :: OS Independent"),
    ("requires_python", ""),
    ("requires_dist", "requests>=2"),
    ("requires_dist", 'tomli; python_version < "3.11"'),
    ("gpg_signature", (FILENAME + ".asc", b"-----BEGIN PGP SIGNATURE-----\n...\n")),
    ("attestations", '[{"version": 1}]'),
    (":action", "file_upload"),
    ("protocol_version", "1"),
]


# --- happy paths ------------------------------------------------------------------------


@pytest.mark.parametrize(("size", "chunk"), [(300_000, 256 * 1024), (300_000, 4096), (20_000, 7), (3_000, 1)])
def test_twine_upload_streams_content_and_keeps_repeated_fields(store: Store, size: int, chunk: int) -> None:
    content = os.urandom(size)
    body, ctype = twine_body(TWINE_FIELDS, content)

    form = read(store, body, ctype, chunk=chunk)

    assert form.filename == FILENAME
    assert form.getall("classifiers") == [
        "Programming Language :: Python :: 3",
        "License :: OSI Approved :: MIT License",
        "Operating System :: OS Independent",
    ]
    assert form.getall("requires_dist") == ["requests>=2", 'tomli; python_version < "3.11"']
    assert form.get("name") == "acme-widgets"
    assert form.get("summary") == "Widgets \u2014 for everyone \u2603"
    assert form.get("description") == "line 1\r\nline 2\n\n--not a boundary\r\n"
    assert form.get("requires_python") == ""
    assert form.get(":action") == "file_upload"
    assert form.get("gpg_signature") == "-----BEGIN PGP SIGNATURE-----\n...\n"  # small file part kept as text
    assert form.get("attestations") == '[{"version": 1}]'
    assert form.get("missing") is None and form.get("missing", "x") == "x" and form.getall("missing") == []
    assert "content" not in form.fields

    writer = form.writer
    assert writer is not None and store.opened == [writer]
    assert writer.size == size
    assert writer.hexdigests() == {
        "sha256": hashlib.sha256(content).hexdigest(),
        "md5": hashlib.md5(content).hexdigest(),
        "blake2_256": hashlib.blake2b(content, digest_size=32).hexdigest(),
    }
    with writer:
        blob = writer.commit(expected_sha256=hashlib.sha256(content).hexdigest())
    assert store.blobs.read_bytes(blob.sha256) == content
    assert store.tmp_files() == []


def test_returned_writer_is_open_and_uncommitted(store: Store) -> None:
    body, ctype = twine_body(TWINE_FIELDS, b"payload")
    form = read(store, body, ctype)
    assert form.writer is not None
    assert form.writer.blob is None
    assert len(store.tmp_files()) == 1  # the caller decides: commit or abort
    with form.writer:
        pass  # leaving without commit aborts
    assert store.tmp_files() == []


def test_no_content_part_gives_no_writer(store: Store) -> None:
    body, ctype = twine_body(TWINE_FIELDS, content=None)
    form = read(store, body, ctype)
    assert form.writer is None
    assert form.filename is None
    assert store.opened == []  # the writer is created lazily
    assert form.get("version") == "1.0"
    assert store.tmp_files() == []


def test_empty_content_part(store: Store) -> None:
    body, ctype = twine_body([("name", "x")], content=b"")
    form = read(store, body, ctype)
    assert form.writer is not None and form.writer.size == 0
    form.writer.abort()


def test_filename_is_returned_raw(store: Store) -> None:
    # urllib3 (hence twine) does not escape backslashes; they must reach validation intact.
    for name in ["C:\\x.whl", "a\\..\\b.whl", "../x.whl", "%2e%2e/x.whl", "caf\u00e9-1.0.tar.gz"]:
        body, ctype = twine_body([], b"x", filename=name)
        form = read(store, body, ctype)
        assert form.filename == name
        assert form.writer is not None
        form.writer.abort()
    assert store.tmp_files() == []


def test_filename_not_utf8_is_400(store: Store) -> None:
    body, ctype = twine_body([("name", "x")], b"x", filename="FILENAME.whl")
    body = body.replace(b"FILENAME", b"\xff\xfe")
    with pytest.raises(BadRequest, match="filename is not valid UTF-8"):
        read(store, body, ctype)
    assert store.tmp_files() == []


def test_plain_dict_headers_are_looked_up_case_insensitively(store: Store) -> None:
    body, ctype = twine_body([("name", "x")], b"abc")
    form = read_upload_form(
        io.BytesIO(body),
        {"content-type": ctype, "CONTENT-LENGTH": str(len(body))},
        store.open_writer(),
        max_body=MiB,
    )
    assert form.writer is not None and form.writer.size == 3
    form.writer.abort()


def test_open_writer_is_given_the_fields_sent_before_the_file(store: Store) -> None:
    """So the caller can hash the digests a client announced while the file streams in."""
    seen: list[dict[str, list[str]]] = []

    def opener(form_so_far: UploadForm) -> BlobWriter:
        seen.append({k: list(v) for k, v in form_so_far.fields.items()})
        return store.blobs.writer()

    fields = [("name", "x"), ("blake2_256_digest", "ab" * 32)]
    encoder = MultipartEncoder([*fields, ("content", (FILENAME, b"abc", "application/octet-stream")),
                                ("comment", "after the file")])
    body = encoder.to_string()
    form = read_upload_form(io.BytesIO(body), parse_headers(encoder.content_type, len(body)), opener, max_body=MiB)
    assert seen == [{"name": ["x"], "blake2_256_digest": ["ab" * 32]}]
    assert form.get("comment") == "after the file"
    assert form.writer is not None
    form.writer.abort()


def test_large_non_content_file_part_is_dropped(store: Store) -> None:
    big = b"A" * (MAX_TEXT_FILE_PART + 1)
    fields = [("name", "x"), ("gpg_signature", ("sig.asc", big)), ("attestations", ("a.json", b"\xff\xfe"))]
    body, ctype = twine_body(fields, b"abc")
    form = read(store, body, ctype)
    assert form.get("gpg_signature") is None  # too large: ignored, never buffered whole
    assert form.get("attestations") is None  # not text: ignored
    assert form.get("name") == "x"
    assert form.writer is not None and form.writer.size == 3
    form.writer.abort()


# --- framing errors: nothing is read ------------------------------------------------------


def test_not_multipart_is_400(store: Store) -> None:
    for ctype in [None, "application/x-www-form-urlencoded", "multipart/form-data", "multipart/mixed; boundary=x"]:
        rfile = Body(b"name=x")
        with pytest.raises(BadRequest, match="request body is not multipart/form-data") as info:
            read_upload_form(rfile, parse_headers(ctype, 6), store.open_writer(), max_body=MiB)
        assert info.value.http_status == 400
        assert rfile.reads == 0
    assert store.opened == []


def test_missing_content_length_is_411(store: Store) -> None:
    body, ctype = twine_body(TWINE_FIELDS)
    rfile = Body(body)
    with pytest.raises(LengthRequired) as info:
        read_upload_form(rfile, parse_headers(ctype), store.open_writer(), max_body=MiB)
    assert info.value.http_status == 411
    assert rfile.reads == 0


def test_chunked_is_411(store: Store) -> None:
    body, ctype = twine_body(TWINE_FIELDS)
    for length in (None, len(body)):
        rfile = Body(body)
        headers = parse_headers(ctype, length, Transfer_Encoding="chunked")
        with pytest.raises(LengthRequired) as info:
            read_upload_form(rfile, headers, store.open_writer(), max_body=MiB)
        assert info.value.http_status == 411
        assert rfile.reads == 0


@pytest.mark.parametrize("value", ["-1", "abc", "1e3", "+5", " ", "\u0661"])
def test_invalid_content_length_is_400(store: Store, value: str) -> None:
    body, ctype = twine_body(TWINE_FIELDS)
    rfile = Body(body)
    headers = {"Content-Type": ctype, "Content-Length": value}
    with pytest.raises(BadRequest, match="Content-Length"):
        read_upload_form(rfile, headers, store.open_writer(), max_body=MiB)
    assert rfile.reads == 0


def test_conflicting_content_lengths_are_400(store: Store) -> None:
    body, ctype = twine_body(TWINE_FIELDS)
    headers = parse_headers(ctype, len(body))
    headers["Content-Length"] = str(len(body) + 1)  # HTTPMessage appends a second header
    with pytest.raises(BadRequest, match="conflicting Content-Length"):
        read_upload_form(Body(body), headers, store.open_writer(), max_body=MiB)


@pytest.mark.parametrize("length", ["1025", "9" * 5000])
def test_too_large_is_413_before_reading(store: Store, length: str) -> None:
    body, ctype = twine_body(TWINE_FIELDS, b"x" * 2000)
    rfile = Body(body)
    headers = {"Content-Type": ctype, "Content-Length": length}
    with pytest.raises(PayloadTooLarge) as info:
        read_upload_form(rfile, headers, store.open_writer(), max_body=1024)
    assert info.value.http_status == 413
    assert rfile.reads == 0
    assert store.opened == []


# --- body errors: the temporary file is always removed -----------------------------------


def test_unterminated_boundary_is_400(store: Store) -> None:
    body, ctype = twine_body(TWINE_FIELDS, os.urandom(50_000))
    boundary = ctype.split("boundary=", 1)[1].encode()
    truncated = body[: body.rindex(b"\r\n--" + boundary)]  # the closing delimiter never comes
    with pytest.raises(BadRequest, match="multipart body is not terminated"):
        read(store, truncated, ctype)
    assert len(store.opened) == 1
    assert store.tmp_files() == []


def test_client_disconnect_is_400(store: Store) -> None:
    body, ctype = twine_body(TWINE_FIELDS, os.urandom(200_000))
    rfile = Body(body, cut_at=len(body) // 2)  # Content-Length promises the full body
    with pytest.raises(BadRequest, match="request body ended early"):
        read(store, body, ctype, rfile=rfile, chunk=16_384)
    assert len(store.opened) == 1  # the content part had started
    assert store.tmp_files() == []


def test_connection_reset_is_400(store: Store) -> None:
    body, ctype = twine_body(TWINE_FIELDS, os.urandom(200_000))

    class Resetting(Body):
        def read(self, size: int | None = -1, /) -> bytes:
            if self.tell() > 100_000:
                raise ConnectionResetError(104, "Connection reset by peer")
            return super().read(size)

    with pytest.raises(BadRequest, match="request body ended early"):
        read(store, body, ctype, rfile=Resetting(body), chunk=16_384)
    assert len(store.opened) == 1
    assert store.tmp_files() == []


def test_two_content_parts_are_400(store: Store) -> None:
    fields: list[tuple[str, Any]] = [("name", "x"), ("content", ("a.whl", b"first", "application/octet-stream"))]
    body, ctype = twine_body(fields, b"second")
    with pytest.raises(BadRequest, match="multiple 'content' parts"):
        read(store, body, ctype)
    assert len(store.opened) == 1
    assert store.tmp_files() == []


def test_content_without_filename_is_400(store: Store) -> None:
    body, ctype = twine_body([("name", "x"), ("content", "not a file")], content=None)
    with pytest.raises(BadRequest, match="'content' part has no filename"):
        read(store, body, ctype)
    assert store.tmp_files() == []


def test_content_over_writer_cap_is_413(store: Store) -> None:
    body, ctype = twine_body(TWINE_FIELDS, os.urandom(100_000))
    with pytest.raises(PayloadTooLarge):
        read(store, body, ctype, max_size=50_000, chunk=8192)
    assert len(store.opened) == 1
    assert store.tmp_files() == []


def test_fields_over_budget_are_413(store: Store) -> None:
    fields = [("name", "x"), ("description", "d" * 10_000)]
    body, ctype = twine_body([("content", ("a.whl", b"abc", "application/octet-stream")), *fields], content=None)
    with pytest.raises(PayloadTooLarge, match="form fields exceed"):
        read(store, body, ctype, max_fields_bytes=4096)
    assert len(store.opened) == 1
    assert store.tmp_files() == []


def test_field_not_utf8_is_400(store: Store) -> None:
    body, ctype = twine_body([("content", ("a.whl", b"abc", "application/octet-stream")), ("summary", b"\xff")], None)
    with pytest.raises(BadRequest, match="'summary' is not valid UTF-8"):
        read(store, body, ctype)
    assert store.tmp_files() == []


@pytest.mark.parametrize(
    ("part_headers", "message"),
    [
        (b"Content-Type: text/plain", "no Content-Disposition"),
        (b'Content-Disposition: form-data; filename="a.whl"', "has no name"),
        (b'Content-Disposition: attachment; name="content"; filename="a.whl"', "not form-data"),
        (b'Content-Disposition: form-data; name="content"; name="other"; filename="a.whl"', "duplicate 'name'"),
        (b'Content-Disposition: form-data; name="content"; filename="a.whl', "malformed Content-Disposition"),
        (
            b'Content-Disposition: form-data; name="content"; filename="a.whl"\r\nContent-Transfer-Encoding: base64',
            "Content-Transfer-Encoding 'base64' is not supported",
        ),
    ],
)
def test_bad_part_headers_are_400(store: Store, part_headers: bytes, message: str) -> None:
    body = (
        b"--XyZ\r\n"
        b'Content-Disposition: form-data; name="content"; filename="first.whl"\r\n\r\n'
        b"data\r\n"
        b"--XyZ\r\n" + part_headers + b"\r\n\r\nvalue\r\n--XyZ--\r\n"
    )
    with pytest.raises(BadRequest, match=message) as info:
        read(store, body, "multipart/form-data; boundary=XyZ")
    assert info.value.http_status == 400
    assert len(store.opened) == 1  # the first part had opened the writer
    assert store.tmp_files() == []


def test_malformed_multipart_is_400(store: Store) -> None:
    body = b"--XyZ\r\nContent-Disposition: form-data; name=\"content\"; filename=\"a.whl\"\r\n\r\nabc\r\n--XyZ"
    cases = [
        (b"this is not a multipart body at all", "malformed multipart body"),
        (body + b"!!garbage", "multipart body is not terminated"),  # "--XyZ!" is data, not a delimiter
        (b"", "multipart body is not terminated"),  # Content-Length: 0
    ]
    for data, message in cases:
        with pytest.raises(BadRequest, match=message):
            read(store, data, "multipart/form-data; boundary=XyZ")
    assert store.tmp_files() == []


def test_exception_from_open_writer_propagates(store: Store) -> None:
    body, ctype = twine_body(TWINE_FIELDS)

    def failing(form_so_far: UploadForm) -> BlobWriter:
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError):
        read_upload_form(io.BytesIO(body), parse_headers(ctype, len(body)), failing, max_body=MiB)
    assert store.tmp_files() == []


# --- memory stays bounded -----------------------------------------------------------------


class LazyBody:
    """A body of ``head + content + tail`` whose content is generated as it is read."""

    def __init__(self, head: bytes, block: bytes, repeats: int, tail: bytes) -> None:
        self._head = head
        self._block = block
        self._tail = tail
        self.length = len(head) + len(block) * repeats + len(tail)
        self._pos = 0

    def _pieces(self, start: int, size: int) -> Iterator[bytes]:
        end = min(start + size, self.length)
        content_start = len(self._head)
        content_end = self.length - len(self._tail)
        pos = start
        while pos < end:
            if pos < content_start:
                stop = min(end, content_start)
                yield self._head[pos:stop]
            elif pos < content_end:
                offset = (pos - content_start) % len(self._block)
                stop = min(end, content_end, pos + len(self._block) - offset)
                yield self._block[offset : offset + stop - pos]
            else:
                stop = end
                yield self._tail[pos - content_end : stop - content_end]
            pos = stop

    def read(self, size: int = -1) -> bytes:
        if size < 0:
            raise AssertionError("the reader must never ask for the whole body")
        data = b"".join(self._pieces(self._pos, size))
        self._pos += len(data)
        return data


def test_large_content_streams_with_bounded_memory(store: Store) -> None:
    block = os.urandom(MiB)
    repeats = 64
    expected = hashlib.sha256()
    for _ in range(repeats):
        expected.update(block)

    marker = b"@@CONTENT@@"
    sample, ctype = twine_body(TWINE_FIELDS, marker)
    head, tail = sample.split(marker)
    body = LazyBody(head, block, repeats, tail)
    headers = parse_headers(ctype, body.length)

    tracemalloc.start()
    try:
        form = read_upload_form(
            cast(BinaryIO, body), headers, store.open_writer(), max_body=128 * MiB
        )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert peak < 16 * MiB, f"peak traced memory {peak / MiB:.1f} MiB"
    assert form.writer is not None
    assert form.writer.size == repeats * MiB
    assert form.writer.sha256 == expected.hexdigest()
    assert form.getall("classifiers")[0] == "Programming Language :: Python :: 3"
    form.writer.abort()
    assert store.tmp_files() == []


@pytest.mark.parametrize("raw", [
    'form-data; name="name"',
    'form-data; name="content"; filename="acme-1.0-py3-none-any.whl"',
    'form-data; name=""',
    'form-data; name="a;b=c"; filename="x; y.tar.gz"',
    'form-data; name="caf\xc3\xa9"',  # UTF-8 bytes, latin-1 decoded
    # not the plain form: the full parser decides
    'form-data; name="x"; filename="C:\\dir\\x.whl"',
    'form-data; name="x\\"y"',
    'Form-Data; Name="x"',
    'form-data;name="x"',
    'form-data; name="x" ',
    'form-data; name="x"; filename*=UTF-8\'\'%C3%A9.whl',
    'form-data; name="x"; filename="y"; extra="z"',
])
def test_plain_disposition_fast_path_agrees_with_the_full_parser(raw: str) -> None:
    from artifactd.formats.pypi.multipart import _parse_disposition, _parse_disposition_full

    assert _parse_disposition(raw) == _parse_disposition_full(raw)
