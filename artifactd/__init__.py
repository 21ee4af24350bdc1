"""artifactd: a local, filesystem-backed artifact manager with plugin hooks."""
from __future__ import annotations

import pluggy

__version__ = "0.1.0"

hookimpl = pluggy.HookimplMarker("artifactd")
"""Decorate plugin functions with ``@artifactd.hookimpl``."""
