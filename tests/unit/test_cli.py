"""The command line, through click's CliRunner over a temporary data directory."""
from __future__ import annotations

import json
import os
import stat
from pathlib import Path

from click.testing import CliRunner

from artifactd.cli import cli
from tests.dists import make_sdist, make_wheel


def invoke(data: Path, *args: str, code: int = 0) -> str:
    res = CliRunner().invoke(cli, ["--data-dir", str(data), *args], catch_exceptions=False)
    assert res.exit_code == code, res.output
    return res.output


def test_init_creates_everything_and_shows_token_once(tmp_path: Path) -> None:
    data = tmp_path / "d"
    out = invoke(data, "init")
    assert "token:    adt_" in out
    assert (data / "artifactd.toml").is_file() and (data / "artifactd.db").is_file()
    cred = data / "admin-credentials.txt"
    assert stat.S_IMODE(os.stat(cred).st_mode) == 0o600
    assert "adt_" in cred.read_text()
    again = invoke(data, "init")
    assert "adt_" not in again and "already initialised" in again


def test_repo_lifecycle_and_json(tmp_path: Path) -> None:
    data = tmp_path / "d"
    invoke(data, "init")
    invoke(data, "repo", "create", "py-dev", "--type", "hosted", "--format", "pypi")
    invoke(data, "repo", "create", "all", "--type", "group", "--member", "py-dev", "--member", "pypi-local")
    rows = json.loads(invoke(data, "repo", "list", "--json"))
    by = {r["name"]: r for r in rows}
    assert by["py-dev"]["type"] == "hosted" and by["py-dev"]["format"] == "pypi"
    assert by["all"]["members"] == ["py-dev", "pypi-local"]
    show = json.loads(invoke(data, "repo", "show", "all", "--json"))
    assert show["type"] == "group" and show["members"] == ["py-dev", "pypi-local"]
    out = invoke(data, "repo", "delete", "py-dev", code=1)
    assert "member of all" in out
    invoke(data, "repo", "delete", "all")
    invoke(data, "repo", "delete", "py-dev")
    assert {r["name"] for r in json.loads(invoke(data, "repo", "list", "--json"))} == {"pypi", "pypi-local"}


def test_repo_create_errors_are_one_line(tmp_path: Path) -> None:
    data = tmp_path / "d"
    invoke(data, "init")
    out = invoke(data, "repo", "create", "g", "--type", "group", "--member", "missing", code=1)
    assert out.strip().startswith("Error:") and "missing" in out and out.count("\n") == 1
    out = invoke(data, "repo", "create", "pypi-local", "--type", "hosted", code=1)
    assert "already exists" in out
    out = invoke(data, "repo", "create", "x", "--type", "proxy", code=1)
    assert "url" in out
    out = invoke(data, "repo", "create", "../x", "--type", "hosted", code=1)
    assert "invalid repository name" in out


def test_proxy_create_takes_connections_and_timeout_and_show_lists_them(tmp_path: Path) -> None:
    data = tmp_path / "d"
    invoke(data, "init")
    url = "http://127.0.0.1:9/simple/"  # never contacted: repo show reads the health from disk
    invoke(data, "repo", "create", "up", "--type", "proxy", "--url", url, "--connections", "4", "--timeout", "1m")
    show = json.loads(invoke(data, "repo", "show", "up", "--json"))
    assert show["connections"] == 4 and show["timeout"] == 60.0 and show["health"] == "unknown"
    text = (data / "artifactd.toml").read_text()
    assert "connections = 4" in text and 'timeout = "1m"' in text
    invoke(data, "repo", "create", "plain", "--type", "proxy", "--url", url)
    show = json.loads(invoke(data, "repo", "show", "plain", "--json"))
    assert show["connections"] is None and show["timeout"] == 30.0
    assert "connections: None" in invoke(data, "repo", "show", "plain")
    out = invoke(data, "repo", "create", "bad", "--type", "proxy", "--url", url, "--connections", "0", code=1)
    assert "connections must be between 1 and 256" in out
    out = invoke(data, "repo", "create", "h", "--type", "hosted", "--connections", "2", code=1)
    assert "only PyPI proxy repositories take connections" in out
    out = invoke(data, "repo", "create", "t", "--type", "proxy", "--url", url, "--timeout", "soon", code=1)
    assert "--timeout" in out
    assert {"bad", "h", "t"}.isdisjoint(r["name"] for r in json.loads(invoke(data, "repo", "list", "--json")))


def test_group_cycle_refused(tmp_path: Path) -> None:
    data = tmp_path / "d"
    invoke(data, "init")
    invoke(data, "repo", "create", "g1", "--type", "group", "--member", "pypi-local")
    invoke(data, "repo", "create", "g2", "--type", "group", "--member", "g1")
    from artifactd.app import App
    from artifactd.config import ConfigError

    app = App(data)
    from dataclasses import replace

    try:
        app.set_config(app.config.with_repo(replace(app.config.repo("g1"), members=("g2",))))
    except ConfigError as exc:
        assert "cycle" in str(exc)
    else:
        raise AssertionError("cycle accepted")
    finally:
        app.close()


def test_upload_yank_and_tokens(tmp_path: Path) -> None:
    data = tmp_path / "d"
    invoke(data, "init")
    w = make_wheel(tmp_path / "dist", "clipkg", "1.0")
    s = make_sdist(tmp_path / "dist", "clipkg", "1.0")
    out = invoke(data, "upload", "pypi-local", str(w), str(s))
    assert out.count("stored:") == 2
    out = invoke(data, "upload", "pypi-local", str(w))
    assert "unchanged" in out
    bad = tmp_path / "dist" / "clipkg-2.0-py3-none-any.whl"
    bad.write_bytes(b"not a zip")
    out = invoke(data, "upload", "pypi-local", str(bad), code=1)
    assert "zip" in out
    invoke(data, "yank", "pypi-local", "clipkg", "1.0", "--reason", "bad")
    invoke(data, "yank", "pypi-local", "clipkg", "9.9", code=1)
    tok = json.loads(invoke(data, "token", "create", "--name", "ci", "--scope", "write", "--json"))
    assert tok["token"].startswith("adt_")
    listed = json.loads(invoke(data, "token", "list", "--json"))
    assert any(t["name"] == "ci" for t in listed)
    assert all("token" not in t for t in listed)
    invoke(data, "token", "revoke", str(tok["id"]))
    assert next(t for t in json.loads(invoke(data, "token", "list", "--json")) if t["id"] == tok["id"])["revoked"]


def test_fsck_and_gc(tmp_path: Path) -> None:
    data = tmp_path / "d"
    invoke(data, "init")
    invoke(data, "upload", "pypi-local", str(make_wheel(tmp_path / "dist", "gcpkg", "1.0")))
    report = json.loads(invoke(data, "fsck", "--json"))
    assert report["ok"] and report["checked"] == 2
    orphan = data / "blobs" / "sha256" / "00" / "00" / ("0000" + "a" * 60)
    orphan.parent.mkdir(parents=True)
    orphan.write_bytes(b"x")
    report = json.loads(invoke(data, "fsck", "--json"))
    assert len(report["orphans"]) == 1 and report["ok"]
    dry = json.loads(invoke(data, "gc", "--grace", "0s", "--json"))
    assert dry["bytes_freed"] == 1 and orphan.exists()
    json.loads(invoke(data, "gc", "--grace", "0s", "--apply", "--json"))
    assert not orphan.exists()
    next(p for p in (data / "blobs").rglob("*") if p.is_file() and p.stat().st_size > 200).chmod(0o644)
    victim = next(p for p in (data / "blobs").rglob("*") if p.is_file() and p.stat().st_size > 200)
    victim.write_bytes(b"corrupted")
    invoke(data, "fsck", code=1)


def test_plugins_list(tmp_path: Path) -> None:
    data = tmp_path / "d"
    invoke(data, "init")
    rows = json.loads(invoke(data, "plugins", "list", "--json"))
    pypi = next(r for r in rows if r["name"] == "pypi")
    assert "artifactd_register_repository_kinds" in pypi["hooks"]


def test_config_unknown_key_names_key_and_line(tmp_path: Path) -> None:
    data = tmp_path / "d"
    invoke(data, "init")
    cfg = data / "artifactd.toml"
    cfg.write_text(cfg.read_text().replace("anonymous-read = true", "anonymous-read = true\nanonymus = 1"))
    out = invoke(data, "repo", "list", code=1)
    assert "anonymus" in out and "artifactd.toml:" in out


def test_start_up_pauses_the_collector_and_gives_it_back() -> None:
    import gc
    import subprocess
    import sys

    from artifactd.cli.main import paused_gc

    assert gc.isenabled()
    with paused_gc():
        assert not gc.isenabled()
    assert gc.isenabled()
    gc.disable()
    try:
        with paused_gc():  # paused by someone else: left paused
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()
    # Importing the command line (as tests and the console script do) leaves it running.
    out = subprocess.run([sys.executable, "-c", "import gc, artifactd.cli; print(gc.isenabled())"],
                         capture_output=True, text=True, check=True, timeout=60).stdout
    assert out.strip() == "True"
