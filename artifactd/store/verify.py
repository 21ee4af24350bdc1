"""Read-side verification: a blob that does not match its digest is never served.

Every read checks the size against the row (cheap, always). Blobs up to
``VERIFY_LIMIT`` bytes are also re-hashed before they are served; the result is
remembered per process keyed by the file's identity (inode, size, mtime, ctime),
so a hot file is hashed once, while any rewrite of the file — which changes its
ctime, something no user can set back — forces a new hash. A blob this process has
just written and linked into place is remembered as it lands (:meth:`ReadVerifier.remember`):
its bytes were hashed as they were written, and hashing them again would only read
the same page cache. Larger blobs (model files) are checked by size here and
re-hashed by ``artifactd fsck``.
"""
from __future__ import annotations

import hashlib
import logging
import os
import threading
import weakref
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING

from artifactd.errors import StoreDamaged

if TYPE_CHECKING:
    from artifactd.store.blobs import BlobStore

log = logging.getLogger(__name__)

VERIFY_LIMIT = 16 * 2**20
_MAX_ENTRIES = 100_000
#: Read size of a re-hash. Under glibc's mmap threshold (128 KiB), so the buffer comes from the
#: heap and the next re-hash reuses it: hashlib.file_digest's 256 KiB buffer, one per concurrent
#: re-hash (a cold install re-hashes a dozen at once), was mmapped, or, once glibc had raised its
#: threshold, left behind in the heap.
_READ = 64 * 1024


def _identity(st: os.stat_result) -> tuple[int, int, int, int]:
    """What a remembered hash is keyed by: any rewrite of the file changes its ctime."""
    return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    buf = bytearray(_READ)
    view = memoryview(buf)
    with open(path, "rb", buffering=0) as fh:
        while n := fh.readinto(view):
            h.update(view[:n])
    return h.hexdigest()


class ReadVerifier:
    def __init__(self, limit: int = VERIFY_LIMIT) -> None:
        self.limit = limit
        self._ok: OrderedDict[str, tuple[int, int, int, int]] = OrderedDict()
        self._lock = threading.Lock()
        self.hashed = 0  # how many full re-hashes were done (tests, metrics)

    def check(self, sha256: str, path: Path, expected_size: int | None) -> os.stat_result:
        """Return the blob's stat; raise StoreDamaged if missing, the wrong size, or (small) the wrong hash."""
        try:
            st = os.stat(path)
        except FileNotFoundError:
            log.error("blob %s is missing from the store", sha256)
            raise StoreDamaged(f"blob {sha256[:16]}… is missing from the store; run 'artifactd fsck'") from None
        if expected_size is not None and st.st_size != expected_size:
            log.error("blob %s has size %d, expected %d", sha256, st.st_size, expected_size)
            raise StoreDamaged(f"blob {sha256[:16]}… is damaged (wrong size); run 'artifactd fsck'")
        if st.st_size > self.limit:
            return st
        key = _identity(st)
        with self._lock:
            if self._ok.get(sha256) == key:
                self._ok.move_to_end(sha256)
                return st
        try:
            # Unbuffered, through one small buffer: reading 1 MiB chunks made a fresh bytes object
            # per chunk, which raised glibc's mmap threshold and left ~2 MB of heap resident after
            # the first download of a large file.
            digest = _sha256_of(path)
        except FileNotFoundError:
            raise StoreDamaged(f"blob {sha256[:16]}… is missing from the store; run 'artifactd fsck'") from None
        self.hashed += 1
        if digest != sha256:
            log.error("blob %s is corrupt (content hashes to %s); not served", sha256, digest)
            with self._lock:
                self._ok.pop(sha256, None)
            raise StoreDamaged(f"blob {sha256[:16]}… is damaged (digest mismatch); run 'artifactd fsck'")
        self._keep(sha256, key)
        return st

    def remember(self, sha256: str, path: Path) -> None:
        """``path`` holds the bytes that hashed to ``sha256`` as this process wrote them, and was
        just linked into place: its first read need not hash it again. Any later change to the file
        changes its ctime, so the check hashes it then."""
        try:
            st = os.stat(path)
        except OSError:
            return
        if st.st_size <= self.limit:
            self._keep(sha256, _identity(st))

    def _keep(self, sha256: str, key: tuple[int, int, int, int]) -> None:
        with self._lock:
            self._ok[sha256] = key
            self._ok.move_to_end(sha256)
            while len(self._ok) > _MAX_ENTRIES:
                self._ok.popitem(last=False)


_verifiers: "weakref.WeakKeyDictionary[BlobStore, ReadVerifier]" = weakref.WeakKeyDictionary()
_vlock = threading.Lock()


def verifier(blobs: BlobStore) -> ReadVerifier:
    """The per-process verifier of a blob store."""
    with _vlock:
        v = _verifiers.get(blobs)
        if v is None:
            v = _verifiers[blobs] = ReadVerifier()
        return v
