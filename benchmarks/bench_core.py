"""Hot paths of the core: project page render and serve (cold and cached), upload, download.

    .venv/bin/python -m pytest benchmarks/bench_core.py --benchmark-columns=min,median,mean,max,rounds

Target (issue 2): a project with 2,000 versions serves its page in under 20 ms warm.
"""
from __future__ import annotations

import hashlib
import http.client
import json
import os
import zipfile
from pathlib import Path
from typing import Iterator
from urllib.parse import urlsplit

import pytest

from artifactd.app import App
from artifactd.formats.pypi import simple
from artifactd.http.server import serve_in_thread
from artifactd.model import isotime, utcnow
from artifactd.service import create_token
from artifactd.store.db import NewArtifact

JSON = "application/vnd.pypi.simple.v1+json"
VERSIONS = 2000


@pytest.fixture(scope="module")
def big_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[App]:
    app = App(tmp_path_factory.mktemp("bench") / "data")
    now = isotime(utcnow())
    for i in range(VERSIONS):
        v = f"1.{i}"
        sha = hashlib.sha256(v.encode()).hexdigest()
        app.db.add_artifact(NewArtifact(
            repo="pypi-local", path=f"bigproject/{v}/bigproject-{v}-py3-none-any.whl", sha256=sha, size=1000 + i,
            created=now, kind="pypi", project="bigproject", project_name="BigProject", version=v,
            filename=f"bigproject-{v}-py3-none-any.whl", dist_key=f"w{v}", packagetype="bdist_wheel",
            requires_python=">=3.8", metadata_sha256=sha,
        ))
    yield app
    app.close()


def test_render_project_page_2000_versions_cold_json(benchmark, big_app: App) -> None:
    repo = big_app.repository("pypi-local")
    body = benchmark(lambda: simple.render_project(repo.project("bigproject"), JSON))
    assert len(json.loads(body)["files"]) == VERSIONS


def test_render_project_page_2000_versions_cold_html(benchmark, big_app: App) -> None:
    repo = big_app.repository("pypi-local")
    body = benchmark(lambda: simple.render_project(repo.project("bigproject"), simple.TEXT_HTML))
    assert body.count(b"<a ") == VERSIONS


@pytest.fixture(scope="module")
def served(big_app: App) -> Iterator[tuple[str, int]]:
    httpd, thread = serve_in_thread(big_app)
    u = urlsplit(httpd.url)
    yield u.hostname or "127.0.0.1", u.port or 0
    httpd.shutdown()
    httpd.server_close()


@pytest.mark.parametrize("path", ["/repository/pypi-local/simple/bigproject/", "/repository/pypi/simple/bigproject/"])
def test_serve_project_page_2000_versions_warm(benchmark, served: tuple[str, int], path: str) -> None:
    c = http.client.HTTPConnection(*served)

    def get() -> int:
        c.request("GET", path, headers={"Accept": JSON})
        r = c.getresponse()
        r.read()
        return r.status

    assert benchmark(get) == 200


def test_serve_project_page_304(benchmark, served: tuple[str, int]) -> None:
    c = http.client.HTTPConnection(*served)
    c.request("GET", "/repository/pypi/simple/bigproject/", headers={"Accept": JSON})
    r = c.getresponse()
    r.read()
    etag = r.getheader("ETag")

    def get() -> int:
        c.request("GET", "/repository/pypi/simple/bigproject/", headers={"Accept": JSON, "If-None-Match": etag})
        r = c.getresponse()
        r.read()
        return r.status

    assert benchmark(get) == 304


def big_wheel(directory: Path, name: str, size: int) -> Path:
    """A valid wheel with one stored member of ``size`` random-ish bytes, written in chunks."""
    path = directory / f"{name}-1.0-py3-none-any.whl"
    chunk = os.urandom(1 << 20)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr(f"{name}-1.0.dist-info/METADATA", f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
        zf.writestr(f"{name}-1.0.dist-info/WHEEL", "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        with zf.open(f"{name}/blob.bin", "w", force_zip64=True) as fh:
            left = size
            while left > 0:
                fh.write(chunk[: min(left, len(chunk))])
                left -= len(chunk)
    return path


def stream_upload(host: str, port: int, token: str, repo: str, path: Path) -> int:
    """POST a file as the legacy upload API's multipart form, streamed from disk."""
    import base64

    sha = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            sha.update(chunk)
    name, version = path.name.split("-")[:2]
    b = "benchboundary"
    head = "".join(f'--{b}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n' for k, v in {
        ":action": "file_upload", "protocol_version": "1", "name": name, "version": version,
        "filetype": "bdist_wheel", "pyversion": "py3", "sha256_digest": sha.hexdigest()}.items())
    head += f'--{b}\r\nContent-Disposition: form-data; name="content"; filename="{path.name}"\r\n\r\n'
    tail = f"\r\n--{b}--\r\n".encode()
    length = len(head.encode()) + path.stat().st_size + len(tail)

    def body() -> Iterator[bytes]:
        yield head.encode()
        with open(path, "rb") as fh:
            while chunk := fh.read(1 << 20):
                yield chunk
        yield tail

    c = http.client.HTTPConnection(host, port, timeout=600)
    auth = base64.b64encode(f"__token__:{token}".encode()).decode()
    c.request("POST", f"/repository/{repo}/", body=body(), headers={
        "Content-Type": f"multipart/form-data; boundary={b}", "Content-Length": str(length),
        "Authorization": f"Basic {auth}"})
    r = c.getresponse()
    r.read()
    return r.status


def stream_download(host: str, port: int, path: str) -> int:
    c = http.client.HTTPConnection(host, port, timeout=600)
    c.request("GET", path)
    r = c.getresponse()
    n = 0
    while chunk := r.read(1 << 20):
        n += len(chunk)
    return n


def test_upload_50mb_wheel(benchmark, tmp_path: Path) -> None:
    app = App(tmp_path / "data")
    token, _ = create_token(app, "admin", "bench", ("admin",))
    httpd, _ = serve_in_thread(app)
    u = urlsplit(httpd.url)
    wheel = big_wheel(tmp_path, "fiftymb", 50 * 2**20)
    counter = iter(range(10**6))

    def setup() -> tuple[tuple[object, ...], dict[str, object]]:
        repo = f"up{next(counter)}"
        from artifactd.service import create_repository

        create_repository(app, repo, "hosted")
        return (u.hostname, u.port, token, repo, wheel), {}

    status = benchmark.pedantic(stream_upload, setup=setup, rounds=5)
    assert status == 200
    httpd.shutdown()
    httpd.server_close()


def test_download_500mb(benchmark, tmp_path: Path) -> None:
    from artifactd.service import upload_file

    app = App(tmp_path / "data")
    wheel = big_wheel(tmp_path, "fivehundred", 500 * 2**20)
    upload_file(app, "pypi-local", wheel)
    httpd, _ = serve_in_thread(app)
    u = urlsplit(httpd.url)
    path = f"/repository/pypi/packages/fivehundred/1.0/{wheel.name}"
    n = benchmark.pedantic(stream_download, args=(u.hostname, u.port, path), rounds=3)
    assert n == wheel.stat().st_size
    httpd.shutdown()
    httpd.server_close()
