"""Real clients against a real server: twine and uv upload; pip and uv install; pypi-simple parses."""
from __future__ import annotations

import hashlib
import json
import sys
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import Server, clean_env, run, tool
from tests.dists import make_sdist, make_wheel

pytestmark = pytest.mark.integration


def twine_upload(server: Server, repo: str, files: list[Path], env: dict[str, str], url: str | None = None,
                 check: bool = True):
    return run([tool("twine"), "upload", "--non-interactive", "--disable-progress-bar",
                "--repository-url", url or server.repo_url(repo), "-u", "__token__", "-p", server.token,
                *map(str, files)], env, check=check)


def pip_install(index: str, target: Path, reqs: list[str], env: dict[str, str], check: bool = True):
    return run([sys.executable, "-m", "pip", "install", "--isolated", "--no-cache-dir", "--disable-pip-version-check",
                "--index-url", index, "--target", str(target), *reqs], env, check=check)


@pytest.fixture
def dists(tmp_path: Path) -> dict[str, Path]:
    d = tmp_path / "dist"
    return {
        "app_whl": make_wheel(d, "Acme.App", "1.0", requires=["acme-lib>=2", "acme-util"], requires_python=">=3.8"),
        "app_sdist": make_sdist(d, "Acme.App", "1.0", requires=["acme-lib>=2"]),
        "lib1": make_wheel(d, "acme-lib", "1.0"),
        "lib2": make_wheel(d, "acme-lib", "2.0"),
        "util": make_wheel(d, "acme_util", "0.5"),
    }


def test_twine_upload_then_pip_install_through_group(server: Server, dists: dict[str, Path], tmp_path: Path) -> None:
    env = clean_env(tmp_path)
    twine_upload(server, "pypi-local", list(dists.values()), env)
    pip_install(server.simple("pypi"), tmp_path / "t", ["acme.app"], env)
    installed = sorted(p.name for p in (tmp_path / "t").iterdir() if p.name.endswith(".dist-info"))
    assert installed == ["acme_app-1.0.dist-info", "acme_lib-2.0.dist-info", "acme_util-0.5.dist-info"]


def test_twine_reupload_same_bytes_ok_different_bytes_409(server: Server, tmp_path: Path) -> None:
    env = clean_env(tmp_path)
    w = make_wheel(tmp_path / "a", "dup", "1.0")
    twine_upload(server, "pypi-local", [w], env)
    twine_upload(server, "pypi-local", [w], env)  # idempotent
    other = make_wheel(tmp_path / "b", "dup", "1.0", payload=b"different")
    proc = twine_upload(server, "pypi-local", [other], env, check=False)
    assert proc.returncode != 0
    assert "409" in proc.stdout + proc.stderr and "File already exists" in proc.stdout + proc.stderr


def test_twine_legacy_url_and_no_trailing_slash(server: Server, tmp_path: Path) -> None:
    env = clean_env(tmp_path)
    a = make_wheel(tmp_path / "d", "viaLegacy", "1.0")
    b = make_wheel(tmp_path / "d", "noslash", "1.0")
    twine_upload(server, "pypi-local", [a], env, url=server.repo_url("pypi-local") + "legacy/")
    twine_upload(server, "pypi-local", [b], env, url=server.repo_url("pypi-local").rstrip("/"))
    names = [p.normalized for p in server.app.repository("pypi-local").projects()]
    assert names == ["noslash", "vialegacy"]


def test_uv_publish_and_uv_pip_install(server: Server, dists: dict[str, Path], tmp_path: Path, venv: Path) -> None:
    env = clean_env(tmp_path)
    uv = tool("uv")
    files = [str(p) for p in dists.values()]
    run([uv, "publish", "--publish-url", server.repo_url("pypi-local"), "-u", "__token__", "-p", server.token,
         *files], env)
    run([uv, "pip", "install", "--python", str(venv / "bin" / "python"), "--index-url", server.simple("pypi"),
         "acme.app"], env)
    site = next((venv / "lib").glob("python*/site-packages"))
    assert (site / "acme_app").is_dir() and (site / "acme_lib").is_dir()
    assert (site / "acme_lib-2.0.dist-info").is_dir()


def test_uv_publish_check_url_skips_existing(server: Server, tmp_path: Path) -> None:
    env = clean_env(tmp_path)
    uv = tool("uv")
    w = make_wheel(tmp_path / "d", "checked", "1.0")
    args = [uv, "publish", "--publish-url", server.repo_url("pypi-local"), "--check-url", server.simple("pypi-local"),
            "-u", "__token__", "-p", server.token, str(w)]
    run(args, env)
    again = run(args, env)
    assert "skipping" in (again.stdout + again.stderr).lower() or "already exists" in (again.stdout + again.stderr).lower()


def test_pypi_simple_parses_html_and_json(server: Server, dists: dict[str, Path], tmp_path: Path) -> None:
    pypi_simple = pytest.importorskip("pypi_simple")
    env = clean_env(tmp_path)
    twine_upload(server, "pypi-local", list(dists.values()), env)
    for accept in (pypi_simple.ACCEPT_JSON_ONLY, pypi_simple.ACCEPT_HTML_ONLY):
        with pypi_simple.PyPISimple(server.simple("pypi"), accept=accept) as client:
            index = client.get_index_page()
            assert sorted(index.projects) == ["Acme.App", "acme-lib", "acme_util"]
            page = client.get_project_page("Acme.App")
            assert page.repository_version == "1.1"
            by_name = {p.filename: p for p in page.packages}
            whl = by_name["acme_app-1.0-py3-none-any.whl"]
            assert whl.digests["sha256"] == hashlib.sha256(dists["app_whl"].read_bytes()).hexdigest()
            assert whl.requires_python == ">=3.8"
            assert whl.has_metadata is True
            assert by_name["acme_app-1.0.tar.gz"].has_metadata in (None, False)
            # PEP 658: the advertised hash is the hash of the bytes served.
            meta = client.get_package_metadata(whl)
            assert "Name: Acme.App" in meta
            if accept == pypi_simple.ACCEPT_JSON_ONLY:
                assert page.versions == ["1.0"]
                assert whl.size == dists["app_whl"].stat().st_size
                assert whl.upload_time is not None


def test_metadata_file_hash_matches_bytes(server: Server, tmp_path: Path) -> None:
    w = make_wheel(tmp_path / "d", "metapkg", "3.1", requires=["dep>=1"])
    twine_upload(server, "pypi-local", [w], clean_env(tmp_path))
    req = urllib.request.Request(server.simple("pypi-local") + "metapkg/",
                                 headers={"Accept": "application/vnd.pypi.simple.v1+json"})
    page = json.load(urllib.request.urlopen(req))
    f = page["files"][0]
    url = urllib.request.urljoin(server.simple("pypi-local") + "metapkg/", f["url"])
    body = urllib.request.urlopen(url + ".metadata").read()
    assert hashlib.sha256(body).hexdigest() == f["core-metadata"]["sha256"]
    assert b"Requires-Dist: dep>=1" in body


def test_yank_hides_from_pip_unless_pinned(server: Server, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from artifactd.cli import cli

    env = clean_env(tmp_path)
    twine_upload(server, "pypi-local", [make_wheel(tmp_path / "d", "yk", "1.0"), make_wheel(tmp_path / "d", "yk", "2.0")], env)
    res = CliRunner().invoke(cli, ["--data-dir", str(server.app.layout.root), "yank", "pypi-local", "yk", "2.0",
                                   "--reason", "broken build"])
    assert res.exit_code == 0, res.output
    pip_install(server.simple("pypi"), tmp_path / "t1", ["yk"], env)
    assert (tmp_path / "t1" / "yk-1.0.dist-info").is_dir()
    pip_install(server.simple("pypi"), tmp_path / "t2", ["yk==2.0"], env)
    assert (tmp_path / "t2" / "yk-2.0.dist-info").is_dir()
    res = CliRunner().invoke(cli, ["--data-dir", str(server.app.layout.root), "unyank", "pypi-local", "yk", "2.0"])
    assert res.exit_code == 0, res.output
    pip_install(server.simple("pypi"), tmp_path / "t3", ["yk"], env)
    assert (tmp_path / "t3" / "yk-2.0.dist-info").is_dir()


def test_uv_publish_shows_the_reason_of_a_conflict(server: Server, tmp_path: Path) -> None:
    env = clean_env(tmp_path)
    uv = tool("uv")
    a = make_wheel(tmp_path / "a", "clash", "1.0")
    b = make_wheel(tmp_path / "b", "clash", "1.0", payload=b"other bytes")
    base = [uv, "publish", "--publish-url", server.repo_url("pypi-local"), "-u", "__token__", "-p", server.token]
    run(base + [str(a)], env)
    proc = run(base + [str(b)], env, check=False)
    assert proc.returncode != 0
    assert "409 File already exists" in proc.stdout + proc.stderr
