"""watchdog: live configuration reload and a drop folder imported into a hosted repository.

Configuration::

    [watch]
    reload = true                     # reload artifactd.toml when it changes (default true)
    drop-folder = "/srv/drop"         # wheels/sdists placed here are imported ...
    drop-repository = "pypi-local"    # ... into this hosted repository
    settle = "1s"                     # a file is imported once its size and mtime held this long

Design (after mkdocs' livereload): watchdog callbacks only set a flag under a Condition; one
worker thread per watcher debounces and does the work; ``stop()`` stops and joins everything.
A broken configuration edit is logged and the previous configuration kept
(:meth:`artifactd.app.App.reload_if_changed`). Imported files move to ``<drop>/imported/``;
refused ones to ``<drop>/failed/`` with a ``<name>.error`` text file saying why. Files already
in the folder at start are processed too.
"""
from __future__ import annotations

import logging
import os
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

from artifactd.config import parse_duration
from artifactd.errors import ConfigError
from artifactd.model import Principal

if TYPE_CHECKING:
    from artifactd.app import App
    from artifactd.config import Config

log = logging.getLogger(__name__)

DEBOUNCE = 0.3
DROP_PRINCIPAL = Principal(user="drop-folder", scopes=("write",))
_SKIP_SUFFIXES = (".part", ".tmp", ".crdownload", ".error")


@dataclass(frozen=True)
class WatchSettings:
    reload: bool = True
    drop_folder: Path | None = None
    drop_repository: str = "pypi-local"
    settle: float = 1.0


def watch_settings(cfg: "Config") -> WatchSettings:
    w = cfg.watch
    folder = w.get("drop-folder")
    path = Path(folder).expanduser() if folder else None
    if path is not None and not path.is_absolute() and cfg.path is not None:
        path = cfg.path.parent / path
    repo = w.get("drop-repository", "pypi-local")
    if path is not None:
        rc = cfg.repo(repo)
        if rc is None or rc.type != "hosted":
            raise ConfigError(f"watch.drop-repository: {repo!r} is not a hosted repository")
    return WatchSettings(reload=bool(w.get("reload", True)), drop_folder=path, drop_repository=repo,
                         settle=parse_duration(w.get("settle", 1.0), "watch.settle"))


class _Flag(FileSystemEventHandler):
    """A watchdog handler that only records that something relevant happened."""

    def __init__(self, cond: threading.Condition, wanted: Callable[[str], bool]) -> None:
        self.cond = cond
        self.wanted = wanted
        self.dirty = False

    def on_any_event(self, event: FileSystemEvent) -> None:
        paths = [event.src_path, getattr(event, "dest_path", "")]
        if any(p and self.wanted(os.fsdecode(p)) for p in paths):
            with self.cond:
                self.dirty = True
                self.cond.notify_all()


class _Worker:
    """One observer + one worker thread; ``work()`` runs after a quiet period."""

    name = "watch"

    def __init__(self, directory: Path, wanted: Callable[[str], bool], period: float) -> None:
        self.directory = directory
        self.cond = threading.Condition()
        self.flag = _Flag(self.cond, wanted)
        self.period = period  # also re-run work() this often while it asks to (pending files)
        self.stopping = False
        self.observer: Any = None
        self.thread = threading.Thread(target=self._run, name=f"artifactd-{self.name}", daemon=True)

    def start(self) -> None:
        self.observer = Observer()
        self.observer.schedule(self.flag, str(self.directory), recursive=False)
        self.observer.daemon = True
        self.observer.start()
        self.thread.start()

    def stop(self) -> None:
        with self.cond:
            self.stopping = True
            self.cond.notify_all()
        if self.observer is not None:
            self.observer.stop()
            self.observer.join(timeout=5)
        if self.thread.is_alive() and self.thread is not threading.current_thread():
            self.thread.join(timeout=5)

    def work(self) -> bool:
        """Do the job; return True to be called again after ``period`` even without events."""
        raise NotImplementedError

    def _run(self) -> None:
        again = self._safe_work()
        while True:
            with self.cond:
                if not self.flag.dirty and not self.stopping:
                    self.cond.wait(timeout=self.period if again else None)
                if self.stopping:
                    return
                # debounce: wait until events stop arriving for DEBOUNCE seconds
                while self.flag.dirty and not self.stopping:
                    self.flag.dirty = False
                    self.cond.wait(timeout=DEBOUNCE)
                if self.stopping:
                    return
            again = self._safe_work()

    def _safe_work(self) -> bool:
        try:
            return self.work()
        except Exception:
            log.exception("%s failed", self.name)
            return True


class ConfigWatcher(_Worker):
    """Reloads ``artifactd.toml`` when it changes; ``on_reload`` runs after a successful reload."""

    name = "config-watch"

    def __init__(self, app: "App", on_reload: Callable[[], None] | None = None) -> None:
        target = app.layout.config.name
        super().__init__(app.layout.root, lambda p: os.path.basename(p) == target, period=60.0)
        self.app = app
        self.on_reload = on_reload

    def work(self) -> bool:
        if self.app.reload_if_changed() and self.on_reload is not None:
            self.on_reload()
        return False


class DropFolder(_Worker):
    """Imports distributions placed in a folder into a hosted repository."""

    name = "drop-folder"

    def __init__(self, app: "App", folder: Path, repository: str, settle: float = 1.0) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        super().__init__(folder, lambda p: True, period=max(settle / 2, 0.05))
        self.app = app
        self.repository = repository
        self.settle = settle
        self.seen: dict[str, tuple[int, int, float]] = {}  # name -> (size, mtime_ns, since)
        self.imported = folder / "imported"
        self.failed = folder / "failed"

    def candidates(self) -> list[Path]:
        out = []
        for entry in os.scandir(self.directory):
            if entry.is_file(follow_symlinks=False) and not entry.name.startswith(".") \
                    and not entry.name.endswith(_SKIP_SUFFIXES):
                out.append(Path(entry.path))
        return sorted(out)

    def work(self) -> bool:
        pending = False
        now = time.monotonic()
        names = set()
        for path in self.candidates():
            names.add(path.name)
            try:
                st = path.stat()
            except FileNotFoundError:
                continue
            key = (st.st_size, st.st_mtime_ns)
            prev = self.seen.get(path.name)
            if prev is None or prev[:2] != key:
                self.seen[path.name] = (*key, now)
                pending = True
                continue
            if now - prev[2] < self.settle:
                pending = True
                continue
            self.import_one(path)
            self.seen.pop(path.name, None)
        for gone in set(self.seen) - names:
            self.seen.pop(gone, None)
        return pending

    def import_one(self, path: Path) -> None:
        from artifactd import service

        try:
            result = service.upload_file(self.app, self.repository, path, principal=DROP_PRINCIPAL)
        except Exception as exc:
            reason = str(getattr(exc, "message", exc))
            log.warning("drop folder: %s refused: %s", path.name, reason)
            dest = _move(path, self.failed)
            dest.with_name(dest.name + ".error").write_text(reason + "\n", encoding="utf-8")
            return
        _move(path, self.imported)
        log.info("drop folder: imported %s into %s%s", path.name, self.repository,
                 "" if result.created else " (already there)")


def _move(path: Path, directory: Path) -> Path:
    directory.mkdir(exist_ok=True)
    dest = directory / path.name
    n = 1
    while dest.exists():
        dest = directory / f"{path.name}.{n}"
        n += 1
    shutil.move(str(path), dest)
    return dest


class Watchers:
    """The server's watchers: config reload, and the drop folder (restarted when its config changes)."""

    def __init__(self, app: "App", on_reload: Callable[[], None] | None = None) -> None:
        self.app = app
        self.on_reload = on_reload
        self.config: ConfigWatcher | None = None
        self.drop: DropFolder | None = None
        self._drop_key: tuple[Any, ...] | None = None
        self._lock = threading.Lock()

    def start(self) -> None:
        settings = watch_settings(self.app.config)
        if settings.reload:
            self.config = ConfigWatcher(self.app, self._reloaded)
            self.config.start()
        self._sync_drop(settings)

    def _reloaded(self) -> None:
        if self.on_reload is not None:
            self.on_reload()
        try:
            self._sync_drop(watch_settings(self.app.config))
        except ConfigError as exc:
            log.error("drop folder not changed: %s", exc)

    def _sync_drop(self, settings: WatchSettings) -> None:
        key = (settings.drop_folder, settings.drop_repository, settings.settle)
        with self._lock:
            if key == self._drop_key:
                return
            if self.drop is not None:
                self.drop.stop()
                self.drop = None
            self._drop_key = key
            if settings.drop_folder is not None:
                self.drop = DropFolder(self.app, settings.drop_folder, settings.drop_repository, settings.settle)
                self.drop.start()
                log.info("drop folder %s → %s", settings.drop_folder, settings.drop_repository)

    def stop(self) -> None:
        if self.config is not None:
            self.config.stop()
        with self._lock:
            if self.drop is not None:
                self.drop.stop()
                self.drop = None
