from __future__ import annotations

import pytest

from artifactd.config import ConfigError, parse_config, parse_duration, parse_size
from artifactd.formats.pypi.simple import HTML_V1, JSON_V1, TEXT_HTML, negotiate


@pytest.mark.parametrize("value,seconds", [("90s", 90), ("30m", 1800), ("12h", 43200), ("7d", 604800), (5, 5)])
def test_durations(value: object, seconds: float) -> None:
    assert parse_duration(value) == seconds


def test_bad_duration_and_size() -> None:
    with pytest.raises(ConfigError):
        parse_duration("soon")
    assert parse_size("2GiB") == 2 * 2**30 and parse_size("500MB") == 500 * 2**20
    with pytest.raises(ConfigError):
        parse_size("big")


def test_unknown_repo_key_has_line_number() -> None:
    text = '[repositories.a]\ntype = "hosted"\nformat = "pypi"\ncolour = "red"\n'
    with pytest.raises(ConfigError, match=r":4: unknown key 'repositories.a.colour'"):
        parse_config(text)


def test_group_member_format_mismatch() -> None:
    text = ('[repositories.a]\ntype = "hosted"\nformat = "generic"\n'
            '[repositories.g]\ntype = "group"\nformat = "pypi"\nmembers = ["a"]\n')
    with pytest.raises(ConfigError, match="format"):
        parse_config(text)


@pytest.mark.parametrize("accept,expected", [
    ("application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; q=0.1, text/html; q=0.01", JSON_V1),
    ("application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.01", JSON_V1),
    ("application/vnd.pypi.simple.v1+json, */*;q=0.1", JSON_V1),
    ("application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html, text/html;q=0.01", JSON_V1),
    ("text/html", TEXT_HTML),
    ("application/vnd.pypi.simple.v1+html", HTML_V1),
    ("application/vnd.pypi.simple.latest+html", HTML_V1),
    ("*/*", TEXT_HTML),
    (None, TEXT_HTML),
    ("application/*", JSON_V1),
    ("text/html;q=0.5, application/vnd.pypi.simple.v1+json;q=0.4", TEXT_HTML),
    ("application/vnd.pypi.simple.v1+json;q=0, text/html", TEXT_HTML),
    ("application/json", None),
    ("*/*;q=0", None),
])
def test_negotiate(accept: str | None, expected: str | None) -> None:
    assert negotiate(accept) == expected


def test_proxy_connections_setting() -> None:
    from artifactd.config import ConfigError, parse_config

    base = '[repositories.remote]\ntype = "proxy"\nurl = "http://127.0.0.1:1/simple/"\n'
    assert parse_config(base).repo("remote").connections is None  # type: ignore[union-attr]
    assert "connections" not in parse_config(base).repo("remote").to_toml()  # type: ignore[union-attr]
    cfg = parse_config(base + "connections = 4\n")
    assert cfg.repo("remote").connections == 4  # type: ignore[union-attr]
    assert cfg.repo("remote").to_toml()["connections"] == 4  # type: ignore[union-attr]
    for bad, message in (("0", "between 1 and 256"), ("300", "between 1 and 256"), ('"4"', "expected int"),
                         ("true", "expected int")):
        with pytest.raises(ConfigError, match=message):
            parse_config(base + f"connections = {bad}\n")
    with pytest.raises(ConfigError, match="only PyPI proxy repositories take connections"):
        parse_config('[repositories.h]\ntype = "hosted"\nconnections = 4\n')
