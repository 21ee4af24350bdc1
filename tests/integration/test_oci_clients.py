"""Real registry clients against artifactd: skopeo (system package) and oras-py."""
from __future__ import annotations

import json
import shutil
import subprocess
import urllib.request
from pathlib import Path
from typing import Iterator

import pytest

from artifactd import service
from tests.conftest import Server
from tests.ocilayout import make_image, read_layout, sha256, write_layout

pytestmark = pytest.mark.integration


@pytest.fixture
def registry(server: Server) -> Iterator[Server]:
    service.create_repository(server.app, "docker-hosted", "hosted", "docker")
    service.create_repository(server.app, "docker-group", "group", "docker", members=("docker-hosted",))
    yield server


def skopeo(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("skopeo")
    if exe is None:
        pytest.skip("skopeo is not installed (apt-get install skopeo)")
    env = {"HOME": str(tmp_path / "home"), "PATH": "/usr/bin:/bin", "XDG_RUNTIME_DIR": str(tmp_path / "run")}
    (tmp_path / "home").mkdir(exist_ok=True)
    (tmp_path / "run").mkdir(exist_ok=True)
    proc = subprocess.run([exe, "--insecure-policy", *args], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"skopeo {' '.join(args)}:\n{proc.stdout}\n{proc.stderr}"
    return proc


def _host(server: Server) -> str:
    return server.url.removeprefix("http://")


def test_skopeo_roundtrip_hosted_and_group(registry: Server, tmp_path: Path) -> None:
    img = make_image([{"etc/hello": b"hello from the test\n"}, {"model/weights.bin": bytes(range(256)) * 64}])
    src = write_layout(tmp_path / "src", img, "1.0")
    host, creds = _host(registry), f"__token__:{registry.token}"
    skopeo(tmp_path, "copy", "--preserve-digests", "--dest-tls-verify=false", "--dest-creds", creds,
           f"oci:{src}:1.0", f"docker://{host}/docker-hosted/team/app:1.0")
    raw = skopeo(tmp_path, "inspect", "--raw", "--tls-verify=false", "--creds", creds,
                 f"docker://{host}/docker-hosted/team/app:1.0").stdout
    assert raw.encode() == img.manifest
    for repo, out in (("docker-hosted", "back"), ("docker-group", "via-group")):
        skopeo(tmp_path, "copy", "--src-tls-verify=false", "--src-creds", creds,
               f"docker://{host}/{repo}/team/app:1.0", f"oci:{tmp_path / out}:1.0")
        index = read_layout(tmp_path / out)
        assert index["manifests"][0]["digest"] == img.digest  # type: ignore[index]
        for blob in [*img.blobs(), img.manifest]:
            assert (tmp_path / out / "blobs" / "sha256" / sha256(blob).split(":")[1]).read_bytes() == blob
    tags = json.loads(skopeo(tmp_path, "list-tags", "--tls-verify=false", "--creds", creds,
                             f"docker://{host}/docker-group/team/app").stdout)
    assert tags["Tags"] == ["1.0"]


def test_skopeo_anonymous_pull_uses_token_flow(registry: Server, tmp_path: Path) -> None:
    img = make_image([{"anon": b"anonymous pull"}])
    src = write_layout(tmp_path / "src", img, "latest")
    host = _host(registry)
    skopeo(tmp_path, "copy", "--dest-tls-verify=false", "--dest-creds", f"__token__:{registry.token}",
           f"oci:{src}:latest", f"docker://{host}/docker-hosted/pub/img:latest")
    skopeo(tmp_path, "copy", "--src-tls-verify=false", f"docker://{host}/docker-hosted/pub/img:latest",
           f"oci:{tmp_path / 'out'}:latest")
    assert read_layout(tmp_path / "out")["manifests"][0]["digest"] == img.digest  # type: ignore[index]


def test_oras_model_artifact_with_referrer(registry: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    oras_client = pytest.importorskip("oras.client")
    import oras.oci

    monkeypatch.setenv("HOME", str(tmp_path))
    host = _host(registry)
    client = oras_client.OrasClient(hostname=host, insecure=True)
    client.login(username="__token__", password=registry.token, hostname=host, tls_verify=False)
    model = tmp_path / "model.safetensors"
    model.write_bytes(b"\x00weights\x01" * 3000)
    target = f"{host}/docker-hosted/ml/classifier:v1"
    resp = client.push(target=target, files=[str(model)], disable_path_validation=True,
                       manifest_annotations={"org.opencontainers.image.title": "classifier",
                                             "com.example.accuracy": "0.93"})
    assert resp.status_code == 201
    manifest = client.get_manifest(target)
    assert manifest["annotations"]["com.example.accuracy"] == "0.93"
    out = tmp_path / "pulled"
    files = client.pull(target=target, outdir=str(out))
    assert Path(files[0]).read_bytes() == model.read_bytes()

    # the registry's digest of the pushed manifest
    req = urllib.request.Request(f"{registry.url}/v2/docker-hosted/ml/classifier/manifests/v1", method="HEAD",
                                 headers={"Authorization": registry.basic})
    with urllib.request.urlopen(req) as r:
        digest, size = r.headers["Docker-Content-Digest"], int(r.headers["Content-Length"])
    sig = tmp_path / "model.sig"
    sig.write_bytes(b"signature-of-the-model")
    cfg = tmp_path / "sigconfig.json"
    cfg.write_text("{}")
    subject = oras.oci.Subject(mediaType=manifest["mediaType"], digest=digest, size=size)
    resp = client.push(target=f"{host}/docker-hosted/ml/classifier:v1-sig", files=[str(sig)],
                       disable_path_validation=True, subject=subject,
                       manifest_config=f"{cfg}:application/vnd.example.signature.v1")
    assert resp.status_code == 201 and resp.headers.get("OCI-Subject") == digest
    url = f"{registry.url}/v2/docker-hosted/ml/classifier/referrers/{digest}?artifactType=application/vnd.example.signature.v1"
    with urllib.request.urlopen(urllib.request.Request(url, headers={"Authorization": registry.basic})) as r:
        index = json.load(r)
        assert r.headers["OCI-Filters-Applied"] == "artifactType"
    assert [m["artifactType"] for m in index["manifests"]] == ["application/vnd.example.signature.v1"]
    url = f"{registry.url}/v2/docker-hosted/ml/classifier/referrers/{digest}?artifactType=application/other"
    with urllib.request.urlopen(urllib.request.Request(url, headers={"Authorization": registry.basic})) as r:
        assert json.load(r)["manifests"] == []
