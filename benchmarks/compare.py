"""Side-by-side benchmark: artifactd against pypiserver and devpi-server, same data, one run.

    .venv/bin/python benchmarks/compare.py            # full run (~10 min the first time, downloads cached)
    .venv/bin/python benchmarks/compare.py --quick    # shorter load tests, smaller download file

What it does (see docs/benchmarks.md for the latest table):

* downloads a real dependency set (16 requirements, 50+ wheels) once with ``pip download``, using
  pip's own configuration, into the cache directory ($ARTIFACTD_BENCH_CACHE, default
  ~/.cache/artifactd-bench/compare); installs pypiserver and devpi-server into their own venvs there, and a
  "clients" venv with current pip and twine (uv is the project's own);
* generates a synthetic index of 10,000 projects / 50,000 small wheels (cached);
* starts each server on 127.0.0.1 with a free port and measures: twine upload of the real set,
  ``pip install`` and ``uv pip install`` of it into fresh venvs with no client cache (pip
  --no-cache-dir; uv with a fresh, empty UV_CACHE_DIR) and no client configuration;
  requests/s and p50/p99 latency of one project page and the root page at 2 and 16
  connections (wrk when installed, else a bounded Python load generator); download throughput of
  a large file; start time (process start until the first 200 on the root page, with the data
  loaded) and peak RSS (VmHWM, children included); root and project page latency on the synthetic
  index (artifactd and pypiserver; devpi is not loaded with 50,000 files: at its upload rate that
  alone would take hours);
* prints one table with the advantage of artifactd over each peer (peer/artifactd for times,
  artifactd/peer for rates: above 1 means artifactd is better) and writes docs/benchmarks.md.

All traffic goes to loopback, except the package clients' own downloads into the cache.
Every load test is bounded in time; only processes this script started are stopped, by PID.
"""
from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import http.client
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
CACHE = Path(os.environ.get("ARTIFACTD_BENCH_CACHE") or Path.home() / ".cache" / "artifactd-bench" / "compare")

# Sixteen everyday requirements; pip resolves them to 50+ wheels for this interpreter.
REQUIREMENTS = [
    "requests", "rich", "click", "jinja2", "pydantic", "httpx", "sqlalchemy", "numpy",
    "pyyaml", "pytest", "flask", "python-dateutil", "cryptography", "pandas", "boto3", "aiohttp",
]
PEERS = {
    # What a user installs to run each peer as its documentation recommends.
    "pypiserver": ["pypiserver[cache]", "waitress"],
    "devpi": ["devpi-server", "devpi-client"],
}
CLIENTS = ["pip", "twine"]
SYNTH_PROJECTS = 10_000
SYNTH_VERSIONS = 5
UV_ACCEPT = ("application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html;q=0.2, "
             "text/html;q=0.01")
START_ROUNDS = 7  # restarts per server for the start-time row (median)
PROJECT = "requests"  # the project page that the load test asks for


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def run(cmd: list[str], *, env: dict[str, str] | None = None, cwd: Path | None = None, check: bool = True,
        timeout: float = 1800, quiet: bool = True) -> subprocess.CompletedProcess[str]:
    p = subprocess.run([str(c) for c in cmd], env=env, cwd=cwd, text=True, timeout=timeout,
                       stdout=subprocess.PIPE if quiet else None, stderr=subprocess.STDOUT if quiet else None)
    if check and p.returncode != 0:
        raise RuntimeError(f"command failed ({p.returncode}): {' '.join(map(str, cmd))}\n{(p.stdout or '')[-4000:]}")
    return p


def clean_env(home: Path) -> dict[str, str]:
    """No PIP_*/UV_*/TWINE_* settings and a throwaway HOME: clients see no user configuration."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PIP_", "UV_", "TWINE_", "VIRTUAL_ENV", "PYTHON"))}
    env["HOME"] = str(home)
    env["XDG_CONFIG_HOME"] = str(home / ".config")
    env["XDG_CACHE_HOME"] = str(home / ".cache")
    return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- preparation (cached) -------------------------------------------------------------------------

def venv(name: str, packages: list[str]) -> Path:
    d = CACHE / "venvs" / name
    marker = d / ".bench-ok"
    want = json.dumps(packages)
    if marker.exists() and marker.read_text() == want:
        return d / "bin"
    log(f"creating venv {name}: pip install {' '.join(packages)}")
    shutil.rmtree(d, ignore_errors=True)
    run([sys.executable, "-m", "venv", d])
    run([d / "bin" / "python", "-m", "pip", "install", "-q", "-U", *packages])
    marker.write_text(want)
    return d / "bin"


def artifactd_venv() -> Path:
    """artifactd installed the way README's quick start does it (``pip install .``, not editable),
    in its own venv like every peer: the checkout is reinstalled on every run."""
    d = CACHE / "venvs" / "artifactd"
    if not (d / "bin" / "python").exists():
        log("creating venv artifactd")
        run([sys.executable, "-m", "venv", d])
    log("installing this checkout into it (pip install .)")
    # The build measured is the checkout as it is now: name it now (commits may land during a run).
    global BUILT_FROM
    head = run(["git", "-C", ROOT, "describe", "--always", "--dirty=+uncommitted changes"], check=False).stdout.strip()
    BUILT_FROM = head or "?"
    # Built as a wheel first (pip's isolated build), so that the server's venv holds what
    # 'pip install .' leaves in a user's: artifactd and its dependencies, no build tools.
    with tempfile.TemporaryDirectory() as wheels:
        run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", wheels, ROOT])
        built = sorted(Path(wheels).glob("artifactd-*.whl"))
        run([d / "bin" / "python", "-m", "pip", "install", "-q", *built])  # dependencies, the first time
        run([d / "bin" / "python", "-m", "pip", "install", "-q", "--force-reinstall", "--no-deps", *built])
    return d / "bin"


ARTIFACTD_BIN: Path = VENV_BIN  # replaced by artifactd_venv() in main()
BUILT_FROM = "?"  # the commit artifactd_venv() installed


def real_wheels() -> list[Path]:
    d = CACHE / "wheels"
    marker = d / ".requirements"
    want = "\n".join(REQUIREMENTS)
    if not (marker.exists() and marker.read_text() == want):
        log("downloading the real dependency set once with pip download (pip's own configuration)")
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir(parents=True)
        run([sys.executable, "-m", "pip", "download", "-q", "--only-binary=:all:", "-d", d, *REQUIREMENTS])
        marker.write_text(want)
    return sorted(d.glob("*.whl"))


def big_wheel(size_mb: int) -> Path:
    d = CACHE / "big"
    path = d / f"bigfile-{size_mb}.0-py3-none-any.whl"
    if path.exists():
        return path
    d.mkdir(parents=True, exist_ok=True)
    log(f"writing a {size_mb} MiB wheel")
    tmp = path.with_suffix(".tmp")
    chunk = os.urandom(1 << 20)
    name, ver = "bigfile", f"{size_mb}.0"
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr(f"{name}-{ver}.dist-info/METADATA", f"Metadata-Version: 2.1\nName: {name}\nVersion: {ver}\n")
        zf.writestr(f"{name}-{ver}.dist-info/WHEEL", "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        zf.writestr(f"{name}-{ver}.dist-info/RECORD", "")
        with zf.open(f"{name}/blob.bin", "w", force_zip64=True) as fh:
            for _ in range(size_mb):
                fh.write(chunk)
    tmp.rename(path)
    return path


def synthetic_wheels() -> Path:
    """10,000 projects × 5 versions of tiny, valid wheels in one flat directory."""
    d = CACHE / "synthetic" / "wheels"
    marker = d.parent / ".wheels-ok"
    want = f"{SYNTH_PROJECTS}x{SYNTH_VERSIONS}"
    if marker.exists() and marker.read_text() == want:
        return d
    log(f"generating {SYNTH_PROJECTS * SYNTH_VERSIONS} synthetic wheels")
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir(parents=True)
    for i in range(SYNTH_PROJECTS):
        name = f"synth_{i:05d}"
        for v in range(SYNTH_VERSIONS):
            ver = f"1.{v}.0"
            di = f"{name}-{ver}.dist-info"
            files = {
                f"{name}/__init__.py": b"",
                f"{di}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {ver}\nSummary: synthetic\n"
                                  f"Requires-Python: >=3.8\n".encode(),
                f"{di}/WHEEL": b"Wheel-Version: 1.0\nGenerator: bench\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
            }
            record = "".join(f"{p},sha256={base64.urlsafe_b64encode(hashlib.sha256(b).digest()).rstrip(b'=').decode()},{len(b)}\n"
                             for p, b in files.items()) + f"{di}/RECORD,,\n"
            files[f"{di}/RECORD"] = record.encode()
            with zipfile.ZipFile(d / f"{name}-{ver}-py3-none-any.whl", "w", zipfile.ZIP_DEFLATED) as zf:
                for p, b in files.items():
                    zf.writestr(zipfile.ZipInfo(p, date_time=(2024, 1, 1, 0, 0, 0)), b)
    marker.write_text(want)
    return d


def synthetic_artifactd_data(wheels: Path) -> Path:
    """artifactd's data directory holding the synthetic index, imported once with `artifactd upload`'s code.

    Setup only, not measured: the import runs in a child process with fsync turned off, since
    durability of a throwaway benchmark fixture does not matter.
    """
    d = CACHE / "synthetic" / "artifactd-data"
    marker = d.parent / ".artifactd-ok"
    want = f"{SYNTH_PROJECTS}x{SYNTH_VERSIONS}"
    if marker.exists() and marker.read_text() == want:
        return d
    shutil.rmtree(d, ignore_errors=True)
    log("importing the synthetic index into artifactd (setup, once)")
    code = (
        "import os, sys, time; os.fsync = lambda fd: None\n"
        "from pathlib import Path\n"
        "from artifactd.app import App\n"
        "from artifactd.service import upload_file\n"
        "app = App(sys.argv[1]); app.db.con.execute('PRAGMA synchronous=OFF')\n"
        "files = sorted(Path(sys.argv[2]).glob('*.whl')); t = time.time()\n"
        "for i, f in enumerate(files):\n"
        "    upload_file(app, 'pypi-local', f)\n"
        "    if i % 5000 == 0: print(i, round(time.time() - t, 1), flush=True)\n"
        "app.close()\n"
    )
    run([sys.executable, "-c", code, d, wheels], cwd=ROOT, timeout=3600, quiet=False)
    marker.write_text(want)
    return d


# --- servers --------------------------------------------------------------------------------------

@dataclass
class Server:
    name: str
    cmd: list[str]
    root_path: str
    project_path: Callable[[str], str]
    upload_url: str = ""
    username: str = ""
    password: str = ""
    env: dict[str, str] = field(default_factory=dict)
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 120) -> float:
        """Start the process; seconds until the root page answers 200."""
        t0 = time.perf_counter()
        self.proc = subprocess.Popen([str(c) for c in self.cmd], env=self.env or None, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, start_new_session=True)
        while time.perf_counter() - t0 < timeout:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}: {' '.join(map(str, self.cmd))}")
            try:
                c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                c.request("GET", self.root_path)
                r = c.getresponse()
                r.read()
                c.close()
                if r.status == 200:
                    return time.perf_counter() - t0
            except OSError:
                pass
            time.sleep(0.002)
        raise RuntimeError(f"{self.name} did not answer within {timeout} s")

    def pids(self) -> list[int]:
        if self.proc is None:
            return []
        out = [self.proc.pid]
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text().split():
                out.append(int(line))
        return out

    def peak_rss_mb(self) -> float:
        total = 0
        for pid in self.pids():
            with contextlib.suppress(OSError):
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        total += int(line.split()[1])
        return total / 1024

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)  # the session we created for this process only
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.proc = None


def artifactd_server(data: Path, port: int) -> Server:
    return Server(
        "artifactd",
        [ARTIFACTD_BIN / "artifactd", "--data-dir", data, "serve", "--host", "127.0.0.1", "--port", port],
        "/repository/pypi/simple/", lambda p: f"/repository/pypi/simple/{p}/", port=port,
    )


def pypiserver_server(bin_: Path, packages: Path, port: int, backend: str = "auto") -> Server:
    return Server(
        "pypiserver" if backend == "auto" else f"pypiserver-{backend}",
        [bin_ / "pypi-server", "run", "-i", "127.0.0.1", "-p", port, "-a", ".", "-P", ".",
         "--disable-fallback", "--server", backend, packages],
        "/simple/", lambda p: f"/simple/{p}/", port=port,
    )


def devpi_server(bin_: Path, serverdir: Path, port: int) -> Server:
    return Server(
        "devpi",
        [bin_ / "devpi-server", "--serverdir", serverdir, "--host", "127.0.0.1", "--port", port, "--offline-mode"],
        "/root/dev/+simple/", lambda p: f"/root/dev/+simple/{p}/", port=port,
    )


# --- measurements ---------------------------------------------------------------------------------

def twine_upload(clients: Path, server: Server, files: list[Path], home: Path) -> float:
    t = time.perf_counter()
    run([clients / "twine", "upload", "--non-interactive", "--disable-progress-bar", "--repository-url",
         server.upload_url, "-u", server.username, "-p", server.password, *files], env=clean_env(home))
    return time.perf_counter() - t


def scratch_dir(work: Path) -> Path:
    """Where installs write (the target venv, uv's cache): tmpfs when there is one.

    An install writes ~300 MB of unpacked files; on a disk, the writeback of the previous round
    lands in the next one and moves a uv install by ±1 s — the same client-side work whatever
    the server, yet larger than the differences between servers. On tmpfs what remains is the
    client's CPU time and the server. ``--disk-scratch`` measures on the disk instead.
    """
    shm = Path("/dev/shm")
    if not DISK_SCRATCH and shm.is_dir() and os.access(shm, os.W_OK):
        d = Path(tempfile.mkdtemp(prefix="artifactd-bench-", dir=shm))
        return d
    return work


DISK_SCRATCH = False  # set by --disk-scratch


def install(kind: str, clients: Path, server: Server | None, work: Path, home: Path) -> float:
    scratch = scratch_dir(work)
    try:
        return _install(kind, clients, server, work, home, scratch)
    finally:
        if scratch != work:
            shutil.rmtree(scratch, ignore_errors=True)


def _install(kind: str, clients: Path, server: Server | None, work: Path, home: Path, scratch: Path) -> float:
    """One timed install. ``server`` None: from the local wheel files (``--find-links``), no server at all."""
    target = scratch / f"venv-{kind}"
    shutil.rmtree(target, ignore_errors=True)
    run([sys.executable, "-m", "venv", "--without-pip", target])
    reqs = work / "requirements.txt"
    reqs.write_text("\n".join(REQUIREMENTS) + "\n")
    source = (["--index-url", server.base + server.root_path] if server is not None
              else ["--no-index", "--find-links", CACHE / "wheels"])
    env = clean_env(home)
    if kind == "pip":
        cmd = [clients / "python", "-m", "pip", "--python", target / "bin" / "python", "install", "--isolated",
               "--no-cache-dir", "--disable-pip-version-check", "-q", *source, "-r", reqs]
    else:
        # A fresh, empty cache directory (removed after the timing) rather than --no-cache: with
        # --no-cache uv deletes its temporary cache of ~300 MB of unpacked files before it exits,
        # about 2 s of file-system work on this machine that is the same whatever the server.
        cache = scratch / "uv-cache"
        shutil.rmtree(cache, ignore_errors=True)
        env["UV_CACHE_DIR"] = str(cache)
        cmd = [VENV_BIN / "uv", "pip", "install", "--python", target / "bin" / "python", "--no-config",
               "-q", *source, "-r", reqs]
    os.sync()  # flush earlier writes (a previous venv) so that writeback does not land in this timing
    t = time.perf_counter()
    run(cmd, env=env)
    elapsed = time.perf_counter() - t
    shutil.rmtree(target, ignore_errors=True)
    shutil.rmtree(scratch / "uv-cache", ignore_errors=True)
    return elapsed


@dataclass
class Load:
    rps: float
    p50_ms: float
    p99_ms: float


def _wrk_ms(s: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s)", s)
    if not m:
        return float("nan")
    v = float(m.group(1))
    return v / 1000 if m.group(2) == "us" else v * 1000 if m.group(2) == "s" else v


def load_test(server: Server, path: str, conns: int, seconds: float) -> Load:
    wrk = shutil.which("wrk")
    url = server.base + path
    if wrk:
        p = run([wrk, "-t", str(min(2, conns)), "-c", str(conns), "-d", f"{seconds:g}s", "--latency",
                 "--timeout", "5s", "-H", f"Accept: {UV_ACCEPT}", url], timeout=seconds + 30)
        out = p.stdout
        rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
        p50 = _wrk_ms(re.search(r"\s50%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
        p99 = _wrk_ms(re.search(r"\s99%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
        non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
        if non2xx:
            raise RuntimeError(f"{server.name} {path}: {non2xx.group(1)} error responses under load")
        return Load(rps, p50, p99)
    return _py_load(server, path, conns, seconds)


def _py_load(server: Server, path: str, conns: int, seconds: float) -> Load:
    """Fallback load generator: threads with keep-alive connections, bounded by time and count."""
    lat: list[float] = []
    lock = threading.Lock()
    deadline = time.perf_counter() + seconds

    def worker() -> None:
        c = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        mine = []
        while time.perf_counter() < deadline and len(mine) < 1_000_000:
            t = time.perf_counter()
            c.request("GET", path, headers={"Accept": UV_ACCEPT})
            r = c.getresponse()
            r.read()
            mine.append(time.perf_counter() - t)
        c.close()
        with lock:
            lat.extend(mine)

    t0 = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(conns)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    lat.sort()
    return Load(len(lat) / elapsed, lat[len(lat) // 2] * 1000, lat[int(len(lat) * 0.99)] * 1000)


def sequential_latency(server: Server, path: str, n: int) -> tuple[float, float]:
    """(first request ms on a fresh connection, median ms of n more on one keep-alive connection)."""
    c = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    times = []
    for _ in range(n + 1):
        t = time.perf_counter()
        c.request("GET", path, headers={"Accept": UV_ACCEPT})
        r = c.getresponse()
        r.read()
        if r.status != 200:
            raise RuntimeError(f"{server.name} {path}: HTTP {r.status}")
        times.append((time.perf_counter() - t) * 1000)
    c.close()
    return times[0], statistics.median(times[1:])


def file_url(server: Server, filename: str) -> str:
    """The file's URL as the project page links it (each server lays files out differently)."""
    project = re.split(r"-\d", filename, maxsplit=1)[0].replace("_", "-").lower()
    c = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    c.request("GET", server.project_path(project), headers={"Accept": "text/html"})
    r = c.getresponse()
    body = r.read().decode()
    c.close()
    base = server.base + server.project_path(project)
    from urllib.parse import urljoin, urlsplit
    for href in re.findall(r'href="([^"]+)"', body):
        if filename in href:
            return urlsplit(urljoin(base, href.replace("&amp;", "&"))).path
    raise RuntimeError(f"{server.name}: {filename} not linked from {server.project_path(project)}")


def download_mb_s(server: Server, path: str, rounds: int = 3) -> float:
    best = 0.0
    for _ in range(rounds):
        c = http.client.HTTPConnection("127.0.0.1", server.port, timeout=600)
        t = time.perf_counter()
        c.request("GET", path)
        r = c.getresponse()
        n = 0
        buf = bytearray(1 << 20)
        while k := r.readinto(buf):
            n += k
        elapsed = time.perf_counter() - t
        c.close()
        if r.status != 200 or n == 0:
            raise RuntimeError(f"{server.name}: download of {path} gave {r.status}, {n} bytes")
        best = max(best, n / 2**20 / elapsed)
    return best


# --- one peer, start to finish --------------------------------------------------------------------

def prepare(name: str, work: Path, bins: dict[str, Path]) -> Server:
    port = free_port()
    if name == "artifactd":
        data = work / "artifactd-data"
        run([ARTIFACTD_BIN / "artifactd", "--data-dir", data, "init"], cwd=ROOT)
        token = re.search(r"token = (\S+)", (data / "admin-credentials.txt").read_text()).group(1)  # type: ignore[union-attr]
        s = artifactd_server(data, port)
        s.upload_url, s.username, s.password = f"{s.base}/repository/pypi-local/", "__token__", token
        return s
    if name in ("pypiserver", "pypiserver-wsgiref"):
        pkgs = work / "pypiserver-packages"
        pkgs.mkdir()
        s = pypiserver_server(bins["pypiserver"], pkgs, port, "auto" if name == "pypiserver" else "wsgiref")
        s.upload_url, s.username, s.password = f"{s.base}/", "bench", "bench"
        return s
    serverdir = work / "devpi-server"
    run([bins["devpi"] / "devpi-init", "--serverdir", serverdir, "--no-root-pypi", "--root-passwd", "bench"])
    s = devpi_server(bins["devpi"], serverdir, port)
    s.upload_url, s.username, s.password = f"{s.base}/root/dev/", "root", "bench"
    return s


def devpi_create_index(bins: dict[str, Path], s: Server, home: Path) -> None:
    env = clean_env(home)
    cdir = home / "devpi-client"
    dv = bins["devpi"] / "devpi"
    run([dv, "use", "--clientdir", cdir, s.base], env=env)
    run([dv, "login", "--clientdir", cdir, "root", "--password", "bench"], env=env)
    run([dv, "index", "--clientdir", cdir, "-c", "root/dev", "bases=", "volatile=True"], env=env)


FLOOR = "no server (local --find-links)"


def bench_real(names: list[str], tmp: Path, bins: dict[str, Path], wheels: list[Path], big: Path,
               seconds: float, pip_rounds: int, uv_rounds: int = 5,
               upload_rounds: int = 3, load_rounds: int = 3) -> dict[str, dict[str, float]]:
    """The real-set rows. All servers run at once (idle unless measured), so that the install
    rounds can go round-robin (A B C, A B C, ...): other work on a shared machine then falls on
    every server alike instead of on whichever was measured at that moment."""
    servers: dict[str, Server] = {}
    homes: dict[str, Path] = {}
    works: dict[str, Path] = {}
    res: dict[str, dict[str, float]] = {n: {} for n in names}
    res[FLOOR] = {}
    uploads: dict[str, list[float]] = {n: [] for n in names}
    try:
        # Each upload round goes to a fresh server with empty storage (a re-upload would only
        # meet "already stored"); the last round's servers stay up for everything below.
        for rnd in range(upload_rounds):
            for name in names:
                if name in servers:
                    servers.pop(name).stop()
                works[name] = tmp / f"{name}-{rnd}"
                works[name].mkdir()
                homes[name] = works[name] / "home"
                homes[name].mkdir()
                s = servers[name] = prepare(name, works[name], bins)
                if name == "devpi":
                    s.root_path = "/+api"
                    s.start()
                    devpi_create_index(bins, s, homes[name])
                    s.root_path = "/root/dev/+simple/"
                else:
                    s.start()
                uploads[name].append(twine_upload(bins["clients"], s, wheels, homes[name]))
        for name in names:
            res[name]["upload"] = statistics.median(uploads[name])
            log(f"{name}: twine upload of {len(wheels)} wheels: median {res[name]['upload']:.2f} s of "
                f"{', '.join(f'{t:.2f}' for t in uploads[name])}")
            twine_upload(bins["clients"], servers[name], [big], homes[name])
        for kind, rounds in (("pip", pip_rounds), ("uv", uv_rounds)):
            times: dict[str, list[float]] = {n: [] for n in (*names, FLOOR)}
            order = [*names, FLOOR]  # FLOOR: the client alone, from the wheels on the local disk
            for rnd in range(rounds):
                # Each round starts with another server: no one is always first (or always right
                # after the floor's install).
                for name in order[rnd % len(order):] + order[:rnd % len(order)]:
                    if name == FLOOR:
                        times[name].append(install(kind, bins["clients"], None, tmp, tmp))
                    else:
                        times[name].append(install(kind, bins["clients"], servers[name], works[name], homes[name]))
            for name in (*names, FLOOR):
                res[name][kind] = statistics.median(times[name])
                log(f"{name}: {kind} install: median {res[name][kind]:.2f} s of "
                    f"{', '.join(f'{t:.2f}' for t in times[name])}")
        # Every row below is measured in rounds that visit the servers in turn, each round
        # starting with the next one, and reports the median: this machine's speed drifts by
        # tens of percent over minutes, and a block of rows per server would hand that drift
        # to whichever server was measured at the time.
        def rotated(rnd: int) -> list[str]:
            return names[rnd % len(names):] + names[:rnd % len(names)]

        os.sync()  # the installs' writeback must not land in the first load rows
        time.sleep(2)
        for name in names:
            s = servers[name]
            for path in (s.project_path(PROJECT), s.root_path):
                sequential_latency(s, path, 20)  # warm up
        for label in ("project", "root"):
            for conns in (2, 16):
                loads: dict[str, list[Load]] = {n: [] for n in names}
                for rnd in range(load_rounds):
                    for name in rotated(rnd):
                        s = servers[name]
                        path = s.project_path(PROJECT) if label == "project" else s.root_path
                        loads[name].append(load_test(s, path, conns, seconds))
                for name in names:
                    r, ls = res[name], loads[name]
                    r[f"{label}{conns}_rps"] = statistics.median(ld.rps for ld in ls)
                    r[f"{label}{conns}_p50"] = statistics.median(ld.p50_ms for ld in ls)
                    r[f"{label}{conns}_p99"] = statistics.median(ld.p99_ms for ld in ls)
                    log(f"{name}: {label} page, {conns} conns: {r[f'{label}{conns}_rps']:.0f} req/s, "
                        f"p50 {r[f'{label}{conns}_p50']:.2f} ms, p99 {r[f'{label}{conns}_p99']:.2f} ms "
                        f"(median of {len(ls)})")
        downloads: dict[str, list[float]] = {n: [] for n in names}
        for rnd in range(3):
            for name in rotated(rnd):
                downloads[name].append(download_mb_s(servers[name], file_url(servers[name], big.name), rounds=1))
        for name in names:
            res[name]["download"] = max(downloads[name])
            log(f"{name}: download {res[name]['download']:.0f} MiB/s (best of 3)")
            res[name]["rss"] = servers[name].peak_rss_mb()
            servers[name].stop()
        starts: dict[str, list[float]] = {n: [] for n in names}
        for rnd in range(START_ROUNDS):  # a single start is at the mercy of the machine's noise
            for name in rotated(rnd):
                starts[name].append(servers[name].start())
                servers[name].stop()
        for name in names:
            res[name]["start"] = statistics.median(starts[name])
            log(f"{name}: start {res[name]['start']:.2f} s (median of {START_ROUNDS}), peak RSS {res[name]['rss']:.0f} MB")
    finally:
        for s in servers.values():
            s.stop()
    return res


def bench_synthetic(name: str, work: Path, bins: dict[str, Path], synth: Path) -> dict[str, float]:
    log(f"== {name} with the synthetic index")
    port = free_port()
    if name == "artifactd":
        data = synthetic_artifactd_data(synth)
        # Setup, not measured: open it once, so that a schema migration of the cached data
        # directory (after an upgrade of artifactd) does not land in the start time.
        run([ARTIFACTD_BIN / "artifactd", "--data-dir", data, "repo", "list"])
        s = artifactd_server(data, port)
    else:
        s = pypiserver_server(bins["pypiserver"], synth, port)
    r: dict[str, float] = {}
    try:
        r["s_start"] = s.start(timeout=600)
        r["s_root_cold"], r["s_root_warm"] = sequential_latency(s, s.root_path, 10)
        proj = s.project_path("synth-04242")
        r["s_project_cold"], r["s_project_warm"] = sequential_latency(s, proj, 10)
        r["s_rss"] = s.peak_rss_mb()
        log(f"{name}: start {r['s_start']:.2f} s; root {r['s_root_cold']:.1f} ms cold, {r['s_root_warm']:.2f} ms warm; "
            f"project {r['s_project_warm']:.2f} ms warm; peak RSS {r['s_rss']:.0f} MB")
    finally:
        s.stop()
    return r


# --- report ---------------------------------------------------------------------------------------

ROWS: list[tuple[str, str, str, bool]] = [
    # key, label, unit, higher is better
    ("upload", "twine upload, real set", "s", False),
    ("pip", "pip install, real set, no cache", "s", False),
    ("uv", "uv pip install, real set, no cache", "s", False),
    ("project2_rps", "project page, 2 conns", "req/s", True),
    ("project2_p50", "project page, 2 conns, p50", "ms", False),
    ("project2_p99", "project page, 2 conns, p99", "ms", False),
    ("project16_rps", "project page, 16 conns", "req/s", True),
    ("project16_p50", "project page, 16 conns, p50", "ms", False),
    ("project16_p99", "project page, 16 conns, p99", "ms", False),
    ("root2_rps", "root page, 2 conns", "req/s", True),
    ("root2_p50", "root page, 2 conns, p50", "ms", False),
    ("root2_p99", "root page, 2 conns, p99", "ms", False),
    ("root16_rps", "root page, 16 conns", "req/s", True),
    ("root16_p50", "root page, 16 conns, p50", "ms", False),
    ("root16_p99", "root page, 16 conns, p99", "ms", False),
    ("download", "download, large file", "MiB/s", True),
    ("start", "start until first 200 (real set loaded)", "s", False),
    ("rss", "peak RSS (real set, after all of the above)", "MB", False),
    ("s_start", "synthetic 50,000 files: start", "s", False),
    ("s_root_cold", "synthetic: root page (10,000 projects), first", "ms", False),
    ("s_root_warm", "synthetic: root page, warm p50", "ms", False),
    ("s_project_cold", "synthetic: project page, first", "ms", False),
    ("s_project_warm", "synthetic: project page, warm p50", "ms", False),
    ("s_rss", "synthetic: peak RSS", "MB", False),
]


def fmt(v: float | None) -> str:
    if v is None:
        return "n/a"
    if v >= 100:
        return f"{v:,.0f}"
    if v >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


def ratio(a: float | None, peer: float | None, higher: bool) -> str:
    if a is None or peer is None or a <= 0 or peer <= 0:
        return "n/a"
    x = a / peer if higher else peer / a
    return f"{x:.2f}×"


def table(results: dict[str, dict[str, float]]) -> str:
    peers = [p for p in ("pypiserver", "pypiserver-wsgiref", "devpi") if p in results]
    floor = results.get(FLOOR, {})
    head = ["metric", "unit", "artifactd"] + peers + [f"vs {p}" for p in peers] + ([FLOOR] if floor else [])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    a = results.get("artifactd", {})
    for key, label, unit, higher in ROWS:
        row = [label, unit, fmt(a.get(key))] + [fmt(results[p].get(key)) for p in peers]
        row += [ratio(a.get(key), results[p].get(key), higher) for p in peers]
        if floor:
            row.append(fmt(floor.get(key)))
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def version_of(bin_: Path, dist: str) -> str:
    p = run([bin_ / "python", "-c", f"import importlib.metadata as m; print(m.version({dist!r}))"], check=False)
    return p.stdout.strip() or "?"


def machine() -> dict[str, str]:
    cpu = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = "?"
    with contextlib.suppress(OSError):
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f"{kb / 2**20:.0f} GiB"
    return {"cpus": str(os.cpu_count()), "cpu": cpu, "memory": mem, "os": platform.platform(),
            "python": platform.python_version()}


def write_doc(text: str, info: dict[str, str], args: argparse.Namespace, nwheels: int, mib: float) -> None:
    scratch_note = ("the target venv and uv's cache on the disk" if DISK_SCRATCH else
                    "the target venv and uv's cache on tmpfs (/dev/shm), so that the writeback of ~300 MB of "
                    "unpacked files per install (the same client work for every server, but ±1 s of noise on "
                    "this disk) does not swamp the differences between servers; `--disk-scratch` measures "
                    "on the disk")
    doc = ROOT / "docs" / "benchmarks.md"
    doc.parent.mkdir(exist_ok=True)
    info_lines = "\n".join(f"- {k}: {v}" for k, v in info.items())
    doc.write_text(f"""# Benchmarks: artifactd side by side with pypiserver and devpi-server

Produced by `.venv/bin/python benchmarks/compare.py{' --quick' if args.quick else ''}` on {time.strftime('%Y-%m-%d')}.
Every server ran on 127.0.0.1 on the same machine with the same data. All real-set servers run
at once (idle unless measured); installs go round-robin across them, every other row measures one
server at a time. The ratio columns give artifactd's advantage: peer/artifactd for times and sizes,
artifactd/peer for rates, so above 1× means artifactd is better. What the profiles showed and what
was changed: [performance.md](performance.md).

Machine and versions:
{info_lines}

Data: a real dependency set of {len(REQUIREMENTS)} requirements ({', '.join(REQUIREMENTS)}) resolved by
pip to {nwheels} wheels ({mib:.0f} MiB); a synthetic index of {SYNTH_PROJECTS:,} projects × {SYNTH_VERSIONS}
versions = {SYNTH_PROJECTS * SYNTH_VERSIONS:,} small wheels (artifactd and pypiserver only: loading
50,000 files into devpi through its upload API would take hours); one {args.big_mb} MiB file for the download row.

How: the upload row is the median of {1 if args.quick else 3} twine uploads, each to a freshly started server
with empty storage. Installs use fresh venvs (the median of {1 if args.quick else 5} runs for pip, of
{3 if args.quick else 5} for uv, taken round-robin across the servers, each round starting with the next
one, and across "{FLOOR}": the same client installing from the wheel files on the local disk,
which is what no server can beat),
`pip install --isolated --no-cache-dir` and `uv pip install --no-config` with a fresh, empty
UV_CACHE_DIR, and no PIP_*/UV_* variables; {scratch_note}. Load tests use wrk (or a Python keep-alive load generator)
with uv's Accept header, {'one run' if args.quick else 'the median of 3 runs'} of {args.seconds:g} s per row and server.
The machine's speed drifts by tens of percent over minutes, so every row (loads, downloads, starts)
is measured in rounds that visit the servers in turn, each round starting with the next server. Every server runs from its own venv: artifactd
installed with `pip install .` (as README's quick start does; not an editable install), the peers
with `pip install` of their packages. artifactd serves its default group repository
(`/repository/pypi/simple/`); pypiserver runs with `--server auto` (which picks waitress, the
setup its documentation recommends) and, as "pypiserver-wsgiref", with the stdlib backend that a
plain `pip install pypiserver` gets (real set only); `--disable-fallback` and no auth; devpi-server
runs `--offline-mode` with a `root/dev` index without bases. Start time is from process start until
the first 200 on the root page, with the data loaded (the median of {START_ROUNDS} restarts); peak RSS is VmHWM of the server process and its
children.

{text}

## Reading the rows where artifactd does not lead, or did not in earlier runs

- **pip install** (0.99–1.03× over the last six runs, 1.00–1.03× in the seventeenth and eighteenth: a tie): pip
  spends 9–17 s of its own CPU (byte-compiling ~4,000 files, unpacking; by machine) whatever
  the server, and every server lands within noise of the client alone. artifactd serves PEP 658
  metadata, which pip then parses twice per wheel (the sidecar, and again to check it against the
  wheel: `_check_sidecar_matches_wheel`): a cProfile of pip's own process shows ~0.45 s (profiled)
  of extra pip CPU against a server without metadata files, whose wheels it downloads instead —
  a trade that pays off over a real network and loses on loopback. uv, which uses the same
  metadata without the double parse, is faster from artifactd than from local files.
- **uv against pypiserver on waitress** (when under 2×; 1.45–3.56× over eighteen runs, 2× or
  more in eight, 2.22–3.56× in the fifteenth to eighteenth): uv from artifactd is faster than
  uv from local files (the floor column), so no
  server can beat pypiserver there by much more than this ratio, and the ratio follows
  pypiserver's own spread (0.96–1.39 s for one install in the thirteenth run, 0.99–1.95 s in the
  fourteenth, 1.06–1.51 s in the fifteenth). Against the pypiserver a plain
  `pip install pypiserver` runs (wsgiref) the ratio is ~20×.
- **root page p50 at 16 connections against pypiserver on wsgiref** (when near 1×): wsgiref serves
  one connection at a time, so a few connections get fast answers while the others wait — its p99
  at 16 connections is 1–2.5 s. artifactd answers in arrival order, so its p50 is the queue in
  front of every request (16 / requests per second): 0.81× in the eleventh and twelfth runs,
  1.19–1.29× in the thirteenth to eighteenth, with the connection loop (~6,000 →
  ~10,000 requests/s).
- **start against pypiserver**: both load the same standard-library HTTP stack (`http.server`
  with `email`, `http.client`, `ssl`: ~30 ms of the 0.1–0.16 s), and nearly all of the rest is
  imports on both sides. The harness's median put artifactd between 1.09× and 0.69× of
  pypiserver over the first fourteen runs (0.91–0.99× of the wsgiref build in the five before the
  fifteenth). In the seventh session plugin discovery stopped importing `importlib.metadata` and
  reading every installed distribution (~20 ms), and start-up runs with the garbage collector
  paused (~6%): side by side, nine starts each, 162–167 ms → 130–132 ms against pypiserver's
  wsgiref build's 133–136 ms; 1.07–1.08× and 1.01–1.04× in the fifteenth to eighteenth runs
  (in the eighth session `ssl`, which `http.client` imports, became an import on first use: ~3 ms).
  What is left is close to pypiserver's own: the interpreter, the HTTP stack, click, pluggy with
  `typing` and `inspect`, and ~20 ms of dataclass creation (docs/performance.md, "Start-up").
- **peak RSS against pypiserver on wsgiref** (0.83× in the eleventh to fourteenth runs, 0.90× and
  0.88× in the fifteenth and sixteenth, 1.04× in the seventeenth and eighteenth: 30.5 and 30.3
  against 31.6 MB). Idle,
  artifactd is ~2.6 MB smaller (26.5 against 29.1 MB before its configuration watcher starts, half
  a second in; ~28.6 with it). In the eighth session the growth under the harness went from ~8 MB to
  ~2.5–4.5 MB: the modules the first upload loaded (`packaging.metadata` and what it imports,
  `packaging.utils`/`tags`, `tarfile`) are no longer needed; upload bodies and store copies move in
  chunks under glibc's mmap threshold, which `serve` holds at 128 KiB; the connection loop reads
  into a buffer of its own; a zip's members are decoded one at a time instead of as a table of
  ZipInfo objects; `ssl` loads on first use; at most 4 SQLite connections are open at once
  (docs/performance.md, "The eighth session"). The lead
  is small: over a uv install the peak moves by up to ~2 MB with the number of worker threads the
  install ends up using. pypiserver on wsgiref parses nothing it stores, keeps no metadata, and
  serves one connection at a time.
- **twine upload** (when near 1×; against pypiserver on waitress 1.00–1.43× over eighteen runs,
  1.26–1.43× in the last ten, those with the digests twine announces hashed while the file streams in and
  md5/blake2 on a second core): twine's own start-up and hashing dominate the 1–2 s for every
  server, and twine sends one file at a time; artifactd's server-side time includes ~65 ms of
  fsync that RELIABILITY requires (8 per file) and pypiserver does not do.
- **tail latencies**: on this shared 2-core machine p99 moves by ±50% from one run to the next
  (the same build gave 3.9, 4.3 and 6.7 ms for the project page at 16 connections); medians of
  three runs per row damp but do not remove that.
""")
    log(f"wrote {doc}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="2 s load tests and a 100 MiB download file")
    ap.add_argument("--peers", default="pypiserver,pypiserver-wsgiref,devpi",
                    help="comma list (default: pypiserver,pypiserver-wsgiref,devpi)")
    ap.add_argument("--no-synthetic", action="store_true", help="skip the 50,000-file synthetic index")
    ap.add_argument("--disk-scratch", action="store_true",
                    help="installs write their venv and uv cache on the disk instead of tmpfs (/dev/shm)")
    ap.add_argument("--no-doc", action="store_true", help="do not write docs/benchmarks.md")
    ap.add_argument("--report-only", action="store_true",
                    help="only print the table and rewrite docs/benchmarks.md from the last run's results")
    args = ap.parse_args()
    global DISK_SCRATCH
    DISK_SCRATCH = args.disk_scratch
    args.seconds = 2.0 if args.quick else 5.0
    args.big_mb = 100 if args.quick else 500
    if args.report_only:
        last = json.loads((CACHE / "last-results.json").read_text())
        args.quick, args.seconds, args.big_mb = last["quick"], last["seconds"], last["big_mb"]
        DISK_SCRATCH = last.get("disk_scratch", True)
        text = table(last["results"])
        print(text)
        write_doc(text, last["info"], args, last["nwheels"], last["mib"])
        return 0
    peers = [p for p in args.peers.split(",") if p]
    CACHE.mkdir(parents=True, exist_ok=True)
    global ARTIFACTD_BIN
    ARTIFACTD_BIN = artifactd_venv()
    bins = {"clients": venv("clients", CLIENTS)}
    for p in peers:
        base = p.split("-")[0]  # pypiserver-wsgiref: the same install, its default backend
        bins[base] = venv(base, PEERS[base])
    wheels = real_wheels()
    mib = sum(w.stat().st_size for w in wheels) / 2**20
    log(f"real set: {len(wheels)} wheels, {mib:.0f} MiB")
    big = big_wheel(args.big_mb)
    synth = None if args.no_synthetic else synthetic_wheels()
    results: dict[str, dict[str, float]] = {}
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="artifactd-bench-") as tmp:
        names = ["artifactd", *peers]
        results = bench_real(names, Path(tmp), bins, wheels, big, args.seconds, 1 if args.quick else 5,
                             uv_rounds=3 if args.quick else 5, upload_rounds=1 if args.quick else 3,
                             load_rounds=1 if args.quick else 3)
        for name in names:
            if synth is not None and name in ("artifactd", "pypiserver"):
                results[name].update(bench_synthetic(name, Path(tmp) / name, bins, synth))
    info = machine()
    load_after = os.getloadavg()
    # The load generator and every server share this machine: other work on it shows up in
    # the tail latencies (p99) first. Recorded so that a reader can judge a run.
    info["load average (1/5/15 min) before / after the run"] = (
        f"{' '.join(f'{x:.1f}' for x in load_before)} / {' '.join(f'{x:.1f}' for x in load_after)}")
    from artifactd import __version__
    info["artifactd"] = f"{__version__} ({BUILT_FROM})"
    if "pypiserver" in bins:
        info["pypiserver"] = version_of(bins["pypiserver"], "pypiserver") + ", waitress " + version_of(bins["pypiserver"], "waitress")
    if "devpi" in bins:
        info["devpi-server"] = version_of(bins["devpi"], "devpi-server")
    info["pip (client)"] = version_of(bins["clients"], "pip")
    info["twine (client)"] = version_of(bins["clients"], "twine")
    info["uv (client)"] = run([VENV_BIN / "uv", "--version"]).stdout.strip()
    info["load generator"] = (run(["wrk", "--version"], check=False).stdout.splitlines() or ["python"])[0] if shutil.which("wrk") else "python threads"
    text = table(results)
    print(text)
    (CACHE / "last-results.json").write_text(json.dumps({
        "results": results, "info": info, "quick": args.quick, "disk_scratch": DISK_SCRATCH, "seconds": args.seconds, "big_mb": args.big_mb,
        "nwheels": len(wheels), "mib": mib}, indent=1))
    if not args.no_doc:
        write_doc(text, info, args, len(wheels), mib)
    return 0


if __name__ == "__main__":
    sys.exit(main())
