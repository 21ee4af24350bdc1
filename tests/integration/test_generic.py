"""Generic repositories over HTTP: PUT/GET/HEAD/DELETE, matrix properties, checksums, folders, groups."""
from __future__ import annotations

import base64
import hashlib
import http.client
import json
import socket
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests

from artifactd import service
from tests.conftest import Server

REPO = "ml-models-staging"


@pytest.fixture
def gserver(server: Server) -> Server:
    service.create_repository(server.app, REPO, "hosted", "generic")
    service.create_repository(server.app, "ml-models-prod", "hosted", "generic")
    service.create_repository(server.app, "ml-models", "group", "generic", members=("ml-models-prod", REPO))
    return server


def conn(server: Server) -> http.client.HTTPConnection:
    u = urlsplit(server.url)
    return http.client.HTTPConnection(u.hostname, u.port, timeout=10)


def call(server: Server, method: str, path: str, body: bytes | None = None,
         headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    c = conn(server)
    try:
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        c.close()


def bearer(server: Server) -> dict[str, str]:
    return {"Authorization": f"Bearer {server.token}"}


def tmp_files(server: Server) -> list[str]:
    return sorted(p.name for p in server.app.layout.tmp.iterdir())


def blob_count(server: Server) -> int:
    return sum(1 for _ in server.app.blobs.iter_digests())


# --- PUT ---------------------------------------------------------------------------------------

def test_put_with_basic_and_matrix_properties(gserver: Server) -> None:
    data = b"model-bytes" * 1000
    st, hdr, body = call(gserver, "PUT", f"/repository/{REPO}/models/fraud/1.0/model.pkl;accuracy=0.94;"
                                          "framework=sklearn;tags=a,b;note=x%3By%2Cz",
                         data, {"Authorization": gserver.basic})
    assert st == 201, body
    d = json.loads(body)
    assert d["path"] == "models/fraud/1.0/model.pkl"
    assert d["size"] == len(data)
    assert d["sha256"] == hashlib.sha256(data).hexdigest()
    assert d["properties"] == {"accuracy": ["0.94"], "framework": ["sklearn"], "tags": ["a", "b"], "note": ["x;y,z"]}
    assert hdr["location"] == f"/repository/{REPO}/models/fraud/1.0/model.pkl"
    st, hdr, got = call(gserver, "GET", f"/repository/{REPO}/models/fraud/1.0/model.pkl")
    assert st == 200 and got == data
    assert hdr["x-checksum-sha256"] == d["sha256"]
    assert hdr["etag"] == f'"{d["sha256"]}"'
    assert "immutable" not in hdr["cache-control"]


def test_put_with_bearer_and_requests(gserver: Server, tmp_path: Path) -> None:
    f = tmp_path / "m.bin"
    f.write_bytes(b"x" * 70_000)
    with open(f, "rb") as fh:  # like curl -T: the body is the file
        r = requests.put(f"{gserver.url}/repository/{REPO}/a/m.bin;stage=dev", data=fh,
                         headers={**bearer(gserver), "X-Checksum-Sha256": hashlib.sha256(f.read_bytes()).hexdigest()},
                         timeout=10)
    assert r.status_code == 201, r.text
    assert r.json()["properties"] == {"stage": ["dev"]}
    # the same bytes again: 200, properties merged
    r = requests.put(f"{gserver.url}/repository/{REPO}/a/m.bin;owner=me", data=f.read_bytes(),
                     headers=bearer(gserver), timeout=10)
    assert r.status_code == 200
    assert r.json()["outcome"] == "unchanged"
    assert r.json()["properties"] == {"owner": ["me"], "stage": ["dev"]}


def test_put_needs_credentials_and_write(gserver: Server) -> None:
    st, hdr, _ = call(gserver, "PUT", f"/repository/{REPO}/x.bin", b"abc")
    assert st == 401 and "www-authenticate" in hdr
    tok, _ = service.create_token(gserver.app, "admin", "ro", ("read",))
    st, _, _ = call(gserver, "PUT", f"/repository/{REPO}/x.bin", b"abc", {"Authorization": f"Bearer {tok}"})
    assert st == 403
    st, _, _ = call(gserver, "PUT", f"/repository/{REPO}/x.bin", b"abc", {"Authorization": "Bearer adt_wrong"})
    assert st == 401
    assert gserver.app.db.get_artifact(REPO, "x.bin") is None


def test_checksum_mismatch_stores_nothing(gserver: Server) -> None:
    before = blob_count(gserver)
    for header, value in (("X-Checksum-Sha256", "0" * 64), ("X-Checksum-Sha1", "0" * 40), ("X-Checksum-Md5", "0" * 32)):
        st, _, body = call(gserver, "PUT", f"/repository/{REPO}/bad.bin", b"payload",
                           {**bearer(gserver), header: value})
        assert st == 400, body
        assert b"mismatch" in body
    assert gserver.app.db.get_artifact(REPO, "bad.bin") is None
    assert blob_count(gserver) == before
    assert tmp_files(gserver) == []
    ok = {"X-Checksum-Sha256": hashlib.sha256(b"payload").hexdigest(),
          "X-Checksum-Sha1": hashlib.sha1(b"payload").hexdigest(), "X-Checksum-Md5": hashlib.md5(b"payload").hexdigest()}
    st, _, _ = call(gserver, "PUT", f"/repository/{REPO}/bad.bin", b"payload", {**bearer(gserver), **ok})
    assert st == 201


def test_put_without_length_is_411_and_too_large_is_413(gserver: Server) -> None:
    c = conn(gserver)
    c.putrequest("PUT", f"/repository/{REPO}/chunked.bin")
    c.putheader("Authorization", f"Bearer {gserver.token}")
    c.putheader("Transfer-Encoding", "chunked")
    c.endheaders()
    c.send(b"3\r\nabc\r\n0\r\n\r\n")
    r = c.getresponse()
    assert r.status == 411
    c.close()
    from dataclasses import replace

    cfg = gserver.app.config
    small = replace(cfg.repo(REPO), max_upload_size=1000)
    gserver.app.set_config(cfg.with_repo(small))
    c = conn(gserver)
    c.putrequest("PUT", f"/repository/{REPO}/big.bin")
    c.putheader("Authorization", f"Bearer {gserver.token}")
    c.putheader("Content-Length", str(10 * 2**20))
    c.endheaders()  # no body sent: the answer must come before reading it
    r = c.getresponse()
    assert r.status == 413
    assert r.getheader("Connection") == "close"
    c.close()
    assert tmp_files(gserver) == []


def test_client_disconnect_mid_body_leaves_nothing(gserver: Server) -> None:
    u = urlsplit(gserver.url)
    handed = gserver.httpd.loop.handed_off
    s = socket.create_connection((u.hostname, u.port))
    s.sendall((f"PUT /repository/{REPO}/partial.bin HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {gserver.token}\r\n"
               f"Content-Length: 5000000\r\n\r\n").encode() + b"x" * 100_000)
    time.sleep(0.2)
    s.close()
    assert gserver.settled(handed)  # the worker has seen the stream end and aborted the write
    assert tmp_files(gserver) == []
    assert gserver.app.db.get_artifact(REPO, "partial.bin") is None


def test_overwrite_allowed_by_default_and_audited(gserver: Server) -> None:
    p = f"/repository/{REPO}/latest/model.pkl"
    assert call(gserver, "PUT", p + ";v=1", b"one", bearer(gserver))[0] == 201
    st, _, body = call(gserver, "PUT", p + ";v=2", b"two", bearer(gserver))
    assert st == 201 and json.loads(body)["outcome"] == "replaced"
    assert call(gserver, "GET", p)[2] == b"two"
    assert gserver.app.db.properties(gserver.app.db.get_artifact(REPO, "latest/model.pkl").id) == {"v": ["2"]}
    rec = [r for r in gserver.app.db.audit_records() if r["target"] == "latest/model.pkl" and r["action"] == "upload"]
    assert rec[0]["detail"]["previous_sha256"] == hashlib.sha256(b"one").hexdigest()


def test_overwrite_can_be_disabled(gserver: Server) -> None:
    service.create_repository(gserver.app, "frozen", "hosted", "generic", allow_overwrite=False)
    assert call(gserver, "PUT", "/repository/frozen/a.bin", b"one", bearer(gserver))[0] == 201
    assert call(gserver, "PUT", "/repository/frozen/a.bin", b"one", bearer(gserver))[0] == 200
    st, _, body = call(gserver, "PUT", "/repository/frozen/a.bin", b"two", bearer(gserver))
    assert st == 409 and b"already exists" in body


@pytest.mark.parametrize("path", [
    "/repository/ml-models-staging/%2e%2e/x.bin",
    "/repository/ml-models-staging/a/../x.bin",
    "/repository/ml-models-staging/a%2F..%2Fx.bin",
    "/repository/ml-models-staging/a%5Cx.bin",
    "/repository/ml-models-staging/a%00x.bin",
    "/repository/ml-models-staging/a//x.bin",
    "/repository/ml-models-staging/dir/",
    "/repository/ml-models-staging/x.bin;bad%0Akey=1",
])
def test_bad_paths_are_refused(gserver: Server, path: str) -> None:
    st, _, _ = call(gserver, "PUT", path, b"abc", bearer(gserver))
    assert st == 400
    assert gserver.app.db.artifacts(REPO) == []


def test_put_or_delete_in_a_group_or_pypi_repo_is_refused(gserver: Server) -> None:
    st, _, body = call(gserver, "PUT", "/repository/ml-models/x.bin", b"abc", bearer(gserver))
    assert st == 405 and b"group" in body
    st, _, body = call(gserver, "PUT", "/repository/pypi-local/x.bin", b"abc", bearer(gserver))
    assert st == 405 and b"takes uploads by POST" in body
    st, _, body = call(gserver, "DELETE", "/repository/pypi-local/x.bin", None, bearer(gserver))
    assert st == 405 and b"DELETE is not supported in pypi repository 'pypi-local'" in body
    st, _, body = call(gserver, "DELETE", "/repository/ml-models/x.bin", None, bearer(gserver))
    assert st == 405 and b"group" in body


# --- GET / HEAD / Range / folders / DELETE -------------------------------------------------------

def test_head_and_ranges(gserver: Server) -> None:
    data = bytes(range(256)) * 40
    call(gserver, "PUT", f"/repository/{REPO}/r.bin", data, bearer(gserver))
    st, hdr, body = call(gserver, "HEAD", f"/repository/{REPO}/r.bin")
    assert st == 200 and body == b"" and hdr["content-length"] == str(len(data))
    assert hdr["accept-ranges"] == "bytes"
    st, hdr, body = call(gserver, "GET", f"/repository/{REPO}/r.bin", headers={"Range": "bytes=10-19"})
    assert st == 206 and body == data[10:20] and hdr["content-range"] == f"bytes 10-19/{len(data)}"
    st, _, body = call(gserver, "GET", f"/repository/{REPO}/r.bin", headers={"Range": "bytes=-5"})
    assert st == 206 and body == data[-5:]
    st, hdr, _ = call(gserver, "GET", f"/repository/{REPO}/r.bin", headers={"Range": f"bytes={len(data)}-"})
    assert st == 416 and hdr["content-range"] == f"bytes */{len(data)}"
    st, _, _ = call(gserver, "GET", f"/repository/{REPO}/r.bin", headers={"If-None-Match": hdr.get("etag", '"x"')})
    etag = call(gserver, "HEAD", f"/repository/{REPO}/r.bin")[1]["etag"]
    assert call(gserver, "GET", f"/repository/{REPO}/r.bin", headers={"If-None-Match": etag})[0] == 304
    assert call(gserver, "GET", f"/repository/{REPO}/nope.bin")[0] == 404


def test_matrix_params_on_get_filter(gserver: Server) -> None:
    call(gserver, "PUT", f"/repository/{REPO}/f.bin;stage=prod", b"abc", bearer(gserver))
    assert call(gserver, "GET", f"/repository/{REPO}/f.bin;stage=prod")[0] == 200
    assert call(gserver, "GET", f"/repository/{REPO}/f.bin;stage=dev")[0] == 404


def test_folder_listing(gserver: Server) -> None:
    for p in ("models/a/1/model.pkl", "models/a/2/model.pkl", "models/b.txt", "top.txt"):
        assert call(gserver, "PUT", f"/repository/{REPO}/{p}", p.encode(), bearer(gserver))[0] == 201
    st, hdr, body = call(gserver, "GET", f"/repository/{REPO}/models/")
    assert st == 200 and hdr["content-type"] == "application/json"
    d = json.loads(body)
    assert [(c["name"], c["type"]) for c in d["children"]] == [("a", "folder"), ("b.txt", "file")]
    assert json.loads(call(gserver, "GET", f"/repository/{REPO}/models")[2]) == d  # a prefix with children
    root = json.loads(call(gserver, "GET", f"/repository/{REPO}/")[2])
    assert [c["name"] for c in root["children"]] == ["models", "top.txt"]
    assert call(gserver, "GET", f"/repository/{REPO}/nothing/")[0] == 404


def test_delete_file_and_folder(gserver: Server) -> None:
    for p in ("d/x/1.bin", "d/x/2.bin", "d/y.bin"):
        call(gserver, "PUT", f"/repository/{REPO}/{p}", p.encode(), bearer(gserver))
    assert call(gserver, "DELETE", f"/repository/{REPO}/d/y.bin")[0] == 401
    tok, _ = service.create_token(gserver.app, "admin", "w", ("write",))
    assert call(gserver, "DELETE", f"/repository/{REPO}/d/y.bin", headers={"Authorization": f"Bearer {tok}"})[0] == 403
    st, _, body = call(gserver, "DELETE", f"/repository/{REPO}/d/y.bin", headers=bearer(gserver))
    assert st == 200 and json.loads(body)["deleted"][0]["path"] == "d/y.bin"
    assert call(gserver, "GET", f"/repository/{REPO}/d/y.bin")[0] == 404
    st, _, body = call(gserver, "DELETE", f"/repository/{REPO}/d/x/", headers=bearer(gserver))
    assert st == 200 and len(json.loads(body)["deleted"]) == 2
    assert gserver.app.db.artifacts(REPO) == []
    assert call(gserver, "DELETE", f"/repository/{REPO}/d/x/", headers=bearer(gserver))[0] == 404


def test_group_first_member_wins(gserver: Server) -> None:
    call(gserver, "PUT", f"/repository/{REPO}/m.bin", b"staging", bearer(gserver))
    call(gserver, "PUT", f"/repository/{REPO}/only-staging.bin", b"s", bearer(gserver))
    assert call(gserver, "GET", "/repository/ml-models/m.bin")[2] == b"staging"
    call(gserver, "PUT", "/repository/ml-models-prod/m.bin", b"prod", bearer(gserver))
    assert call(gserver, "GET", "/repository/ml-models/m.bin")[2] == b"prod"
    assert call(gserver, "GET", "/repository/ml-models/only-staging.bin")[2] == b"s"
    listing = json.loads(call(gserver, "GET", "/repository/ml-models/")[2])
    by_name = {c["name"]: c for c in listing["children"]}
    assert by_name["m.bin"]["repo"] == "ml-models-prod"
    assert set(by_name) == {"m.bin", "only-staging.bin"}


def test_anonymous_read_can_be_turned_off(gserver: Server) -> None:
    from dataclasses import replace

    call(gserver, "PUT", f"/repository/{REPO}/s.bin", b"secret", bearer(gserver))
    cfg = gserver.app.config
    gserver.app.set_config(cfg.with_repo(replace(cfg.repo(REPO), anonymous_read=False)))
    assert call(gserver, "GET", f"/repository/{REPO}/s.bin")[0] == 401
    assert call(gserver, "GET", f"/repository/{REPO}/s.bin", headers=bearer(gserver))[2] == b"secret"
    basic = "Basic " + base64.b64encode(f"__token__:{gserver.token}".encode()).decode()
    assert call(gserver, "GET", f"/repository/{REPO}/s.bin", headers={"Authorization": basic})[0] == 200


def test_keep_alive_after_put(gserver: Server) -> None:
    c = conn(gserver)
    for i in range(3):
        c.request("PUT", f"/repository/{REPO}/ka/{i}.bin", body=b"x" * (i + 1), headers=bearer(gserver))
        r = c.getresponse()
        assert r.status == 201
        r.read()
    c.request("GET", f"/repository/{REPO}/ka/2.bin")
    assert c.getresponse().read() == b"xxx"
    c.close()


def _json(body: bytes) -> Any:
    return json.loads(body)
