"""Peak server memory while uploading and downloading one large file (default 1 GiB).

    .venv/bin/python benchmarks/transfer_rss.py [SIZE_MIB]

Starts a real `artifactd serve` process, streams the upload and the download, and
prints throughput and the server's peak RSS (VmHWM). Target: peak RSS under 150 MB.
"""
from __future__ import annotations

import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from artifactd.app import App  # noqa: E402
from artifactd.service import create_token  # noqa: E402
from benchmarks.bench_core import big_wheel, stream_download, stream_upload  # noqa: E402


def vm(pid: int, key: str) -> int:
    text = Path(f"/proc/{pid}/status").read_text()
    m = re.search(rf"^{key}:\s+(\d+) kB", text, re.M)
    return int(m.group(1)) * 1024 if m else 0


def main() -> None:
    size = int(sys.argv[1]) * 2**20 if len(sys.argv) > 1 else 2**30
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        app = App(t / "data")
        token, _ = create_token(app, "admin", "bench", ("admin",))
        app.close()
        wheel = big_wheel(t, "bigfile", size)
        log = open(t / "server.log", "wb")
        proc = subprocess.Popen([sys.executable, "-m", "artifactd", "--data-dir", str(t / "data"), "serve", "--port", "0"],
                                stdout=log, stderr=log)
        try:
            url = ""
            for _ in range(300):
                m = re.search(r"on http://127\.0\.0\.1:(\d+)", (t / "server.log").read_text())
                if m:
                    url = m.group(1)
                    break
                time.sleep(0.05)
            port = int(url)
            base_rss = vm(proc.pid, "VmRSS")
            t0 = time.perf_counter()
            assert stream_upload("127.0.0.1", port, token, "pypi-local", wheel) == 200
            up = time.perf_counter() - t0
            t0 = time.perf_counter()
            n = stream_download("127.0.0.1", port, f"/repository/pypi/packages/bigfile/1.0/{wheel.name}")
            down = time.perf_counter() - t0
            assert n == wheel.stat().st_size
            peak = vm(proc.pid, "VmHWM")
        finally:
            proc.terminate()
            proc.wait(timeout=10)
        mib = size / 2**20
        print(f"file size            {mib:10.0f} MiB")
        print(f"upload               {up:10.2f} s  {mib / up:8.1f} MiB/s")
        print(f"download             {down:10.2f} s  {mib / down:8.1f} MiB/s")
        print(f"server RSS at start  {base_rss / 2**20:10.1f} MiB")
        print(f"server peak RSS      {peak / 2**20:10.1f} MiB   (target < 150 MB)")


if __name__ == "__main__":
    main()
