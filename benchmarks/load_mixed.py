"""Mixed load on loopback: 200 concurrent clients for 60 s, then verify nothing was lost.

    .venv/bin/python benchmarks/load_mixed.py [--clients 200] [--duration 60] [--max-requests 200000]

Starts a real `artifactd serve` child on a fresh data directory (port 0, max-connections
above the client count), seeds a few projects, then runs threads that mix pip-like
index page GETs (HTML and PEP 691 JSON), file GETs (whole and ranged), legacy
uploads of new wheels, and generic PUT/GET when the server has that route (probed
first: 404/405 → skipped). Prints counts by status, p50/p99 latency per kind, then
stops the server, checks that every acknowledged upload is stored byte for byte,
and runs fsck. Exit 1 on any 5xx other than 503, a lost upload, or fsck damage.
Traffic goes to 127.0.0.1 only.
"""
from __future__ import annotations

import argparse
import base64
import hashlib
import http.client
import json
import random
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from artifactd.app import App  # noqa: E402
from artifactd.config import load_config, save_config  # noqa: E402
from artifactd.service import create_repository, create_token, upload_file  # noqa: E402
from artifactd.store.gc import fsck  # noqa: E402
from tests.conftest import Proc  # noqa: E402
from tests.dists import make_wheel  # noqa: E402
from tests.integration.test_upload_errors import form, twine_fields  # noqa: E402


def pct(xs: list[float], p: float) -> float:
    if not xs:
        return 0.0
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p / 100 * len(xs)))]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clients", type=int, default=200)
    ap.add_argument("--duration", type=float, default=60.0)
    ap.add_argument("--max-requests", type=int, default=200_000)
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="artifactd-load-"))
    data = tmp / "data"
    app = App(data)
    cfg = load_config(app.layout.config)
    from dataclasses import replace

    save_config(replace(cfg, server=replace(cfg.server, max_connections=args.clients + 56)), app.layout.config)
    token, _ = create_token(app, "admin", "load", ("write",))
    create_repository(app, "generic-local", "hosted", "generic")
    seeds = []
    for i in range(20):
        w = make_wheel(tmp / "seed", f"seed{i}", "1.0", payload=bytes(range(256)) * (40 * (i + 1)))
        upload_file(app, "pypi-local", w)
        seeds.append(w)
    app.close()
    auth = "Basic " + base64.b64encode(f"__token__:{token}".encode()).decode()

    server = Proc(data, tmp / "server.log").start()
    host, port = server.url.removeprefix("http://").split(":")
    port_n = int(port)

    def conn() -> http.client.HTTPConnection:
        return http.client.HTTPConnection(host, port_n, timeout=120)  # twine-like patience under load

    # Probe the generic route: PUT to the hosted generic repository.
    c = conn()
    c.request("PUT", "/repository/generic-local/probe.bin", body=b"x", headers={"Authorization": auth})
    r = c.getresponse()
    r.read()
    generic = r.status in (200, 201, 204)
    c.close()

    statuses: Counter[tuple[str, int]] = Counter()
    lat: dict[str, list[float]] = defaultdict(list)
    acknowledged: dict[str, str] = {}
    generic_acked: dict[str, str] = {}
    lock = threading.Lock()
    count = [0]
    stop_at = time.monotonic() + args.duration
    seq = iter(range(10**9))

    def worker(wid: int) -> None:
        rnd = random.Random(wid)
        c = conn()
        wheel_dir = tmp / f"w{wid}"
        while time.monotonic() < stop_at:
            with lock:
                if count[0] >= args.max_requests:
                    return
                count[0] += 1
            roll = rnd.random()
            headers: dict[str, str] = {}
            body = None
            method = "GET"
            if roll < 0.35:
                kind = "page"
                s = rnd.choice(seeds).name.split("-")[0]
                path = f"/repository/pypi/simple/{s}/"
                headers["Accept"] = rnd.choice(["text/html", "application/vnd.pypi.simple.v1+json"])
            elif roll < 0.45:
                kind = "root"
                path = "/repository/pypi/simple/"
            elif roll < 0.80:
                kind = "file"
                w = rnd.choice(seeds)
                name = w.name.split("-")[0]
                path = f"/repository/pypi/packages/{name}/1.0/{w.name}"
                if rnd.random() < 0.2:
                    headers["Range"] = "bytes=0-99"
            elif roll < 0.90 or not generic:
                kind = "upload"
                n = next(seq)
                w = make_wheel(wheel_dir, f"load{wid}x{n}", "1.0", payload=rnd.randbytes(rnd.randint(1000, 200_000)))
                payload = w.read_bytes()
                body, ctype = form(twine_fields(f"load{wid}x{n}", "1.0", payload), [("content", w.name, payload)])
                headers.update({"Content-Type": ctype, "Authorization": auth})
                path, method = "/repository/pypi-local/", "POST"
            else:
                kind = "generic"
                n = next(seq)
                payload = rnd.randbytes(rnd.randint(100, 100_000))
                path = f"/repository/generic-local/load/{wid}/{n}.bin"
                method, body = "PUT", payload
                headers["Authorization"] = auth
            t0 = time.perf_counter()
            try:
                c.request(method, path, body=body, headers=headers)
                r = c.getresponse()
                got = r.read()
                status = r.status
                if r.getheader("Connection", "").lower() == "close":
                    c.close()
                    c = conn()
            except (OSError, http.client.HTTPException):
                status = -1
                c.close()
                c = conn()
            dt = time.perf_counter() - t0
            with lock:
                statuses[(kind, status)] += 1
                lat[kind].append(dt)
                if kind == "upload" and status == 200:
                    acknowledged[w.name] = hashlib.sha256(payload).hexdigest()
                if kind == "generic" and status in (200, 201):
                    generic_acked[path] = hashlib.sha256(payload).hexdigest()
            if kind == "file" and status == 200 and got != w.read_bytes():
                with lock:
                    statuses[("file-mismatch", status)] += 1
        c.close()

    t_start = time.monotonic()
    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(args.clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - t_start
    server.stop()

    total = sum(statuses.values())
    print(f"clients={args.clients} duration={elapsed:.1f}s requests={total} rate={total / elapsed:.0f}/s "
          f"generic={'yes' if generic else 'skipped (no route)'}")
    by_status: Counter[int] = Counter()
    for (kind, st), n in sorted(statuses.items()):
        by_status[st] += n
        print(f"  {kind:<14} {st:>4} {n:>8}")
    print("status totals:", dict(sorted(by_status.items())))
    for kind, xs in sorted(lat.items()):
        print(f"  latency {kind:<8} n={len(xs):>7} p50={pct(xs, 50) * 1000:7.1f} ms  p99={pct(xs, 99) * 1000:7.1f} ms")

    app = App(data)
    bad = False
    stored = {a.filename: a.sha256 for a in app.db.artifacts("pypi-local")}
    lost = [f for f, sha in acknowledged.items() if stored.get(f) != sha]
    print(f"uploads acknowledged={len(acknowledged)} lost={len(lost)}")
    if generic_acked:
        garts = {a.path: a.sha256 for a in app.db.artifacts("generic-local")}
        glost = [p for p, sha in generic_acked.items() if garts.get(p.split("/repository/generic-local/")[1]) != sha]
        print(f"generic acknowledged={len(generic_acked)} lost={len(glost)}")
        bad |= bool(glost)
    report = fsck(app)
    app.close()
    print("fsck:", json.dumps({k: (len(v) if isinstance(v, list) else v) for k, v in report.to_dict().items()}))
    fivexx = {k: n for k, n in statuses.items() if k[1] >= 500 and k[1] != 503}
    errors = {k: n for k, n in statuses.items() if k[1] == -1 or k[0] == "file-mismatch"}
    bad |= bool(lost) or report.damaged or bool(fivexx) or bool(errors)
    if fivexx or errors:
        print("FAIL: unexpected 5xx / connection errors / mismatches:", fivexx, errors)
    print("RESULT:", "FAIL" if bad else "OK", f"(data kept in {tmp})" if bad else "")
    if not bad:
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
