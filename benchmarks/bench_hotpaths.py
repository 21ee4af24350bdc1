"""Micro benchmarks of the request hot paths (pytest-benchmark; not part of the test suite).

    .venv/bin/python -m pytest benchmarks/bench_hotpaths.py --benchmark-columns=min,median,mean,rounds

Project page render cold (database → page bytes) and cached (page cache hit, as the handler
does it), the root page of 10,000 projects, repository state(), Accept negotiation, blob
put/get, a 16 MiB upload stream with the digests a client announced, core-metadata extraction,
whole cached-page requests through the real handler on a loopback connection (per 200
pipelined requests), and one cached page as the connection loop answers it (no socket).
"""
from __future__ import annotations

import hashlib
import sys
from pathlib import Path
from typing import Iterator

import pytest

from artifactd.app import App
from artifactd.formats.pypi import simple
from artifactd.formats.pypi.metadata import extract_metadata
from artifactd.formats.pypi.names import parse_filename
from artifactd.http.server import PageCache
from artifactd.model import isotime, utcnow
from artifactd.store.db import NewArtifact

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.dists import make_wheel  # noqa: E402

JSON = simple.JSON_V1
HTML = simple.TEXT_HTML
VERSIONS = 2000
PROJECTS = 10_000
ACCEPTS = {
    "pip": "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; q=0.1, text/html; q=0.01",
    "uv": "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.01",
    "none": "",
}


def _add(app: App, repo: str, project: str, v: str, now: str) -> None:
    sha = hashlib.sha256(f"{project}{v}".encode()).hexdigest()
    fn = f"{project.replace('-', '_')}-{v}-py3-none-any.whl"
    app.db.add_artifact(NewArtifact(
        repo=repo, path=f"{project}/{v}/{fn}", sha256=sha, size=1000, created=now, kind="pypi",
        project=project, project_name=project, version=v, filename=fn, dist_key=f"{project}-{v}-w",
        packagetype="bdist_wheel", requires_python=">=3.8", metadata_sha256=sha,
        metadata_json='{"name": "%s", "version": "%s", "summary": "a project"}' % (project, v),
    ))


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[App]:
    app = App(tmp_path_factory.mktemp("hot") / "data")
    app.db.con.execute("PRAGMA synchronous=OFF")  # fixture loading only
    now = isotime(utcnow())
    for i in range(VERSIONS):
        _add(app, "pypi-local", "bigproject", f"1.{i}", now)
    for i in range(PROJECTS):
        _add(app, "pypi-local", f"proj-{i:05d}", "1.0", now)
    yield app
    app.close()


@pytest.mark.parametrize("media", [JSON, HTML])
@pytest.mark.parametrize("repo_name", ["pypi-local", "pypi"])
def test_project_page_cold(benchmark, app: App, media: str, repo_name: str) -> None:
    repo = app.repository(repo_name)
    body = benchmark(lambda: simple.render_project(repo.project("bigproject"), media))
    assert body.count(b"bigproject") >= VERSIONS


@pytest.mark.parametrize("repo_name", ["pypi-local", "pypi"])
def test_project_page_cached(benchmark, app: App, repo_name: str) -> None:
    """What the handler does on a cache hit: state(), then the cache lookup."""
    repo = app.repository(repo_name)
    cache = PageCache()
    key = (repo.name, "bigproject", JSON)
    cache.put(key, repo.state(), simple.render_project(repo.project("bigproject"), JSON), '"x"')
    assert benchmark(lambda: cache.get(key, repo.state())) is not None


@pytest.mark.parametrize("media", [JSON, HTML])
def test_root_page_cold_10000_projects(benchmark, app: App, media: str) -> None:
    """Database query and render: a fresh repository object has no projects list kept."""
    from artifactd.repositories.hosted import HostedPypi

    cfg = app.config.repo("pypi-local")
    body = benchmark(lambda: simple.render_root(HostedPypi(app, cfg).projects(), media))
    assert body.count(b"proj-") >= PROJECTS


@pytest.mark.parametrize("media", [JSON, HTML])
def test_root_page_render_10000_projects_list_kept(benchmark, app: App, media: str) -> None:
    """A second media type or a group over the same serial: the projects list is kept, only the render runs."""
    repo = app.repository("pypi")
    body = benchmark(lambda: simple.render_root(repo.projects(), media))
    assert body.count(b"proj-") >= PROJECTS


@pytest.mark.parametrize("repo_name", ["pypi-local", "pypi"])
def test_state(benchmark, app: App, repo_name: str) -> None:
    repo = app.repository(repo_name)
    assert benchmark(repo.state)


@pytest.mark.parametrize("client", sorted(ACCEPTS))
def test_negotiate(benchmark, client: str) -> None:
    assert benchmark(simple.negotiate, ACCEPTS[client]) in (JSON, HTML)


def test_blob_put_64k(benchmark, app: App) -> None:
    import os

    data = [os.urandom(64 * 1024) for _ in range(200)]
    it = iter(range(10**9))
    benchmark(lambda: app.blobs.put_bytes(data[next(it) % 200] + str(next(it)).encode()))


def test_blob_get_64k(benchmark, app: App) -> None:
    import os

    blob = app.blobs.put_bytes(os.urandom(64 * 1024))
    assert len(benchmark(app.blobs.read_bytes, blob.sha256)) == 64 * 1024


@pytest.mark.parametrize("digests", [(), ("md5", "sha1"), ("md5", "blake2_256")], ids=["sha256", "+md5+sha1", "+md5+blake2"])
def test_blob_stream_16m_with_client_digests(benchmark, app: App, digests: tuple[str, ...]) -> None:
    """A 16 MiB upload streamed in 256 KiB chunks with the digests a client announced (generic
    checksum headers, twine): past the first MiB the extra ones hash on a helper thread."""
    import os

    data = os.urandom(16 * 2**20)
    want = {"sha256": hashlib.sha256(data).hexdigest(),
            **({"md5": hashlib.md5(data).hexdigest()} if "md5" in digests else {}),
            **({"sha1": hashlib.sha1(data).hexdigest()} if "sha1" in digests else {}),
            **({"blake2_256": hashlib.blake2b(data, digest_size=32).hexdigest()} if "blake2_256" in digests else {})}
    view = memoryview(data)

    def stream() -> None:
        with app.blobs.writer(extra_digests=digests) as w:
            for i in range(0, len(data), 256 * 1024):
                w.write(view[i:i + 256 * 1024])
            w.verify(want)  # not committed: the next round streams the same bytes again

    benchmark.pedantic(stream, rounds=5, iterations=1)


def test_metadata_extraction(benchmark, tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path, "metapkg", "1.2.3", requires=["requests>=2", "click"], requires_python=">=3.9",
                       payload=b"x" * 10_000)
    dist = parse_filename(wheel.name)
    assert benchmark(extract_metadata, wheel, dist).name == "metapkg"


PIPELINED = 200


def test_handler_cached_project_page_requests(benchmark, app: App) -> None:
    """Whole requests through the real handler: parse, route, state(), cache hit, response head, send
    (a one-version project of the group repository, the common case of an install).

    One handler serves PIPELINED requests sent at once on a loopback TCP connection (a feeder
    thread writes them, a drainer reads the answers); the time is per round of PIPELINED.
    """
    import socket
    import threading

    from artifactd.http.handler import Handler
    from artifactd.http.server import make_server

    server = make_server(app, "127.0.0.1", 0)
    request = (f"GET /repository/pypi/simple/proj-00042/ HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: uv/0.13\r\n"
               f"Accept: {ACCEPTS['uv']}\r\nAccept-Encoding: gzip\r\n\r\n").encode()
    answered: list[int] = []

    def round_trip() -> None:
        with socket.socket() as listener:
            listener.bind(("127.0.0.1", 0))
            listener.listen(1)
            client = socket.create_connection(listener.getsockname())
            conn, _ = listener.accept()

        def feed() -> None:
            client.sendall(request * PIPELINED)
            client.shutdown(socket.SHUT_WR)

        received = bytearray()

        def drain() -> None:
            while chunk := client.recv(1 << 20):
                received.extend(chunk)

        threads = [threading.Thread(target=feed), threading.Thread(target=drain)]
        for t in threads:
            t.start()
        Handler(conn, ("127.0.0.1", 1), server)
        conn.close()
        for t in threads:
            t.join()
        client.close()
        answered.append(received.count(b"HTTP/1.1 200 OK"))

    try:
        round_trip()  # fill the page cache
        benchmark(round_trip)
    finally:
        server.server_close()
    assert set(answered) == {PIPELINED}


def test_loop_inline_cached_project_page(benchmark, app: App) -> None:
    """One cached page request as the connection loop answers it (``Handler.serve_inline``: parse,
    route, state(), cache hit, response bytes), without the socket: what each request costs the
    loop thread on top of its recv and send."""
    import io

    from artifactd.http.loop import _Out
    from artifactd.http.server import make_server

    server = make_server(app, "127.0.0.1", 0)
    head = (f"GET /repository/pypi/simple/proj-00042/ HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: uv/0.13\r\n"
            f"Accept: {ACCEPTS['uv']}\r\nAccept-Encoding: gzip\r\n\r\n").encode()
    handler = server.RequestHandlerClass.for_loop(server, None, ("127.0.0.1", 1))

    def warm() -> None:  # rendered once by "a worker": the loop only answers cached pages
        handler.on_loop = False
        one()
        handler.on_loop = True

    def one() -> bytes:
        handler.rfile = io.BytesIO(head)
        out = handler.wfile = _Out()
        handler.serve_inline()
        return b"".join(out.parts)

    try:
        warm()
        answer = benchmark(one)
    finally:
        server.server_close()
    assert answer.startswith(b"HTTP/1.1 200 OK") and b"proj-00042" in answer
