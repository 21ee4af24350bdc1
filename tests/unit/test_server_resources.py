"""Bounded server resources: the page cache, the database connection pool, and what start-up loads."""
from __future__ import annotations

import http.client
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from artifactd.app import App
from artifactd.http.server import PageCache
from tests.conftest import Server


def test_page_cache_bounded_by_count_and_bytes() -> None:
    cache = PageCache(size=3, max_bytes=1000)
    for i in range(5):
        cache.put(("r", f"p{i}", "html"), "s1", b"x" * 100, f"e{i}")
    assert len(cache) == 3 and cache.nbytes == 300
    assert cache.get(("r", "p0", "html"), "s1") is None  # least recently used went first
    assert cache.get(("r", "p4", "html"), "s1") == (b"x" * 100, "e4")
    assert cache.get(("r", "p4", "html"), "s2") is None  # another repository state: a miss

    cache = PageCache(size=100, max_bytes=1000)
    for i in range(5):
        cache.put(("r", f"p{i}", "html"), "s", b"y" * 240, "e")
    assert cache.nbytes <= 1000 and len(cache) == 4
    cache.put(("r", "p3", "html"), "s", b"z" * 10, "e")  # replacing a page frees its old bytes
    assert cache.nbytes == 3 * 240 + 10
    cache.put(("r", "huge", "html"), "s", b"h" * 600, "e")  # over a quarter of the budget: not kept
    assert cache.get(("r", "huge", "html"), "s") is None and cache.nbytes == 3 * 240 + 10
    cache.clear()
    assert len(cache) == 0 and cache.nbytes == 0


def test_connections_return_to_a_bounded_pool(app: App) -> None:
    db = app.db
    first = db.con
    db.release_thread()
    assert db.con is first  # reused, not reopened
    db.release_thread()

    held: list[object] = []
    barrier = threading.Barrier(8)

    def worker() -> None:
        held.append(db.con)
        db.con.execute("SELECT 1").fetchone()
        barrier.wait()
        db.release_thread()

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({id(c) for c in held}) == 8  # eight at once: eight connections
    assert len(db._idle) == db.MAX_IDLE  # afterwards only a few stay open
    assert len(db._all) == db.MAX_IDLE + (1 if getattr(db._local, "con", None) else 0)


def test_failed_transaction_is_rolled_back_before_reuse(app: App) -> None:
    db = app.db
    con = db.con
    con.execute("BEGIN IMMEDIATE")
    db.release_thread()
    assert not con.in_transaction
    # Another process (or thread) can write: the lock was given back.
    other = App(app.layout.root)
    try:
        with other.db.write():
            pass
    finally:
        other.close()


def test_keep_alive_connection_holds_no_database_connection(server: Server) -> None:
    c = http.client.HTTPConnection("127.0.0.1", server.httpd.server_address[1], timeout=10)
    for _ in range(3):
        c.request("GET", "/repository/pypi/simple/")
        r = c.getresponse()
        r.read()
        assert r.status == 200
    # Between requests the handler thread gave its connection back to the pool.
    assert server.app.db._idle
    c.close()


def test_serve_does_not_import_what_it_does_not_need(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from artifactd.cli.main import cli\n"
        "import artifactd.http.server\n"
        "from artifactd.app import App\n"
        f"app = App({str(tmp_path / 'd')!r}, create=True)\n"
        "heavy = ['artifactd.service', 'artifactd.generic_service', 'artifactd.cli.core_cmds', 'artifactd.http.api',\n"
        "         'artifactd.http.oci', 'artifactd.web.routes', 'artifactd_plugins.osv', 'artifactd_plugins.licenses',\n"
        "         'yaml', 'packaging.tags', 'packaging.metadata', 'urllib3']\n"
        "print(' '.join(m for m in heavy if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "", f"imported at start-up: {out}"


def test_read_verification_hashes_through_a_small_reused_buffer(app: App) -> None:
    """The first read of a blob re-hashes it. Reading it in 1 MiB ``bytes`` chunks raised glibc's
    mmap threshold and left ~2 MB of heap resident after the first large download; the check
    must hash through one small buffer, and still catch damage."""
    import os
    import tracemalloc

    from artifactd.errors import StoreDamaged
    from artifactd.store.verify import ReadVerifier

    data = os.urandom(4 * 2**20)
    blob = app.blobs.put_bytes(data)
    path = app.blobs.path(blob.sha256)
    v = ReadVerifier()
    tracemalloc.start()
    try:
        v.check(blob.sha256, path, len(data))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert v.hashed == 1
    assert peak < 512 * 1024, f"hashing a 4 MiB blob allocated {peak} bytes at once"

    os.chmod(path, 0o644)
    with open(path, "r+b") as fh:  # same size, other bytes
        fh.write(b"\0" * 16)
    # A fresh verifier: the file's timestamps may not have moved within the clock's granularity.
    with pytest.raises(StoreDamaged, match="digest mismatch"):
        ReadVerifier().check(blob.sha256, path, len(data))


def test_blob_writer_checks_digests_it_did_not_stream(app: App) -> None:
    """A digest not hashed while streaming is worked out from the temporary file when verified."""
    import hashlib

    from artifactd.errors import DigestMismatch

    data = b"some bytes " * 50_000
    with app.blobs.writer() as w:
        w.write(data)
        assert set(w.hexdigests()) == {"sha256"}  # nothing but sha256 while streaming
        w.verify({"md5": hashlib.md5(data).hexdigest(), "sha1": hashlib.sha1(data).hexdigest(),
                  "blake2_256": hashlib.blake2b(data, digest_size=32).hexdigest().upper(), "sha256": ""})
        with pytest.raises(DigestMismatch, match="blake2_256 digest mismatch"):
            w.verify({"blake2_256": "0" * 64})
        with pytest.raises(ValueError, match="unknown digest"):
            w.verify({"crc32": "0"})
    with pytest.raises(ValueError, match="unknown digest"):
        app.blobs.writer(extra_digests=("crc32",))
    assert list(app.layout.tmp.iterdir()) == []
