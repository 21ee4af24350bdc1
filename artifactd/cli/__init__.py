"""The ``artifactd`` command line. Commands live in topic modules that attach to ``cli`` when first needed."""
from __future__ import annotations

from artifactd.cli.main import cli, main

__all__ = ["cli", "main"]
