"""Proxy repositories and groups against real index servers on loopback.

Upstreams: another artifactd (in-thread, PEP 691 JSON with core metadata and sizes) and
pypiserver (a child process, PEP 503 HTML only, no sizes, no metadata). Clients: pip and uv
into fresh virtual environments. Nothing leaves 127.0.0.1.
"""
from __future__ import annotations

import hashlib
import http.client
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Callable, Iterator
from urllib.parse import urljoin, urlsplit

import pytest

from artifactd import hookimpl, service
from artifactd.app import App
from artifactd.cli import cli
from artifactd.http.server import serve_in_thread
from artifactd.repositories.proxy import ProxyPypi
from tests.conftest import BIN, Server, clean_env, run, tool
from tests.dists import make_wheel

pytestmark = pytest.mark.integration

JSON = "application/vnd.pypi.simple.v1+json"


# --- helpers and fixtures ---------------------------------------------------------------------

class DownloadCounter:
    """A plugin for the upstream artifactd: counts files it served."""

    def __init__(self) -> None:
        self.count: dict[str, int] = {}
        self.lock = threading.Lock()

    @hookimpl
    def artifactd_after_download(self, repository: str, artifact: Any, cached: bool) -> None:
        with self.lock:
            self.count[artifact.filename] = self.count.get(artifact.filename, 0) + 1


class Upstream:
    def __init__(self, app: App, httpd: Any, counter: DownloadCounter) -> None:
        self.app = app
        self.httpd = httpd
        self.counter = counter
        self.url = f"{httpd.url}/repository/pypi-local/simple/"

    def add(self, path: Path) -> Any:
        return service.upload_file(self.app, "pypi-local", path).artifact

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def upstream(tmp_path: Path) -> Iterator[Upstream]:
    counter = DownloadCounter()
    app = App(tmp_path / "upstream", plugins=[counter])
    httpd, thread = serve_in_thread(app)
    up = Upstream(app, httpd, counter)
    yield up
    try:
        up.stop()
    except OSError:
        pass
    thread.join(timeout=5)
    app.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PypiServer:
    """pypiserver as a child process on loopback (fallback to the public index disabled)."""

    def __init__(self, root: Path, log: Path) -> None:
        self.root = root
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/simple/"

    def start(self) -> "PypiServer":
        exe = BIN / "pypi-server"
        if not exe.exists():
            pytest.skip("pypiserver is not installed")
        fh = open(self.log, "ab")
        self.proc = subprocess.Popen(
            [str(exe), "run", "-p", str(self.port), "-i", "127.0.0.1", "-a", ".", "-P", ".",
             "--disable-fallback", "--hash-algo", "sha256", str(self.root)],
            stdout=fh, stderr=fh)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(self.url, timeout=2).read()
                return self
            except (OSError, urllib.error.URLError):
                if self.proc.poll() is not None:
                    raise AssertionError("pypiserver exited:\n" + self.log.read_text(errors="replace"))
                time.sleep(0.1)
        raise AssertionError("pypiserver did not start:\n" + self.log.read_text(errors="replace"))

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()  # our own child, by PID
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


@pytest.fixture
def pypiserver(tmp_path: Path) -> Iterator[PypiServer]:
    root = tmp_path / "pypiserver-packages"
    root.mkdir()
    srv = PypiServer(root, tmp_path / "pypiserver.log")
    yield srv
    srv.stop()


def get(url: str, accept: str = JSON, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    req = urllib.request.Request(url, headers={"Accept": accept, **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def page(server: Server, repo: str, project: str) -> dict[str, Any]:
    status, _, body = get(f"{server.simple(repo)}{project}/")
    assert status == 200, body
    return json.loads(body)


def file_url(server: Server, repo: str, project: str, filename: str) -> str:
    doc = page(server, repo, project)
    f = next(f for f in doc["files"] if f["filename"] == filename)
    return urljoin(f"{server.simple(repo)}{project}/", f["url"])


def add_proxy(app: App, url: str, name: str = "remote", group: str | None = "pypi", **kw: Any) -> None:
    service.create_repository(app, name, "proxy", "pypi", url=url, **kw)
    if group:
        from dataclasses import replace

        g = app.config.repo(group)
        assert g is not None
        app.set_config(app.config.with_repo(replace(g, members=g.members + (name,))))


def empty_pages_upstream(before: Callable[[str], None]) -> Any:
    """A threaded index on 127.0.0.1 that answers every project page (PEP 691 JSON, no files)
    after calling ``before(project)``, which may count, delay or hold the request."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class EmptyPages(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            name = self.path.rstrip("/").rsplit("/", 1)[-1]
            before(name)
            body = json.dumps({"meta": {"api-version": "1.1"}, "name": name, "files": []}).encode()
            self.send_response(200)
            self.send_header("Content-Type", JSON)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), EmptyPages)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def pip_install(index: str, venv: Path, tmp_path: Path, *reqs: str) -> subprocess.CompletedProcess[str]:
    env = clean_env(tmp_path)
    return run([sys.executable, "-m", "pip", "--isolated", "--python", str(venv / "bin" / "python"), "install",
                "--index-url", index, "--no-input", *reqs], env)


def new_venv(path: Path) -> Path:
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True)
    return path


def installed(venv: Path) -> dict[str, str]:
    out = {}
    for d in (venv / "lib").glob("python*/site-packages/*.dist-info"):
        name, version = d.name[: -len(".dist-info")].rsplit("-", 1)
        out[name.lower().replace("_", "-")] = version
    return out


# --- required cases ---------------------------------------------------------------------------

def test_pip_mixed_group_survives_upstream_outage_and_restart(tmp_path: Path, pypiserver: PypiServer,
                                                              server_process: Any) -> None:
    # Upstream (pypiserver, real wheels over HTML): the dependencies.
    make_wheel(pypiserver.root, "libalpha", "1.0", requires=["libgamma>=1"])
    make_wheel(pypiserver.root, "libalpha", "2.0", requires=["libgamma>=1"], requires_python=">=3.99")
    make_wheel(pypiserver.root, "libbeta", "1.5")
    make_wheel(pypiserver.root, "libgamma", "3.1")
    pypiserver.start()
    # artifactd (a real child process): hosted app + proxy of pypiserver, in the default group.
    app = App(server_process.data_dir)
    service.upload_file(app, "pypi-local", make_wheel(tmp_path / "own", "myapp", "0.1",
                                                      requires=["libalpha", "libbeta", "internal-lib"]))
    service.upload_file(app, "pypi-local", make_wheel(tmp_path / "own", "internal-lib", "2.0"))
    add_proxy(app, pypiserver.url, metadata_ttl=0.0)  # every page request revalidates
    app.close()
    server_process.start()
    index = f"{server_process.url}/repository/pypi/simple/"

    v1 = new_venv(tmp_path / "v1")
    pip_install(index, v1, tmp_path, "myapp")
    assert installed(v1) == {"myapp": "0.1", "internal-lib": "2.0", "libalpha": "1.0", "libbeta": "1.5",
                             "libgamma": "3.1"}

    # The upstream goes away: the same install in a fresh venv still works (stale-if-error).
    pypiserver.stop()
    v2 = new_venv(tmp_path / "v2")
    pip_install(index, v2, tmp_path, "myapp")
    assert installed(v2) == installed(v1)
    env = clean_env(tmp_path)
    shown = json.loads(run([sys.executable, "-m", "artifactd", "--data-dir", str(server_process.data_dir),
                            "repo", "show", "remote", "--json"], env).stdout)
    assert shown["health"] == "failing" and shown["last_error"] and shown["last_success"]

    # ... and again after a restart of artifactd (the cache is on disk), this time with uv.
    server_process.stop()
    server_process.start()
    index = f"{server_process.url}/repository/pypi/simple/"
    v3 = new_venv(tmp_path / "v3")
    pip_install(index, v3, tmp_path, "myapp")
    assert installed(v3) == installed(v1)
    v4 = new_venv(tmp_path / "v4")
    run([tool("uv"), "pip", "install", "--python", str(v4 / "bin" / "python"), "--index-url", index, "myapp"], env)
    assert installed(v4) == installed(v1)


def test_tampered_upstream_file_is_502_and_not_cached(server: Server, upstream: Upstream, tmp_path: Path) -> None:
    art = upstream.add(make_wheel(tmp_path / "w", "tampered", "1.0", payload=b"x" * 2000))
    # The upstream artifactd would refuse to serve a damaged blob (it re-hashes small files on
    # read): switch that off for it, so that it serves bad bytes under the right hash, as a
    # broken or hostile upstream would.
    from artifactd.store.verify import verifier

    verifier(upstream.app.blobs).limit = -1
    blob = upstream.app.blobs.path(art.sha256)
    os.chmod(blob, 0o644)
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, different bytes
    blob.write_bytes(bytes(data))
    add_proxy(server.app, upstream.url)
    url = file_url(server, "pypi", "tampered", art.filename)
    for _ in range(2):  # still bad the second time: nothing was cached, the upstream is asked again
        status, _, body = get(url)
        assert status == 502, body
        assert b"verification" in body
    assert server.app.db.get_by_filename("remote", art.filename) is None
    assert upstream.counter.count[art.filename] == 2

    # Large files are streamed while written: the mismatch closes the connection before the body ends.
    proxy = server.app.repository("remote")
    assert isinstance(proxy, ProxyPypi)
    proxy.STREAM_THRESHOLD = 0
    with pytest.raises(http.client.IncompleteRead):
        with urllib.request.urlopen(url, timeout=30) as r:
            assert r.status == 200
            r.read()
    assert server.app.db.get_by_filename("remote", art.filename) is None
    assert not any(server.app.layout.tmp.iterdir())


def test_concurrent_requests_cause_one_upstream_fetch(server: Server, upstream: Upstream, tmp_path: Path) -> None:
    art = upstream.add(make_wheel(tmp_path / "w", "bigdep", "1.0", payload=os.urandom(3 * 2**20)))
    add_proxy(server.app, upstream.url)
    url = file_url(server, "pypi", "bigdep", art.filename)
    barrier = threading.Barrier(20)
    results: list[tuple[int, str]] = []
    lock = threading.Lock()

    def fetch() -> None:
        barrier.wait()
        status, _, body = get(url)
        with lock:
            results.append((status, hashlib.sha256(body).hexdigest()))

    threads = [threading.Thread(target=fetch) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert results == [(200, art.sha256)] * 20
    assert upstream.counter.count == {art.filename: 1}


def test_hosted_shadows_upstream_dependency_confusion(server: Server, upstream: Upstream, tmp_path: Path,
                                                      venv: Path) -> None:
    service.upload_file(server.app, "pypi-local", make_wheel(tmp_path / "own", "acme", "1.0"))
    upstream.add(make_wheel(tmp_path / "evil", "acme", "99.0"))
    upstream.add(make_wheel(tmp_path / "evil", "other", "1.0"))
    add_proxy(server.app, upstream.url)
    pip_install(server.simple("pypi"), venv, tmp_path, "acme")
    assert installed(venv)["acme"] == "1.0"
    doc = page(server, "pypi", "acme")
    assert [f["filename"] for f in doc["files"]] == ["acme-1.0-py3-none-any.whl"]
    assert upstream.counter.count == {}

    res = run([sys.executable, "-m", "artifactd", "--data-dir", str(server.app.layout.root), "why", "pypi", "ACME",
               "--json"], clean_env(tmp_path))
    why = json.loads(res.stdout)
    assert why["owner"] == "pypi-local" and why["hidden"] == ["remote"]
    assert [m["result"] for m in why["members"]] == ["serves", "hidden"]
    human = run([sys.executable, "-m", "artifactd", "--data-dir", str(server.app.layout.root), "why", "pypi", "acme"],
                clean_env(tmp_path)).stdout
    assert "served by pypi-local" in human and "remote" in human

    # On the merge list, both members' files are served and the resolver picks 99.0.
    from dataclasses import replace

    g = server.app.config.repo("pypi")
    assert g is not None
    server.app.set_config(server.app.config.with_repo(replace(g, merge=("acme",))))
    versions = page(server, "pypi", "acme")["versions"]
    assert versions == ["1.0", "99.0"]


# --- behaviour --------------------------------------------------------------------------------

def test_proxy_page_keeps_upstream_fields_and_points_at_itself(server: Server, upstream: Upstream,
                                                               tmp_path: Path) -> None:
    art = upstream.add(make_wheel(tmp_path / "w", "fields", "1.0", requires_python=">=3.8"))
    upstream.add(make_wheel(tmp_path / "w", "fields", "1.1"))
    service.yank(upstream.app, "pypi-local", "fields", "1.1", reason="broken")
    add_proxy(server.app, upstream.url, group=None)
    doc = page(server, "remote", "fields")
    up = json.loads(get(upstream.url + "fields/")[2])
    by = {f["filename"]: f for f in doc["files"]}
    for f in up["files"]:
        mine = by[f["filename"]]
        for key in ("hashes", "requires-python", "size", "upload-time", "yanked", "core-metadata"):
            assert mine[key] == f[key], key
        assert not urlsplit(mine["url"]).netloc  # relative: artifactd's own URL
    assert by[art.filename]["yanked"] is False and by["fields-1.1-py3-none-any.whl"]["yanked"] == "broken"
    status, headers, _ = get(server.simple("remote") + "fields/")
    assert headers["Cache-Control"].startswith("max-age=")
    # The upstream's metadata is served (verified), then the file; the page then advertises the cached bytes.
    url = file_url(server, "remote", "fields", art.filename)
    status, _, meta = get(url + ".metadata")
    assert status == 200 and hashlib.sha256(meta).hexdigest() == by[art.filename]["core-metadata"]["sha256"]
    status, headers, body = get(url)
    assert status == 200 and hashlib.sha256(body).hexdigest() == art.sha256
    assert headers["ETag"] == f'"{art.sha256}"' and headers["Cache-Control"] == "max-age=31536000, immutable"


def test_html_upstream_advertises_metadata_for_wheels(server: Server, pypiserver: PypiServer,
                                                      tmp_path: Path) -> None:
    w = make_wheel(pypiserver.root, "htmlonly", "1.0", requires=["x"])
    pypiserver.start()
    add_proxy(server.app, pypiserver.url, group=None)
    doc = page(server, "remote", "htmlonly")
    (f,) = doc["files"]
    assert f["core-metadata"] is True and "size" not in f  # PEP 714 true: hash known once cached
    status, _, html = get(server.simple("remote") + "htmlonly/", "text/html")
    assert b'data-core-metadata="true"' in html
    url = urljoin(server.simple("remote") + "htmlonly/", f["url"])
    status, _, meta = get(url + ".metadata")
    assert status == 200 and b"Requires-Dist: x" in meta
    (f,) = page(server, "remote", "htmlonly")["files"]
    assert f["core-metadata"] == {"sha256": hashlib.sha256(meta).hexdigest()}
    assert f["size"] == w.stat().st_size


def test_upstream_down_with_nothing_cached_is_502_not_fall_through(server: Server, tmp_path: Path) -> None:
    service.upload_file(server.app, "pypi-local", make_wheel(tmp_path / "own", "mine", "1.0"))
    add_proxy(server.app, f"http://127.0.0.1:{free_port()}/simple/", timeout=2.0)
    # The hosted member owns "mine": the proxy is not even asked.
    assert page(server, "pypi", "mine")["versions"] == ["1.0"]
    status, _, body = get(server.simple("pypi") + "unknown-project/")
    assert status == 502, body
    info = service.describe_repository(server.app, "remote")
    assert info["health"] == "failing" and "unreachable" in info["last_error"]["message"]


def test_negative_cache_offline_and_invalidate(server: Server, upstream: Upstream, tmp_path: Path) -> None:
    add_proxy(server.app, upstream.url, group=None)
    status, _, _ = get(server.simple("remote") + "later/")
    assert status == 404
    upstream.add(make_wheel(tmp_path / "w", "later", "1.0"))
    status, _, _ = get(server.simple("remote") + "later/")
    assert status == 404  # the 404 is cached for negative-ttl
    env = clean_env(tmp_path)
    out = run([sys.executable, "-m", "artifactd", "--data-dir", str(server.app.layout.root), "repo", "invalidate",
               "remote", "later"], env).stdout
    assert "dropped 1" in out
    assert page(server, "remote", "later")["versions"] == ["1.0"]
    url = file_url(server, "remote", "later", "later-1.0-py3-none-any.whl")
    assert get(url)[0] == 200

    from dataclasses import replace

    cfg = server.app.config.repo("remote")
    assert cfg is not None
    upstream.add(make_wheel(tmp_path / "w", "uncached", "1.0"))
    server.app.set_config(server.app.config.with_repo(replace(cfg, offline=True)))
    upstream.stop()
    assert page(server, "remote", "later")["versions"] == ["1.0"]
    assert get(url)[0] == 200
    assert get(server.simple("remote") + "uncached/")[0] == 404
    assert service.describe_repository(server.app, "remote")["health"] == "offline"


def test_proxy_fetch_gate_denies(tmp_path: Path, upstream: Upstream) -> None:
    from artifactd.model import Verdict

    class Deny:
        @hookimpl
        def artifactd_check_proxy_fetch(self, repository: str, project: str, version: str, filename: str,
                                        metadata: dict[str, Any]) -> Verdict:
            return Verdict.deny(f"{project} {version} is not allowed", "test")

    upstream.add(make_wheel(tmp_path / "w", "blocked", "1.0"))
    app = App(tmp_path / "gated", plugins=[Deny()])
    add_proxy(app, upstream.url, group=None)
    httpd, thread = serve_in_thread(app)
    try:
        s = Server(app, httpd)
        url = file_url(s, "remote", "blocked", "blocked-1.0-py3-none-any.whl")
        status, _, body = get(url)
        assert status == 403 and b"not allowed" in body
        assert upstream.counter.count == {}
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)
        app.close()


def test_a_reload_keeps_unchanged_repositories_and_their_downloads_in_flight(tmp_path: Path,
                                                                            upstream: Upstream) -> None:
    """A configuration change elsewhere (here ``repo create``) must not make a second upstream fetch
    of a file already being fetched, nor drop the proxy's connection pool; a changed proxy is
    rebuilt; a changed ``[plugins]`` section rebuilds every repository."""
    from dataclasses import replace

    entered, release = threading.Event(), threading.Event()
    gate_calls: list[str] = []

    class Hold:
        @hookimpl
        def artifactd_check_proxy_fetch(self, repository: str, project: str, version: str, filename: str,
                                        metadata: dict[str, Any]) -> None:
            gate_calls.append(filename)
            entered.set()
            release.wait(30)

    art = upstream.add(make_wheel(tmp_path / "w", "slowdep", "1.0", payload=os.urandom(2**20)))
    app = App(tmp_path / "reload", plugins=[Hold()])
    add_proxy(app, upstream.url, group=None)
    httpd, thread = serve_in_thread(app)
    try:
        s = Server(app, httpd)
        url = file_url(s, "remote", "slowdep", art.filename)
        proxy = app.repository("remote")
        assert isinstance(proxy, ProxyPypi)
        results: list[tuple[int, str]] = []

        def fetch() -> None:
            status, _, body = get(url)
            results.append((status, hashlib.sha256(body).hexdigest()))

        first = threading.Thread(target=fetch)
        first.start()
        assert entered.wait(30)  # the first download is under way (held in the gate)
        service.create_repository(app, "elsewhere", "hosted")
        assert app.repository("remote") is proxy
        second = threading.Thread(target=fetch)
        second.start()
        time.sleep(0.3)  # time for the second request to reach the proxy before the first finishes
        release.set()
        for t in (first, second):
            t.join(60)
        assert results == [(200, art.sha256)] * 2
        assert gate_calls == [art.filename] and upstream.counter.count == {art.filename: 1}

        # The same through the file watcher's path: an edit that leaves [repositories.remote] alone.
        toml = app.layout.config
        time.sleep(0.01)
        toml.write_text(toml.read_text() + "\n[repositories.edited]\ntype = \"hosted\"\n")
        os.utime(toml, ns=(time.time_ns(), time.time_ns() + 10**9))
        assert app.reload_if_changed() and app.config.repo("edited") is not None
        assert app.repository("remote") is proxy

        # Changed: a new object with the new setting.
        cfg = app.config.repo("remote")
        assert cfg is not None
        app.set_config(app.config.with_repo(replace(cfg, timeout=7.0)))
        rebuilt = app.repository("remote")
        assert rebuilt is not proxy and rebuilt.config.timeout == 7.0
        assert get(url)[0] == 200  # served from the store by the new object

        # A plugin's settings may shape how a repository is built: a [plugins] change rebuilds all.
        hosted = app.repository("pypi-local")
        app.set_config(replace(app.config, plugins={**app.config.plugins, "example": {"on": True}}))
        assert app.repository("remote") is not rebuilt and app.repository("pypi-local") is not hosted
    finally:
        release.set()
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)
        app.close()


def test_redirects_and_credentials(tmp_path: Path, upstream: Upstream) -> None:
    """Credentials go to the configured origin only; file: redirects are refused; at most 5 hops."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    seen: list[tuple[str, str | None]] = []

    class Redirector(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append((self.path, self.headers.get("Authorization")))
            if self.path.startswith("/loop/"):
                target = "/loop/" + self.path
            elif self.path.startswith("/file/"):
                target = "file:///etc/passwd"
            elif self.path.startswith("/simple/"):  # to another origin (localhost != 127.0.0.1)
                target = f"http://localhost:{self.server.server_address[1]}/other/" + self.path.split("/")[2] + "/"
            else:
                target = upstream.url + self.path.split("/")[2] + "/"
            self.send_response(302)
            self.send_header("Location", target)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *a: Any) -> None:
            pass

    red = ThreadingHTTPServer(("127.0.0.1", 0), Redirector)
    t = threading.Thread(target=red.serve_forever, daemon=True)
    t.start()
    try:
        upstream.add(make_wheel(tmp_path / "w", "hop", "1.0"))
        base = f"http://user:secret@127.0.0.1:{red.server_address[1]}"
        app = App(tmp_path / "creds")
        add_proxy(app, base + "/simple/", group=None)
        add_proxy(app, base + "/loop/", name="loop", group=None)
        add_proxy(app, base + "/file/", name="files", group=None)
        httpd, thread = serve_in_thread(app)
        try:
            s = Server(app, httpd)
            assert page(s, "remote", "hop")["versions"] == ["1.0"]
            assert seen[0] == ("/simple/hop/", "Basic dXNlcjpzZWNyZXQ=")
            assert seen[1] == ("/other/hop/", None)  # another origin: no credentials
            assert get(s.simple("loop") + "hop/")[0] == 502
            assert sum(1 for p, _ in seen if p.startswith("/loop/")) == 6  # first + 5 redirects
            status, _, body = get(s.simple("files") + "hop/", headers={"Authorization": s.basic})
            assert status == 502 and b"non-http" in body
            # A client's credentials are never forwarded upstream.
            assert all(auth in (None, seen[0][1]) for _, auth in seen)
        finally:
            httpd.shutdown()
            httpd.server_close()
            thread.join(5)
            app.close()
    finally:
        red.shutdown()
        red.server_close()


def test_why_and_invalidate_cli_errors(server: Server, tmp_path: Path) -> None:
    from click.testing import CliRunner

    r = CliRunner().invoke(cli, ["--data-dir", str(server.app.layout.root), "why", "pypi-local", "x"])
    assert r.exit_code == 1 and "not a group" in r.output
    r = CliRunner().invoke(cli, ["--data-dir", str(server.app.layout.root), "repo", "invalidate", "pypi-local"])
    assert r.exit_code == 1 and "no proxy cache" in r.output
    r = CliRunner().invoke(cli, ["--data-dir", str(server.app.layout.root), "why", "pypi", "nothing", "--json"])
    assert r.exit_code == 0 and json.loads(r.output)["owner"] is None


def test_upstream_connections_are_bounded(tmp_path: Path) -> None:
    """A proxy asks its upstream at most ``connections`` things at once; the rest wait their turn.

    Unbounded, a cold ``uv pip install`` (~50 requests at once) opened that many connections,
    and a single-threaded upstream (pypiserver on wsgiref, listen backlog 5) dropped the
    excess: each drop cost the client a 1 s SYN retransmit.
    """
    lock = threading.Lock()
    now = {"in": 0, "max": 0, "served": 0}

    def slowly(project: str) -> None:
        with lock:
            now["in"] += 1
            now["max"] = max(now["max"], now["in"])
        time.sleep(0.15)
        with lock:
            now["in"] -= 1
            now["served"] += 1

    slow = empty_pages_upstream(slowly)
    try:
        app = App(tmp_path / "bounded")
        add_proxy(app, f"http://127.0.0.1:{slow.server_address[1]}/simple/", group=None, connections=2)
        assert app.config.repo("remote").connections == 2  # type: ignore[union-attr]
        assert "connections = 2" in (tmp_path / "bounded" / "artifactd.toml").read_text()
        httpd, thread = serve_in_thread(app)
        try:
            # One request first: it settles anything the configuration write above set in motion.
            assert get(f"{httpd.url}/repository/remote/simple/warm-up/")[0] == 200
            now["max"] = 0
            results: list[int] = []

            def ask(i: int) -> None:
                status, _, _ = get(f"{httpd.url}/repository/remote/simple/project-{i}/")
                with lock:
                    results.append(status)

            askers = [threading.Thread(target=ask, args=(i,)) for i in range(8)]
            for t in askers:
                t.start()
            for t in askers:
                t.join(timeout=30)
            assert results == [200] * 8
            assert now["served"] == 9 and now["max"] == 2
        finally:
            httpd.shutdown()
            httpd.server_close()
            thread.join(timeout=5)
            app.close()
    finally:
        slow.shutdown()
        slow.server_close()


def test_requests_queued_on_a_proxy_whose_settings_change_still_finish(tmp_path: Path) -> None:
    """``connections = 1``: one request holds the upstream connection, a second waits for it; the
    proxy's settings change meanwhile. Both finish on the old proxy object, the waiting one as soon
    as the connection comes back (not after its timeout), and the next request uses the new one."""
    held, go = threading.Event(), threading.Event()

    def hold_the_first(project: str) -> None:
        if project == "first":
            held.set()
            go.wait(30)

    up = empty_pages_upstream(hold_the_first)
    app = App(tmp_path / "queued")
    try:
        add_proxy(app, f"http://127.0.0.1:{up.server_address[1]}/simple/", group=None, connections=1,
                  timeout=5.0)
        httpd, thread = serve_in_thread(app)
        try:
            old = app.repository("remote")
            results: dict[str, int] = {}

            def ask(project: str) -> None:
                results[project] = get(f"{httpd.url}/repository/remote/simple/{project}/")[0]

            first = threading.Thread(target=ask, args=("first",))
            first.start()
            assert held.wait(30)  # the one upstream connection is in use
            second = threading.Thread(target=ask, args=("second",))
            second.start()
            time.sleep(0.3)  # the second request is now waiting for that connection
            from dataclasses import replace

            cfg = app.config.repo("remote")
            assert cfg is not None
            app.set_config(app.config.with_repo(replace(cfg, negative_ttl=60.0)))
            started = time.monotonic()
            go.set()
            for t in (first, second):
                t.join(30)
            assert results == {"first": 200, "second": 200}
            assert time.monotonic() - started < 3  # not the 5 s timeout of a request stuck in a closed pool
            assert app.repository("remote") is not old
            assert get(f"{httpd.url}/repository/remote/simple/third/")[0] == 200
        finally:
            go.set()
            httpd.shutdown()
            httpd.server_close()
            thread.join(timeout=5)
    finally:
        app.close()
        up.shutdown()
        up.server_close()


def test_upstream_busy_is_a_timeout_not_a_hang(upstream: Upstream, tmp_path: Path) -> None:
    """With every connection held (a slow client streaming a file), the next request waits at most
    the repository timeout, then fails as a timeout (504), naming the cause."""
    from artifactd.errors import UpstreamTimeout
    from artifactd.formats.pypi.upstream import UpstreamClient

    art = upstream.add(make_wheel(tmp_path / "w", "held", "1.0"))
    # Unset, nothing waits: large downloads hold their connections for the whole transfer.
    assert UpstreamClient(upstream.url).pool.connection_pool_kw["block"] is False
    client = UpstreamClient(upstream.url, timeout=0.3, connections=1)
    page = client.get_project("held")
    assert page.status == "ok" and page.page is not None
    held = client.open_file(page.page.files[0].url)  # streaming, not released: the one connection
    try:
        started = time.monotonic()
        with pytest.raises(UpstreamTimeout, match="upstream busy: all 1 connections"):
            client.get_project("held")
        assert time.monotonic() - started < 5
    finally:
        held.drain_conn()
        held.release_conn()
    assert client.get_project("held").status == "ok"  # the connection is back
    client.close()
    assert art.filename == "held-1.0-py3-none-any.whl"


def test_waiting_on_a_client_or_an_upstream_holds_no_database_connection(server: Server) -> None:
    """A download the client stopped reading, an upload body that stopped arriving and a proxy
    page whose upstream has not answered: none of them keeps a database connection. With the pool
    capped at one connection and a fallback 30 s away, a page request is still answered at once."""
    app = server.app
    held, go = threading.Event(), threading.Event()

    def hold(project: str) -> None:
        held.set()
        go.wait(30)

    up = empty_pages_upstream(hold)
    service.create_repository(app, "files", "hosted", "generic")
    add_proxy(app, f"http://127.0.0.1:{up.server_address[1]}/simple/", group=None)
    port = server.httpd.server_address[1]
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    c.request("PUT", "/repository/files/big.bin", body=os.urandom(24 * 2**20),  # > the socket buffers
              headers={"Authorization": server.basic})
    assert c.getresponse().status == 201
    c.close()

    db = app.db
    db.release_thread()
    db.close_idle()  # start from no idle connections: only what the requests below give back is free
    db.MAX_OPEN, db.MAX_WAIT = 1, 30.0
    socks: list[socket.socket] = []

    def raw(head: str, body: bytes = b"") -> socket.socket:
        s = socket.create_connection(("127.0.0.1", port), timeout=30)
        s.sendall(head.encode() + b"\r\n" + body)
        socks.append(s)
        return s

    def answered_at_once() -> None:
        started = time.monotonic()
        assert get(f"{server.simple('pypi')}")[0] == 200
        assert time.monotonic() - started < 5

    proxy_page = threading.Thread(target=get, args=(f"{server.simple('remote')}slow/",))
    try:
        s = raw("GET /repository/files/big.bin HTTP/1.1\r\nHost: x\r\n")
        assert s.recv(4096).startswith(b"HTTP/1.1 200")  # then stop reading: the send blocks
        answered_at_once()
        raw(f"PUT /repository/files/slow.bin HTTP/1.1\r\nHost: x\r\nAuthorization: {server.basic}\r\n"
            "Content-Length: 1000000\r\n", b"x" * 1000)  # and the rest never comes
        answered_at_once()
        raw(f"POST /repository/pypi-local/ HTTP/1.1\r\nHost: x\r\nAuthorization: {server.basic}\r\n"
            "Content-Type: multipart/form-data; boundary=b\r\nContent-Length: 1000000\r\n",
            b'--b\r\nContent-Disposition: form-data; name=":action"\r\n\r\nfile_upload\r\n')
        answered_at_once()
        proxy_page.start()
        assert held.wait(30)  # the proxy's request is at the upstream, unanswered
        answered_at_once()
    finally:
        go.set()
        for s in socks:
            s.close()
        proxy_page.join(30)
        up.shutdown()
        up.server_close()
