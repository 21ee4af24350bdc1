"""The connection loop (artifactd/http/loop.py): index pages answered on the loop thread, everything
else handed to a worker with the bytes already read, and connections given back once idle."""
from __future__ import annotations

import base64
import http.client
import json
import os
import socket
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Iterator
from urllib.parse import urljoin

import pytest

from artifactd import hookimpl, service
from artifactd.app import App
from artifactd.auth import hash_password
from artifactd.http.loop import cheap_credentials, head_end
from artifactd.http.server import ArtifactServer, serve_in_thread
from tests.conftest import Proc, Server
from tests.dists import make_wheel
from tests.integration.test_watch_plugins import wait_for as _eventually

JSON = "application/vnd.pypi.simple.v1+json"


def read_response_head(f: "socket.SocketIO | object") -> tuple[int, dict[str, str]]:
    """The status and headers of one HTTP/1.1 response from a buffered socket reader."""
    status_line = f.readline()  # type: ignore[attr-defined]
    assert status_line.startswith(b"HTTP/1.1 "), status_line
    headers = {}
    while (line := f.readline()) not in (b"\r\n", b""):  # type: ignore[attr-defined]
        k, _, v = line.decode("latin-1").partition(":")
        headers[k.strip().lower()] = v.strip()
    return int(status_line.split()[1]), headers


def read_response(f: "socket.SocketIO | object") -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 response with a Content-Length from a buffered socket reader."""
    status, headers = read_response_head(f)
    body = f.read(int(headers["content-length"])) if "content-length" in headers else b""  # type: ignore[attr-defined]
    return status, headers, body


def get_once(port: int, path: str, accept: str | None = None) -> bytes:
    """One GET on a connection of its own (closed after it): the body of its 200."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request("GET", path, headers={"Connection": "close", **({"Accept": accept} if accept else {})})
    r = c.getresponse()
    body = r.read()
    c.close()
    assert r.status == 200, body
    return body


PAGES = ("/repository/pypi/simple/", "/repository/pypi/simple/demo/", "/repository/pypi-local/simple/demo/")


def warm(server: Server) -> None:
    """Render the test's pages once (a page not yet cached is rendered by a worker)."""
    c = http.client.HTTPConnection("127.0.0.1", server.httpd.server_address[1], timeout=10)
    for path in PAGES:
        for accept in (JSON, "text/html"):
            c.request("GET", path, headers={"Accept": accept})
            assert c.getresponse().read()
    c.close()
    assert server.settled()  # every worker idle again (so done giving connections back), the loop holding none


@pytest.fixture
def loaded(server: Server, tmp_path: Path) -> Server:
    for v in ("1.0", "1.1"):
        service.upload_file(server.app, "pypi-local", make_wheel(tmp_path / "w", "demo", v))
    return server


def test_pages_on_one_connection_stay_on_the_loop(loaded: Server) -> None:
    """Cached pages are answered on the loop; a page to render goes to a worker, which gives the
    connection straight back."""
    loop = loaded.httpd.loop
    c = http.client.HTTPConnection("127.0.0.1", loaded.httpd.server_address[1], timeout=10)
    for round_ in range(2):
        served, handed = loop.inline_served, loop.handed_off
        for path in PAGES:
            c.request("GET", path, headers={"Accept": JSON})
            r = c.getresponse()
            assert r.status == 200
            assert "demo" in json.dumps(json.loads(r.read()))
            assert _eventually(lambda: loop.open_connections() == 1)  # back on the loop (at once: no linger)
        c.request("HEAD", "/repository/pypi/simple/demo/", headers={"Accept": JSON})
        r = c.getresponse()
        assert r.status == 200 and r.read() == b"" and int(r.headers["Content-Length"]) > 0
        if round_ == 0:  # not cached yet: each of the three rendered by a worker
            assert (loop.inline_served - served, loop.handed_off - handed) == (1, 3)
        else:
            assert (loop.inline_served - served, loop.handed_off - handed) == (4, 0)
    c.close()


def test_the_loop_reads_requests_without_a_block_per_read(loaded: Server) -> None:
    """The loop reads into one buffer of its own and copies out what came. recv(65536) made a
    64 KiB block per read, shrunk to the request's size: glibc split it, and the rest, between
    blocks that stayed, grew the loop thread's heap by ~1 MB over a uv install."""
    import tracemalloc

    warm(loaded)
    loop = loaded.httpd.loop
    s = socket.create_connection(("127.0.0.1", loaded.httpd.server_address[1]), timeout=10)
    f = s.makefile("rb")  # its buffer is made before the measurement
    request = b"GET /repository/pypi/simple/demo/ HTTP/1.1\r\nHost: x\r\nAccept: " + JSON.encode() + b"\r\n\r\n"

    def one() -> None:
        s.sendall(request)
        assert read_response(f)[0] == 200

    one()
    served = loop.inline_served
    tracemalloc.start()
    try:
        for _ in range(20):
            one()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        f.close()
        s.close()
    assert loop.inline_served - served == 20
    assert peak < 48 * 1024, f"20 cached pages on the loop allocated {peak} bytes at once"


def test_other_requests_go_to_a_worker_and_the_connection_comes_back(loaded: Server) -> None:
    warm(loaded)
    loop = loaded.httpd.loop
    served, handed, back = loop.inline_served, loop.handed_off, loop.given_back
    c = http.client.HTTPConnection("127.0.0.1", loaded.httpd.server_address[1], timeout=10)
    c.request("GET", "/repository/pypi/simple/demo/")
    r = c.getresponse()
    assert r.status == 200
    link = urljoin("/repository/pypi/simple/demo/", r.read().decode().split('href="')[1].split("#")[0])
    c.request("GET", "/-/health")  # not a page or a file: a worker answers
    r = c.getresponse()
    assert r.status == 200 and json.loads(r.read())["status"] == "ok"
    c.request("GET", link)  # asked for at once: the same worker, still lingering, sends the file
    r = c.getresponse()
    assert r.status == 200 and r.read()[:2] == b"PK"
    assert loop.handed_off - handed == 1
    assert _eventually(lambda: loop.open_connections() == 1)  # after worker_linger: given back, idle, on the loop
    c.request("GET", "/repository/pypi/simple/demo/")  # the same connection, on the loop again
    assert c.getresponse().read()
    c.request("GET", "/repository/pypi/simple")  # no slash: a redirect, from a worker
    r = c.getresponse()
    assert r.status == 301 and r.read() == b""
    c.close()
    assert loop.inline_served - served == 2
    assert loop.handed_off - handed == 2
    # Given back twice: after the health check's worker lingered in vain, and at once after the
    # redirect (a /simple URL, which the loop may answer once cached: no linger).
    assert _eventually(lambda: loop.given_back - back == 2)


def _links(server: Server, project: str) -> list[str]:
    files = json.loads(get_once(server.httpd.server_address[1], f"/repository/pypi/simple/{project}/", JSON))["files"]
    return [urljoin(f"/repository/pypi/simple/{project}/", f["url"]) for f in files]


def test_files_are_sent_by_the_loop(loaded: Server, tmp_path: Path) -> None:
    """Downloads from hosted repositories (and groups of them) need no worker: the loop sends the
    file with sendfile as the client takes it, pipelined requests behind it, Range and HEAD too."""
    warm(loaded)
    link = _links(loaded, "demo")[0]
    want = (tmp_path / "w" / link.rsplit("/", 1)[1]).read_bytes()
    loop = loaded.httpd.loop
    served, handed = loop.inline_served, loop.handed_off
    with socket.create_connection(("127.0.0.1", loaded.httpd.server_address[1]), timeout=10) as s:
        s.sendall(f"GET {link} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
                  + f"GET {link}.metadata HTTP/1.1\r\nHost: x\r\n\r\n".encode()
                  + f"GET {link} HTTP/1.1\r\nHost: x\r\nRange: bytes=0-1\r\n\r\n".encode()
                  + f"HEAD {link} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
                  + b"GET /repository/pypi/simple/demo/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        f = s.makefile("rb")
        status, headers, body = read_response(f)
        assert status == 200 and body == want
        status, _, meta = read_response(f)
        assert status == 200 and b"Name: demo" in meta
        status, headers, part = read_response(f)
        assert status == 206 and part == b"PK" and headers["content-range"] == f"bytes 0-1/{len(body)}"
        status, headers = read_response_head(f)  # HEAD: the length, no body
        assert status == 200 and int(headers["content-length"]) == len(body)
        status, _, page = read_response(f)
        assert status == 200 and b"demo" in page
        assert f.read() == b""  # closed after the last, as asked
    assert (loop.inline_served - served, loop.handed_off - handed) == (5, 0)


def test_a_large_file_and_a_download_hook_go_to_a_worker(loaded: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    warm(loaded)
    link = _links(loaded, "demo")[0]
    loop = loaded.httpd.loop
    port = loaded.httpd.server_address[1]

    handed = loop.handed_off
    small = get_once(port, link)
    assert loop.handed_off == handed
    monkeypatch.setattr("artifactd.http.handler.LOOP_FILE_MAX", len(small) - 1)
    assert get_once(port, link) == small and loop.handed_off == handed + 1  # larger than the loop sends itself
    monkeypatch.undo()
    workers = loaded.httpd.workers
    # That worker calls the download hooks after the last byte: let it finish before listening.
    assert _eventually(lambda: workers.idle() == workers.live())
    seen: list[str] = []

    class Listener:
        @hookimpl
        def artifactd_after_download(self, repository: str, artifact: object) -> None:
            seen.append(repository)

    loaded.app.hooks.pm.register(Listener())
    try:
        assert get_once(port, link) == small and loop.handed_off == handed + 2  # the hook runs on a worker
        assert _eventually(lambda: seen == ["pypi"])  # (called once the file is out)
    finally:
        loaded.app.hooks.pm.unregister(name=loaded.app.hooks.pm.get_name(next(
            p for p in loaded.app.hooks.pm.get_plugins() if isinstance(p, Listener))))


def test_files_go_to_workers_while_the_loop_waits_for_the_gil(loaded: Server) -> None:
    """Under load (inline requests waiting for the GIL), the loop leaves files to workers; the
    measure decays at every sweep, and files come back to the loop once it is quiet."""
    warm(loaded)
    link = _links(loaded, "demo")[0]
    loop = loaded.httpd.loop
    port = loaded.httpd.server_address[1]

    handed, shed = loop.handed_off, loop.files_shed
    loop.waited = 0.004  # as if inline requests had lately waited 4 ms each for the GIL
    want = get_once(port, link)
    assert (loop.handed_off - handed, loop.files_shed - shed) == (1, 1)
    assert _eventually(lambda: loop.waited < 0.001, timeout=5)  # two or three sweeps
    assert get_once(port, link) == want and loop.handed_off - handed == 1  # the loop sends it again


def test_a_slow_reader_gets_the_whole_file_and_a_stuck_one_is_dropped(server: Server, tmp_path: Path) -> None:
    import random

    rnd = random.Random(7)
    blob = rnd.randbytes(300_000)  # written as hex into the module: the wheel is ~300 kB
    wheel = make_wheel(tmp_path / "w", "bulky", "1.0", payload=blob)
    service.upload_file(server.app, "pypi-local", wheel)
    want = wheel.read_bytes()
    link = _links(server, "bulky")[0]
    server.httpd.socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)  # accepted sockets inherit it
    port = server.httpd.server_address[1]
    loop = server.httpd.loop
    handed = loop.handed_off
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.settimeout(10)
    s.connect(("127.0.0.1", port))
    with s:
        s.sendall(f"GET {link} HTTP/1.1\r\nHost: x\r\n\r\n".encode() * 2)
        f = s.makefile("rb")
        for _ in range(2):
            got = b""
            status, headers = read_response_head(f)
            assert status == 200
            while len(got) < int(headers["content-length"]):
                got += f.read(min(8192, int(headers["content-length"]) - len(got)))
                time.sleep(0.0005)
            assert got == want
        f.close()  # (the socket's descriptor stays open while a reader made from it is)
    assert loop.handed_off == handed  # no worker was needed
    assert _eventually(lambda: loop.open_connections() == 0)
    server.httpd.request_timeout = 0.5
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(("127.0.0.1", port))
    with s:
        s.sendall(f"GET {link} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        time.sleep(0.3)
        assert loop.open_connections() == 1  # still sending
        assert _eventually(lambda: loop.open_connections() == 0, timeout=5)  # given up on
    assert loop.handed_off == handed


def test_pipelined_requests_answered_in_order_across_the_hand_over(loaded: Server) -> None:
    u = ("127.0.0.1", loaded.httpd.server_address[1])
    with socket.create_connection(u, timeout=10) as s:
        s.sendall(b"GET /repository/pypi/simple/demo/ HTTP/1.1\r\nHost: x\r\nAccept: " + JSON.encode() + b"\r\n\r\n"
                  b"GET /-/health HTTP/1.1\r\nHost: x\r\n\r\n"
                  b"GET /repository/pypi/simple/ HTTP/1.1\r\nHost: x\r\nAccept: " + JSON.encode() + b"\r\n\r\n"
                  b"GET /repository/pypi/simple/nope/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        f = s.makefile("rb")
        status, headers, body = read_response(f)
        assert status == 200 and json.loads(body)["name"] == "demo"
        status, headers, body = read_response(f)
        assert status == 200 and json.loads(body)["status"] == "ok"
        status, headers, body = read_response(f)
        assert status == 200 and [p["name"] for p in json.loads(body)["projects"]] == ["demo"]
        status, headers, body = read_response(f)
        assert status == 404 and headers.get("connection") == "close"
        assert f.read() == b""  # and then closed


def test_a_head_in_pieces_and_with_bare_newlines(loaded: Server) -> None:
    u = ("127.0.0.1", loaded.httpd.server_address[1])
    with socket.create_connection(u, timeout=10) as s:
        f = s.makefile("rb")
        for piece in (b"GET /repository/pypi/sim", b"ple/demo/ HTTP/1.1\r\nHo", b"st: x\r\n", b"\r\n"):
            s.sendall(piece)
            time.sleep(0.05)
        status, _, body = read_response(f)
        assert status == 200 and b"demo-1.1" in body
        s.sendall(b"GET /repository/pypi/simple/demo/ HTTP/1.1\nHost: x\n\n")  # LF only, as the stdlib accepts
        status, _, body = read_response(f)
        assert status == 200 and b"demo-1.1" in body


def test_bad_request_lines_answered_the_same(loaded: Server) -> None:
    u = ("127.0.0.1", loaded.httpd.server_address[1])
    for req, want in ((b"GET /repository/pypi/simple/ HTTP/2.0\r\n\r\n", 505),
                      (b"GET /repository/pypi/simple/ HTTP/1.x\r\n\r\n", 400),
                      (b"GET /repository/pypi/simple/a%0d%0aX:1/ HTTP/1.1\r\nHost: x\r\n\r\n", 400),
                      (b"GET /repository/pypi/simple/ HTTP/1.1\r\nAccept: text/plain\r\n\r\n", 406),
                      (b"GET /repository/pypi/simple/ HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc", 200)):
        with socket.create_connection(u, timeout=10) as s:
            s.sendall(req)
            resp = s.recv(4096)  # (a request line the stdlib cannot parse gets an HTTP/0.9 answer: no status line)
            assert resp.startswith(b"HTTP/1.1 %d " % want) or b"Error code: %d" % want in resp, req


def test_token_pages_on_the_loop_passwords_on_a_worker(loaded: Server) -> None:
    app = loaded.app
    app.db.add_user("alice", hash_password("s3cret-pass"), False, "2026-01-01T00:00:00Z")
    warm(loaded)
    loop = loaded.httpd.loop
    port = loaded.httpd.server_address[1]
    for auth, inline in ((loaded.basic, True), ("Bearer " + loaded.token, True),
                         ("Basic " + base64.b64encode(b"alice:s3cret-pass").decode(), False)):
        served = loop.inline_served
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        c.request("GET", "/repository/pypi/simple/demo/", headers={"Authorization": auth})
        r = c.getresponse()
        assert r.status == 200 and b"demo-1.0" in r.read()
        c.close()
        assert (loop.inline_served - served == 1) is inline, auth
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request("GET", "/repository/pypi/simple/demo/", headers={"Authorization": "Bearer adt_wrong"})
    r = c.getresponse()
    assert r.status == 200  # a wrong token where anyone may read: read anonymously, as on a worker
    c.close()
    app.set_config(app.config.with_repo(replace(app.config.repo("pypi"), anonymous_read=False)))
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request("GET", "/repository/pypi/simple/demo/", headers={"Authorization": "Bearer adt_wrong"})
    r = c.getresponse()
    assert r.status == 401 and r.headers["WWW-Authenticate"]
    c.close()


def test_cheap_credentials_and_head_end() -> None:
    b64 = base64.b64encode
    assert cheap_credentials(b" Bearer anything")
    assert cheap_credentials(b"Basic " + b64(b"__token__:x"))
    assert cheap_credentials(b"basic " + b64(b"bob:adt_abc"))
    assert not cheap_credentials(b"Basic " + b64(b"bob:password"))
    assert not cheap_credentials(b"Basic !!notbase64")
    assert not cheap_credentials(b"Digest x")
    assert head_end(b"GET / HTTP/1.1\r\nA: b\r\n\r\nrest") == len(b"GET / HTTP/1.1\r\nA: b\r\n\r\n")
    assert head_end(b"GET / HTTP/1.1\nA: b\n\nrest") == len(b"GET / HTTP/1.1\nA: b\n\n")
    assert head_end(b"GET / HTTP/1.1\nA: b\n\r\n") == len(b"GET / HTTP/1.1\nA: b\n\r\n")
    assert head_end(b"GET / HTTP/1.1\r\nA: b\r\n") == -1


def test_a_slow_reader_gets_the_whole_page(server: Server, tmp_path: Path) -> None:
    """A response the socket does not take at once (a large page, a client not reading) goes out as
    the client reads, from the loop, with the pipelined request behind it answered after it."""
    for i in range(100):  # a page of ~30 kB: more than the small socket buffers below hold
        service.upload_file(server.app, "pypi-local", make_wheel(tmp_path / "w", "big", f"1.{i}"))
    port = server.httpd.server_address[1]
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    for _ in range(2):  # the first is rendered by a worker, the second comes from the cache
        c.request("GET", "/repository/pypi/simple/big/")
        want = c.getresponse().read()
    c.close()
    assert len(want) > 25_000
    server.httpd.socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)  # accepted sockets inherit it
    loop = server.httpd.loop
    handed, served = loop.handed_off, loop.inline_served
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)
    s.settimeout(10)
    s.connect(("127.0.0.1", port))
    with s:
        req = b"GET /repository/pypi/simple/big/ HTTP/1.1\r\nHost: x\r\n\r\n"
        s.sendall(req * 2)
        assert _eventually(lambda: loop.inline_served > served)
        time.sleep(0.2)
        assert loop.inline_served == served + 1  # the second waits for the first to go out
        f = s.makefile("rb")
        for _ in range(2):
            status, _, body = read_response(f)
            assert status == 200 and body == want
    assert loop.inline_served == served + 2 and loop.handed_off == handed  # no worker was needed


def test_a_client_that_stops_reading_is_dropped_at_request_timeout(server: Server, tmp_path: Path) -> None:
    for i in range(100):  # a page of ~30 kB: more than the small socket buffers below hold
        service.upload_file(server.app, "pypi-local", make_wheel(tmp_path / "w", "big", f"1.{i}"))
    port = server.httpd.server_address[1]
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    for _ in range(2):
        c.request("GET", "/repository/pypi/simple/big/")
        c.getresponse().read()
    c.close()
    server.httpd.socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    server.httpd.request_timeout = 0.5
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)
    s.connect(("127.0.0.1", port))
    with s:
        s.sendall(b"GET /repository/pypi/simple/big/ HTTP/1.1\r\nHost: x\r\n\r\n")
        time.sleep(0.3)
        assert server.httpd.loop.open_connections() == 1  # still sending
        assert _eventually(lambda: server.httpd.loop.open_connections() == 0, timeout=5)  # given up on


def test_slot_waiters_are_served_in_order_when_slots_free_up(app: App) -> None:
    httpd, thread = serve_in_thread(app, max_connections=2)
    try:
        port = httpd.server_address[1]
        first = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(2)]
        third = socket.create_connection(("127.0.0.1", port), timeout=10)
        third.sendall(b"GET /repository/pypi/simple/ HTTP/1.1\r\nHost: x\r\n\r\n")
        time.sleep(0.3)
        assert httpd.loop.open_connections() == 2  # the third waits for a slot
        first[0].close()
        status, _, _ = read_response(third.makefile("rb"))
        assert status == 200
        for s in first[1:] + [third]:
            s.close()
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


@pytest.fixture
def stopping(app: App) -> Iterator[tuple[ArtifactServer, threading.Thread]]:
    httpd, thread = serve_in_thread(app)
    yield httpd, thread
    httpd.server_close()
    thread.join(5)


def test_shutdown_closes_idle_connections_and_lets_a_request_finish(stopping: tuple[ArtifactServer, threading.Thread],
                                                                     tmp_path: Path) -> None:
    httpd, thread = stopping
    port = httpd.server_address[1]
    idle = socket.create_connection(("127.0.0.1", port), timeout=10)
    idle.sendall(b"GET /repository/pypi/simple/ HTTP/1.1\r\nHost: x\r\n\r\n")
    read_response(idle.makefile("rb"))
    assert _eventually(lambda: httpd.loop.open_connections() == 1)
    # A request in a worker when shutdown comes: an upload whose body is still arriving.
    handed = httpd.loop.handed_off
    busy = socket.create_connection(("127.0.0.1", port), timeout=10)
    busy.sendall(b"POST /repository/pypi-local/ HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n"
                 b"Content-Length: 20\r\n\r\n0123456789")
    assert _eventually(lambda: httpd.loop.handed_off > handed)
    httpd.shutdown()
    thread.join(5)
    assert not thread.is_alive()
    assert idle.recv(10) == b""  # the idle keep-alive connection was closed
    busy.sendall(b"0123456789")
    status, _, body = read_response(busy.makefile("rb"))  # the one in progress was answered
    assert status in (400, 401), body
    assert busy.recv(10) == b""  # and then closed, not given back to a loop that is gone
    idle.close()
    busy.close()


def test_shutdown_before_serve_forever_starts(app: App) -> None:
    from artifactd.http.server import make_server

    httpd = make_server(app, "127.0.0.1", 0)
    httpd.shutdown()  # as socketserver allows: the serve_forever() that follows returns at once
    t = threading.Thread(target=httpd.serve_forever)
    t.start()
    t.join(5)
    assert not t.is_alive()
    httpd.server_close()


def test_not_http_is_answered_at_once(loaded: Server) -> None:
    """A TLS hello (a client trying https first, as skopeo does) is not a request head in progress:
    it gets the stdlib parser's answer at once instead of waiting for a blank line that never comes."""
    u = ("127.0.0.1", loaded.httpd.server_address[1])
    with socket.create_connection(u, timeout=5) as s:
        s.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(range(32, 200)) + b"\n" + bytes(40))
        t0 = time.monotonic()
        resp = s.recv(4096)
        assert time.monotonic() - t0 < 2
        assert b"400" in resp


def test_no_linger_gives_the_connection_back_at_once(loaded: Server) -> None:
    loaded.httpd.worker_linger = 0  # a non-blocking look for a next request, then straight back to the loop
    loop = loaded.httpd.loop
    back, handed = loop.given_back, loop.handed_off
    c = http.client.HTTPConnection("127.0.0.1", loaded.httpd.server_address[1], timeout=10)
    for _ in range(3):
        c.request("GET", "/-/health")
        r = c.getresponse()
        assert r.status == 200 and json.loads(r.read())["status"] == "ok"
        assert _eventually(lambda: loop.open_connections() == 1, timeout=2)
    c.close()
    assert loop.given_back - back == 3 and loop.handed_off - handed == 3


def test_an_error_in_the_loop_costs_one_connection_not_the_server(loaded: Server, monkeypatch: pytest.MonkeyPatch,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    def broken(name: str) -> bool:
        raise RuntimeError("a bug in the loop's own code")

    monkeypatch.setattr(loaded.httpd, "loop_serves", broken)
    u = ("127.0.0.1", loaded.httpd.server_address[1])
    with socket.create_connection(u, timeout=5) as s:
        s.sendall(b"GET /repository/pypi/simple/ HTTP/1.1\r\nHost: x\r\n\r\n")
        assert s.recv(100) == b""  # that connection is closed
    assert "connection loop: error" in caplog.text
    monkeypatch.undo()
    c = http.client.HTTPConnection(*u, timeout=5)
    c.request("GET", "/repository/pypi/simple/")  # the loop still serves everyone else
    assert c.getresponse().status == 200
    c.close()


def test_revalidation_and_http10_on_the_loop(loaded: Server) -> None:
    """If-None-Match gets its 304 from the loop (pip and uv revalidate their cached pages); an
    HTTP/1.0 request is answered and closed, or kept open when it asks for keep-alive."""
    warm(loaded)
    loop = loaded.httpd.loop
    served = loop.inline_served
    port = loaded.httpd.server_address[1]
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request("GET", "/repository/pypi/simple/demo/", headers={"Accept": JSON})
    r = c.getresponse()
    etag = r.headers["ETag"]
    r.read()
    c.request("GET", "/repository/pypi/simple/demo/", headers={"Accept": JSON, "If-None-Match": etag})
    r = c.getresponse()
    assert r.status == 304 and r.read() == b"" and r.headers["ETag"] == etag
    c.close()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"GET /repository/pypi/simple/demo/ HTTP/1.0\r\n\r\n")
        f = s.makefile("rb")
        status, headers, body = read_response(f)
        assert status == 200 and b"demo-1.0" in body and f.read() == b""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"GET /repository/pypi/simple/demo/ HTTP/1.0\r\nConnection: keep-alive\r\n\r\n" * 2)
        f = s.makefile("rb")
        for _ in range(2):
            status, headers, body = read_response(f)
            assert status == 200 and b"demo-1.0" in body
    assert loop.inline_served - served == 5


def test_fresh_proxy_pages_on_the_loop_revalidation_on_a_worker(server: Server) -> None:
    """A proxy page within its metadata TTL is answered on the loop, through the group too; one due
    for revalidation raises WouldWait before anything is answered and a worker asks the upstream."""
    from tests.integration.test_proxy import add_proxy, empty_pages_upstream

    asked: list[str] = []
    up = empty_pages_upstream(asked.append)
    try:
        add_proxy(server.app, f"http://127.0.0.1:{up.server_address[1]}/simple/", metadata_ttl=1.0)
        loop = server.httpd.loop
        c = http.client.HTTPConnection("127.0.0.1", server.httpd.server_address[1], timeout=10)

        def fetch(path: str) -> None:
            c.request("GET", path, headers={"Accept": JSON})
            r = c.getresponse()
            assert r.status == 200 and json.loads(r.read())["name"] == "remote-only"
            assert _eventually(lambda: loop.open_connections() == 1)  # pages only: back on the loop at once

        for path in ("/repository/remote/simple/remote-only/", "/repository/pypi/simple/remote-only/"):
            fetch(path)  # fetched (or rendered) by a worker
        assert asked == ["remote-only"]
        served, handed = loop.inline_served, loop.handed_off
        for _ in range(3):
            for path in ("/repository/remote/simple/remote-only/", "/repository/pypi/simple/remote-only/"):
                fetch(path)
        assert (loop.inline_served - served, loop.handed_off - handed) == (6, 0) and asked == ["remote-only"]
        time.sleep(1.1)  # past metadata_ttl
        fetch("/repository/pypi/simple/remote-only/")
        assert asked == ["remote-only", "remote-only"] and loop.handed_off - handed == 1
        fetch("/repository/remote/simple/remote-only/")  # fresh again: the loop
        assert loop.inline_served - served == 7
        c.close()
    finally:
        up.shutdown()
        up.server_close()


def test_a_proxys_files_on_the_loop_once_cached(server: Server, tmp_path: Path) -> None:
    """A proxy's file (and its .metadata) not yet on disk raises WouldWait on the loop and a worker
    fetches it; once cached the loop sends it, through the group too."""
    from tests.integration.test_proxy import DownloadCounter, Upstream, add_proxy

    counter = DownloadCounter()
    up_app = App(tmp_path / "upstream", plugins=[counter])
    httpd, thread = serve_in_thread(up_app)
    up = Upstream(up_app, httpd, counter)
    try:
        art = up.add(make_wheel(tmp_path / "w", "faraway", "1.0"))
        want = (tmp_path / "w" / art.filename).read_bytes()
        add_proxy(server.app, up.url)
        loop = server.httpd.loop
        port = server.httpd.server_address[1]

        links = {}
        for repo in ("remote", "pypi"):
            get_once(port, f"/repository/{repo}/simple/faraway/")  # rendered by a worker
            page = json.loads(get_once(port, f"/repository/{repo}/simple/faraway/", JSON))
            links[repo] = urljoin(f"/repository/{repo}/simple/faraway/", page["files"][0]["url"])
        handed = loop.handed_off
        assert get_once(port, links["pypi"] + ".metadata").startswith(b"Metadata-Version")  # fetched: a worker
        assert get_once(port, links["pypi"]) == want  # fetched: a worker
        assert loop.handed_off == handed + 2 and counter.count == {art.filename: 1}
        for link in (links["pypi"], links["remote"]):
            assert get_once(port, link) == want and get_once(port, link + ".metadata").startswith(b"Metadata-Version")
        assert loop.handed_off == handed + 2 and counter.count == {art.filename: 1}  # from the loop, from disk
    finally:
        up.stop()
        thread.join(timeout=5)
        up_app.close()


def test_out_of_file_descriptors_pauses_accepting_instead_of_spinning(server_process: Proc) -> None:
    """A real server with a 64-descriptor limit: connections past it fail to be accepted. The loop
    pauses accepting for a moment instead of spinning on a listener that stays readable, keeps
    serving the connections it has, and takes new ones once descriptors are free again."""
    import resource

    if not Path("/proc/self/stat").exists():
        pytest.skip("reads the server's CPU time from /proc (Linux)")

    def low_fd_limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))

    server_process.preexec = low_fd_limit
    server_process.start()
    pid = server_process.proc.pid  # type: ignore[union-attr]
    host, port = server_process.url.removeprefix("http://").split(":")
    first = http.client.HTTPConnection(host, int(port), timeout=10)
    first.request("GET", "/repository/pypi/simple/")
    assert first.getresponse().read()
    flood = []
    for _ in range(80):  # more than the server has descriptors for
        try:
            flood.append(socket.create_connection((host, int(port)), timeout=5))
        except OSError:
            break

    def cpu_ticks() -> int:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])  # utime + stime

    time.sleep(0.5)
    before = cpu_ticks()
    time.sleep(2.0)
    busy = (cpu_ticks() - before) / os.sysconf("SC_CLK_TCK") / 2.0
    assert busy < 0.5, f"the server used {busy:.0%} of a CPU while it could not accept"
    first.request("GET", "/repository/pypi/simple/")  # an open connection is still served
    assert first.getresponse().status == 200
    first.close()
    for s in flood:
        s.close()
    late = http.client.HTTPConnection(host, int(port), timeout=10)
    late.request("GET", "/repository/pypi/simple/")  # descriptors free again: accepted
    assert late.getresponse().status == 200
    late.close()
    assert "accept failed, pausing new connections" in server_process.log.read_text()
