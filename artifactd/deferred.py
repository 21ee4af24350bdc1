"""Modules put in ``sys.modules`` ahead of their import, imported on their first real use.

``http.server`` imports ``http.client``, which imports ``ssl`` for ``HTTPSConnection`` -- and
``ssl`` loads libssl, sets up OpenSSL's SSL library and builds a few hundred enum members: in
``artifactd serve`` (where hashlib has loaded libcrypto already) ~1.2 MB of resident memory and
~3 ms of every start, in a server that speaks plain HTTP and needs TLS only when a proxy
repository's upstream is ``https``. :func:`defer` puts a stand-in module in
``sys.modules``; ``import ssl`` returns it without running anything (http.client only defines a
class that uses ssl later), and the first attribute read from it -- urllib3 importing, a
``ssl.create_default_context()`` -- runs the real module's code *in that same module object*, so
there is one ``ssl`` module whoever imported it and whenever.

This is what :class:`importlib.util.LazyLoader` does, with two differences: the stand-in answers
``__spec__`` without loading (the import system reads it on every ``import ssl``, which would
otherwise load the module at once), and loading is serialized, so a thread that reads an attribute
while another thread is loading the module waits for it instead of seeing it half made.
"""
from __future__ import annotations

import importlib.machinery
import sys
import threading
import types
from typing import Any

__all__ = ["defer", "is_deferred"]

_lock = threading.RLock()
_loading: set[int] = set()  # stand-ins whose code runs now (in the thread holding _lock)
# Read from the stand-in without loading it: what the import system and module reprs look at.
_AS_IS = frozenset({"__spec__", "__name__", "__loader__", "__package__", "__class__"})


class _Deferred(types.ModuleType):
    def __getattribute__(self, attr: str) -> Any:
        if attr not in _AS_IS and type(self) is _Deferred:
            _load(self)
        return types.ModuleType.__getattribute__(self, attr)

    def __setattr__(self, attr: str, value: Any) -> None:
        if type(self) is _Deferred:
            _load(self)
        types.ModuleType.__setattr__(self, attr, value)


def _load(module: _Deferred) -> None:
    with _lock:
        if type(module) is not _Deferred or id(module) in _loading:
            return  # loaded meanwhile, or this thread is running its code (which reads itself)
        _loading.add(id(module))
        try:
            spec = types.ModuleType.__getattribute__(module, "__spec__")
            spec.loader.exec_module(module)
            object.__setattr__(module, "__class__", types.ModuleType)
        finally:
            _loading.discard(id(module))


def defer(name: str) -> bool:
    """Put a stand-in for the top-level module ``name`` in ``sys.modules``, to be imported on first
    use. False (and nothing done) if it is imported already or is not a plain source module."""
    if name in sys.modules or "." in name:
        return False
    spec = importlib.machinery.PathFinder.find_spec(name)
    if spec is None or not isinstance(spec.loader, importlib.machinery.SourceFileLoader) or spec.submodule_search_locations:
        return False
    module = _Deferred(name)
    for attr, value in (("__spec__", spec), ("__loader__", spec.loader), ("__file__", spec.origin),
                        ("__cached__", spec.cached), ("__package__", spec.parent)):
        types.ModuleType.__setattr__(module, attr, value)
    sys.modules[name] = module
    return True


def is_deferred(name: str) -> bool:
    """Whether ``name`` is a stand-in still waiting for its first use."""
    return type(sys.modules.get(name)) is _Deferred
