"""``artifactd oci ...``: image registry maintenance (retention)."""
from __future__ import annotations

import click


@click.group()
def oci() -> None:
    """Docker/OCI repositories: retention of images."""
