"""Docker repository configuration keys and OCI spec helpers."""
from __future__ import annotations

import pytest

from artifactd.config import parse_config
from artifactd.errors import ConfigError
from artifactd.formats.oci import spec, tokens


def test_docker_keys_round_trip() -> None:
    cfg = parse_config("""
[repositories.docker-hosted]
type = "hosted"
format = "docker"
upload-expiry = "2h"
[repositories.docker-group]
type = "group"
format = "docker"
members = ["docker-hosted"]
writable-member = "docker-hosted"
""")
    assert cfg.repo("docker-hosted").upload_expiry == 7200  # type: ignore[union-attr]
    assert cfg.repo("docker-group").writable_member == "docker-hosted"  # type: ignore[union-attr]
    assert parse_config(__import__("tomli_w").dumps(cfg.to_toml())).repo("docker-hosted") == cfg.repo("docker-hosted")


def test_writable_member_must_be_a_member() -> None:
    with pytest.raises(ConfigError, match="writable-member"):
        parse_config("""
[repositories.a]
type = "hosted"
format = "docker"
[repositories.g]
type = "group"
format = "docker"
members = []
writable-member = "a"
""")


def test_digests_and_names() -> None:
    assert spec.parse_digest("sha256:" + "a" * 64) == ("sha256", "a" * 64)
    for bad in ("sha256:" + "A" * 64, "sha256:abc", "md5:" + "a" * 32, "nocolon"):
        with pytest.raises(spec.OciError):
            spec.parse_digest(bad)
    spec.validate_name("team/app-1/x.y__z")
    for bad in ("Team/app", "team//app", "-x", "a/"):
        with pytest.raises(spec.OciError):
            spec.validate_name(bad)


def test_scope_parsing() -> None:
    assert tokens.parse_scopes(["repository:docker-hosted/team/app:pull,push", "repository:other/x:*"]) == {
        "docker-hosted": {"read", "write"}, "other": {"read", "write", "delete"}}
