"""Poetry and PDM, run as the real command-line tools, against a real server.

Each tool locks a project whose dependencies live only in artifactd (the group repository is the
project's one source, so nothing else is consulted), installs the lock into the project's own
virtual environment, and publishes to the hosted repository with a token: twice with the same
bytes (accepted again), once with other bytes under the same name (refused with the reason), and
once with a wrong token (401). A yanked release is left out of the lock, as PEP 592 asks.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.conftest import Server, clean_env, run, tool
from tests.dists import make_sdist, make_wheel

pytestmark = pytest.mark.integration


def _publish_fixtures(server: Server, tmp_path: Path) -> None:
    """acme.app → acme-lib>=2, acme-util; yk 1.0 and 2.0 with 2.0 yanked — all in pypi-local."""
    from artifactd.cli import cli

    d = tmp_path / "dist-src"
    files = [
        make_wheel(d, "Acme.App", "1.0", requires=["acme-lib>=2", "acme-util"], requires_python=">=3.8"),
        make_sdist(d, "Acme.App", "1.0", requires=["acme-lib>=2"]),
        make_wheel(d, "acme-lib", "1.0"),
        make_wheel(d, "acme-lib", "2.0"),
        make_wheel(d, "acme_util", "0.5"),
        make_wheel(d, "yk", "1.0"),
        make_wheel(d, "yk", "2.0"),
    ]
    run([tool("twine"), "upload", "--non-interactive", "--disable-progress-bar", "--repository-url",
         server.repo_url("pypi-local"), "-u", "__token__", "-p", server.token, *map(str, files)], clean_env(tmp_path))
    res = CliRunner().invoke(cli, ["--data-dir", str(server.app.layout.root), "yank", "pypi-local", "yk", "2.0",
                                   "--reason", "broken build"])
    assert res.exit_code == 0, res.output


def _locked(lock: Path) -> dict[str, str]:
    import tomllib

    return {p["name"]: p["version"] for p in tomllib.loads(lock.read_text())["package"]}


LOCKED = {"acme-app": "1.0", "acme-lib": "2.0", "acme-util": "0.5", "yk": "1.0"}
"""What both tools must lock (yk 2.0 is yanked) and install."""


def _consumer(tmp_path: Path, tool_tables: str) -> Path:
    """A project depending on acme.app and yk, whose only source is given in ``tool_tables``."""
    project = tmp_path / "consumer"
    project.mkdir()
    (project / "pyproject.toml").write_text(f"""\
[project]
name = "consumer"
version = "0.1"
requires-python = ">=3.11"
dependencies = ["acme.app", "yk"]

{tool_tables}""")
    return project


def _assert_installed(project: Path) -> None:
    site = next((project / ".venv" / "lib").glob("python*/site-packages"))
    wanted = {f"{name.replace('-', '_')}-{version}.dist-info" for name, version in LOCKED.items()}
    assert {p.name for p in site.glob("*.dist-info")} >= wanted


def _pdm_env(tmp_path: Path) -> dict[str, str]:
    env = clean_env(tmp_path)
    env.update({"PDM_CHECK_UPDATE": "false", "PDM_NON_INTERACTIVE": "1", "PDM_CACHE_DIR": str(tmp_path / "pdm-cache")})
    return env


def _poetry_env(tmp_path: Path, server: Server) -> dict[str, str]:
    env = clean_env(tmp_path)
    env.update({
        "POETRY_VIRTUALENVS_IN_PROJECT": "true",
        "POETRY_CACHE_DIR": str(tmp_path / "poetry-cache"),
        "POETRY_CONFIG_DIR": str(tmp_path / "poetry-config"),
        "POETRY_REPOSITORIES_LOCAL_URL": server.repo_url("pypi-local"),
    })
    return env


def test_pdm_locks_installs_and_publishes(server: Server, tmp_path: Path) -> None:
    pdm = tool("pdm")
    _publish_fixtures(server, tmp_path)
    env = _pdm_env(tmp_path)

    project = _consumer(tmp_path, f"""\
[tool.pdm]
distribution = false

[[tool.pdm.source]]
name = "pypi"
url = "{server.simple("pypi")}"
""")
    # The project's own environment, made here: given the test runner's interpreter, pdm would
    # install into the runner's virtual environment.
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(project / ".venv")], check=True)
    run([pdm, "use", "-f", str(project / ".venv" / "bin" / "python")], env, cwd=project)
    run([pdm, "lock"], env, cwd=project)
    assert _locked(project / "pdm.lock") == LOCKED
    run([pdm, "install"], env, cwd=project)
    _assert_installed(project)

    pub = tmp_path / "pdm-made"
    (pub / "dist").mkdir(parents=True)
    (pub / "pyproject.toml").write_text('[project]\nname = "pdm-made"\nversion = "1.0"\n')
    make_wheel(pub / "dist", "pdm-made", "1.0")
    make_sdist(pub / "dist", "pdm-made", "1.0")
    publish = [pdm, "publish", "--no-build", "-r", server.repo_url("pypi-local"), "-u", "__token__"]
    run(publish + ["-P", server.token], env, cwd=pub)
    run(publish + ["-P", server.token], env, cwd=pub)  # the same bytes again: accepted
    assert sorted(f.filename for f in server.app.repository("pypi-local").project("pdm-made").files) == [
        "pdm_made-1.0-py3-none-any.whl", "pdm_made-1.0.tar.gz"]

    wrong = run(publish + ["-P", "not-a-token"], env, cwd=pub, check=False)
    assert wrong.returncode != 0 and "401" in wrong.stdout + wrong.stderr

    shutil.rmtree(pub / "dist")
    make_wheel(pub / "dist", "pdm-made", "1.0", payload=b"other bytes")
    clash = run(publish + ["-P", server.token], env, cwd=pub, check=False)
    assert clash.returncode != 0 and "409" in clash.stdout + clash.stderr


def test_poetry_locks_installs_and_publishes(server: Server, tmp_path: Path) -> None:
    poetry = tool("poetry")
    _publish_fixtures(server, tmp_path)
    env = _poetry_env(tmp_path, server)

    project = _consumer(tmp_path, f"""\
[tool.poetry]
package-mode = false

[[tool.poetry.source]]
name = "local"
url = "{server.simple("pypi")}"
priority = "primary"
""")
    run([poetry, "lock", "-n"], env, cwd=project)
    assert _locked(project / "poetry.lock") == LOCKED
    run([poetry, "install", "-n"], env, cwd=project)
    _assert_installed(project)

    pub = tmp_path / "poetry-made"
    (pub / "poetry_made").mkdir(parents=True)
    (pub / "poetry_made" / "__init__.py").write_text('__version__ = "1.0"\n')
    (pub / "pyproject.toml").write_text("""\
[project]
name = "poetry-made"
version = "1.0"
requires-python = ">=3.9"

[build-system]
requires = ["poetry-core>=2"]
build-backend = "poetry.core.masonry.api"
""")
    publish = [poetry, "publish", "-n", "-r", "local", "-u", "__token__"]
    run(publish + ["--build", "-p", server.token], env, cwd=pub)
    run(publish + ["-p", server.token], env, cwd=pub)  # the same bytes again: accepted
    assert sorted(f.filename for f in server.app.repository("pypi-local").project("poetry-made").files) == [
        "poetry_made-1.0-py3-none-any.whl", "poetry_made-1.0.tar.gz"]

    wrong = run(publish + ["-p", "not-a-token"], env, cwd=pub, check=False)
    assert wrong.returncode != 0 and "401" in wrong.stdout + wrong.stderr

    (pub / "poetry_made" / "__init__.py").write_text('__version__ = "1.0"  # rebuilt\n')
    clash = run(publish + ["--build", "-p", server.token], env, cwd=pub, check=False)
    out = clash.stdout + clash.stderr
    assert clash.returncode != 0 and "409" in out and "File already exists" in out
