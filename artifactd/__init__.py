"""artifactd: a local, filesystem-backed artifact manager with plugin hooks."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    import pluggy

    hookimpl: pluggy.HookimplMarker
    """Decorate plugin functions with ``@artifactd.hookimpl``."""


def __getattr__(name: str) -> Any:
    # ``hookimpl`` is made on first use: importing pluggy (and with it typing and inspect) is
    # ~25 ms that ``artifactd serve`` should spend with the garbage collector paused, and
    # ``import artifactd`` alone (the CLI's first import) should not pay for it.
    if name == "hookimpl":
        import pluggy

        marker = pluggy.HookimplMarker("artifactd")
        globals()["hookimpl"] = marker
        return marker
    raise AttributeError(f"module 'artifactd' has no attribute {name!r}")
