"""Proxy repositories: a cache of an upstream simple index that keeps working when it does not.

On disk (``layout.cache_dir(repo)``)::

    pages/<project>.json     the upstream's project page as parsed, with its ETag /
                             Last-Modified, the time it was last validated ("fetched")
                             and a content stamp; {"status": "missing"} for a cached 404
    metadata/<sha256>        PEP 658 core metadata fetched from the upstream (verified)
    status.json              upstream health: last success, last error

Files are blobs with an ``artifacts`` row of this repository (so fsck and gc see them).

* Pages: fresh for ``metadata-ttl`` (404s for ``negative-ttl``); then revalidated with a
  conditional GET. At most one upstream request per project per TTL: concurrent requests
  for a stale page wait for the one revalidation (per-project lock).
* stale-if-error: when the upstream fails or times out and a page is cached, the cached
  page is served, the error logged and recorded in ``status.json``; for ``ERROR_BACKOFF``
  seconds pages that have a cached copy are served without asking the upstream again.
  Nothing cached → UpstreamError (502) / UpstreamTimeout (504).
* ``offline = true``: the cache alone; uncached projects are 404, uncached files 404.
* Files: fetched on first request (after the ``check_proxy_fetch`` gate), verified against
  the page's sha256 (and size), committed, recorded; one upstream GET per file however many
  clients ask at once (single flight: the others wait, then read the store). Files larger
  than ``STREAM_THRESHOLD`` are streamed to the first client while they are written, holding
  back the last chunk until the digest is verified (mismatch: the client connection is closed
  before the body is complete); smaller ones are verified first, so a mismatch is a clean 502.
* Core metadata (PEP 658) is advertised for every wheel: with the upstream's hash when it
  gives one (fetched lazily from ``<url>.metadata`` and verified), with the hash extracted from
  the cached wheel once it is cached, and as ``true`` (PEP 714: hash unknown) before that; a
  ``.metadata`` request then fetches the wheel (verified) and extracts METADATA from it.
* state() changes when a file is cached (the repository serial) or the cache is invalidated
  (a generation counter in the database, bumped by ``artifactd repo invalidate`` from any
  process); project_state() adds the project page's content stamp.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from packaging.utils import canonicalize_name

from artifactd.errors import (
    ArtifactdError,
    FileExists,
    FileNotFound,
    Forbidden,
    InvalidDistribution,
    ProjectNotFound,
    UpstreamError,
    UpstreamTimeout,
)
from artifactd.formats.pypi.metadata import extract_metadata
from artifactd.formats.pypi.names import parse_filename
from artifactd.formats.pypi.upstream import CHUNK, UpstreamClient, UpstreamFile, UpstreamPage, redact
from artifactd.model import Artifact, DistFile, ProjectPage, ProjectRef, StoredFile, isotime, utcnow
from artifactd.repositories.base import WouldWait, may_wait
from artifactd.repositories.hosted import sort_files, sorted_versions, stored
from artifactd.store.db import NewArtifact

if TYPE_CHECKING:
    from artifactd.app import App
    from artifactd.config import RepoConfig

log = logging.getLogger(__name__)

ERROR_BACKOFF = 30.0
FLIGHT_WAIT = 600.0


@dataclass(frozen=True)
class _Entry:
    status: str  # "ok" | "missing"
    fetched: float  # last time the upstream confirmed it (epoch seconds)
    stamp: str = ""  # changes when the content changes
    page: UpstreamPage | None = None
    etag: str | None = None
    last_modified: str | None = None
    retry_after: float = 0.0  # stale-if-error backoff (memory only)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"status": self.status, "fetched": self.fetched, "stamp": self.stamp,
                               "etag": self.etag, "last_modified": self.last_modified}
        if self.page is not None:
            out["name"] = self.page.name
            out["files"] = [f.to_json() for f in self.page.files]
        return out

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "_Entry":
        page = None
        if d.get("status") == "ok":
            page = UpstreamPage(name=d["name"], files=tuple(UpstreamFile.from_json(f) for f in d["files"]))
        return cls(status=d["status"], fetched=float(d["fetched"]), stamp=d.get("stamp", ""), page=page,
                   etag=d.get("etag"), last_modified=d.get("last_modified"))


def _stamp(page: UpstreamPage) -> str:
    doc = json.dumps([f.to_json() for f in page.files], sort_keys=True).encode()
    return hashlib.sha256(doc).hexdigest()[:16]


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.urandom(16).hex()}.tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


class _Flight:
    """One upstream download in progress; waiters block on ``done``."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.error: ArtifactdError | None = None


class ProxyPypi:
    STREAM_THRESHOLD = 8 * 2**20

    def __init__(self, app: "App", config: "RepoConfig") -> None:
        self.app = app
        self.config = config
        self.dir = app.layout.cache_dir(config.name)
        self.pages_dir = self.dir / "pages"
        self.meta_dir = self.dir / "metadata"
        self.status_file = self.dir / "status.json"
        self._client: UpstreamClient | None = None
        self._lock = threading.Lock()
        self._page_locks: dict[str, threading.Lock] = {}
        self._flights: dict[str, _Flight] = {}
        self._entries: dict[str, _Entry] = {}
        self._gen = -1
        self._down_until = 0.0
        self._last_status_write = 0.0
        self._status: dict[str, Any] = self._read_status()

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def page_max_age(self) -> int:
        """Clients may reuse a proxy page this long (R24: the public index uses 600 s)."""
        return int(min(600.0, self.config.metadata_ttl))

    @property
    def client(self) -> UpstreamClient:
        if self._client is None:
            with self._lock:
                if self._client is None:
                    assert self.config.url
                    self._client = UpstreamClient(
                        self.config.url, timeout=self.config.timeout, username=self.config.username,
                        password=self.config.password, auth_provider=self.app.hooks.upstream_auth,
                        connections=self.config.connections, before_request=self.app.db.set_aside)
        return self._client

    # --- state -------------------------------------------------------------------------------
    def _sync_generation(self) -> int:
        gen = self.app.db.counter(f"cache:{self.name}")
        if gen != self._gen:
            with self._lock:
                if gen != self._gen:
                    self._entries = {}
                    self._gen = gen
        return gen

    def state(self) -> str:
        gen = self._sync_generation()
        return f"{self.name}:{self.app.db.serial(self.name)}:{gen}"

    def project_state(self, normalized: str) -> str:
        entry = self._fresh(normalized)
        if entry.status != "ok":
            raise ProjectNotFound(f"project {normalized!r} not found in {self.name}")
        return f"{self.state()}:{entry.stamp}"

    # --- pages -------------------------------------------------------------------------------
    def _page_path(self, normalized: str) -> Path:
        return self.pages_dir / f"{normalized}.json"

    def _load(self, normalized: str) -> _Entry | None:
        try:
            data = json.loads(self._page_path(normalized).read_bytes())
            return _Entry.from_json(data)
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("%s: ignoring a damaged cached page for %s: %s", self.name, normalized, exc)
            return None

    def _save(self, normalized: str, entry: _Entry) -> None:
        _atomic_write(self._page_path(normalized), json.dumps(entry.to_json()).encode())

    def _cached(self, normalized: str) -> _Entry | None:
        entry = self._entries.get(normalized)
        if entry is None:
            entry = self._load(normalized)
            if entry is not None:
                self._entries[normalized] = entry
        return entry

    def _is_fresh(self, entry: _Entry, now: float) -> bool:
        ttl = self.config.metadata_ttl if entry.status == "ok" else self.config.negative_ttl
        return now < entry.fetched + ttl or now < entry.retry_after

    def _fresh(self, normalized: str) -> _Entry:
        """The project's cached entry, revalidated first when its TTL has passed."""
        self._sync_generation()
        now = time.time()
        entry = self._cached(normalized)
        if entry is not None and (self.config.offline or self._is_fresh(entry, now)):
            return entry
        if self.config.offline:
            return _Entry(status="missing", fetched=now)
        if entry is not None and entry.status == "ok" and now < self._down_until:
            return entry  # the upstream failed moments ago: serve the cached page without waiting
        if not may_wait():
            raise WouldWait(f"{self.name}: {normalized} needs revalidating")
        with self._lock:
            plock = self._page_locks.setdefault(normalized, threading.Lock())
        with plock:
            entry = self._cached(normalized)
            if entry is not None and self._is_fresh(entry, time.time()):
                return entry  # another request revalidated it while we waited
            return self._revalidate(normalized, entry)

    def _revalidate(self, normalized: str, entry: _Entry | None) -> _Entry:
        ok = entry is not None and entry.status == "ok"
        try:
            res = self.client.get_project(normalized, entry.etag if ok and entry else None,
                                          entry.last_modified if ok and entry else None)
        except UpstreamError as exc:
            self._record_error(exc)
            if entry is not None:
                log.warning("%s: upstream failed for %s, serving the cached page: %s",
                            self.name, normalized, exc.message)
                self._down_until = time.time() + min(ERROR_BACKOFF, max(self.config.metadata_ttl, 1.0))
                entry = dataclasses.replace(entry, retry_after=self._down_until)
                self._entries[normalized] = entry
                return entry
            raise
        self._record_success()
        now = time.time()
        if res.status == "not_modified" and entry is not None and entry.page is not None:
            new = dataclasses.replace(entry, fetched=now, retry_after=0.0, etag=res.etag,
                                      last_modified=res.last_modified)
        elif res.status == "ok" and res.page is not None:
            new = _Entry(status="ok", fetched=now, stamp=_stamp(res.page), page=res.page, etag=res.etag,
                         last_modified=res.last_modified)
        else:
            new = _Entry(status="missing", fetched=now, stamp="missing")
        try:
            self._save(normalized, new)
        except OSError as exc:  # a full disk must not break serving
            log.error("%s: could not write the cached page for %s: %s", self.name, normalized, exc)
        self._entries[normalized] = new
        return new

    def _page(self, normalized: str) -> UpstreamPage:
        entry = self._fresh(normalized)
        if entry.status != "ok" or entry.page is None:
            raise ProjectNotFound(f"project {normalized!r} not found in {self.name}")
        return entry.page

    def projects(self) -> list[ProjectRef]:
        """The projects with a cached page (the upstream's full list is not mirrored)."""
        out: dict[str, ProjectRef] = {}
        try:
            names = sorted(p.name for p in self.pages_dir.iterdir() if p.name.endswith(".json"))
        except FileNotFoundError:
            names = []
        for fname in names:
            norm = fname[: -len(".json")]
            entry = self._cached(norm)
            if entry is not None and entry.status == "ok" and entry.page is not None:
                out[norm] = ProjectRef(name=entry.page.name, normalized=norm)
        for norm, display in self.app.db.projects(self.name):
            out.setdefault(norm, ProjectRef(name=display or norm, normalized=norm))
        return [out[k] for k in sorted(out)]

    def project(self, normalized: str) -> ProjectPage:
        page = self._page(normalized)
        rows = {a.filename: a for a in self.app.db.project_artifacts(self.name, normalized)}
        files = []
        size: int | None
        for uf in page.files:
            wheel = uf.filename.endswith(".whl")
            art = rows.get(uf.filename)
            if art is not None:  # cached: advertise exactly what is served
                sha, size, meta = art.sha256, art.size, art.metadata_sha256
                advertised = False
            else:
                sha, size = uf.sha256, uf.size
                meta = uf.core_metadata or None
                advertised = wheel
            files.append(DistFile(
                filename=uf.filename, project=normalized, version=uf.version, sha256=sha, size=size,
                upload_time=uf.upload_time, requires_python=uf.requires_python, yanked=uf.yanked,
                yanked_reason=uf.yanked_reason, metadata_sha256=meta,
                packagetype="bdist_wheel" if wheel else "sdist", repo=self.name, metadata_advertised=advertised,
            ))
        ordered = sort_files(files)
        return ProjectPage(name=page.name, normalized=normalized, files=tuple(ordered),
                           versions=sorted_versions(ordered), owner=self.name)

    def _upstream_file(self, project: str, filename: str) -> UpstreamFile:
        page = self._page(project)
        for uf in page.files:
            if uf.filename == filename:
                return uf
        raise FileNotFound(f"{filename} not found in {self.name}")

    # --- files -------------------------------------------------------------------------------
    def _cached_file(self, project: str, filename: str) -> tuple[StoredFile, Artifact] | None:
        art = self.app.db.get_by_filename(self.name, filename)
        if art is None or art.project != project:
            return None
        return stored(self.app, art.sha256, art.size), art

    def open_or_fetch(self, project: str, filename: str) -> tuple["StoredFile | UpstreamFetch", Artifact | None]:
        hit = self._cached_file(project, filename)
        if hit is not None:
            return hit
        if not may_wait():  # to fetch it, or to wait for another request's fetch
            raise WouldWait(f"{self.name}: {filename} is not cached")
        uf = self._upstream_file(project, filename)
        if self.config.offline:
            raise FileNotFound(f"{filename} is not cached and {self.name} is offline")
        with self._lock:
            flight = self._flights.get(filename)
            leader = flight is None
            if leader:
                flight = self._flights[filename] = _Flight()
        assert flight is not None
        if leader:
            # Re-check under the flight: a fetch may have completed between our lookup and now.
            hit = self._cached_file(project, filename)
            if hit is not None:
                self._land(filename, flight, None)
                return hit
            return UpstreamFetch(self, project, uf, flight), None
        self.app.db.set_aside()  # the leader's download may take a while
        if not flight.done.wait(FLIGHT_WAIT):
            raise UpstreamTimeout(f"timed out waiting for the upstream download of {filename}")
        if flight.error is not None:
            raise flight.error
        hit = self._cached_file(project, filename)
        if hit is None:
            raise UpstreamError(f"{filename}: the upstream download did not complete")
        return hit

    def _land(self, filename: str, flight: _Flight, error: ArtifactdError | None) -> None:
        flight.error = error
        with self._lock:
            if self._flights.get(filename) is flight:
                del self._flights[filename]
        flight.done.set()

    def open_file(self, project: str, filename: str) -> tuple[StoredFile, Artifact | None]:
        result, art = self.open_or_fetch(project, filename)
        if isinstance(result, UpstreamFetch):
            return result.run(None)
        return result, art

    def open_metadata(self, project: str, filename: str) -> StoredFile:
        if not filename.endswith(".whl"):
            raise FileNotFound(f"no core metadata for {filename}")
        hit = self._cached_file(project, filename)
        if hit is not None:
            art = hit[1]
            if not art.metadata_sha256:
                raise FileNotFound(f"no core metadata for {filename}")
            return stored(self.app, art.metadata_sha256)
        uf = self._upstream_file(project, filename)
        if uf.core_metadata:
            path = self.meta_dir / uf.core_metadata
            if not path.is_file():
                if not may_wait():
                    raise WouldWait(f"{self.name}: core metadata of {filename} is not cached")
                if self.config.offline:
                    raise FileNotFound(f"core metadata of {filename} is not cached and {self.name} is offline")
                data = self.client.get_bytes(uf.url + ".metadata", limit=16 * 2**20)
                if hashlib.sha256(data).hexdigest() != uf.core_metadata:
                    raise UpstreamError(f"upstream core metadata of {filename} does not match its sha256")
                _atomic_write(path, data)
            st = path.stat()
            return StoredFile(path=path, sha256=uf.core_metadata, size=st.st_size, mtime=st.st_mtime)
        # No hash from the upstream: fetch the wheel (verified) and extract METADATA from it.
        if not may_wait():
            raise WouldWait(f"{self.name}: {filename} is not cached")
        _, art2 = self.open_file(project, filename)
        if art2 is None or not art2.metadata_sha256:
            raise FileNotFound(f"no core metadata for {filename}")
        return stored(self.app, art2.metadata_sha256)

    def _record(self, project: str, uf: UpstreamFile, tmp_sha: str, writer: Any) -> Artifact:
        """Commit a verified download: blob, core metadata blob, then the artifacts row."""
        dist = parse_filename(uf.filename)
        meta_sha = None
        meta_json = None
        project_name = None
        writer.flush()
        try:
            meta = extract_metadata(writer.tmp_path, dist)
            project_name = meta.name
            meta_json = json.dumps(meta.to_dict())
        except InvalidDistribution as exc:
            meta = None
            log.warning("%s: %s: no usable core metadata: %s", self.name, uf.filename, exc.message)
        blob = writer.commit(expected_sha256=uf.sha256)
        if meta is not None and dist.kind == "wheel":
            meta_sha = self.app.blobs.put_bytes(meta.raw).sha256
            if uf.core_metadata and uf.core_metadata != meta_sha:
                log.warning("%s: %s: upstream core metadata hash differs from the wheel's METADATA",
                            self.name, uf.filename)
        new = NewArtifact(
            repo=self.name, path=f"{project}/{uf.version}/{uf.filename}", sha256=blob.sha256, size=blob.size,
            created=uf.upload_time or isotime(utcnow()), created_by=None, kind="pypi", project=project,
            project_name=project_name, version=uf.version, filename=uf.filename, dist_key=None,
            packagetype=dist.packagetype, requires_python=uf.requires_python, metadata_sha256=meta_sha,
            metadata_json=meta_json,
        )
        try:
            art, _ = self.app.db.add_artifact(new)
        except FileExists:
            existing = self.app.db.get_by_filename(self.name, uf.filename)
            if existing is None:
                raise
            art = existing
        return art

    # --- health --------------------------------------------------------------------------------
    def _read_status(self) -> dict[str, Any]:
        try:
            data = json.loads(self.status_file.read_bytes())
            return data if isinstance(data, dict) else {}
        except (OSError, ValueError):
            return {}

    def _write_status(self) -> None:
        try:
            _atomic_write(self.status_file, json.dumps(self._status).encode())
            self._last_status_write = time.monotonic()
        except OSError as exc:
            log.error("%s: could not write %s: %s", self.name, self.status_file, exc)

    def _record_success(self) -> None:
        was_failing = self._status.get("health") != "ok"
        self._status["health"] = "ok"
        self._status["last_success"] = isotime(utcnow())
        if was_failing or time.monotonic() - self._last_status_write > 60:
            self._write_status()

    def _record_error(self, exc: ArtifactdError) -> None:
        if self._status.get("health") == "ok":
            log.warning("%s: upstream %s is failing: %s", self.name, redact(self.config.url or ""), exc.message)
        self._status["health"] = "failing"
        self._status["last_error"] = {"time": isotime(utcnow()), "message": exc.message,
                                      "status": exc.http_status}
        self._write_status()

    def status(self) -> dict[str, Any]:
        """Upstream health for ``artifactd repo show`` (read from disk: the server may be another process)."""
        st = self._read_status()
        try:
            pages = sum(1 for p in self.pages_dir.iterdir() if p.name.endswith(".json"))
        except FileNotFoundError:
            pages = 0
        return {
            "upstream": redact(self.config.url or ""),
            "offline": self.config.offline,
            "health": "offline" if self.config.offline else st.get("health", "unknown"),
            "last_success": st.get("last_success"),
            "last_error": st.get("last_error"),
            "cached_pages": pages,
            "metadata_ttl": self.config.metadata_ttl,
            "negative_ttl": self.config.negative_ttl,
            "timeout": self.config.timeout,
            "connections": self.config.connections,  # None: no cap
        }

    def invalidate(self, project: str | None = None) -> int:
        """Drop cached index pages (all, or one project's). Files stay: they are immutable."""
        n = 0
        targets = [self._page_path(canonicalize_name(project))] if project else (
            list(self.pages_dir.iterdir()) if self.pages_dir.is_dir() else [])
        for p in targets:
            try:
                p.unlink()
                n += 1
            except FileNotFoundError:
                pass
        self.app.db.bump_counter(f"cache:{self.name}")
        self._sync_generation()
        return n

    def close(self) -> None:
        if self._client is not None:
            self._client.close()


class UpstreamFetch:
    """The first download of one file (see :class:`artifactd.repositories.base.FileFetch`)."""

    def __init__(self, repo: ProxyPypi, project: str, uf: UpstreamFile, flight: _Flight) -> None:
        self.repo = repo
        self.project = project
        self.uf = uf
        self.sha256 = uf.sha256
        self._flight = flight
        self._resp: Any = None
        self.length: int | None = None
        self._finished = False

    @property
    def stream_to_client(self) -> bool:
        return self.length is not None and self.length > self.repo.STREAM_THRESHOLD

    def _fail(self, exc: ArtifactdError) -> ArtifactdError:
        if not self._finished:
            self._finished = True
            self.repo._land(self.uf.filename, self._flight, exc)
        return exc

    def start(self) -> int | None:
        repo, uf = self.repo, self.uf
        try:
            gate = repo.app.hooks.check_proxy_fetch(repo.name, self.project, uf.version, uf.filename,
                                                    {"url": redact(uf.url), "sha256": uf.sha256, "size": uf.size})
            if gate.denied:
                raise Forbidden(f"proxy fetch of {uf.filename} refused: " + "; ".join(gate.reasons))
            try:
                self._resp = repo.client.open_file(uf.url)
            except UpstreamError as exc:
                repo._record_error(exc)
                raise
            declared = self._resp.headers.get("Content-Length")
            encoded = self._resp.headers.get("Content-Encoding", "identity").lower() not in ("", "identity")
            length = int(declared) if declared and declared.isdigit() and not encoded else None
            if length is not None and uf.size is not None and length != uf.size:
                raise UpstreamError(f"upstream sent {length} bytes for {uf.filename}, its index says {uf.size}")
            self.length = length if length is not None else uf.size
            return self.length
        except ArtifactdError as exc:
            self._close_resp(error=True)
            raise self._fail(exc) from None
        except BaseException:
            self._close_resp(error=True)
            self._fail(UpstreamError(f"download of {uf.filename} failed"))
            raise

    def _close_resp(self, error: bool) -> None:
        if self._resp is not None:
            if error:
                self._resp.close()
            self._resp.release_conn()
            self._resp = None

    def run(self, sink: Callable[[bytes], object] | None = None) -> tuple[StoredFile, Artifact | None]:
        """Download, verify, commit; feed ``sink`` on the way (the last chunk only once verified)."""
        from urllib3.exceptions import HTTPError as Urllib3Error

        repo, uf = self.repo, self.uf
        if self._resp is None and not self._finished:
            self.start()
        client_ok = sink is not None

        def feed(chunk: bytes) -> None:
            nonlocal client_ok
            if client_ok and sink is not None:
                try:
                    sink(chunk)
                except OSError:
                    client_ok = False  # the client left; finish the download for everyone else

        try:
            with repo.app.blobs.writer() as w:
                pending: bytes | None = None
                try:
                    for chunk in self._resp.stream(CHUNK):
                        w.write(chunk)
                        if pending is not None:
                            feed(pending)
                        pending = chunk
                except (Urllib3Error, OSError) as exc:
                    if "timed out" in str(exc).lower():
                        raise UpstreamTimeout(f"upstream timed out sending {uf.filename}") from None
                    raise UpstreamError(f"upstream connection failed while sending {uf.filename}") from None
                if self.length is not None and w.size != self.length:
                    raise UpstreamError(f"upstream sent {w.size} bytes for {uf.filename}, expected {self.length}")
                if w.sha256 != uf.sha256:
                    raise UpstreamError(
                        f"upstream file {uf.filename} failed verification: sha256 {w.sha256} != {uf.sha256} "
                        "(not cached)")
                art = repo._record(self.project, uf, uf.sha256, w)
            self._close_resp(error=False)
            if pending is not None:
                feed(pending)
            self._finished = True
            repo._land(uf.filename, self._flight, None)
            log.info("%s: cached %s (%d bytes)", repo.name, uf.filename, art.size)
            repo.app.hooks.after_download(repo.name, art, False)
            return stored(repo.app, art.sha256, art.size), art
        except ArtifactdError as exc:
            self._close_resp(error=True)
            if isinstance(exc, UpstreamError):
                log.warning("%s: %s", repo.name, exc.message)
            raise self._fail(exc) from None
        except BaseException:
            self._close_resp(error=True)
            self._fail(UpstreamError(f"download of {uf.filename} failed"))
            raise

    def cancel(self) -> None:
        self._close_resp(error=True)
        self._fail(UpstreamError(f"download of {self.uf.filename} was cancelled"))
