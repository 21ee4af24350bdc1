"""The built-in ``docker`` plugin: hosted, proxy and group OCI image registries under ``/v2/``.

Registered through the ``artifactd`` entry-point group like any third-party plugin.
"""
from __future__ import annotations

from typing import Any

import click

from artifactd import hookimpl
from artifactd.repositories.base import lazy_kind


@hookimpl
def artifactd_register_formats(registry: dict[str, Any]) -> None:
    registry["docker"] = "OCI distribution v1.1 / Docker registry v2 (images, indexes, artifacts, referrers)"


@hookimpl
def artifactd_register_repository_kinds(registry: dict[Any, Any]) -> None:
    registry[("hosted", "docker")] = lazy_kind("artifactd.repositories.oci_hosted", "HostedOci")
    registry[("proxy", "docker")] = lazy_kind("artifactd.repositories.oci_proxy", "ProxyOci")
    registry[("group", "docker")] = lazy_kind("artifactd.repositories.oci_group", "GroupOci")


@hookimpl
def artifactd_register_commands(cli: click.Group) -> None:
    from artifactd.cli.oci_cmds import oci

    if "oci" not in cli.commands:
        cli.add_command(oci)
