"""The ``artifactd`` command line. Commands live in topic modules that attach to ``cli`` when first needed."""
from __future__ import annotations

import gc

# Importing the command line makes ~20,000 objects, none of them garbage: with the collector
# paused it is ~5% quicker (see artifactd.cli.main.paused_gc, which ``serve`` uses for the rest).
_collecting = gc.isenabled()
gc.disable()
try:
    from artifactd.cli.main import cli, main
finally:
    if _collecting:
        gc.enable()

__all__ = ["cli", "main"]
