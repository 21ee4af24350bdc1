"""Shared fixtures: real servers on 127.0.0.1 port 0, real distributions, clean client environments."""
from __future__ import annotations

import base64
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from artifactd.app import App
from artifactd.http.server import ArtifactServer, serve_in_thread
from artifactd.service import create_token

from tests.dists import make_sdist, make_wheel  # noqa: F401  (re-exported for tests)

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
BIN = Path(sys.executable).parent


class Server:
    """An artifactd serving a temporary data directory, with an admin token."""

    def __init__(self, app: App, httpd: ArtifactServer) -> None:
        self.app = app
        self.httpd = httpd
        self.url = httpd.url
        self.token, _ = create_token(app, "admin", "tests", ("admin",))

    def repo_url(self, repo: str) -> str:
        return f"{self.url}/repository/{repo}/"

    def simple(self, repo: str) -> str:
        return f"{self.url}/repository/{repo}/simple/"

    def settled(self, handed_off: int = -1, timeout: float = 10.0) -> bool:
        """Wait until the loop has handed more than ``handed_off`` connections to workers (by
        default any number), every worker is idle again and the loop holds no connection: whatever
        a request started (a temporary file, say) is finished with. False if that does not happen
        within ``timeout``."""
        workers, loop = self.httpd.workers, self.httpd.loop
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if loop.handed_off > handed_off and workers.idle() == workers.live() and loop.open_connections() == 0:
                return True
            time.sleep(0.02)
        return False

    @property
    def basic(self) -> str:
        return "Basic " + base64.b64encode(f"__token__:{self.token}".encode()).decode()


@pytest.fixture
def app(tmp_path: Path) -> Iterator[App]:
    a = App(tmp_path / "data")
    yield a
    a.close()


@pytest.fixture
def server(app: App) -> Iterator[Server]:
    httpd, thread = serve_in_thread(app)
    yield Server(app, httpd)
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=5)


def clean_env(tmp_path: Path) -> dict[str, str]:
    """An environment where pip/uv/twine/pdm/poetry see no machine-wide indexes, caches or config."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PIP_", "UV_", "TWINE_", "PDM_", "POETRY_", "PYTHON")) and k not in ("VIRTUAL_ENV",)}
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    env.update({
        "HOME": str(home),
        "PIP_CONFIG_FILE": os.devnull,
        "PIP_NO_CACHE_DIR": "1",
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        "UV_NO_CONFIG": "1",
        "UV_CACHE_DIR": str(tmp_path / "uv-cache"),
        "UV_NO_PROGRESS": "1",
        "NO_COLOR": "1",
    })
    return env


def run(cmd: list[str], env: dict[str, str], timeout: float = 180, check: bool = True,
        cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout, cwd=cwd)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def tool(name: str) -> str:
    path = BIN / name
    if not path.exists():
        pytest.skip(f"{name} is not installed in the test environment")
    return str(path)


@pytest.fixture
def venv(tmp_path: Path) -> Path:
    """A fresh, empty virtual environment (no pip inside: pip runs from outside with --python)."""
    target = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(target)], check=True)
    return target


class Proc:
    """``artifactd serve`` as a real child process (for kill -9 tests)."""

    def __init__(self, data_dir: Path, log: Path) -> None:
        self.data_dir = data_dir
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""
        self.preexec: Any = None  # e.g. set resource limits in the child (disk-full tests)
        self.python = sys.executable  # another interpreter, e.g. a throw-away venv's
        self.env: dict[str, str] | None = None

    def start(self, port: int = 0) -> "Proc":
        fh = open(self.log, "ab")
        offset = fh.tell()  # on a restart, only this run's lines count
        self.proc = subprocess.Popen(
            [self.python, "-m", "artifactd", "--data-dir", str(self.data_dir), "serve", "--port", str(port)],
            stdout=fh, stderr=fh, preexec_fn=self.preexec, env=self.env,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with open(self.log, "rb") as lf:
                lf.seek(offset)
                text = lf.read().decode(errors="replace")
            for line in text.splitlines()[::-1]:
                if " on http://" in line and "serving" in line:
                    self.url = line.rsplit(" on ", 1)[1].strip()
                    return self
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited early:\n{text}")
            time.sleep(0.05)
        raise AssertionError("server did not start:\n" + self.log.read_text(errors="replace"))

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()  # SIGKILL to our own child, by its PID
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture
def server_process(tmp_path: Path) -> Iterator[Proc]:
    p = Proc(tmp_path / "procdata", tmp_path / "server.log")
    yield p
    p.stop()
