"""Hardened HTTP (RELIABILITY §2 and §3 #44-46): header limits, slowloris, connection floods,
CR/LF in emitted headers, HTML escaping, traversal in request paths."""
from __future__ import annotations

import socket
import threading
import time
import urllib.request
from typing import Iterator
from urllib.parse import urlsplit

import pytest

from artifactd.app import App
from artifactd.http.handler import Handler
from artifactd.http.server import ArtifactServer, serve_in_thread
from artifactd.store.db import NewArtifact
from tests.conftest import Server


def raw(server_url: str, data: bytes, timeout: float = 10) -> bytes:
    u = urlsplit(server_url)
    with socket.create_connection((u.hostname, u.port), timeout=timeout) as s:
        s.sendall(data)
        out = b""
        try:
            while chunk := s.recv(65536):
                out += chunk
                if b"\r\n\r\n" in out and b"Connection: close" not in out and len(out) > 12:
                    break
        except (ConnectionResetError, socket.timeout):
            pass
    return out


def status_of(resp: bytes) -> int:
    return int(resp.split(b" ", 2)[1]) if resp.startswith(b"HTTP/") else -1


def test_more_than_100_headers_is_431(server: Server) -> None:
    headers = b"".join(b"X-H%d: v\r\n" % i for i in range(101))
    assert status_of(raw(server.url, b"GET /-/health HTTP/1.1\r\nHost: x\r\n" + headers + b"\r\n")) == 431


def test_64k_header_line_is_431(server: Server) -> None:
    resp = raw(server.url, b"GET /-/health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 65536 + b"\r\n\r\n")
    assert status_of(resp) == 431


def test_64k_request_line_is_414(server: Server) -> None:
    resp = raw(server.url, b"GET /" + b"a" * 65536 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status_of(resp) == 414


@pytest.fixture
def small_server(app: App) -> Iterator[ArtifactServer]:
    httpd, thread = serve_in_thread(app, max_connections=4, timeout=1.0)
    httpd.slot_wait = 0.2
    yield httpd
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=5)


def test_slowloris_is_dropped_while_others_are_served(small_server: ArtifactServer) -> None:
    """§3 #44: a client dripping its headers is cut at request_timeout (1 s here), however slowly it sends."""
    u = urlsplit(small_server.url)
    s = socket.create_connection((u.hostname, u.port), timeout=10)
    s.sendall(b"GET /-/health HTTP/1.1\r\n")
    t0 = time.monotonic()
    dropped_after = None
    served = 0
    while time.monotonic() - t0 < 5:
        try:
            s.sendall(b"X")  # one byte every 0.1 s: never idle long enough for a socket timeout
        except OSError:
            dropped_after = time.monotonic() - t0
            break
        with urllib.request.urlopen(small_server.url + "/-/health", timeout=5) as r:
            served += r.status == 200
        time.sleep(0.1)
    if dropped_after is None:  # the send may still succeed once the peer is closed: read EOF
        s.settimeout(2)
        assert s.recv(100) == b""
        dropped_after = time.monotonic() - t0
    s.close()
    assert dropped_after < 3.0
    assert served >= 3
    assert small_server.head_deadlines.dropped >= 1


def test_connection_flood_gets_503_without_thread_explosion(small_server: ArtifactServer) -> None:
    """§3 #45: beyond max_connections (4 here) new connections get 503 at once; threads stay bounded."""
    small_server.request_timeout = small_server.head_deadlines.limit = 10.0  # the idle ones hold their slots
    u = urlsplit(small_server.url)
    before = threading.active_count()
    idle = [socket.create_connection((u.hostname, u.port), timeout=10) for _ in range(4)]
    time.sleep(0.2)
    extra = []
    for _ in range(10):
        c = socket.create_connection((u.hostname, u.port), timeout=10)
        c.sendall(b"GET /-/health HTTP/1.1\r\nHost: x\r\n\r\n")
        extra.append(c)
    peak = threading.active_count()
    statuses = [status_of(c.recv(200)) for c in extra]
    assert statuses == [503] * 10
    assert peak - before <= 4 + 2
    for c in idle + extra:
        c.close()
    time.sleep(0.3)  # the idle connections ended: service resumes
    with urllib.request.urlopen(small_server.url + "/-/health", timeout=5) as r:
        assert r.status == 200


@pytest.mark.parametrize("path", [
    "/repository/pypi-local/simple/a%0d%0aSet-Cookie:%20x=1/",
    "/repository/pypi-local/simple/A%0d%0aSet-Cookie:x/",
    "/repository/pypi-local%0d%0aX-Injected:1/",
])
def test_crlf_in_path_never_reaches_a_header(server: Server, path: str) -> None:
    resp = raw(server.url, f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
    head = resp.split(b"\r\n\r\n")[0]
    assert status_of(resp) == 400
    assert b"Set-Cookie" not in head and b"X-Injected" not in head


def test_send_header_refuses_crlf() -> None:
    for bad in ("a\r\nSet-Cookie: x", "a\nb", "a\x00"):
        with pytest.raises(ValueError):
            Handler.send_header(None, "Location", bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("path", [
    "/repository/pypi-local/packages/x/1.0/..%2f..%2f..%2fetc%2fpasswd",
    "/repository/pypi-local/packages/x/1.0/%2e%2e",
    "/repository/pypi-local/packages/x/1.0/%252e%252e%252fetc%252fpasswd",
    "/repository/pypi-local/packages/x/1.0/..%5c..%5cetc%5cpasswd",
    "/repository/pypi-local/packages/x/1.0/a%00.whl",
    "/%2F%2F..%2F..%2Fetc%2Fpasswd",
    "/repository/%2e%2e/%2e%2e/etc/passwd",
    "/repository/pypi-local/packages/x/1.0/%c0%ae%c0%ae",
])
def test_traversal_paths_never_escape(server: Server, path: str) -> None:
    resp = raw(server.url, f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
    assert status_of(resp) in (400, 404)
    assert b"root:" not in resp


def test_html_pages_escape_names_and_query(server: Server) -> None:
    """pypicloud #280 (stored XSS via a name) and pypiserver #77 (reflected XSS via the query)."""
    evil = "<script>alert(1)</script>"
    server.app.db.add_artifact(NewArtifact(
        repo="pypi-local", path="evil/1.0/evil-1.0.tar.gz", sha256="0" * 64, size=1, created="2024-01-01T00:00:00Z",
        project="evil", project_name=evil, version="1.0", filename="evil-1.0.tar.gz", packagetype="sdist"))
    for url in (server.simple("pypi-local"), server.simple("pypi-local") + "evil/",
                server.simple("pypi-local") + "?" + "%3Cscript%3E", server.url + "/?<script>"):
        req = urllib.request.Request(url, headers={"Accept": "text/html"})
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                body = r.read().decode()
        except urllib.error.HTTPError as e:
            body = e.read().decode()
        assert "<script>" not in body


def test_response_head_refuses_crlf_in_any_header_or_reason() -> None:
    class Probe(Handler):
        def __init__(self) -> None:  # no socket: only the head is built
            self.request_version = "HTTP/1.1"
            self.close_connection = False
            self._headers_buffer = []

        def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
            pass

    Probe()._head(200, None, "text/plain", 0, {"ETag": '"x"'})
    for headers, reason in (({"Location": "/a\r\nSet-Cookie: x"}, None), ({"X\nY": "v"}, None),
                            ({"ETag": "a\x00"}, None), ({}, "OK\r\nX-Injected: 1")):
        with pytest.raises(ValueError):
            Probe()._head(200, reason, "text/plain", 0, headers)
    with pytest.raises(ValueError):
        Probe()._head(200, None, "text/plain\r\nX-Injected: 1", 0, {})


def test_client_reset_between_requests_is_not_an_error(server: Server, capfd: pytest.CaptureFixture[str]) -> None:
    import struct

    u = urlsplit(server.url)
    for _ in range(5):
        s = socket.create_connection((u.hostname, u.port), timeout=10)
        s.sendall(b"GET /repository/pypi/simple/ HTTP/1.1\r\nHost: x\r\n\r\n")
        assert status_of(s.recv(65536)) == 200
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()  # a reset, not a FIN, while the handler waits for the next request line
    time.sleep(0.3)
    # The server carries on, and socketserver's traceback printer stayed quiet.
    with urllib.request.urlopen(server.url + "/repository/pypi/simple/") as r:
        assert r.status == 200
    assert "Traceback" not in capfd.readouterr().err
