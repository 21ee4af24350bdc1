"""The only place that builds paths inside a data directory.

    <data>/
      artifactd.toml            configuration (TOML; the CLI writes it, the server reloads it)
      artifactd.db              SQLite metadata (WAL: artifactd.db-wal, artifactd.db-shm)
      admin-credentials.txt     first admin token, 0600, written once by init
      blobs/
        sha256/ab/cd/<hex>      content-addressed blobs, written once, never changed
      tmp/                      uploads in flight (same filesystem, so link/rename is atomic)
      cache/<repo>/             proxy index pages and their validators
      layout-version            LAYOUT_VERSION, to refuse a directory from a newer artifactd
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

LAYOUT_VERSION = 1
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class Layout:
    """Where everything lives under one data directory."""

    root: Path

    @property
    def config(self) -> Path:
        return self.root / "artifactd.toml"

    @property
    def database(self) -> Path:
        return self.root / "artifactd.db"

    @property
    def credentials(self) -> Path:
        return self.root / "admin-credentials.txt"

    @property
    def blobs(self) -> Path:
        return self.root / "blobs" / "sha256"

    @property
    def tmp(self) -> Path:
        return self.root / "tmp"

    @property
    def cache(self) -> Path:
        return self.root / "cache"

    @property
    def version_file(self) -> Path:
        return self.root / "layout-version"

    def blob(self, sha256: str) -> Path:
        if not _HEX64.match(sha256):
            raise ValueError(f"not a sha256 hex digest: {sha256!r}")
        return self.blobs / sha256[:2] / sha256[2:4] / sha256

    def cache_dir(self, repo: str) -> Path:
        return self.cache / repo

    def ensure(self) -> None:
        for d in (self.root, self.blobs, self.tmp, self.cache):
            d.mkdir(parents=True, exist_ok=True)
        if not self.version_file.exists():
            self.version_file.write_text(f"{LAYOUT_VERSION}\n")
        else:
            found = int(self.version_file.read_text().strip() or "0")
            if found > LAYOUT_VERSION:
                raise RuntimeError(
                    f"{self.root} was written by a newer artifactd (layout {found} > {LAYOUT_VERSION})"
                )


def default_data_dir() -> Path:
    """``$ARTIFACTD_HOME``, else the per-user data directory."""
    env = os.environ.get("ARTIFACTD_HOME")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_DATA_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".local" / "share"
    return base / "artifactd"
