"""The CLI and a running server share one data directory."""
from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from pathlib import Path

from click.testing import CliRunner

from artifactd.cli import cli
from tests.conftest import Proc
from tests.dists import make_wheel


def cli_run(data: Path, *args: str) -> str:
    res = CliRunner().invoke(cli, ["--data-dir", str(data), *args], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    return res.output


def wait_for(url: str, accept: str = "text/html", timeout: float = 10) -> bytes:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(urllib.request.Request(url, headers={"Accept": accept})) as r:
                return r.read()
        except urllib.error.HTTPError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def test_cli_changes_are_seen_by_running_server(server_process: Proc, tmp_path: Path) -> None:
    data = server_process.data_dir
    server_process.start()
    base = server_process.url
    # A repository created by the CLI appears in the running server.
    cli_run(data, "repo", "create", "team", "--type", "hosted")
    cli_run(data, "repo", "create", "everything", "--type", "group", "--member", "team", "--member", "pypi-local")
    wait_for(f"{base}/repository/everything/simple/")
    # A file imported by the CLI appears on the server's (cached) page at once.
    before = wait_for(f"{base}/repository/everything/simple/")
    assert b"sharedpkg" not in before
    cli_run(data, "upload", "team", str(make_wheel(tmp_path, "sharedpkg", "1.0")))
    page = json.loads(wait_for(f"{base}/repository/everything/simple/sharedpkg/",
                               "application/vnd.pypi.simple.v1+json"))
    assert [f["filename"] for f in page["files"]] == ["sharedpkg-1.0-py3-none-any.whl"]
    cli_run(data, "yank", "team", "sharedpkg", "1.0", "--reason", "oops")
    page = json.loads(wait_for(f"{base}/repository/everything/simple/sharedpkg/",
                               "application/vnd.pypi.simple.v1+json"))
    assert page["files"][0]["yanked"] == "oops"


def test_broken_config_edit_keeps_old_config(server_process: Proc) -> None:
    data = server_process.data_dir
    server_process.start()
    base = server_process.url
    cfg = data / "artifactd.toml"
    cfg.write_text(cfg.read_text() + "\n[bogus]\n")
    time.sleep(1.2)
    wait_for(f"{base}/repository/pypi/simple/")  # still served with the previous configuration
    assert "configuration not reloaded" in server_process.log.read_text()
