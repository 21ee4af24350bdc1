"""The ML model pipeline end to end: upload with properties → build publish → scan → promote → download.

Also: the negative path (a denied dependency fails the scan and blocks promotion), PyPI
promotion py-dev → py-prod installed with pip, copies that cost no blob space, the
JSON API and its OpenAPI document, and promotion --move under kill -9.
"""
from __future__ import annotations

import hashlib
import json
import pickle
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import pytest
import requests
from click.testing import CliRunner

from artifactd import hookimpl, service
from artifactd.app import App
from artifactd.cli import cli
from artifactd.http.api import ROUTES, openapi_document
from artifactd.http.server import serve_in_thread
from artifactd.model import Verdict
from tests.conftest import Proc, Server, clean_env, make_wheel, run

STAGING, PROD = "ml-models-staging", "ml-models-prod"


class DenyInsecure:
    """A stand-in for the health plugin: denies a known-vulnerable dependency."""

    @hookimpl
    def artifactd_check_dependency(self, name: str, version: str) -> Verdict | None:
        if name.lower() == "insecure-lib" and version == "1.0":
            return Verdict.deny("insecure-lib 1.0 has advisory TEST-2024-1 (critical)")
        return None


class DenyPromotionOfUnsafe:
    @hookimpl
    def artifactd_check_promotion(self, source: str, target: str, artifact: Any) -> Verdict | None:
        if artifact.path.endswith("unsafe.pkl"):
            return Verdict.deny("unsafe model")
        return None


@pytest.fixture
def pserver(tmp_path: Path) -> Iterator[Server]:
    app = App(tmp_path / "data", plugins=[DenyInsecure(), DenyPromotionOfUnsafe()], load_entrypoints=False)
    for name in (STAGING, PROD):
        service.create_repository(app, name, "hosted", "generic")
    service.create_repository(app, "ml-models", "group", "generic", members=(PROD, STAGING))
    service.create_repository(app, "py-dev", "hosted", "pypi")
    service.create_repository(app, "py-prod", "hosted", "pypi")
    httpd, thread = serve_in_thread(app)
    s = Server(app, httpd)
    yield s
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=5)
    app.close()


def train_model() -> tuple[bytes, float]:
    """A tiny least-squares classifier on a toy data set; returns (pickled model, accuracy)."""
    rnd = random.Random(7)
    xs = [(rnd.uniform(-1, 1), rnd.uniform(-1, 1)) for _ in range(200)]
    ys = [1 if x0 + 0.5 * x1 > 0 else 0 for x0, x1 in xs]
    w0 = sum(x0 * (2 * y - 1) for (x0, _), y in zip(xs, ys)) / len(xs)
    w1 = sum(x1 * (2 * y - 1) for (_, x1), y in zip(xs, ys)) / len(xs)
    acc = sum((1 if w0 * x0 + w1 * x1 > 0 else 0) == y for (x0, x1), y in zip(xs, ys)) / len(xs)
    model = {"kind": "linear", "weights": [w0, w1], "classes": [0, 1]}
    return pickle.dumps(model), round(acc, 3)


def api(s: Server, method: str, path: str, **kw: Any) -> requests.Response:
    headers = {"Authorization": f"Bearer {s.token}", **kw.pop("headers", {})}
    return requests.request(method, f"{s.url}/api/v1{path}", headers=headers, timeout=30, **kw)


def blob_files(app: App) -> int:
    return sum(1 for _ in app.blobs.iter_digests())


# --- the pipeline over HTTP ----------------------------------------------------------------------

def test_ml_pipeline_end_to_end(pserver: Server, tmp_path: Path) -> None:
    s = pserver
    model, accuracy = train_model()
    digest = hashlib.sha256(model).hexdigest()
    path = "models/fraud-detector/1.0.0/model.pkl"
    r = requests.put(f"{s.url}/repository/{STAGING}/{path};accuracy={accuracy};framework=pickle;commit=3f2a9c1",
                     data=model, headers={"Authorization": f"Bearer {s.token}", "X-Checksum-Sha256": digest}, timeout=30)
    assert r.status_code == 201, r.text
    assert r.json()["properties"]["accuracy"] == [str(accuracy)]

    r = api(s, "POST", "/builds", json={
        "name": "fraud-detector", "number": "42", "artifacts": [f"{STAGING}:{path}"],
        "requirements": "numpy==1.26.4 \\\n    --hash=sha256:" + "a" * 64 + "\nscikit-learn==1.5.0\n",
        "vcs": {"commit": "3f2a9c1", "branch": "main"}, "properties": {"ci": "github-actions"}})
    assert r.status_code == 201, r.text
    assert [d["name"] for d in r.json()["dependencies"]] == ["numpy", "scikit-learn"]
    assert r.json()["artifacts"][0]["sha256"] == digest

    blobs_before = blob_files(s.app)
    r = api(s, "POST", "/builds/fraud-detector/42/scan")
    assert r.status_code == 200 and r.json()["result"] == "passed", r.text
    r = api(s, "POST", "/builds/fraud-detector/42/promote",
            json={"target": PROD, "status": "Production", "comment": "accuracy ok"})
    assert r.status_code == 200, r.text
    assert r.json()["items"][0]["outcome"] == "copied"
    assert blob_files(s.app) == blobs_before  # a copy is a row, not a blob

    r = api(s, "GET", "/builds/fraud-detector/42")
    hist = r.json()["history"]
    assert [h["status"] for h in hist] == ["published", "scan passed", "Production"]
    assert hist[-1]["comment"] == "accuracy ok" and hist[-1]["user"] == "admin" and not hist[-1]["forced"]
    assert r.json()["status"] == "Production"

    # the inference service: "the production model", by property and by build
    for query in ({"prop": ["framework=pickle", f"accuracy={accuracy}"]}, {"build": "fraud-detector/42"}):
        r = requests.get(f"{s.url}/api/v1/repositories/{PROD}/downloads", params=query, timeout=30)
        assert r.status_code == 200, r.text
        [hit] = r.json()["results"]
        assert hit["repo"] == PROD and hit["properties"]["commit"] == ["3f2a9c1"]
        got = requests.get(hit["download_uri"], timeout=30)
        assert got.status_code == 200
        assert hashlib.sha256(got.content).hexdigest() == digest == got.headers["X-Checksum-Sha256"]
        assert pickle.loads(got.content)["kind"] == "linear"
    # properties travelled with the copy, including the build tags
    props = api(s, "GET", f"/repositories/{PROD}/properties", params={"path": path}).json()["properties"]
    assert props["build.name"] == ["fraud-detector"] and props["build.number"] == ["42"]


def test_denied_dependency_fails_scan_and_blocks_promotion(pserver: Server) -> None:
    s = pserver
    r = requests.put(f"{s.url}/repository/{STAGING}/models/risky/1/model.pkl;framework=pickle", data=b"risky",
                     headers={"Authorization": f"Bearer {s.token}"}, timeout=30)
    assert r.status_code == 201
    r = api(s, "POST", "/builds", json={"name": "risky", "number": "1",
                                         "artifacts": [f"{STAGING}:models/risky/1/model.pkl"],
                                         "dependencies": [{"name": "insecure-lib", "version": "1.0"},
                                                          {"name": "numpy", "version": "1.26.4"}]})
    assert r.status_code == 201
    scan = api(s, "POST", "/builds/risky/1/scan").json()
    assert scan["result"] == "failed"
    assert any("TEST-2024-1" in d for d in scan["denied"])
    r = api(s, "POST", "/builds/risky/1/promote", json={"target": PROD, "status": "Production"})
    assert r.status_code == 403
    err = r.json()["error"]
    assert err["code"] == "Forbidden" and "insecure-lib" in err["message"]
    assert s.app.db.artifacts(PROD) == []
    assert [h["status"] for h in api(s, "GET", "/builds/risky/1").json()["history"]] == ["published", "scan failed"]
    # --force promotes and is recorded as forced, with the overridden reasons
    r = api(s, "POST", "/builds/risky/1/promote", json={"target": PROD, "status": "Production", "force": True})
    assert r.status_code == 200 and r.json()["forced"]
    last = api(s, "GET", "/builds/risky/1").json()["history"][-1]
    assert last["forced"] and "insecure-lib" in json.dumps(last["detail"])


def test_promotion_gate_denies_single_item(pserver: Server) -> None:
    s = pserver
    requests.put(f"{s.url}/repository/{STAGING}/unsafe.pkl", data=b"u", headers={"Authorization": f"Bearer {s.token}"},
                 timeout=30)
    r = api(s, "POST", "/promote", json={"source": STAGING, "target": PROD, "path": "unsafe.pkl"})
    assert r.status_code == 403 and "unsafe model" in r.json()["error"]["message"]
    assert s.app.db.get_artifact(PROD, "unsafe.pkl") is None
    r = api(s, "POST", "/promote", json={"source": STAGING, "target": PROD, "path": "unsafe.pkl", "force": True})
    assert r.status_code == 200 and r.json()["forced"]
    assert s.app.db.promotions(path="unsafe.pkl")[-1]["forced"] is True


def test_promotion_permissions(pserver: Server) -> None:
    s = pserver
    requests.put(f"{s.url}/repository/{STAGING}/p.bin", data=b"p", headers={"Authorization": f"Bearer {s.token}"},
                 timeout=30)
    tok, _ = service.create_token(s.app, "admin", "prod-writer", ("write",), (PROD, STAGING))
    body = {"source": STAGING, "target": PROD, "path": "p.bin", "move": True}
    r = requests.post(f"{s.url}/api/v1/promote", json=body, headers={"Authorization": f"Bearer {tok}"}, timeout=30)
    assert r.status_code == 403  # --move needs delete on the source
    r = requests.post(f"{s.url}/api/v1/promote", json=body)
    assert r.status_code == 401 and r.json()["error"]["code"] == "Unauthorized"
    body["move"] = False
    r = requests.post(f"{s.url}/api/v1/promote", json=body, headers={"Authorization": f"Bearer {tok}"}, timeout=30)
    assert r.status_code == 200


def test_move_and_copies_cost_no_blob_space(pserver: Server) -> None:
    s = pserver
    for i in range(3):
        requests.put(f"{s.url}/repository/{STAGING}/batch/{i}.bin;i={i}", data=f"file {i}".encode(),
                     headers={"Authorization": f"Bearer {s.token}"}, timeout=30)
    n = blob_files(s.app)
    r = api(s, "POST", "/promote", json={"source": STAGING, "target": PROD, "path": "batch/", "move": True})
    assert r.status_code == 200 and [i["outcome"] for i in r.json()["items"]] == ["moved"] * 3
    assert blob_files(s.app) == n
    assert s.app.db.artifacts(STAGING) == [] and len(s.app.db.artifacts(PROD)) == 3
    assert s.app.db.properties(s.app.db.get_artifact(PROD, "batch/2.bin").id) == {"i": ["2"], "promoted": [f"from {STAGING}"]}


# --- PyPI promotion: py-dev → py-prod, installable with pip --------------------------------------------

def test_promote_pypi_package_and_pip_install(pserver: Server, tmp_path: Path) -> None:
    s = pserver
    wheel = make_wheel(tmp_path / "dist", "demo-model-lib", "1.0")
    service.upload_file(s.app, "py-dev", wheel)
    service.upload_file(s.app, "py-dev", make_wheel(tmp_path / "dist", "demo-model-lib", "2.0"))
    n = blob_files(s.app)
    r = api(s, "POST", "/promote", json={"source": "py-dev", "target": "py-prod", "package": "Demo_Model_Lib==1.0"})
    assert r.status_code == 200, r.text
    assert blob_files(s.app) == n
    assert [a.filename for a in s.app.db.artifacts("py-prod")] == [wheel.name]
    # the same promotion again is a no-op
    r = api(s, "POST", "/promote", json={"source": "py-dev", "target": "py-prod", "package": "demo-model-lib==1.0"})
    assert r.json()["items"][0]["outcome"] == "unchanged"
    env = clean_env(tmp_path)
    target = tmp_path / "site"
    run([sys.executable, "-m", "pip", "install", "--isolated", "--no-deps", "--index-url",
         s.simple("py-prod"), "--target", str(target), "demo-model-lib"], env)
    assert (target / "demo_model_lib" / "__init__.py").read_text().startswith("__version__ = '1.0'")
    # its PEP 658 metadata was carried too
    page = requests.get(s.simple("py-prod") + "demo-model-lib/",
                        headers={"Accept": "application/vnd.pypi.simple.v1+json"}, timeout=30).json()
    assert page["files"][0]["core-metadata"]


def test_promote_pypi_refuses_mixed_formats_and_unknown(pserver: Server) -> None:
    s = pserver
    r = api(s, "POST", "/promote", json={"source": "py-dev", "target": PROD, "package": "x==1"})
    assert r.status_code == 400 and "(generic)" in r.json()["error"]["message"]
    r = api(s, "POST", "/promote", json={"source": "py-dev", "target": "py-prod", "package": "nothing==1"})
    assert r.status_code == 404


# --- the JSON API and its OpenAPI document -----------------------------------------------------------

def test_openapi_documents_every_route(pserver: Server) -> None:
    r = requests.get(f"{pserver.url}/api/v1/openapi.json", timeout=30)
    assert r.status_code == 200
    doc = r.json()
    assert doc == openapi_document()
    assert doc["openapi"].startswith("3.1")
    ops = {(p, m.upper()) for p, item in doc["paths"].items() for m in item}
    table = {("/api/v1" + rt.template, rt.method) for rt in ROUTES}
    assert ops == table
    ids = [op["operationId"] for item in doc["paths"].values() for op in item.values()]
    assert len(ids) == len(set(ids))
    for item in doc["paths"].values():
        for op in item.values():
            assert op["summary"] and "default" in op["responses"]


def test_api_errors_are_json(pserver: Server) -> None:
    s = pserver
    for method, path, status in (("GET", "/nope", 404), ("DELETE", "/builds", 405),
                                 ("GET", "/repositories/missing", 404), ("GET", "/builds/x/1", 404)):
        r = api(s, method, path)
        assert r.status_code == status
        assert r.headers["Content-Type"] == "application/json"
        assert set(r.json()["error"]) == {"code", "message"}
    r = api(s, "POST", "/builds", data=b"{not json", headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and "JSON" in r.json()["error"]["message"]
    r = api(s, "POST", "/builds", json={"name": "b", "number": "1", "artifacts": [f"{STAGING}:missing.bin"]})
    assert r.status_code == 404


def test_api_repositories_properties_search(pserver: Server) -> None:
    s = pserver
    names = {x["name"] for x in api(s, "GET", "/repositories").json()}
    assert {STAGING, PROD, "ml-models"} <= names
    r = api(s, "POST", "/repositories", json={"name": "scratch", "type": "hosted", "format": "generic"})
    assert r.status_code == 201 and r.json()["format"] == "generic"
    requests.put(f"{s.url}/repository/scratch/a/b.onnx;framework=onnx", data=b"o",
                 headers={"Authorization": f"Bearer {s.token}"}, timeout=30)
    r = api(s, "PUT", "/repositories/scratch/properties", params={"path": "a/b.onnx"},
            json={"properties": {"stage": "qa", "tags": ["x", "y"]}})
    assert r.json()["properties"] == {"framework": ["onnx"], "stage": ["qa"], "tags": ["x", "y"]}
    r = api(s, "DELETE", "/repositories/scratch/properties", params={"path": "a/b.onnx", "key": ["tags"]})
    assert "tags" not in r.json()["properties"]
    r = api(s, "GET", "/search", params={"prop": ["stage=qa"], "name": "*.onnx"})
    assert [x["path"] for x in r.json()["results"]] == ["a/b.onnx"]
    assert api(s, "GET", "/search", params={"prop": ["stage=prod"]}).json()["results"] == []
    r = api(s, "GET", "/repositories/scratch/artifacts", params={"path": "a/"})
    assert r.json()["children"][0]["name"] == "b.onnx"
    r = api(s, "GET", "/repositories/scratch/artifacts", params={"path": "a/b.onnx"})
    assert r.json()["sha256"] == hashlib.sha256(b"o").hexdigest()
    assert api(s, "DELETE", "/repositories/scratch/artifacts", params={"path": "a/b.onnx"}).status_code == 200
    assert api(s, "GET", "/repositories/scratch/artifacts", params={"path": "a/b.onnx"}).status_code == 404


def test_hook_artifactd_check_dependency(tmp_path: Path) -> None:
    app = App(tmp_path / "d", plugins=[DenyInsecure()], load_entrypoints=False)
    try:
        assert app.hooks.check_dependency("insecure-lib", "1.0").denied
        assert not app.hooks.check_dependency("insecure-lib", "1.1").denied
        res = app.hooks.check_dependency("insecure-lib", "1.0")
        assert res.verdicts[0].plugin  # the plugin is named in the reasons
    finally:
        app.close()


# --- the command line next to a live server (a real child process) -----------------------------------

def _cli(data: Path, *args: str, input: str | None = None) -> Any:
    r = CliRunner().invoke(cli, ["--data-dir", str(data), *args], input=input, catch_exceptions=False)
    return r


def test_cli_pipeline_next_to_live_server(server_process: Proc, tmp_path: Path) -> None:
    proc = server_process.start()
    data = server_process.data_dir
    token = [ln.split("=", 1)[1].strip() for ln in (data / "admin-credentials.txt").read_text().splitlines()
             if ln.startswith("token")][0]
    for name in (STAGING, PROD):
        assert _cli(data, "repo", "create", name, "--type", "hosted", "--format", "generic").exit_code == 0
    time.sleep(1.1)  # the server re-reads the configuration at most once a second
    model, accuracy = train_model()
    digest = hashlib.sha256(model).hexdigest()
    path = "models/churn/2.1.0/model.pkl"
    deadline = time.monotonic() + 10
    while True:
        r = requests.put(f"{proc.url}/repository/{STAGING}/{path};accuracy={accuracy};framework=pickle;commit=abc123",
                         data=model, headers={"Authorization": f"Bearer {token}"}, timeout=30)
        if r.status_code != 404 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert r.status_code == 201, r.text
    req = tmp_path / "requirements.txt"
    req.write_text("numpy==1.26.4\npandas==2.2.2 ; python_version >= '3.9'\n")
    r = _cli(data, "build", "publish", "churn", "7", "--artifact", f"{STAGING}:{path}", "--requirements", str(req),
             "--vcs-commit", "abc123", "--vcs-branch", "main", "--prop", "team=ml", "--json")
    assert r.exit_code == 0, r.output
    assert _cli(data, "build", "scan", "churn", "7").exit_code == 0
    r = _cli(data, "build", "promote", "churn", "7", "--to", PROD, "--status", "Production", "--comment", "go")
    assert r.exit_code == 0, r.output
    shown = json.loads(_cli(data, "build", "show", "churn", "7", "--json").output)
    assert shown["history"][-1]["status"] == "Production"
    assert {d["name"] for d in shown["dependencies"]} == {"numpy", "pandas"}
    # download by property and by build, verified
    for args in (["--prop", "framework=pickle"], ["--build", "churn/7"]):
        out = tmp_path / ("out" + args[0])
        r = _cli(data, "download", PROD, *args, "-o", str(out), "--json")
        assert r.exit_code == 0, r.output
        [got] = json.loads(r.output)
        assert got["verified"] and hashlib.sha256((out / path).read_bytes()).hexdigest() == digest
    # and the live server serves the promoted copy
    got = requests.get(f"{proc.url}/repository/{PROD}/{path}", timeout=30)
    assert hashlib.sha256(got.content).hexdigest() == digest
    r = _cli(data, "search", "--prop", "build.name=churn", "--json")
    assert {x["repo"] for x in json.loads(r.output)} == {STAGING, PROD}
    r = _cli(data, "download", PROD, "--prop", "framework=tensorflow", "-o", str(tmp_path / "none"))
    assert r.exit_code == 1 and "no file" in r.output


def test_promote_move_survives_kill_9(tmp_path: Path) -> None:
    """RELIABILITY #40: kill -9 during promotion --move leaves the file in the source or the target."""
    data = tmp_path / "data"
    app = App(data)
    service.create_repository(app, "dev", "hosted", "generic")
    service.create_repository(app, "prod", "hosted", "generic")
    from artifactd import generic_service

    for i in range(20):
        generic_service.upload_local(app, "dev", _file(tmp_path, i), f"f/{i}.bin")
    rnd = random.Random(1)
    for attempt in range(8):
        src, dst = ("dev", "prod") if app.db.count_artifacts("dev")[0] else ("prod", "dev")
        p = subprocess.Popen([sys.executable, "-m", "artifactd", "--data-dir", str(data), "promote", src, dst,
                              "--path", "f/", "--move"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rnd.uniform(0.2, 0.9))
        if p.poll() is None:
            p.kill()  # our own child, by PID
        p.wait(timeout=30)
        for i in range(20):
            where = [r for r in ("dev", "prod") if app.db.get_artifact(r, f"f/{i}.bin") is not None]
            assert where, f"f/{i}.bin vanished after attempt {attempt}"
        # a move is one transaction: all files are on one side
        assert {app.db.count_artifacts("dev")[0], app.db.count_artifacts("prod")[0]} in ({0, 20}, {20})
    app.close()


def _file(tmp: Path, i: int) -> Path:
    f = tmp / f"src{i}.bin"
    f.write_bytes(f"content {i}".encode() * 100)
    return f
