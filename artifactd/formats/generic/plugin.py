"""The built-in ``generic`` plugin: hosted and group repositories of arbitrary files.

Registered through the ``artifactd`` entry-point group like any third-party plugin.
"""
from __future__ import annotations

from typing import Any

from artifactd import hookimpl
from artifactd.repositories.base import lazy_kind


@hookimpl
def artifactd_register_formats(registry: dict[str, Any]) -> None:
    registry["generic"] = "Generic files at any path, with properties (PUT/GET/HEAD/DELETE, matrix parameters)"


@hookimpl
def artifactd_register_repository_kinds(registry: dict[Any, Any]) -> None:
    registry[("hosted", "generic")] = lazy_kind("artifactd.repositories.generic", "HostedGeneric")
    registry[("group", "generic")] = lazy_kind("artifactd.repositories.generic", "GroupGeneric")
