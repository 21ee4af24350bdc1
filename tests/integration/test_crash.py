"""Crash safety with a real server process killed by SIGKILL mid-upload."""
from __future__ import annotations

import base64
import hashlib
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from artifactd.app import App
from artifactd.service import create_token
from artifactd.store.gc import fsck, gc
from tests.conftest import Proc
from tests.dists import make_wheel
from tests.integration.test_upload_errors import form, twine_fields

pytestmark = pytest.mark.integration


def _upload(url: str, auth: str, path: Path) -> int:
    data = path.read_bytes()
    name, version = path.name.split("-")[:2]
    body, ctype = form(twine_fields(name, version, data), [("content", path.name, data)])
    req = urllib.request.Request(url, data=body, method="POST",
                                 headers={"Content-Type": ctype, "Authorization": auth})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
    except OSError:
        return -1


def test_kill_9_during_uploads_loses_nothing_committed(server_process: Proc, tmp_path: Path) -> None:
    data_dir = server_process.data_dir
    app = App(data_dir)
    token, _ = create_token(app, "admin", "crash", ("write",))
    app.close()
    auth = "Basic " + base64.b64encode(f"__token__:{token}".encode()).decode()
    wheels = [make_wheel(tmp_path / "d", f"crashpkg{i}", "1.0", payload=bytes(range(256)) * 400 * (i % 5 + 1))
              for i in range(40)]
    server_process.start()
    url = server_process.url + "/repository/pypi-local/"
    acknowledged: list[Path] = []
    lock = threading.Lock()

    def worker(files: list[Path]) -> None:
        for w in files:
            if _upload(url, auth, w) == 200:
                with lock:
                    acknowledged.append(w)

    threads = [threading.Thread(target=worker, args=(wheels[i::4],)) for i in range(4)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 20
    while len(acknowledged) < 8 and time.monotonic() < deadline:
        time.sleep(0.01)
    server_process.kill()
    for t in threads:
        t.join(timeout=30)
    assert acknowledged, "no upload finished before the kill"
    assert len(acknowledged) < len(wheels), "the kill came too late to test anything"

    app = App(data_dir)
    try:
        stored = {a.filename: a.sha256 for a in app.db.artifacts("pypi-local")}
        for w in acknowledged:  # everything acknowledged survives, byte for byte
            assert stored[w.name] == hashlib.sha256(w.read_bytes()).hexdigest()
        report = fsck(app)
        assert not report.missing and not report.corrupt
        # Orphans (blob linked, row not yet written) are removed by gc once past the grace period.
        gc(app, apply=True, grace=0)
        after = fsck(app)
        assert after.orphans == [] and after.temp_files == [] and not after.damaged
    finally:
        app.close()

    # The server restarts on the same data and serves what was committed.
    server_process.start()
    first = sorted(stored)[0]
    with urllib.request.urlopen(server_process.url + f"/repository/pypi/simple/{first.split('-')[0]}/") as r:
        assert first in r.read().decode()


def test_fsck_detects_corrupt_and_missing_blobs(app: App, tmp_path: Path) -> None:
    from artifactd.service import upload_file

    a = upload_file(app, "pypi-local", make_wheel(tmp_path, "fsckme", "1.0")).artifact
    b = upload_file(app, "pypi-local", make_wheel(tmp_path, "fsckme", "2.0")).artifact
    assert not fsck(app).damaged
    p = app.blobs.path(a.sha256)
    p.chmod(0o644)
    p.write_bytes(b"garbage")
    app.blobs.path(b.sha256).unlink()
    report = fsck(app)
    assert [c["sha256"] for c in report.corrupt] == [a.sha256]
    assert [m["sha256"] for m in report.missing] == [b.sha256]
    assert report.missing[0]["used_by"] == [f"pypi-local:{b.path}"]
    assert b.metadata_sha256
    app.blobs.path(b.metadata_sha256).unlink()  # the wheel's core-metadata blob
    app.db.artifacts = None  # type: ignore[assignment]  # fsck reads the rows' digests only, never whole artifacts
    report = fsck(app)
    assert {m["sha256"]: m["used_by"] for m in report.missing} == {
        b.sha256: [f"pypi-local:{b.path}"], b.metadata_sha256: [f"pypi-local:{b.path}.metadata"]}
