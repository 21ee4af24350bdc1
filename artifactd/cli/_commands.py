"""Imports every topic module so its commands attach to the ``cli`` group."""
from __future__ import annotations

from artifactd.cli import proxy_cmds  # noqa: F401
