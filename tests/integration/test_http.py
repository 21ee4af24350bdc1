"""The index and file endpoints at the HTTP level (STANDARDS §1-§6)."""
from __future__ import annotations

import http.client
import json
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from artifactd.service import upload_file
from tests.conftest import Server
from tests.dists import make_sdist, make_wheel

JSON = "application/vnd.pypi.simple.v1+json"


@pytest.fixture
def loaded(server: Server, tmp_path: Path) -> Server:
    upload_file(server.app, "pypi-local", make_wheel(tmp_path, "Foo_Bar", "1.0", requires_python=">=3.9"))
    upload_file(server.app, "pypi-local", make_wheel(tmp_path, "Foo_Bar", "1.1"))
    upload_file(server.app, "pypi-local", make_sdist(tmp_path, "Foo_Bar", "1.1"))
    return server


def conn(server: Server) -> http.client.HTTPConnection:
    u = urlsplit(server.url)
    return http.client.HTTPConnection(u.hostname, u.port, timeout=10)


def get(c: http.client.HTTPConnection, path: str, headers: dict[str, str] | None = None,
        method: str = "GET") -> tuple[http.client.HTTPResponse, bytes]:
    c.request(method, path, headers=headers or {})
    r = c.getresponse()
    return r, r.read()


def test_negotiation_json_html_and_406(loaded: Server) -> None:
    c = conn(loaded)
    for accept, expected in [
        (f"{JSON}, application/vnd.pypi.simple.v1+html; q=0.1, text/html; q=0.01", JSON),  # pip
        (f"{JSON}, application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.01", JSON),  # uv
        (f"{JSON}, */*;q=0.1", JSON),  # poetry
        ("application/vnd.pypi.simple.latest+json", JSON),
        ("application/vnd.pypi.simple.v1+html", "application/vnd.pypi.simple.v1+html"),
        ("*/*", "text/html"),
        (None, "text/html"),
    ]:
        r, body = get(c, "/repository/pypi-local/simple/foo-bar/", {"Accept": accept} if accept else {})
        assert r.status == 200
        assert r.getheader("Content-Type").split(";")[0] == expected
        assert r.getheader("Vary") == "Accept"
        assert r.getheader("Cache-Control") == "max-age=0, must-revalidate"
    r, _ = get(c, "/repository/pypi-local/simple/foo-bar/", {"Accept": "application/json"})
    assert r.status == 406


def test_project_json_content(loaded: Server) -> None:
    c = conn(loaded)
    r, body = get(c, "/repository/pypi/simple/foo-bar/", {"Accept": JSON})
    doc = json.loads(body)
    assert doc["meta"]["api-version"] == "1.1"
    assert doc["name"] == "foo-bar"
    assert doc["versions"] == ["1.0", "1.1"]
    names = [f["filename"] for f in doc["files"]]
    assert names == ["foo_bar-1.0-py3-none-any.whl", "foo_bar-1.1-py3-none-any.whl", "foo_bar-1.1.tar.gz"]
    whl = doc["files"][0]
    assert whl["requires-python"] == ">=3.9" and isinstance(whl["size"], int)
    assert whl["upload-time"].endswith("Z") and len(whl["upload-time"].split(".")[1]) == 7
    assert "core-metadata" in whl and "dist-info-metadata" not in whl
    assert "core-metadata" not in doc["files"][2]
    assert whl["url"].startswith("../../packages/foo-bar/1.0/")


def test_html_escaping_and_root(loaded: Server) -> None:
    c = conn(loaded)
    r, body = get(c, "/repository/pypi-local/simple/foo-bar/")
    assert b'data-requires-python="&gt;=3.9"' in body
    assert b'<meta name="pypi:repository-version" content="1.1">' in body
    r, body = get(c, "/repository/pypi-local/simple/")
    assert b'<a href="foo-bar/">Foo_Bar</a>' in body
    r, body = get(c, "/repository/pypi-local/simple/", {"Accept": JSON})
    assert json.loads(body)["projects"] == [{"name": "Foo_Bar"}]


def test_redirects_to_normalized_name(loaded: Server) -> None:
    c = conn(loaded)
    for path in ("/repository/pypi-local/simple/Foo_Bar/", "/repository/pypi-local/simple/foo.bar",
                 "/repository/pypi-local/simple/foo-bar"):
        r, _ = get(c, path)
        assert r.status == 301
        assert r.getheader("Location") == "/repository/pypi-local/simple/foo-bar/"
    r, _ = get(c, "/repository/pypi-local/simple")
    assert r.status == 301 and r.getheader("Location") == "/repository/pypi-local/simple/"


def test_unknown_project_and_repo_404(loaded: Server) -> None:
    c = conn(loaded)
    assert get(c, "/repository/pypi-local/simple/nope/")[0].status == 404
    assert get(c, "/repository/nope/simple/")[0].status == 404


def test_etag_304_and_invalidation_after_upload(loaded: Server, tmp_path: Path) -> None:
    c = conn(loaded)
    r, _ = get(c, "/repository/pypi/simple/foo-bar/", {"Accept": JSON})
    etag = r.getheader("ETag")
    assert etag.startswith('"') and not etag.startswith("W/")
    r, body = get(c, "/repository/pypi/simple/foo-bar/", {"Accept": JSON, "If-None-Match": etag})
    assert r.status == 304 and body == b""
    upload_file(loaded.app, "pypi-local", make_wheel(tmp_path / "x", "Foo_Bar", "2.0"))
    r, body = get(c, "/repository/pypi/simple/foo-bar/", {"Accept": JSON, "If-None-Match": etag})
    assert r.status == 200 and "2.0" in json.loads(body)["versions"]
    # The HTML and JSON variants have different ETags.
    r2, _ = get(c, "/repository/pypi/simple/foo-bar/")
    assert r2.getheader("ETag") != r.getheader("ETag")


def _file_path(server: Server) -> str:
    return "/repository/pypi/packages/foo-bar/1.1/foo_bar-1.1.tar.gz"


def test_file_get_head_headers(loaded: Server) -> None:
    c = conn(loaded)
    r, body = get(c, _file_path(loaded))
    assert r.status == 200
    head, hbody = get(c, _file_path(loaded), method="HEAD")
    assert hbody == b""
    for h in ("Content-Length", "ETag", "Last-Modified", "Accept-Ranges", "Cache-Control", "Content-Type"):
        assert head.getheader(h) == r.getheader(h), h
    assert r.getheader("Accept-Ranges") == "bytes"
    assert r.getheader("Cache-Control") == "max-age=31536000, immutable"
    assert r.getheader("Content-Encoding") is None
    assert int(r.getheader("Content-Length")) == len(body)


def test_ranges(loaded: Server) -> None:
    c = conn(loaded)
    _, full = get(c, _file_path(loaded))
    n = len(full)
    r, b = get(c, _file_path(loaded), {"Range": "bytes=0-9"})
    assert r.status == 206 and b == full[:10] and r.getheader("Content-Range") == f"bytes 0-9/{n}"
    r, b = get(c, _file_path(loaded), {"Range": "bytes=10-"})
    assert r.status == 206 and b == full[10:]
    r, b = get(c, _file_path(loaded), {"Range": "bytes=-5"})
    assert r.status == 206 and b == full[-5:] and r.getheader("Content-Range") == f"bytes {n - 5}-{n - 1}/{n}"
    r, b = get(c, _file_path(loaded), {"Range": f"bytes={n}-"})
    assert r.status == 416 and r.getheader("Content-Range") == f"bytes */{n}"
    r, b = get(c, _file_path(loaded), {"Range": "bytes=0-9", "If-Range": '"not-the-etag"'})
    assert r.status == 200 and b == full
    etag = r.getheader("ETag")
    r, b = get(c, _file_path(loaded), {"Range": "bytes=0-9", "If-Range": etag})
    assert r.status == 206 and b == full[:10]


def test_metadata_endpoint_and_sdist_has_none(loaded: Server) -> None:
    c = conn(loaded)
    r, body = get(c, "/repository/pypi/packages/foo-bar/1.0/foo_bar-1.0-py3-none-any.whl.metadata")
    assert r.status == 200 and body.startswith(b"Metadata-Version")
    r, _ = get(c, "/repository/pypi/packages/foo-bar/1.1/foo_bar-1.1.tar.gz.metadata")
    assert r.status == 404


def test_keep_alive_many_requests_one_connection(loaded: Server) -> None:
    c = conn(loaded)
    for _ in range(50):
        r, _ = get(c, "/repository/pypi/simple/foo-bar/", {"Accept": JSON})
        assert r.status == 200
    assert c.sock is not None  # the same connection was reused


def test_post_to_simple_is_405(loaded: Server) -> None:
    c = conn(loaded)
    c.request("POST", "/repository/pypi-local/simple/", body=b"x", headers={"Authorization": loaded.basic})
    assert c.getresponse().status == 405


def test_health_and_metrics(loaded: Server) -> None:
    c = conn(loaded)
    r, body = get(c, "/-/health")
    assert r.status == 200 and json.loads(body)["status"] == "ok"
    r, body = get(c, "/-/metrics")
    assert r.status == 200 and b"artifactd_http_requests_total" in body
    assert b'artifactd_repository_files{repository="pypi-local"} 3' in body


def test_traversal_paths_rejected(loaded: Server) -> None:
    c = conn(loaded)
    for path in ("/repository/pypi/packages/foo-bar/1.0/..%2F..%2F..%2Fetc%2Fpasswd",
                 "/repository/%2e%2e/simple/", "/%2F%2F..%2F..%2Fetc%2Fpasswd",
                 "/repository/pypi/packages/foo-bar/1.0/a%5C..%5Cb", "/repository/pypi/simple/a%00b/",
                 "/repository/pypi/packages/foo-bar/1.0/%252e%252e%252fetc"):
        r, body = get(c, path)
        assert r.status in (400, 404), path
        assert b"root:" not in body
    # Reflected input is never echoed unescaped.
    r, body = get(c, "/repository/pypi/simple/?<script>alert(1)</script>")
    assert b"<script>" not in body


def test_docker_repository_has_no_simple_index(server: Server) -> None:
    from artifactd.service import create_repository

    create_repository(server.app, "images", "hosted", "docker")
    c = conn(server)
    r, body = get(c, "/repository/images/simple/")
    assert r.status == 404 and b"/v2/" in body


def test_project_page_etag_survives_other_projects_changes(loaded: Server, tmp_path: Path) -> None:
    """Per-project serials: an upload of another project leaves this page cached and its ETag valid;
    a change to this project (upload, yank, delete) replaces it."""
    from artifactd.service import yank

    c = conn(loaded)

    def etag(path: str) -> str:
        r, _ = get(c, path, {"Accept": JSON})
        assert r.status == 200
        return r.getheader("ETag")

    for path in ("/repository/pypi-local/simple/foo-bar/", "/repository/pypi/simple/foo-bar/"):
        before = etag(path)
        upload_file(loaded.app, "pypi-local", make_wheel(tmp_path / "other", "unrelated", "1.0"))
        assert etag(path) == before
        r, _ = get(c, path, {"Accept": JSON, "If-None-Match": before})
        assert r.status == 304
    before = etag("/repository/pypi/simple/foo-bar/")
    yank(loaded.app, "pypi-local", "foo-bar", "1.0", reason="bad")
    after_yank = etag("/repository/pypi/simple/foo-bar/")
    assert after_yank != before
    art = loaded.app.db.get_by_filename("pypi-local", "foo_bar-1.1.tar.gz")
    loaded.app.db.delete_artifact(art.id)
    r, body = get(c, "/repository/pypi/simple/foo-bar/", {"Accept": JSON})
    assert r.getheader("ETag") != after_yank
    assert "foo_bar-1.1.tar.gz" not in body.decode()
