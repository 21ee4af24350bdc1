"""Content-addressed blob store: ``blobs/sha256/ab/cd/<hex>``.

Durability recipe (RELIABILITY.md §1): stream into ``tmp/`` on the same filesystem
while hashing and enforcing the size cap; on mismatch delete and refuse; fsync the
file, ``os.link`` it to its digest path (EEXIST means the same bytes are already
there), fsync the directories; only then may the caller write a metadata row.
A crash therefore leaves at worst an unreferenced blob, which ``gc`` removes.
"""
from __future__ import annotations

import errno
import hashlib
import logging
import os
import queue
import threading
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO, Callable, Collection, Iterator, Mapping

from artifactd.errors import DigestMismatch, InsufficientStorage, PayloadTooLarge
from artifactd.store.layout import Layout

log = logging.getLogger(__name__)

#: Bytes per read when streaming into or out of the store. Just under glibc's mmap threshold
#: (128 KiB, held there by ``serve``): each chunk comes from the heap and the next one reuses its
#: memory. 1 MiB chunks were each mapped and unmapped again, page faults and all (a 512 MiB PUT
#: 1.32 → 1.42 s); left to move its threshold, glibc would carve them from the heap instead and
#: keep what they leave there.
CHUNK = 124 * 1024

EXTRA_DIGESTS: dict[str, Callable[[], Any]] = {
    "md5": lambda: hashlib.md5(usedforsecurity=False),
    "sha1": lambda: hashlib.sha1(usedforsecurity=False),
    "blake2_256": lambda: hashlib.blake2b(digest_size=32),
}
"""Digests a client may send besides sha256 (the upload API's md5/blake2_256, Artifactory's sha1)."""

HASH_BEHIND_AFTER = 1 << 20
"""Past this many bytes of one file, the extra digests are hashed on a helper thread."""


class _HashBehind:
    """Updates the extra digests on a helper thread, in order, a few chunks behind the writer.

    twine sends md5 and blake2 besides sha256: hashed inline they were ~40 ms of every 16 MiB
    uploaded, in the request thread, while the client waits. hashlib releases the GIL for large
    updates, so here they run on the second core while the request thread reads the socket,
    hashes sha256 and writes the file. At most ``depth`` chunks wait (memory stays bounded; the
    writer blocks when the helper falls behind).
    """

    def __init__(self, hashes: Collection[Any], depth: int = 4) -> None:
        self._hashes = tuple(hashes)
        self._queue: queue.Queue[bytes | memoryview | None] = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="hash-behind", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (chunk := self._queue.get()) is not None:
            if self._error is None:
                try:
                    for h in self._hashes:
                        h.update(chunk)
                except BaseException as exc:  # pragma: no cover - hashlib does not fail on bytes
                    self._error = exc

    def feed(self, data: bytes | memoryview) -> None:
        # The chunk is read later, on the helper thread: it must not change meanwhile (bytes, or
        # a view of bytes, cannot; a bytearray or a view of one is copied).
        if not isinstance(data, bytes) and not (isinstance(data, memoryview) and isinstance(data.obj, bytes)):
            data = bytes(data)
        self._queue.put(data)

    def finish(self) -> None:
        """Wait until every chunk fed so far is hashed."""
        self._queue.put(None)
        self._thread.join()
        if self._error is not None:
            raise self._error


@dataclass(frozen=True)
class Blob:
    """A stored blob: its digest and size."""

    sha256: str
    size: int


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _disk_error(exc: OSError) -> Exception:
    if exc.errno in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT):
        return InsufficientStorage(f"not enough storage to write the file: {exc.strerror}")
    return exc


class BlobWriter:
    """Stream bytes into the store. Use as a context manager; call :meth:`commit`.

    Leaving the ``with`` block without ``commit`` (an exception, a disconnect)
    removes the temporary file: nothing unverified is ever kept.
    """

    def __init__(self, store: "BlobStore", max_size: int | None = None, extra_digests: Collection[str] = ()) -> None:
        unknown = set(extra_digests) - EXTRA_DIGESTS.keys()
        if unknown:
            raise ValueError(f"unknown digest algorithm(s): {sorted(unknown)}")
        self._store = store
        self._max = max_size
        self.size = 0
        self._sha = hashlib.sha256()
        self._extra = {algo: EXTRA_DIGESTS[algo]() for algo in extra_digests}  # hashed while streaming
        self._late: dict[str, str] = {}  # worked out from the temporary file by verify()
        self._behind: _HashBehind | None = None
        self.tmp_path = store.layout.tmp / f"{os.urandom(16).hex()}.part"
        try:
            self._fh: BinaryIO | None = open(self.tmp_path, "xb")
        except OSError as exc:
            raise _disk_error(exc) from exc
        self.blob: Blob | None = None

    def write(self, data: bytes | memoryview) -> None:
        assert self._fh is not None, "writer is closed"
        n = len(data)
        if self._max is not None and self.size + n > self._max:
            raise PayloadTooLarge(f"file exceeds the size limit of {self._max} bytes")
        self.size += n
        self._sha.update(data)
        if self._behind is not None:
            self._behind.feed(data)
        elif self._extra:
            for h in self._extra.values():
                h.update(data)
            if self.size >= HASH_BEHIND_AFTER:
                self._behind = _HashBehind(self._extra.values())
        try:
            self._fh.write(data)
        except OSError as exc:
            raise _disk_error(exc) from exc

    def copy_from(self, src: BinaryIO, length: int | None = None) -> None:
        """Copy ``length`` bytes (or to EOF) from ``src``; short input raises EOFError."""
        remaining = length
        while remaining is None or remaining > 0:
            want = CHUNK if remaining is None else min(CHUNK, remaining)
            data = src.read(want)
            if not data:
                if remaining:
                    raise EOFError(f"input ended {remaining} bytes early")
                break
            self.write(data)
            if remaining is not None:
                remaining -= len(data)

    def flush(self) -> None:
        """Make the bytes written so far readable through ``tmp_path``."""
        assert self._fh is not None, "writer is closed"
        try:
            self._fh.flush()
        except OSError as exc:
            raise _disk_error(exc) from exc

    def _caught_up(self) -> None:
        if self._behind is not None:
            behind, self._behind = self._behind, None
            behind.finish()

    def hexdigests(self) -> dict[str, str]:
        """sha256 and the digests hashed while streaming."""
        self._caught_up()
        return {"sha256": self._sha.hexdigest(), **{algo: h.hexdigest() for algo, h in self._extra.items()}}

    @property
    def sha256(self) -> str:
        return self._sha.hexdigest()

    def verify(self, expected: Mapping[str, str]) -> None:
        """Raise DigestMismatch unless every given (non-empty) digest matches.

        sha256 and the ``extra_digests`` were hashed while the bytes streamed in; any other
        algorithm of :data:`EXTRA_DIGESTS` is worked out now from the temporary file (one more
        read of it, from the page cache). So a writer hashes only what the client sent, whether
        the client sends its digests before the file (twine) or after it.
        """
        for algo, want in expected.items():
            if not want:
                continue
            got = self._hexdigest(algo)
            if got != want.strip().lower():
                raise DigestMismatch(f"{algo} digest mismatch: expected {want}, received {got}")

    def _hexdigest(self, algo: str) -> str:
        if algo == "sha256":
            return self._sha.hexdigest()
        if algo in self._extra:
            self._caught_up()
            return self._extra[algo].hexdigest()
        if algo not in EXTRA_DIGESTS:
            raise ValueError(f"unknown digest algorithm {algo!r}")
        if algo not in self._late:
            self.flush()
            try:
                with open(self.tmp_path, "rb", buffering=0) as fh:
                    self._late[algo] = hashlib.file_digest(fh, EXTRA_DIGESTS[algo]).hexdigest()
            except OSError as exc:
                raise _disk_error(exc) from exc
        return self._late[algo]

    def commit(self, expected_sha256: str | None = None, expected_size: int | None = None) -> Blob:
        """fsync, then link into place. Returns the Blob; the tmp file is gone afterwards."""
        assert self._fh is not None, "writer is closed"
        self._caught_up()
        if expected_size is not None and expected_size != self.size:
            raise DigestMismatch(f"size mismatch: expected {expected_size} bytes, received {self.size}")
        if expected_sha256 is not None:
            self.verify({"sha256": expected_sha256})
        try:
            self._fh.flush()
            os.fsync(self._fh.fileno())
            self._fh.close()
            self._fh = None
            os.chmod(self.tmp_path, 0o444)
            self.blob = self._store._link_into_place(self.tmp_path, self.sha256, self.size)
        except OSError as exc:
            raise _disk_error(exc) from exc
        return self.blob

    def abort(self) -> None:
        self._caught_up()  # the helper thread ends (on a few chunks at most)
        if self._fh is not None:
            try:
                self._fh.close()
            except OSError:
                pass
            self._fh = None
        try:
            self.tmp_path.unlink()
        except FileNotFoundError:
            pass

    def __enter__(self) -> "BlobWriter":
        return self

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        if self.blob is None:
            self.abort()
        else:
            try:
                self.tmp_path.unlink()
            except FileNotFoundError:
                pass


class BlobStore:
    def __init__(self, layout: Layout) -> None:
        self.layout = layout

    def writer(self, max_size: int | None = None, extra_digests: Collection[str] = ()) -> BlobWriter:
        return BlobWriter(self, max_size=max_size, extra_digests=extra_digests)

    def put_bytes(self, data: bytes) -> Blob:
        with self.writer() as w:
            w.write(data)
            return w.commit()

    def put_file(self, path: Path, max_size: int | None = None) -> Blob:
        with open(path, "rb") as src, self.writer(max_size=max_size) as w:
            w.copy_from(src)
            return w.commit()

    def path(self, sha256: str) -> Path:
        return self.layout.blob(sha256)

    def exists(self, sha256: str) -> bool:
        return self.layout.blob(sha256).is_file()

    def open(self, sha256: str) -> BinaryIO:
        return open(self.layout.blob(sha256), "rb")

    def read_bytes(self, sha256: str) -> bytes:
        return self.layout.blob(sha256).read_bytes()

    def _link_into_place(self, tmp: Path, sha256: str, size: int) -> Blob:
        dest = self.layout.blob(sha256)
        new_dirs = not dest.parent.is_dir()
        dest.parent.mkdir(parents=True, exist_ok=True)
        ours = False  # dest is the file this writer hashed as it wrote it
        try:
            os.link(tmp, dest)
        except FileExistsError:
            # Same digest: the same bytes are already stored (concurrent identical uploads).
            # Refresh its mtime so a concurrent gc/cleanup sees it as in use (policy.remove_blob_if_unreferenced);
            # if that sweep moved it away meanwhile, link our copy instead.
            try:
                os.utime(dest)
                if dest.stat().st_size != size:  # pragma: no cover - a sha256 collision or a damaged blob
                    log.error("blob %s exists with a different size; fsck will report it", sha256)
            except FileNotFoundError:
                try:
                    os.link(tmp, dest)
                except FileExistsError:
                    pass
        else:
            _fsync_dir(dest.parent)
            if new_dirs:
                _fsync_dir(dest.parent.parent)
                _fsync_dir(dest.parent.parent.parent)
            ours = True
        tmp.unlink()  # (before remember(): dropping a link changes the file's ctime)
        if ours:
            from artifactd.store.verify import verifier

            verifier(self).remember(sha256, dest)
        return Blob(sha256, size)

    def delete(self, sha256: str) -> int:
        """Remove a blob (GC only). Returns bytes freed."""
        p = self.layout.blob(sha256)
        try:
            size = p.stat().st_size
            p.unlink()
        except FileNotFoundError:
            return 0
        return size

    def iter_digests(self) -> Iterator[tuple[str, Path]]:
        """Every blob on disk (fsck and gc only; never on a request path)."""
        if not self.layout.blobs.is_dir():
            return
        for a in sorted(self.layout.blobs.iterdir()):
            if not a.is_dir():
                continue
            for b in sorted(a.iterdir()):
                if not b.is_dir():
                    continue
                for f in sorted(b.iterdir()):
                    yield f.name, f

    def rehash(self, sha256: str) -> str | None:
        """Hash the stored bytes; None if the blob is missing."""
        h = hashlib.sha256()
        try:
            with self.open(sha256) as fh:
                while chunk := fh.read(CHUNK):
                    h.update(chunk)
        except FileNotFoundError:
            return None
        return h.hexdigest()
