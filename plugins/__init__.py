"""artifactd's built-in plugins (health, license, retention), and helpers for writing one.

``iter_releases(artifacts)`` walks the rows a report or retention hook is given one release at a
time (the rows stream from the database in release order; see docs/plugins.md).
"""
from artifactd_plugins._common import iter_releases, releases

__all__ = ["iter_releases", "releases"]
