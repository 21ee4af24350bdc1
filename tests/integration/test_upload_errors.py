"""Every upload case of RELIABILITY.md §3 (1-27): a clear 4xx, nothing stored, no temp file left."""
from __future__ import annotations

import base64
import hashlib
import http.client
import socket
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from artifactd.service import create_token
from tests.conftest import Server
from tests.dists import make_sdist, make_wheel

PATH = "/repository/pypi-local/"


def form(fields: list[tuple[str, str]], files: list[tuple[str, str, bytes]], boundary: str | None = None,
         terminate: bool = True) -> tuple[bytes, str]:
    b = boundary or uuid.uuid4().hex
    out = bytearray()
    for k, v in fields:
        out += f'--{b}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
    for k, fname, data in files:
        out += (f'--{b}\r\nContent-Disposition: form-data; name="{k}"; filename="{fname}"\r\n'
                "Content-Type: application/octet-stream\r\n\r\n").encode() + data + b"\r\n"
    if terminate:
        out += f"--{b}--\r\n".encode()
    return bytes(out), f"multipart/form-data; boundary={b}"


def twine_fields(name: str, version: str, data: bytes, filetype: str = "bdist_wheel", **over: str) -> list[tuple[str, str]]:
    f = {
        ":action": "file_upload", "protocol_version": "1", "name": name, "version": version,
        "filetype": filetype, "pyversion": "py3" if filetype == "bdist_wheel" else "source",
        "metadata_version": "2.1", "sha256_digest": hashlib.sha256(data).hexdigest(),
        "blake2_256_digest": hashlib.blake2b(data, digest_size=32).hexdigest(),
    }
    f.update(over)
    return [(k, v) for k, v in f.items() if v is not None]


def post(server: Server, body: bytes, ctype: str | None, auth: str | None = "default",
         headers: dict[str, str] | None = None) -> tuple[int, str, bytes, http.client.HTTPResponse]:
    u = urlsplit(server.url)
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=20)
    h = {"Content-Length": str(len(body))}
    if ctype:
        h["Content-Type"] = ctype
    if auth == "default":
        h["Authorization"] = server.basic
    elif auth:
        h["Authorization"] = auth
    h.update(headers or {})
    c.putrequest("POST", PATH)
    for k, v in h.items():
        c.putheader(k, v)
    c.endheaders()
    try:
        c.send(body)
    except (BrokenPipeError, ConnectionResetError):
        pass
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, r.reason, data, r


def assert_nothing_stored(server: Server) -> None:
    assert server.app.db.artifacts("pypi-local") == []
    assert list(server.app.layout.tmp.iterdir()) == []


@pytest.fixture
def wheel(tmp_path: Path) -> tuple[str, bytes]:
    p = make_wheel(tmp_path / "w", "goodpkg", "1.0")
    return p.name, p.read_bytes()


def upload(server: Server, filename: str, data: bytes, name: str = "goodpkg", version: str = "1.0",
           filetype: str = "bdist_wheel", **over: str) -> tuple[int, str, bytes, http.client.HTTPResponse]:
    body, ctype = form(twine_fields(name, version, data, filetype, **over), [("content", filename, data)])
    return post(server, body, ctype)


def test_happy_path_and_idempotent(server: Server, wheel: tuple[str, bytes]) -> None:
    status, _, _, _ = upload(server, *wheel)
    assert status == 200
    status, _, body, _ = upload(server, *wheel)
    assert status == 200 and b"already stored" in body


def test_01_not_multipart(server: Server) -> None:
    status, _, body, _ = post(server, b"name=x", "application/x-www-form-urlencoded")
    assert status == 400 and b"multipart" in body
    assert_nothing_stored(server)


def test_02_boundary_never_closed(server: Server, wheel: tuple[str, bytes]) -> None:
    body, ctype = form(twine_fields("goodpkg", "1.0", wheel[1]), [("content", wheel[0], wheel[1])], terminate=False)
    status, _, _, _ = post(server, body, ctype)
    assert status == 400
    assert_nothing_stored(server)


def test_03_content_missing_or_twice(server: Server, wheel: tuple[str, bytes]) -> None:
    body, ctype = form(twine_fields("goodpkg", "1.0", wheel[1]), [])
    status, _, text, _ = post(server, body, ctype)
    assert status == 400 and b"content" in text
    body, ctype = form(twine_fields("goodpkg", "1.0", wheel[1]), [("content", wheel[0], wheel[1])] * 2)
    status, _, _, _ = post(server, body, ctype)
    assert status == 400
    assert_nothing_stored(server)


def test_04_name_mismatch(server: Server, wheel: tuple[str, bytes]) -> None:
    status, reason, _, _ = upload(server, *wheel, name="otherpkg")
    assert status == 400 and "name" in reason
    assert_nothing_stored(server)


def test_05_version_mismatch(server: Server, wheel: tuple[str, bytes]) -> None:
    status, reason, _, _ = upload(server, *wheel, version="2.0")
    assert status == 400 and "version" in reason
    assert_nothing_stored(server)


def test_06_version_not_pep440(server: Server, tmp_path: Path) -> None:
    data = make_sdist(tmp_path, "goodpkg", "1.0").read_bytes()
    status, _, _, _ = upload(server, "goodpkg-latest.tar.gz", data, version="latest", filetype="sdist")
    assert status == 400
    assert_nothing_stored(server)


def test_07_same_filename_different_bytes_409(server: Server, tmp_path: Path) -> None:
    a = make_wheel(tmp_path / "a", "goodpkg", "1.0")
    b = make_wheel(tmp_path / "b", "goodpkg", "1.0", payload=b"other")
    assert upload(server, a.name, a.read_bytes())[0] == 200
    status, reason, body, _ = upload(server, b.name, b.read_bytes())
    assert status == 409 and reason.startswith("File already exists") and body.startswith(b"File already exists")
    assert len(server.app.db.artifacts("pypi-local")) == 1


def test_08_equal_version_spelled_differently_409(server: Server, tmp_path: Path) -> None:
    a = make_sdist(tmp_path / "a", "goodpkg", "1.0.0")
    b = make_sdist(tmp_path / "b", "goodpkg", "1.0")
    assert upload(server, a.name, a.read_bytes(), version="1.0.0", filetype="sdist")[0] == 200
    status, _, _, _ = upload(server, b.name, b.read_bytes(), version="1.0", filetype="sdist")
    assert status == 409


def test_09_same_content_in_two_repositories_is_one_blob(server: Server, wheel: tuple[str, bytes]) -> None:
    from artifactd.service import create_repository, upload_file

    create_repository(server.app, "other", "hosted")
    p = server.app.layout.root / wheel[0]
    p.write_bytes(wheel[1])
    upload_file(server.app, "pypi-local", p)
    upload_file(server.app, "other", p)
    digests = [d for d, _ in server.app.blobs.iter_digests()]
    assert digests.count(hashlib.sha256(wheel[1]).hexdigest()) == 1
    assert len(digests) == 2  # the wheel and its core metadata


def test_10_over_size_cap_413_and_close(server: Server, wheel: tuple[str, bytes]) -> None:
    from dataclasses import replace

    app = server.app
    app.set_config(app.config.with_repo(replace(app.config.repo("pypi-local"), max_upload_size=1000)))
    big = b"x" * 200_000
    body, ctype = form(twine_fields("goodpkg", "1.0", big), [("content", wheel[0], big)])
    status, _, _, r = post(server, body, ctype)
    assert status == 413
    assert r.getheader("Connection") == "close"
    assert_nothing_stored(server)


def test_11_no_length_or_chunked_411(server: Server) -> None:
    u = urlsplit(server.url)
    for extra in ({"Transfer-Encoding": "chunked"}, {}):
        c = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
        c.putrequest("POST", PATH)
        c.putheader("Authorization", server.basic)
        c.putheader("Content-Type", "multipart/form-data; boundary=x")
        for k, v in extra.items():
            c.putheader(k, v)
        c.endheaders()
        if extra:
            c.send(b"0\r\n\r\n")
        r = c.getresponse()
        assert r.status == 411
        c.close()
    assert_nothing_stored(server)


def test_12_client_disconnects_mid_body(server: Server, wheel: tuple[str, bytes]) -> None:
    body, ctype = form(twine_fields("goodpkg", "1.0", wheel[1]), [("content", wheel[0], wheel[1] * 50)])
    u = urlsplit(server.url)
    handed = server.httpd.loop.handed_off
    s = socket.create_connection((u.hostname, u.port))
    head = (f"POST {PATH} HTTP/1.1\r\nHost: x\r\nAuthorization: {server.basic}\r\nContent-Type: {ctype}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode()
    s.sendall(head + body[: len(body) // 2])
    s.close()
    # The worker reads the half body and the end of the stream, opens the blob writer, then finds
    # the body short and aborts: wait for it to be done, not merely for an empty tmp/ (it may not
    # have opened the writer yet).
    assert server.settled(handed)
    assert_nothing_stored(server)


def test_13_wrong_sha256(server: Server, wheel: tuple[str, bytes]) -> None:
    status, reason, _, _ = upload(server, *wheel, sha256_digest="0" * 64)
    assert status == 400 and "sha256" in reason
    assert_nothing_stored(server)


@pytest.mark.parametrize("field", ["md5_digest", "blake2_256_digest"])
def test_14_wrong_md5_or_blake2(server: Server, wheel: tuple[str, bytes], field: str) -> None:
    status, _, _, _ = upload(server, *wheel, **{field: "0" * (32 if field == "md5_digest" else 64)})
    assert status == 400
    assert_nothing_stored(server)


@pytest.mark.parametrize("field", ["md5_digest", "blake2_256_digest"])
def test_14c_digests_after_the_file_are_checked_too(server: Server, wheel: tuple[str, bytes], field: str) -> None:
    """Digests sent before the file are hashed while it streams in; one sent after the file part is
    checked from the received file, so such a client is held to it as well."""
    filename, data = wheel
    right = {"md5_digest": hashlib.md5(data).hexdigest(),
             "blake2_256_digest": hashlib.blake2b(data, digest_size=32).hexdigest()}[field]
    wrong = "0" * len(right)

    def after(digest: str) -> tuple[bytes, str]:
        fields = twine_fields("goodpkg", "1.0", data, sha256_digest=None, blake2_256_digest=None)  # type: ignore[arg-type]
        head, ctype = form(fields, [("content", filename, data)], boundary="b0undary", terminate=False)
        tail, _ = form([(field, digest)], [], boundary="b0undary")
        return head + tail, ctype

    status, reason, _, _ = post(server, *after(wrong))
    assert status == 400 and "digest mismatch" in reason
    assert_nothing_stored(server)
    status, _, _, _ = post(server, *after(right))
    assert status == 200
    assert [a.filename for a in server.app.db.artifacts("pypi-local")] == [filename]


@pytest.mark.parametrize("field", ["md5_digest", "blake2_256_digest"])
def test_14d_digests_sent_before_the_file_are_hashed_as_it_arrives(server: Server, wheel: tuple[str, bytes],
                                                                   field: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """twine and uv send their digests before the file: those are hashed while the bytes stream in,
    not by reading the file again after the upload while the client waits for the answer."""
    from artifactd.store import blobs

    rereads: list[str] = []
    real = blobs.hashlib.file_digest

    def spy(fh: Any, digest: Any) -> Any:
        rereads.append(str(digest))
        return real(fh, digest)

    monkeypatch.setattr(blobs.hashlib, "file_digest", spy)
    filename, data = wheel
    right = {"md5_digest": hashlib.md5(data).hexdigest(),
             "blake2_256_digest": hashlib.blake2b(data, digest_size=32).hexdigest()}[field]
    status, reason, _, _ = upload(server, *wheel, **{field: "f" * len(right)})
    assert status == 400 and "digest mismatch" in reason
    assert_nothing_stored(server)
    status, _, _, _ = upload(server, *wheel, **{field: right})
    assert status == 200 and rereads == []
    assert [a.filename for a in server.app.db.artifacts("pypi-local")] == [filename]


def test_14b_no_digest_at_all(server: Server, wheel: tuple[str, bytes]) -> None:
    status, reason, _, _ = upload(server, *wheel, sha256_digest=None, blake2_256_digest=None)  # type: ignore[arg-type]
    assert status == 400 and "digest" in reason
    assert_nothing_stored(server)


@pytest.mark.parametrize("filename", [
    "../goodpkg-1.0-py3-none-any.whl",  # 15
    "%2e%2e/goodpkg-1.0-py3-none-any.whl",  # 16
    "/etc/goodpkg-1.0-py3-none-any.whl",  # 17
    "C:\\goodpkg-1.0-py3-none-any.whl",  # 17
    "a\\..\\goodpkg-1.0-py3-none-any.whl",  # 18
    "goodpkg-1.0-py3-none-any\x00.whl",  # 19
])
def test_15_to_19_traversal_filenames(server: Server, wheel: tuple[str, bytes], filename: str) -> None:
    status, _, _, _ = upload(server, filename, wheel[1])
    assert status == 400
    assert_nothing_stored(server)


def test_20_filename_not_utf8(server: Server, wheel: tuple[str, bytes]) -> None:
    b = uuid.uuid4().hex
    fields, _ = form(twine_fields("goodpkg", "1.0", wheel[1]), [], boundary=b, terminate=False)
    part = (f'--{b}\r\nContent-Disposition: form-data; name="content"; filename="').encode() + \
        b"goodpkg-1.0-py3-none-any\xff\xfe.whl" + b'"\r\n\r\n' + wheel[1] + f"\r\n--{b}--\r\n".encode()
    status, _, _, _ = post(server, fields + part, f"multipart/form-data; boundary={b}")
    assert status == 400
    assert_nothing_stored(server)


def test_21_wheel_not_a_zip(server: Server) -> None:
    data = b"this is not a zip file"
    status, reason, _, _ = upload(server, "goodpkg-1.0-py3-none-any.whl", data)
    assert status == 400 and "zip" in reason.lower()
    assert_nothing_stored(server)


def test_22_wheel_without_metadata(server: Server, tmp_path: Path) -> None:
    import zipfile

    p = tmp_path / "goodpkg-1.0-py3-none-any.whl"
    with zipfile.ZipFile(p, "w") as zf:
        zf.writestr("goodpkg/__init__.py", "")
    status, reason, _, _ = upload(server, p.name, p.read_bytes())
    assert status == 400 and "METADATA" in reason
    assert_nothing_stored(server)


def test_26_script_or_crlf_in_name(server: Server, wheel: tuple[str, bytes]) -> None:
    status, _, _, _ = upload(server, "<script>-1.0.tar.gz", wheel[1], name="<script>", filetype="sdist")
    assert status == 400
    status, _, _, _ = upload(server, "a\r\nb-1.0.tar.gz", wheel[1], filetype="sdist")
    assert status == 400
    assert_nothing_stored(server)


def test_27_auth(server: Server, wheel: tuple[str, bytes]) -> None:
    body, ctype = form(twine_fields("goodpkg", "1.0", wheel[1]), [("content", wheel[0], wheel[1])])
    status, _, _, r = post(server, body, ctype, auth=None)
    assert status == 401 and r.getheader("WWW-Authenticate", "").startswith("Basic")
    bad = "Basic " + base64.b64encode(b"__token__:adt_wrong").decode()
    status, _, text, r = post(server, body, ctype, auth=bad)
    assert status == 401 and b"adt_wrong" not in text
    tok, _ = create_token(server.app, "admin", "ro", ("read",))
    ro = "Basic " + base64.b64encode(f"__token__:{tok}".encode()).decode()
    status, _, _, _ = post(server, body, ctype, auth=ro)
    assert status == 403
    status, _, _, _ = post(server, body, ctype, auth=f"Bearer {server.token}")
    assert status == 200


def test_submit_and_doc_upload_actions(server: Server) -> None:
    body, ctype = form([(":action", "submit"), ("name", "x")], [])
    assert post(server, body, ctype)[0] == 200
    body, ctype = form([(":action", "doc_upload")], [])
    assert post(server, body, ctype)[0] == 410
    body, ctype = form([(":action", "explode")], [])
    assert post(server, body, ctype)[0] == 400
    assert_nothing_stored(server)


def test_sdist_pyversion_must_be_source(server: Server, tmp_path: Path) -> None:
    data = make_sdist(tmp_path, "goodpkg", "1.0").read_bytes()
    status, _, _, _ = upload(server, "goodpkg-1.0.tar.gz", data, filetype="sdist", pyversion="py3")
    assert status == 400
    status, _, _, _ = upload(server, "goodpkg-1.0.tar.gz", data, filetype="bdist_wheel")
    assert status == 400
    assert_nothing_stored(server)


def test_upload_to_group_refused(server: Server, wheel: tuple[str, bytes]) -> None:
    global PATH
    old, PATH = PATH, "/repository/pypi/"
    try:
        status, reason, _, _ = upload(server, *wheel)
    finally:
        PATH = old
    assert status == 400 and "hosted" in reason
