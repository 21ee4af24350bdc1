"""The ``artifactd`` command line. Commands live in topic modules that attach to ``cli``."""
from __future__ import annotations

from artifactd.cli.main import cli, main

# Topic modules register their commands on import (one module per feature area).
from artifactd.cli import _commands  # noqa: F401,E402

__all__ = ["cli", "main"]
