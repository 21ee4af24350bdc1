"""Imports every topic module so its commands attach to the ``cli`` group."""
from __future__ import annotations

from artifactd.cli import build_cmds, generic_cmds  # noqa: F401
from artifactd.cli import policy_cmds  # noqa: F401,E402  (check, cleanup, pin, unpin)
from artifactd.cli import accounts, integrity  # noqa: F401
from artifactd.cli import proxy_cmds  # noqa: F401
