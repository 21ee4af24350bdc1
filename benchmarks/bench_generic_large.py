"""Upload and download one large generic file through the HTTP API of a real ``artifactd serve``.

Reports throughput (MiB/s) of PUT and GET and the server's peak RSS (VmHWM from
/proc/<pid>/status), which must stay flat however large the file is (target < 150 MB).
The file is generated on the fly by a generator and never held in memory.

    python benchmarks/bench_generic_large.py                 # 2 GiB
    ARTIFACTD_BENCH_SIZE=256MiB python benchmarks/bench_generic_large.py
    ARTIFACTD_BENCH_DIR=/fast/disk python benchmarks/bench_generic_large.py --json

Needs about SIZE of free disk space in ARTIFACTD_BENCH_DIR (default: a temporary dir).
Network traffic goes to 127.0.0.1 only.
"""
from __future__ import annotations

import hashlib
import http.client
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterator

from artifactd.config import parse_size

CHUNK = 1 << 20


def vm_hwm_kib(pid: int) -> int:
    """Peak resident set size of a process, in KiB (Linux)."""
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise RuntimeError("VmHWM not found")


def vm_rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("VmRSS not found")


def generate(size: int, digest: "hashlib._Hash") -> Iterator[bytes]:
    """``size`` bytes of varied content in 1 MiB chunks, hashed as they are produced."""
    block = bytearray(os.urandom(CHUNK))
    sent = 0
    n = 0
    while sent < size:
        block[:8] = n.to_bytes(8, "little")  # every chunk differs
        piece = bytes(block[: min(CHUNK, size - sent)])
        digest.update(piece)
        sent += len(piece)
        n += 1
        yield piece


def start_server(data: Path, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    fh = open(log, "ab")
    proc = subprocess.Popen([sys.executable, "-m", "artifactd", "--data-dir", str(data), "serve", "--port", "0"],
                            stdout=fh, stderr=fh)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for line in log.read_text(errors="replace").splitlines()[::-1]:
            if "serving" in line and " on http://" in line:
                return proc, line.rsplit(" on ", 1)[1].strip()
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError("server did not start:\n" + log.read_text(errors="replace"))


def main() -> int:
    size = parse_size(os.environ.get("ARTIFACTD_BENCH_SIZE", "2GiB"), "ARTIFACTD_BENCH_SIZE")
    base = Path(os.environ.get("ARTIFACTD_BENCH_DIR") or tempfile.gettempdir())
    work = Path(tempfile.mkdtemp(prefix="artifactd-bench-", dir=base))
    free = shutil.disk_usage(work).free
    if free < size + 256 * 2**20:
        print(f"not enough disk space in {work}: {free} bytes free, {size} needed", file=sys.stderr)
        return 2
    data = work / "data"
    env_cli = [sys.executable, "-m", "artifactd", "--data-dir", str(data)]
    subprocess.run(env_cli + ["init"], check=True, capture_output=True)
    subprocess.run(env_cli + ["repo", "create", "bench", "--type", "hosted", "--format", "generic"], check=True,
                   capture_output=True)
    token = [ln.split("=", 1)[1].strip() for ln in (data / "admin-credentials.txt").read_text().splitlines()
             if ln.startswith("token")][0]
    proc, url = start_server(data, work / "server.log")
    result: dict[str, object] = {"size_bytes": size}
    try:
        host, port = url.removeprefix("http://").rsplit(":", 1)
        result["server_rss_idle_kib"] = vm_rss_kib(proc.pid)

        # PUT
        digest = hashlib.sha256()
        conn = http.client.HTTPConnection(host, int(port), timeout=600)
        t0 = time.perf_counter()
        conn.request("PUT", "/repository/bench/big/model.bin;bench=1", body=generate(size, digest),
                     headers={"Authorization": f"Bearer {token}", "Content-Length": str(size)})
        resp = conn.getresponse()
        body = resp.read()
        put_s = time.perf_counter() - t0
        if resp.status != 201:
            raise RuntimeError(f"PUT failed: {resp.status} {body[:300]!r}")
        info = json.loads(body)
        if info["sha256"] != digest.hexdigest():
            raise RuntimeError("server sha256 differs from the client's")
        result["put_seconds"] = round(put_s, 3)
        result["put_mib_s"] = round(size / 2**20 / put_s, 1)
        result["server_hwm_after_put_kib"] = vm_hwm_kib(proc.pid)

        # GET
        check = hashlib.sha256()
        t0 = time.perf_counter()
        conn.request("GET", "/repository/bench/big/model.bin")
        resp = conn.getresponse()
        got = 0
        while chunk := resp.read(CHUNK):
            check.update(chunk)
            got += len(chunk)
        get_s = time.perf_counter() - t0
        conn.close()
        if resp.status != 200 or got != size or check.hexdigest() != info["sha256"]:
            raise RuntimeError(f"GET failed: status {resp.status}, {got} bytes")
        result["get_seconds"] = round(get_s, 3)
        result["get_mib_s"] = round(size / 2**20 / get_s, 1)
        result["server_peak_rss_kib"] = vm_hwm_kib(proc.pid)
        result["server_peak_rss_mb"] = round(result["server_peak_rss_kib"] * 1024 / 1e6, 1)  # type: ignore[operator]
        result["target_met"] = result["server_peak_rss_mb"] < 150  # type: ignore[operator]
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(work, ignore_errors=True)
    if "--json" in sys.argv:
        print(json.dumps(result, indent=2))
    else:
        gib = size / 2**30
        print(f"generic file of {gib:.2f} GiB through the HTTP API (client and server on one machine)")
        print(f"  PUT  {result['put_seconds']:>8} s  {result['put_mib_s']:>8} MiB/s  (hashing + fsync included)")
        print(f"  GET  {result['get_seconds']:>8} s  {result['get_mib_s']:>8} MiB/s  (sendfile; client hashes)")
        print(f"  server RSS idle {int(result['server_rss_idle_kib']) / 1024:.1f} MiB; "  # type: ignore[call-overload]
              f"peak (VmHWM) {result['server_peak_rss_mb']} MB  -> target < 150 MB "
              f"{'met' if result['target_met'] else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
