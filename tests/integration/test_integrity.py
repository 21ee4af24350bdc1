"""Integrity, crash safety and backups: corrupted blobs are never served (§3 #43), disk full → 507
(§3 #36), kill -9 during GC (§3 #39), export/import while serving, fsck/gc CLI, audit of every write."""
from __future__ import annotations

import base64
import hashlib
import json
import resource
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from click.testing import CliRunner

from artifactd.app import App
from artifactd.cli import cli
from artifactd.service import create_repository, create_token, delete_repository, upload_file, yank
from artifactd.store.gc import fsck, gc
from tests.conftest import Proc, Server
from tests.dists import make_wheel
from tests.integration.test_crash import _upload

pytestmark = pytest.mark.integration


def fetch(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def _file_url(server: Server, wheel: Path) -> str:
    name, version = wheel.name.split("-")[:2]
    return f"{server.url}/repository/pypi-local/packages/{name}/{version}/{wheel.name}"


def _corrupt(app: App, sha: str, data: bytes) -> None:
    p = app.blobs.path(sha)
    p.chmod(0o644)
    p.write_bytes(data)


def test_corrupt_blob_is_never_served_even_after_a_good_serve(server: Server, tmp_path: Path) -> None:
    w = make_wheel(tmp_path, "rotpkg", "1.0")
    art = upload_file(server.app, "pypi-local", w).artifact
    assert fetch(_file_url(server, w)) == (200, w.read_bytes())  # verified once, remembered
    bad = bytes(b ^ 0xFF for b in w.read_bytes())  # same size, other bytes
    _corrupt(server.app, art.sha256, bad)
    status, body = fetch(_file_url(server, w))
    assert status == 500 and b"fsck" in body and bad not in body
    assert [c["sha256"] for c in fsck(server.app).corrupt] == [art.sha256]


def test_a_blob_just_written_is_served_without_a_rehash_and_still_checked(server: Server, tmp_path: Path) -> None:
    """The server hashed an upload's bytes as it wrote them: the first download need not read them
    all again to hash them. A later change to the file still changes its ctime, and is caught."""
    from artifactd.store.verify import verifier

    w = make_wheel(tmp_path, "freshpkg", "1.0")
    art = upload_file(server.app, "pypi-local", w).artifact
    v = verifier(server.app.blobs)
    hashed = v.hashed
    assert fetch(_file_url(server, w)) == (200, w.read_bytes())
    assert v.hashed == hashed  # remembered when it was linked into place
    time.sleep(0.05)  # past the file system clock's granularity
    _corrupt(server.app, art.sha256, bytes(b ^ 0xFF for b in w.read_bytes()))
    status, body = fetch(_file_url(server, w))
    assert status == 500 and b"fsck" in body
    assert v.hashed == hashed + 1


def test_truncated_or_missing_blob_is_500_not_404(server: Server, tmp_path: Path) -> None:
    """A missing blob is damage, not absence: a group must not fall through to another member."""
    w1, w2 = make_wheel(tmp_path, "gonepkg", "1.0"), make_wheel(tmp_path, "gonepkg", "2.0")
    a1 = upload_file(server.app, "pypi-local", w1).artifact
    a2 = upload_file(server.app, "pypi-local", w2).artifact
    _corrupt(server.app, a1.sha256, b"short")
    server.app.blobs.path(a2.sha256).unlink()
    for w in (w1, w2):
        assert fetch(_file_url(server, w))[0] == 500
        assert fetch(_file_url(server, w).replace("/pypi-local/", "/pypi/"))[0] == 500


def _limit_fsize() -> None:  # runs in the child before exec
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # get EFBIG instead of being killed
    resource.setrlimit(resource.RLIMIT_FSIZE, (2 * 2**20, 2 * 2**20))


def _post_status(url: str, auth: str, path: Path) -> int:
    """Like _upload, but reads the answer even when the server stops reading the body early."""
    import http.client
    from urllib.parse import urlsplit

    from tests.integration.test_upload_errors import form, twine_fields

    data = path.read_bytes()
    name, version = path.name.split("-")[:2]
    body, ctype = form(twine_fields(name, version, data), [("content", path.name, data)])
    u = urlsplit(url)
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=20)
    c.putrequest("POST", u.path)
    for k, v in {"Content-Type": ctype, "Authorization": auth, "Content-Length": str(len(body))}.items():
        c.putheader(k, v)
    c.endheaders()
    try:
        for i in range(0, len(body), 65536):
            c.send(body[i:i + 65536])
    except (BrokenPipeError, ConnectionResetError):
        pass
    try:
        return c.getresponse().status
    finally:
        c.close()


def test_disk_full_during_upload_is_507_db_unchanged(server_process: Proc, tmp_path: Path) -> None:
    """§3 #36: RLIMIT_FSIZE in a real `artifactd serve` → EFBIG while writing the blob."""
    app = App(server_process.data_dir)
    token, _ = create_token(app, "admin", "full", ("write",))
    app.close()
    auth = "Basic " + base64.b64encode(f"__token__:{token}".encode()).decode()
    small = make_wheel(tmp_path / "s", "smallpkg", "1.0")
    big = make_wheel(tmp_path / "b", "bigpkg", "1.0", payload=__import__("os").urandom(3 * 2**20))
    server_process.preexec = _limit_fsize
    server_process.start()
    url = server_process.url + "/repository/pypi-local/"
    assert _upload(url, auth, small) == 200
    app = App(server_process.data_dir)
    before = (app.db.artifacts("pypi-local"), app.db.serial("pypi-local"))
    app.close()
    assert _post_status(url, auth, big) == 507
    assert fetch(server_process.url + "/-/health")[0] == 200  # still serving
    app = App(server_process.data_dir)
    try:
        assert (app.db.artifacts("pypi-local"), app.db.serial("pypi-local")) == before
        assert list(app.layout.tmp.iterdir()) == []
        assert not fsck(app).damaged
    finally:
        app.close()


def test_kill_9_during_gc_then_rerun_completes(tmp_path: Path) -> None:
    """§3 #39: SIGKILL an `artifactd gc --apply` mid-sweep; the rerun finishes, nothing referenced is lost."""
    data = tmp_path / "data"
    app = App(data)
    kept = [upload_file(app, "pypi-local", make_wheel(tmp_path / "w", f"keep{i}", "1.0")).artifact for i in range(5)]
    n = 10000
    orphans = []
    for i in range(n):  # written directly (no fsync each): only their presence matters here
        content = b"orphan %d" % i
        p = app.blobs.path(hashlib.sha256(content).hexdigest())
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(content)
        orphans.append(p)
    first = min(orphans)  # gc sweeps in sorted order
    app.close()
    proc = subprocess.Popen([sys.executable, "-m", "artifactd", "--data-dir", str(data), "gc", "--apply",
                             "--grace", "0s"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and proc.poll() is None and first.exists():  # until it starts deleting
        time.sleep(0.002)
    proc.kill()  # our own child, by PID
    proc.wait(timeout=10)
    app = App(data)
    try:
        mid = fsck(app)
        assert not mid.damaged
        assert 0 < len(mid.orphans) or proc.returncode == 0
        rerun = CliRunner().invoke(cli, ["--data-dir", str(data), "gc", "--apply", "--grace", "0s", "--json"])
        assert rerun.exit_code == 0, rerun.output
        after = fsck(app)
        assert after.orphans == [] and not after.damaged
        for a in kept:
            assert app.blobs.rehash(a.sha256) == a.sha256
    finally:
        app.close()


def test_export_while_serving_and_import_round_trip(server_process: Proc, tmp_path: Path) -> None:
    app = App(server_process.data_dir)
    token, _ = create_token(app, "admin", "bk", ("write",))
    app.close()
    auth = "Basic " + base64.b64encode(f"__token__:{token}".encode()).decode()
    wheels = [make_wheel(tmp_path / "w", f"bkpkg{i}", "1.0") for i in range(30)]
    server_process.start()
    url = server_process.url + "/repository/pypi-local/"
    for w in wheels[:5]:
        assert _upload(url, auth, w) == 200
    done: list[Path] = []
    stop = threading.Event()

    def uploader() -> None:
        for w in wheels[5:]:
            if stop.is_set():
                break
            if _upload(url, auth, w) == 200:
                done.append(w)

    t = threading.Thread(target=uploader)
    t.start()
    time.sleep(0.1)
    dest = tmp_path / "export"
    out = subprocess.run([sys.executable, "-m", "artifactd", "--data-dir", str(server_process.data_dir),
                          "export", str(dest), "--json"], capture_output=True, text=True, timeout=60)
    stop.set()
    t.join(timeout=60)
    assert out.returncode == 0, out.stderr
    manifest = json.loads((dest / "manifest.json").read_text())
    assert manifest["database_sha256"] == hashlib.sha256((dest / "artifactd.db").read_bytes()).hexdigest()
    assert manifest["counts"]["artifacts"] >= 5

    target = tmp_path / "restored"
    runner = CliRunner()
    res = runner.invoke(cli, ["--data-dir", str(target), "import", str(dest)])
    assert res.exit_code == 0, res.output
    res = runner.invoke(cli, ["--data-dir", str(target), "import", str(dest)])
    assert res.exit_code != 0 and "not empty" in res.output
    res = runner.invoke(cli, ["--data-dir", str(target), "fsck", "--json"])
    assert res.exit_code == 0 and json.loads(res.output)["ok"] and json.loads(res.output)["orphans"] == []

    restored = Proc(target, tmp_path / "restored.log").start()
    try:
        app = App(target)
        names = {a.filename for a in app.db.artifacts("pypi-local")}
        app.close()
        assert {w.name for w in wheels[:5]} <= names
        assert len(names) == manifest["counts"]["artifacts"]
        for w in wheels[:5]:
            name = w.name.split("-")[0]
            status, body = fetch(f"{restored.url}/repository/pypi-local/packages/{name}/1.0/{w.name}")
            assert status == 200 and body == w.read_bytes()
    finally:
        restored.stop()


def test_fsck_cli_exit_status_and_gc_dry_run(app: App, tmp_path: Path) -> None:
    a = upload_file(app, "pypi-local", make_wheel(tmp_path, "clipkg", "1.0")).artifact
    app.blobs.put_bytes(b"an orphan")
    data = str(app.layout.root)
    r = CliRunner()
    res = r.invoke(cli, ["--data-dir", data, "fsck", "--json"])
    assert res.exit_code == 0 and len(json.loads(res.output)["orphans"]) == 1
    res = r.invoke(cli, ["--data-dir", data, "gc", "--grace", "0s", "--json"])
    dry = json.loads(res.output)
    assert dry["applied"] is False and dry["bytes_freed"] == len(b"an orphan")
    assert len(fsck(app).orphans) == 1  # dry run removed nothing
    res = r.invoke(cli, ["--data-dir", data, "gc", "--grace", "24h", "--apply", "--json"])
    assert json.loads(res.output)["kept_within_grace"] == 1
    _corrupt(app, a.sha256, b"x")
    res = r.invoke(cli, ["--data-dir", data, "fsck", "--json"])
    assert res.exit_code == 1 and json.loads(res.output)["corrupt"]


def test_every_write_is_audited(app: App, tmp_path: Path) -> None:
    upload_file(app, "pypi-local", make_wheel(tmp_path, "audpkg", "1.0"))
    yank(app, "pypi-local", "audpkg", "1.0", reason="broken")
    _, info = create_token(app, "admin", "aud", ("read",))
    from artifactd.accounts import revoke_token

    revoke_token(app, info.id)
    create_repository(app, "tmp-repo", "hosted", "pypi")
    delete_repository(app, "tmp-repo")
    app.blobs.put_bytes(b"orphan for gc")
    gc(app, apply=True, grace=0)
    recs = app.db.audit_records(limit=None)
    actions = {r["action"] for r in recs}
    assert {"upload", "yank", "token-create", "token-revoke", "repo-create", "repo-delete", "gc"} <= actions
    for r in recs:
        assert r["user"] and r["time"] and r["address"]


def test_http_upload_audit_records_address(server: Server, tmp_path: Path) -> None:
    w = make_wheel(tmp_path, "addrpkg", "1.0")
    assert _upload(server.repo_url("pypi-local"), server.basic, w) == 200
    rec = next(r for r in server.app.db.audit_records() if r["action"] == "upload")
    assert rec["user"] == "admin" and rec["address"] == "127.0.0.1" and rec["target"].endswith(w.name)


def _limit_fsize_small() -> None:  # runs in the child before exec
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (160 * 1024, 160 * 1024))


def test_disk_full_during_database_commit_is_507_and_gc_removes_the_orphan(server_process: Proc,
                                                                           tmp_path: Path) -> None:
    """§3 #37: the blob is written, then the SQLite commit hits the limit (its WAL grows with
    every commit) → 507, the database keeps every acknowledged upload and nothing else, and the
    blob left behind is an orphan that gc removes."""
    app = App(server_process.data_dir)
    token, _ = create_token(app, "admin", "full", ("write",))
    app.close()
    auth = "Basic " + base64.b64encode(f"__token__:{token}".encode()).decode()
    server_process.preexec = _limit_fsize_small
    server_process.start()
    url = server_process.url + "/repository/pypi-local/"
    acknowledged, refused = [], None
    for i in range(200):
        w = make_wheel(tmp_path / "w", f"walpkg{i}", "1.0")
        status = _post_status(url, auth, w)
        if status == 200:
            acknowledged.append(w)
            continue
        assert status == 507, status
        refused = w
        break
    assert acknowledged and refused is not None, "the limit was never reached"
    assert fetch(server_process.url + "/-/health")[0] in (200, 503)  # still answering
    server_process.stop()
    app = App(server_process.data_dir)
    try:
        names = {a.filename for a in app.db.artifacts("pypi-local")}
        assert names == {w.name for w in acknowledged}
        assert list(app.layout.tmp.iterdir()) == []
        report = fsck(app)
        assert not report.damaged
        # The refused upload's blob was committed before the row failed: an orphan, not a row.
        assert hashlib.sha256(refused.read_bytes()).hexdigest() in {o["sha256"] for o in report.orphans}
        gc(app, apply=True, grace=0)
        after = fsck(app)
        assert not after.damaged and after.orphans == []
    finally:
        app.close()


def test_repo_delete_force_removes_every_row_in_one_transaction(app: App, tmp_path: Path) -> None:
    from artifactd.service import delete_repository

    create_repository(app, "big", "hosted", "pypi")
    for i in range(5):
        upload_file(app, "big", make_wheel(tmp_path / str(i), f"bigpkg{i}", "1.0"))
    upload_file(app, "pypi-local", make_wheel(tmp_path / "keep", "keeppkg", "1.0"))
    writes = []
    real = app.db.write

    def counting_write():  # type: ignore[no-untyped-def]
        writes.append(1)
        return real()

    app.db.write = counting_write  # type: ignore[method-assign]
    try:
        assert delete_repository(app, "big", force=True) == 5
    finally:
        app.db.write = real  # type: ignore[method-assign]
    assert len(writes) <= 2  # the rows in one transaction (plus the audit record)
    assert app.db.count_artifacts("big") == (0, 0)
    assert app.config.repo("big") is None
    assert app.db.count_artifacts("pypi-local")[0] == 1  # other repositories untouched
