"""The built-in ``pypi`` plugin: hosted, proxy and group PyPI repositories.

Registered through the ``artifactd`` entry-point group like any third-party plugin.
"""
from __future__ import annotations

from typing import Any

from artifactd import hookimpl
from artifactd.repositories.base import lazy_kind


@hookimpl
def artifactd_register_formats(registry: dict[str, Any]) -> None:
    registry["pypi"] = "Python package index (PEP 503/691/658/700, legacy upload API)"


@hookimpl
def artifactd_register_repository_kinds(registry: dict[Any, Any]) -> None:
    registry[("hosted", "pypi")] = lazy_kind("artifactd.repositories.hosted", "HostedPypi")
    registry[("proxy", "pypi")] = lazy_kind("artifactd.repositories.proxy", "ProxyPypi")
    registry[("group", "pypi")] = lazy_kind("artifactd.repositories.group", "GroupPypi")
