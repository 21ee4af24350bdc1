"""Bounded server resources: the page cache, the database connection pool, and what start-up loads."""
from __future__ import annotations

import http.client
import subprocess
import sys
import threading
import time
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


def test_open_connections_are_capped_and_the_next_thread_waits_for_one(app: App) -> None:
    """Past MAX_OPEN a thread waits for a connection to come back instead of opening another
    (uv's ~50 parallel downloads had 20-30 open, ~0.2 MB each), and takes the one released."""
    db = app.db
    db.release_thread()
    db.MAX_OPEN, db.MAX_WAIT = 2, 30.0
    holding, release = threading.Barrier(3), threading.Event()
    held: list[object] = []

    def hold() -> None:
        held.append(db.con)
        holding.wait()
        release.wait(30)
        db.release_thread()

    holders = [threading.Thread(target=hold) for _ in range(2)]
    for t in holders:
        t.start()
    holding.wait()
    got: list[object] = []
    third = threading.Thread(target=lambda: (got.append(db.con), db.release_thread()))
    third.start()
    third.join(0.3)
    assert third.is_alive() and not got  # two are open and in use: it waits
    release.set()
    third.join(10)
    for t in holders:
        t.join(10)
    assert got and got[0] in held  # it got one of the two back
    assert len(db._all) == 2


def test_the_connection_cap_is_soft(app: App) -> None:
    """A thread never waits on another forever: after MAX_WAIT it opens a connection anyway
    (the holder may itself be waiting on this thread's work, as a single-flight fetch does)."""
    db = app.db
    db.MAX_OPEN, db.MAX_WAIT = 1, 0.2
    mine = db.con  # held by this thread for the whole test
    got: list[object] = []
    t = threading.Thread(target=lambda: (got.append(db.con), db.release_thread()))
    started = time.monotonic()
    t.start()
    t.join(10)
    assert got and got[0] is not mine
    assert 0.15 < time.monotonic() - started < 5


def test_set_aside_returns_the_connection_but_never_an_open_transaction(app: App) -> None:
    db = app.db
    con = db.con
    db.set_aside()
    assert getattr(db._local, "con", None) is None and con in db._idle
    con = db.con
    con.execute("BEGIN")
    db.set_aside()  # mid-transaction: kept, not rolled back
    assert db._local.con is con and con.in_transaction
    con.execute("ROLLBACK")
    db.set_aside()
    db.set_aside()  # nothing held: a no-op


def test_a_kept_connection_makes_no_other_thread_wait(app: App) -> None:
    """end_request(): the connection loop keeps its connection between requests, outside MAX_OPEN;
    an open transaction is never kept."""
    db = app.db
    db.release_thread()
    db.close_idle()
    db.MAX_OPEN, db.MAX_WAIT = 1, 30.0
    con = db.con
    db.end_request()
    assert db._local.con is con and con in db._kept
    took: list[float] = []

    def other() -> None:
        t0 = time.monotonic()
        db.serial("pypi-local")
        took.append(time.monotonic() - t0)
        db.release_thread()

    t = threading.Thread(target=other)
    t.start()
    t.join(10)
    assert took and took[0] < 5  # opened at once: the kept one does not count
    con.execute("BEGIN")
    db.end_request()  # a transaction left open: rolled back and handed back, not kept
    assert getattr(db._local, "con", None) is None and not con.in_transaction and con not in db._kept


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
    """Idle keep-alive connections hold no database connection: a worker gives its back after every
    request, and the connection loop keeps one for all the pages it answers, whatever the number
    of clients."""
    db = server.app.db
    db.release_thread()  # this test thread's own (the fixture made a token with it)
    clients = [http.client.HTTPConnection("127.0.0.1", server.httpd.server_address[1], timeout=10) for _ in range(8)]
    for c in clients:
        for path in ("/repository/pypi/simple/", "/-/health", "/repository/pypi/simple/"):
            c.request("GET", path)
            r = c.getresponse()
            r.read()
            assert r.status == 200
    # A worker gives its connection back just after the response is written, so the client may
    # read it first: wait for it, bounded.
    deadline = time.monotonic() + 5
    while len(db._all) - len(db._idle) > 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(db._all) - len(db._idle) <= 1  # in use: at most the loop's
    assert len(db._kept) <= 1 and db._idle
    for c in clients:
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
        "         'artifactd.policy', 'yaml', 'packaging.tags', 'packaging.metadata', 'urllib3']\n"
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


def _hash_behind_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "hash-behind"]


def test_large_files_hash_their_extra_digests_on_a_helper_thread(app: App) -> None:
    """Past HASH_BEHIND_AFTER the md5/sha1/blake2 digests are hashed on a helper thread, in order,
    from chunks that cannot change meanwhile (a memoryview of a reused buffer is copied); the
    thread ends with the writer, committed or aborted."""
    import hashlib
    import os

    from artifactd.errors import DigestMismatch
    from artifactd.store.blobs import HASH_BEHIND_AFTER

    data = os.urandom(3 * HASH_BEHIND_AFTER + 12345)
    want = {"md5": hashlib.md5(data).hexdigest(), "sha1": hashlib.sha1(data).hexdigest(),
            "blake2_256": hashlib.blake2b(data, digest_size=32).hexdigest(),
            "sha256": hashlib.sha256(data).hexdigest()}
    reused = bytearray(100_000)
    with app.blobs.writer(extra_digests=("md5", "sha1", "blake2_256")) as w:
        for i in range(0, len(data), len(reused)):
            piece = data[i:i + len(reused)]
            reused[:len(piece)] = piece
            w.write(memoryview(reused)[:len(piece)] if i % 2 else bytes(piece))
            reused[:] = b"\0" * len(reused)  # what a reused read buffer does before the next chunk
        assert len(_hash_behind_threads()) == 1
        assert w.hexdigests() == want
        w.verify(want)
        w.commit()
    assert _hash_behind_threads() == []

    with app.blobs.writer(extra_digests=("md5",)) as w:
        w.write(data)
        w.write(data)
        with pytest.raises(DigestMismatch, match="md5 digest mismatch"):
            w.verify({"md5": want["md5"]})
    assert _hash_behind_threads() == []  # left without commit: aborted, the helper ended

    with app.blobs.writer(extra_digests=("md5",)) as w:  # small files: no thread at all
        w.write(b"x" * 1000)
        assert _hash_behind_threads() == []
    assert list(app.layout.tmp.iterdir()) == []


def test_writers_waiting_their_turn_hold_no_connection(app: App) -> None:
    """Uploads queue for the write lock one at a time; those waiting must not keep connections
    (under many uploads at once they would use up the cap and every read would wait for it)."""
    db = app.db
    db.release_thread()
    db.MAX_OPEN, db.MAX_WAIT = 2, 30.0
    in_write, finish = threading.Event(), threading.Event()

    def writer_holding_the_lock() -> None:
        with db.write():
            in_write.set()
            finish.wait(30)
        db.release_thread()

    def second_writer() -> None:
        db.con.execute("SELECT 1").fetchone()  # a read first, as an upload does
        with db.write():
            pass
        db.release_thread()

    first = threading.Thread(target=writer_holding_the_lock)
    first.start()
    assert in_write.wait(10)
    second = threading.Thread(target=second_writer)
    second.start()
    time.sleep(0.2)  # the second writer is now queued behind the first
    started = time.monotonic()
    reader_got: list[object] = []
    reader = threading.Thread(target=lambda: (reader_got.append(db.con.execute("SELECT 1").fetchone()),
                                              db.release_thread()))
    reader.start()
    reader.join(10)
    try:
        assert reader_got and time.monotonic() - started < 5  # not the 30 s wait for a free connection
    finally:
        finish.set()
        first.join(10)
        second.join(10)


def test_close_idle_closes_only_what_no_thread_holds(app: App) -> None:
    db = app.db
    mine = db.con
    other: list[object] = []
    t = threading.Thread(target=lambda: (other.append(db.con), db.release_thread()))
    t.start()
    t.join()
    assert db.close_idle() == 1  # the other thread's, given back
    assert db.con is mine  # still usable: this thread's is untouched
    mine.execute("SELECT 1").fetchone()
    db.release_thread()
    assert db.close_idle() == 1 and db.close_idle() == 0
    assert db.con.execute("SELECT COUNT(*) FROM artifacts").fetchone() == (0,)  # a fresh one opens


# --- connection threads ----------------------------------------------------------------------------

def _eventually(check: Any, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def test_connection_threads_are_reused_and_bounded() -> None:
    """A handler thread whose connection ended serves the next one (no thread start per
    connection); at most max_idle wait, the others end; idle ones end after idle_timeout."""
    from artifactd.http.server import ConnectionWorkers

    served: list[tuple[str, int]] = []
    go = threading.Event()

    def serve(request: str, address: Any) -> None:
        served.append((request, threading.get_ident()))
        if request.startswith("hold"):
            go.wait(5)

    workers = ConnectionWorkers(serve, max_idle=2, idle_timeout=2.0)
    workers.submit("a", None)
    assert _eventually(lambda: workers.idle() == 1)
    workers.submit("b", None)
    assert _eventually(lambda: len(served) == 2 and workers.idle() == 1)
    assert served[0][1] == served[1][1]  # the same thread

    for i in range(4):  # four at once: the idle one and three new threads
        workers.submit(f"hold{i}", None)
    assert _eventually(lambda: len(served) == 6)
    idents = {ident for _, ident in served[2:]}
    assert len(idents) == 4
    assert workers.live() == 4
    go.set()
    assert _eventually(lambda: workers.idle() == 2 and workers.live() == 2)  # two wait for work, two ended
    assert _eventually(lambda: workers.live() == 0, timeout=8)  # idle_timeout: the rest end too


def test_connection_threads_end_when_the_server_closes(server: Server) -> None:
    c = http.client.HTTPConnection("127.0.0.1", server.httpd.server_address[1], timeout=10)
    c.request("GET", "/-/health", headers={"Connection": "close"})  # a worker's request (pages stay on the loop)
    assert c.getresponse().status == 200
    c.close()
    workers = server.httpd.workers
    assert _eventually(lambda: workers.idle() >= 1)
    workers.close()
    assert workers.idle() == 0
    assert _eventually(lambda: workers.live() == 0)  # the idle thread ended at once


def test_connection_handed_over_as_the_idle_thread_times_out_is_served() -> None:
    """The race between an idle thread's timeout and submit() taking that thread: the connection
    submit() handed over must be served by it, not dropped, and no other thread started."""
    import queue

    from artifactd.http.server import ConnectionWorkers

    workers = ConnectionWorkers(lambda request, address: None, max_idle=4, idle_timeout=0.01)

    class Inbox:
        """Times out just as the accept loop hands it a connection."""

        def __init__(self) -> None:
            self.items: list[Any] = []

        def put(self, item: Any) -> None:
            self.items.append(item)

        def get(self, timeout: float | None = None) -> Any:
            if timeout is not None:
                workers.submit("late", ("127.0.0.1", 1))  # takes this idle thread: put() below
                raise queue.Empty
            return self.items.pop(0)

    assert workers._next(Inbox()) == ("late", ("127.0.0.1", 1))  # type: ignore[arg-type]
    assert workers.live() == 0 and workers.idle() == 0  # served by this thread; none started


_MALLINFO = '''
import ctypes, json, sys
from artifactd.http.server import tune_malloc
class MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in
                "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost".split()]
libc = ctypes.CDLL(None)
libc.mallinfo2.restype = MallInfo2
done = tune_malloc() if sys.argv[1] == "tune" else {}
del bytearray(1 << 20)[:]  # a 1 MiB block freed: glibc (left alone) raises its threshold to 1 MiB
before = libc.mallinfo2().fordblks
pins = []
for i in range(24):  # a buffer of 256 KiB or more, then something that stays, then the buffer goes
    buf = bytearray((256 + 16 * i) * 1024)
    pins.append(bytearray(700 * 1024))
    del buf
held = libc.mallinfo2().fordblks - before  # freed, but kept by malloc (and resident)
print(json.dumps({**done, "held_kib": held // 1024}))
'''


@pytest.mark.parametrize("env", [{}, {"MALLOC_MMAP_THRESHOLD_": "131072", "MALLOC_ARENA_MAX": "4"}])
def test_tune_malloc_gives_large_blocks_back(env: dict[str, str]) -> None:
    """Buffers of 256 KiB and more freed between longer-lived objects: left alone, glibc carves them
    from the heap once it has raised its threshold, and keeps them there after they are freed;
    tuned, they are mapped and unmapped. The variables win when set."""
    import ctypes
    import json
    import os

    try:
        ctypes.CDLL(None).mallinfo2
    except AttributeError:
        pytest.skip("not glibc 2.33 or later (no mallinfo2)")

    def run(mode: str) -> dict[str, int]:
        out = subprocess.run([sys.executable, "-c", _MALLINFO, mode], capture_output=True, text=True, check=True,
                             env={**os.environ, **env}).stdout
        return json.loads(out)

    tuned = run("tune")
    assert (tuned["arenas"], tuned["mmap_threshold"]) == (not env, not env)
    assert tuned["held_kib"] < 1024
    if not env:
        assert run("leave")["held_kib"] >= 4096  # what the setting is for
