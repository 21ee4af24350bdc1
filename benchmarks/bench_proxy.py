"""Cold- and warm-cache installs through a proxy, side by side with devpi-server and proxpi.

One command:

    .venv/bin/python benchmarks/bench_proxy.py [--repeat 3] [--no-peers] [--cache-dir DIR]
                                               [--upstream pypiserver|artifactd]

What it does (only loopback traffic once the one-time preparation is done):
1. once: ``pip download`` a dependency set of 30+ real wheels (from the machine's configured
   indexes) into ``<cache>/wheels``; install devpi-server and proxpi into ``<cache>/venvs``;
2. serves the wheels with pypiserver on waitress on 127.0.0.1 (the upstream of every proxy,
   standing in for the public index: a server that takes many connections at once), or with
   ``--upstream artifactd`` from a second artifactd's hosted repository, which like the public
   index serves PEP 691 JSON and PEP 658 metadata (so a proxy can fetch a wheel's metadata
   without the wheel);
3. for each target — artifactd hosted (the wheels uploaded: the baseline), the artifactd group
   (empty hosted + proxy of the upstream), devpi-server's mirror, proxpi — and each client (pip,
   uv): ``--repeat`` fresh servers with one cold install each, and ``--repeat`` warm installs from
   the first once its cache is filled; every install goes into a fresh venv with no client cache,
   on tmpfs when there is one (the servers' data stays on the disk); the figures are medians;
4. prints a table with the warm ratios against artifactd hosted.
"""
from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
BIN = Path(sys.executable).parent

REQUIREMENTS = ["requests", "flask", "rich", "httpx", "pydantic", "sphinx", "black", "attrs", "pyyaml",
                "packaging", "jsonschema"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=2).read()
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited:\n{log.read_text(errors='replace')[-3000:]}")
            time.sleep(0.1)
    raise RuntimeError(f"server did not answer at {url}:\n{log.read_text(errors='replace')[-3000:]}")


def clean_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PIP_", "UV_", "PYTHON")) and k != "VIRTUAL_ENV"}
    env.update({"HOME": str(home), "PIP_CONFIG_FILE": os.devnull, "PIP_NO_CACHE_DIR": "1",
                "PIP_DISABLE_PIP_VERSION_CHECK": "1", "UV_NO_CONFIG": "1", "UV_NO_PROGRESS": "1"})
    return env


class Srv:
    def __init__(self, name: str, cmd: list[str], index: str, health: str, workdir: Path,
                 env: dict[str, str] | None = None) -> None:
        self.name, self.cmd, self.index, self.health, self.workdir = name, cmd, index, health, workdir
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> "Srv":
        log = self.workdir / f"{self.name}.log"
        self.proc = subprocess.Popen(self.cmd, stdout=open(log, "ab"), stderr=subprocess.STDOUT, env=self.env,
                                     cwd=self.workdir)
        wait_http(self.health, self.proc, log)
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()  # our own child, by PID
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


# --- preparation ------------------------------------------------------------------------------

def prepare_wheels(cache: Path) -> Path:
    wheels = cache / "wheels"
    if len(list(wheels.glob("*.whl"))) < 30:
        wheels.mkdir(parents=True, exist_ok=True)
        print("downloading the wheel set once (machine's configured indexes) ...", flush=True)
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--only-binary=:all:", "-d", str(wheels),
                        *REQUIREMENTS], check=True)
    return wheels


def prepare_venv(cache: Path, name: str, packages: list[str]) -> Path | None:
    venv = cache / "venvs" / name
    marker = venv / ".ok"
    if marker.exists():
        return venv
    print(f"installing {name} into {venv} ...", flush=True)
    shutil.rmtree(venv, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    r = subprocess.run([str(venv / "bin" / "pip"), "install", "-q", *packages], capture_output=True, text=True)
    if r.returncode != 0:
        print(f"  could not install {name}: {r.stderr[-500:]}", flush=True)
        return None
    marker.write_text("ok\n")
    return venv


def pinned(wheels: Path) -> list[str]:
    from packaging.utils import parse_wheel_filename

    out = []
    for w in sorted(wheels.glob("*.whl")):
        name, version, _, _ = parse_wheel_filename(w.name)
        out.append(f"{name}=={version}")
    return out


# --- servers ----------------------------------------------------------------------------------

def artifactd(work: Path, upstream: str, wheels: Path, hosted: bool) -> Srv:
    from artifactd import service
    from artifactd.app import App

    data = work / ("artifactd-hosted" if hosted else "artifactd-group")
    app = App(data)
    if hosted:
        for w in sorted(wheels.glob("*.whl")):
            service.upload_file(app, "pypi-local", w)
    else:
        from dataclasses import replace

        service.create_repository(app, "remote", "proxy", "pypi", url=upstream)
        g = app.config.repo("pypi")
        assert g is not None
        app.set_config(app.config.with_repo(replace(g, members=g.members + ("remote",))))
    app.close()
    port = free_port()
    repo = "pypi-local" if hosted else "pypi"
    index = f"http://127.0.0.1:{port}/repository/{repo}/simple/"
    return Srv("artifactd-hosted" if hosted else "artifactd-group",
               [sys.executable, "-m", "artifactd", "--data-dir", str(data), "serve", "--port", str(port)],
               index, f"http://127.0.0.1:{port}/-/health", work)


def devpi(work: Path, upstream: str, venv: Path) -> Srv:
    data = work / "devpi"
    subprocess.run([str(venv / "bin" / "devpi-init"), "--serverdir", str(data), "--no-root-pypi",
                    "--root-passwd", "bench"], check=True, capture_output=True)
    port = free_port()
    srv = Srv("devpi", [str(venv / "bin" / "devpi-server"), "--serverdir", str(data), "--host", "127.0.0.1",
                        "--port", str(port)],
              f"http://127.0.0.1:{port}/root/mirror/+simple/", f"http://127.0.0.1:{port}/+api", work)
    orig_start = srv.start

    def start() -> Srv:
        orig_start()
        base = f"http://127.0.0.1:{port}"
        req = urllib.request.Request(f"{base}/+login", data=json.dumps({"user": "root", "password": "bench"}).encode(),
                                     headers={"Content-Type": "application/json", "Accept": "application/json"},
                                     method="POST")
        token = json.loads(urllib.request.urlopen(req).read())["result"]["password"]
        auth = base64.b64encode(f"root:{token}".encode()).decode()
        body = {"type": "mirror", "mirror_url": upstream, "mirror_cache_expiry": 1800}
        req = urllib.request.Request(f"{base}/root/mirror", data=json.dumps(body).encode(), method="PUT",
                                     headers={"Content-Type": "application/json", "Accept": "application/json",
                                              "X-Devpi-Auth": auth})
        urllib.request.urlopen(req).read()
        return srv

    srv.start = start  # type: ignore[method-assign]
    return srv


def proxpi(work: Path, upstream: str, venv: Path) -> Srv:
    port = free_port()
    cache = work / "proxpi-cache"
    cache.mkdir()
    env = dict(os.environ, PROXPI_INDEX_URL=upstream, PROXPI_EXTRA_INDEX_URLS="", PROXPI_CACHE_DIR=str(cache),
               PROXPI_LOGGING_LEVEL="WARNING")
    return Srv("proxpi", [str(venv / "bin" / "gunicorn"), "-b", f"127.0.0.1:{port}", "--threads", "8",
                          "--log-level", "warning", "proxpi.server:app"],
               f"http://127.0.0.1:{port}/index/", f"http://127.0.0.1:{port}/health", work, env=env)


# --- clients ----------------------------------------------------------------------------------

def scratch_root() -> str | None:
    """Where installs write: tmpfs when there is one. An install unpacks ~300 MB, and on this kind
    of machine the disk's writeback moves an install by ±1 s from one run to the next — the same
    client work whatever the index, but noise large enough to swamp the differences between them
    (benchmarks/compare.py does the same)."""
    shm = Path("/dev/shm")
    return str(shm) if shm.is_dir() and os.access(shm, os.W_OK) else None


def install(tool: str, index: str, reqs: list[str]) -> float:
    """One install into a fresh venv, with a fresh HOME and (uv) an empty cache, all in scratch."""
    scratch = Path(tempfile.mkdtemp(dir=scratch_root(), prefix="artifactd-bench-install-"))
    try:
        venv, home = scratch / "venv", scratch / "home"
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
        home.mkdir()
        env = clean_env(home)
        if tool == "pip":
            cmd = [sys.executable, "-m", "pip", "--isolated", "--python", str(venv / "bin" / "python"), "install",
                   "-q", "--no-cache-dir", "--index-url", index, *reqs]
        else:
            env["UV_CACHE_DIR"] = str(scratch / "uv-cache")  # empty: nothing cached on the client side
            cmd = [str(BIN / "uv"), "pip", "install", "-q", "--python", str(venv / "bin" / "python"),
                   "--index-url", index, *reqs]
        t0 = time.perf_counter()
        r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
        dt = time.perf_counter() - t0
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    if r.returncode != 0:
        raise RuntimeError(f"{tool} install from {index} failed:\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}")
    return dt


def measure(make: Callable[[Path], Srv], tool: str, reqs: list[str], repeat: int, root: Path) -> tuple[float, float]:
    """(cold, warm): cold is the median over ``repeat`` fresh servers, warm the median of ``repeat``
    installs from the first of them once its cache is filled."""
    colds: list[float] = []
    warms: list[float] = []
    for i in range(repeat):
        work = Path(tempfile.mkdtemp(dir=root, prefix="srv-"))
        srv = make(work).start()
        try:
            colds.append(install(tool, srv.index, reqs))
            if i == 0:
                warms = [install(tool, srv.index, reqs) for _ in range(repeat)]
        finally:
            srv.stop()
            shutil.rmtree(work, ignore_errors=True)
    return statistics.median(colds), statistics.median(warms)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cache-dir", type=Path, default=Path.home() / ".cache" / "artifactd-bench")
    ap.add_argument("--repeat", type=int, default=5, help="warm installs per target and client (median)")
    ap.add_argument("--no-peers", action="store_true", help="artifactd only")
    ap.add_argument("--tools", default="pip,uv")
    ap.add_argument("--upstream", choices=("pypiserver", "artifactd"), default="pypiserver",
                    help="what serves the wheels to every proxy: pypiserver on waitress (no PEP 658 "
                         "metadata) or an artifactd hosted repository (PEP 691 JSON and PEP 658, as the "
                         "public index)")
    args = ap.parse_args()
    cache = args.cache_dir
    wheels = prepare_wheels(cache)
    reqs = pinned(wheels)
    peers: dict[str, Path | None] = {}
    if not args.no_peers:
        peers["devpi"] = prepare_venv(cache, "devpi", ["devpi-server"])
        peers["proxpi"] = prepare_venv(cache, "proxpi", ["proxpi", "gunicorn"])

    # The upstream stands in for the public index, a server that takes many connections at once:
    # pypiserver on waitress. (A plain `pip install pypiserver` runs it on wsgiref, one connection at a
    # time with a listen backlog of 5; a proxy asking it 16 things at once has its excess SYNs dropped,
    # 1 s each. See docs/proxy.md, "connections".)
    root = Path(tempfile.mkdtemp(prefix="artifactd-bench-"))
    if args.upstream == "artifactd":
        (root / "upstream").mkdir()
        up = artifactd(root / "upstream", "", wheels, hosted=True)
        up.name = "upstream-artifactd"
        upstream = up.index
        up.start()
    else:
        up_venv = prepare_venv(cache, "upstream-pypiserver", ["pypiserver", "waitress"])
        up_bin = (up_venv / "bin" / "pypi-server") if up_venv else BIN / "pypi-server"
        up_port = free_port()
        upstream = f"http://127.0.0.1:{up_port}/simple/"
        up = Srv("pypiserver", [str(up_bin), "run", "-p", str(up_port), "-i", "127.0.0.1", "-a", ".",
                                "-P", ".", "--disable-fallback", "--hash-algo", "sha256", "--server", "auto",
                                str(wheels)],
                 upstream, upstream, root).start()
    targets: list[tuple[str, Callable[[Path], Srv]]] = [
        ("artifactd hosted", lambda w: artifactd(w, upstream, wheels, hosted=True)),
        ("artifactd group (proxy)", lambda w: artifactd(w, upstream, wheels, hosted=False)),
    ]
    for name, venv in peers.items():
        if venv is None:
            continue
        if name == "devpi":
            targets.append(("devpi-server mirror", lambda w, v=venv: devpi(w, upstream, v)))
        else:
            targets.append(("proxpi", lambda w, v=venv: proxpi(w, upstream, v)))
    tools = [t for t in args.tools.split(",") if t]
    results: dict[str, dict[str, tuple[float, float] | str]] = {}
    try:
        for label, make in targets:
            results[label] = {}
            for tool in tools:
                print(f"  {label} / {tool} ...", flush=True)
                try:
                    results[label][tool] = measure(make, tool, reqs, args.repeat, root)
                except Exception as exc:  # a peer that fails is reported, not fatal
                    results[label][tool] = f"failed: {str(exc).splitlines()[0][:60]}"
    finally:
        up.stop()
        shutil.rmtree(root, ignore_errors=True)

    print(f"\n{len(reqs)} wheels ({sum(w.stat().st_size for w in wheels.glob('*.whl')) / 2**20:.1f} MiB) "
          f"through each index; upstream {'artifactd (PEP 691 + PEP 658)' if args.upstream == 'artifactd' else 'pypiserver (waitress)'}"
          f" on loopback; medians of {args.repeat}; seconds\n")
    head = f"{'target':<26}" + "".join(f"{t + ' cold':>10}{t + ' warm':>10}{t + ' warm/hosted':>16}" for t in tools)
    print(head)
    print("-" * len(head))
    base = results.get("artifactd hosted", {})
    for label, per in results.items():
        row = f"{label:<26}"
        for tool in tools:
            v = per.get(tool)
            b = base.get(tool)
            if isinstance(v, tuple):
                ratio = f"{v[1] / b[1]:.2f}x" if isinstance(b, tuple) else "-"
                row += f"{v[0]:>10.2f}{v[1]:>10.2f}{ratio:>16}"
            else:
                row += f"{str(v):>36}"
        print(row)


if __name__ == "__main__":
    main()
