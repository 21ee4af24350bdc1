"""watchdog in a real server (config reload, drop folder) and a third-party plugin installed via an entry point."""
from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Callable, Iterator

import pytest

from artifactd.app import App
from artifactd.http.server import serve_in_thread
from tests.conftest import Proc
from tests.dists import make_wheel
from tests.integration.test_upload_errors import form, twine_fields


def wait_for(pred: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.05)
    return pred()


@pytest.fixture
def running(tmp_path: Path) -> Iterator[App]:
    app = App(tmp_path / "data")
    httpd, thread = serve_in_thread(app)
    app.test_url = httpd.url  # type: ignore[attr-defined]
    yield app
    httpd.shutdown()
    httpd.server_close()
    thread.join(5)
    app.close()


def test_config_edit_reloads_live_and_a_broken_edit_is_kept_out(running: App, caplog: pytest.LogCaptureFixture) -> None:
    cfg = running.layout.config
    original = cfg.read_text()
    cfg.write_text(original + '\n[repositories.added-live]\ntype = "hosted"\n')
    assert wait_for(lambda: running.config.repo("added-live") is not None), "edit not picked up"
    with urllib.request.urlopen(running.test_url + "/repository/added-live/simple/", timeout=5) as r:  # type: ignore[attr-defined]
        assert r.status == 200
    caplog.set_level(logging.ERROR, logger="artifactd.app")
    cfg.write_text(original + '\n[repositories.broken]\ntype = "hosted"\nbogus = 1\n')
    assert wait_for(lambda: "configuration not reloaded" in caplog.text)
    assert "bogus" in caplog.text and running.config.repo("added-live") is not None
    assert running.config.repo("broken") is None


def test_drop_folder_imports_and_quarantines_failures(tmp_path: Path) -> None:
    drop = tmp_path / "drop"
    drop.mkdir()
    good_early = make_wheel(tmp_path / "d", "early", "1.0")
    os.replace(good_early, drop / good_early.name)  # present before the server starts
    app = App(tmp_path / "data")
    with open(app.layout.config, "a") as fh:
        fh.write(f'\n[watch]\ndrop-folder = "{drop}"\ndrop-repository = "pypi-local"\nsettle = "0.2s"\n')
    app.reload_if_changed()
    httpd, thread = serve_in_thread(app)
    try:
        late = make_wheel(tmp_path / "d", "late", "2.0")
        os.replace(late, drop / late.name)
        (drop / "notes.txt").write_text("not a distribution")
        assert wait_for(lambda: {a.project for a in app.db.artifacts("pypi-local")} == {"early", "late"})
        assert wait_for(lambda: (drop / "failed" / "notes.txt.error").exists())
        assert (drop / "imported" / good_early.name).exists() and (drop / "imported" / late.name).exists()
        assert (drop / "failed" / "notes.txt").exists()
        assert (drop / "failed" / "notes.txt.error").read_text().strip()
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)
        app.close()
    assert not any(t.name.startswith("artifactd-drop") and t.is_alive() for t in __import__("threading").enumerate())


PLUGIN = '''
import artifactd
from artifactd.model import Verdict


@artifactd.hookimpl
def artifactd_check_upload(artifact):
    if "evil" in (artifact.filename or ""):
        return Verdict.deny("denyall says no to evil files")
    return None
'''


def test_third_party_plugin_via_entry_point_gates_an_upload(tmp_path: Path) -> None:
    import importlib.util

    if importlib.util.find_spec("setuptools") is None:
        pytest.skip("setuptools is not installed: the plugin cannot be built offline (--no-build-isolation)")
    src = tmp_path / "denyall"
    src.mkdir()
    (src / "denyall_plugin.py").write_text(PLUGIN)
    (src / "pyproject.toml").write_text(textwrap.dedent('''
        [build-system]
        requires = ["setuptools"]
        build-backend = "setuptools.build_meta"
        [project]
        name = "denyall"
        version = "0.1"
        [project.entry-points.artifactd]
        denyall = "denyall_plugin"
        [tool.setuptools]
        py-modules = ["denyall_plugin"]
    '''))
    # A throw-away virtual environment: it sees artifactd through a .pth file that adds this
    # environment's site-packages (so nothing is downloaded), and the plugin is pip-installed
    # into the venv itself, where its entry point is found like any third-party plugin's.
    import sysconfig

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=60)
    py = str(venv / "bin" / "python")
    venv_site = subprocess.run([py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip()
    parent_site = sysconfig.get_paths()["purelib"]
    Path(venv_site, "_artifactd_parent.pth").write_text(f"import site; site.addsitedir({parent_site!r})\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "PYTHON"))}
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_CACHE_DIR="1")
    proc = subprocess.run([sys.executable, "-m", "pip", "--python", py, "install", "-q", "--no-index", "--no-deps",
                           "--no-build-isolation", str(src)],
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert list(Path(venv_site).glob("denyall-0.1.dist-info")), "the plugin is installed in the venv"
    data = tmp_path / "data"
    subprocess.run([py, "-m", "artifactd", "--data-dir", str(data), "init"], env=env,
                   capture_output=True, check=True, timeout=60)
    listed = subprocess.run([py, "-m", "artifactd", "--data-dir", str(data), "plugins", "list"],
                            env=env, capture_output=True, text=True, timeout=60)
    assert listed.returncode == 0, listed.stderr
    assert "denyall" in listed.stdout and "check_upload" in listed.stdout
    # Outside the venv, the plugin does not exist.
    plain = subprocess.run([sys.executable, "-m", "artifactd", "--data-dir", str(data), "plugins", "list"],
                           env=env, capture_output=True, text=True, timeout=60)
    assert "denyall" not in plain.stdout

    server = Proc(data, tmp_path / "server.log")
    server.python = py
    server.env = env
    server.start()
    try:
        token = _admin_token(data)
        evil = make_wheel(tmp_path / "w", "evil-pkg", "1.0").read_bytes()
        fine = make_wheel(tmp_path / "w", "fine-pkg", "1.0").read_bytes()
        assert _post(server.url, token, "evil_pkg-1.0-py3-none-any.whl", "evil-pkg", evil) == \
            (403, True)
        assert _post(server.url, token, "fine_pkg-1.0-py3-none-any.whl", "fine-pkg", fine)[0] == 200
    finally:
        server.stop()


def _admin_token(data: Path) -> str:
    for line in (data / "admin-credentials.txt").read_text().splitlines():
        if line.startswith("token = "):
            return line.split(" = ", 1)[1].strip()
    raise AssertionError("no token")


def _post(url: str, token: str, filename: str, name: str, data: bytes) -> tuple[int, bool]:
    import base64

    body, ctype = form(twine_fields(name, "1.0", data), [("content", filename, data)])
    req = urllib.request.Request(url + "/repository/pypi-local/", data=body, method="POST", headers={
        "Content-Type": ctype, "Authorization": "Basic " + base64.b64encode(f"__token__:{token}".encode()).decode()})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, False
    except urllib.error.HTTPError as exc:
        text = exc.read().decode()
        exc.close()
        return exc.code, "denyall says no to evil files" in text
