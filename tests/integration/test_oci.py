"""The OCI distribution API with raw HTTP: chunked uploads, mounts, tags, referrers, deletion, errors."""
from __future__ import annotations

import hashlib
import http.client
import json
from typing import Any, Iterator
from urllib.parse import urlsplit

import pytest

from artifactd import service
from artifactd.store.gc import gc
from tests.conftest import Server
from tests.ocilayout import OCI_MANIFEST, Image, make_image, sha256

pytestmark = pytest.mark.integration


class Reg:
    """A tiny registry client over http.client (one connection per request)."""

    def __init__(self, server: Server, auth: str | None = "basic") -> None:
        self.server = server
        u = urlsplit(server.url)
        self.host, self.port = u.hostname, u.port
        self.auth = server.basic if auth == "basic" else auth

    def req(self, method: str, path: str, body: bytes | None = None,
            headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
        h = dict(headers or {})
        if self.auth:
            h.setdefault("Authorization", self.auth)
        if body is not None:
            h.setdefault("Content-Length", str(len(body)))
        conn.request(method, path, body=body, headers=h)
        r = conn.getresponse()
        data = r.read()
        out = {k.lower(): v for k, v in r.getheaders()}
        conn.close()
        return r.status, out, data

    def push_blob(self, name: str, data: bytes) -> str:
        d = sha256(data)
        st, h, _ = self.req("POST", f"/v2/{name}/blobs/uploads/?digest={d}", data,
                            {"Content-Type": "application/octet-stream"})
        assert st == 201, (st, _)
        return d

    def push_image(self, name: str, image: Image, tag: str) -> str:
        for b in image.blobs():
            self.push_blob(name, b)
        st, h, body = self.req("PUT", f"/v2/{name}/manifests/{tag}", image.manifest, {"Content-Type": OCI_MANIFEST})
        assert st == 201, body
        assert h["docker-content-digest"] == image.digest
        return image.digest


def code(body: bytes) -> str:
    return str(json.loads(body)["errors"][0]["code"])


@pytest.fixture
def reg(server: Server) -> Iterator[Reg]:
    service.create_repository(server.app, "docker-hosted", "hosted", "docker")
    service.create_repository(server.app, "docker-other", "hosted", "docker")
    yield Reg(server)


def test_base_and_token(reg: Reg) -> None:
    anon = Reg(reg.server, auth=None)
    st, h, body = anon.req("GET", "/v2/")
    assert st == 401 and code(body) == "UNAUTHORIZED"
    assert h["www-authenticate"].startswith('Bearer realm="http://') and 'service="artifactd"' in h["www-authenticate"]
    st, h, body = reg.req("GET", "/v2/")
    assert st == 200 and json.loads(body) == {} and h["docker-distribution-api-version"] == "registry/2.0"
    st, _, body = reg.req("GET", "/v2/token?service=artifactd&scope=repository:docker-hosted/team/app:pull,push")
    tok = json.loads(body)
    assert st == 200 and tok["token"] == tok["access_token"] and tok["expires_in"] > 0 and tok["issued_at"]
    bearer = Reg(reg.server, auth=f"Bearer {tok['token']}")
    assert bearer.req("GET", "/v2/")[0] == 200
    img = make_image([{"a": b"a"}])
    bearer.push_image("docker-hosted/team/app", img, "1.0")
    # the token is scoped to docker-hosted: pushing elsewhere is denied
    st, _, body = bearer.req("POST", "/v2/docker-other/x/blobs/uploads/")
    assert st == 403 and code(body) == "DENIED"
    # a tampered token is refused
    bad = Reg(reg.server, auth=f"Bearer {tok['token'][:-2]}xx")
    assert bad.req("GET", "/v2/")[0] == 401
    # anonymous tokens pull from anonymously readable repositories, never push
    st, _, body = anon.req("GET", "/v2/token?service=artifactd&scope=repository:docker-hosted/team/app:pull,push")
    anon_tok = Reg(reg.server, auth=f"Bearer {json.loads(body)['token']}")
    assert anon_tok.req("GET", "/v2/docker-hosted/team/app/manifests/1.0")[0] == 200
    st, h, body = anon_tok.req("POST", "/v2/docker-hosted/team/app/blobs/uploads/")
    assert st == 401 and 'scope="repository:docker-hosted/team/app:pull,push"' in h["www-authenticate"]
    # wrong Basic credentials at the token endpoint
    wrong = Reg(reg.server, auth="Basic X190b2tlbl9fOmFkdF9ub3BlOm5vcGU=")
    assert wrong.req("GET", "/v2/token?service=artifactd")[0] == 401


def test_pull_manifest_and_blob_with_range(reg: Reg) -> None:
    img = make_image([{"f": b"0123456789" * 100}])
    digest = reg.push_image("docker-hosted/team/app", img, "1.0")
    for ref in ("1.0", digest):
        st, h, body = reg.req("GET", f"/v2/docker-hosted/team/app/manifests/{ref}")
        assert st == 200 and body == img.manifest
        assert h["content-type"] == OCI_MANIFEST and h["docker-content-digest"] == digest
        st, h, body = reg.req("HEAD", f"/v2/docker-hosted/team/app/manifests/{ref}")
        assert st == 200 and body == b"" and int(h["content-length"]) == len(img.manifest)
    layer = img.layers[0]
    st, h, body = reg.req("GET", f"/v2/docker-hosted/team/app/blobs/{sha256(layer)}")
    assert st == 200 and body == layer and h["docker-content-digest"] == sha256(layer)
    st, h, body = reg.req("GET", f"/v2/docker-hosted/team/app/blobs/{sha256(layer)}", headers={"Range": "bytes=5-9"})
    assert st == 206 and body == layer[5:10] and h["content-range"] == f"bytes 5-9/{len(layer)}"
    st, _, body = reg.req("GET", "/v2/docker-hosted/team/app/manifests/nope")
    assert st == 404 and code(body) == "MANIFEST_UNKNOWN"
    st, _, body = reg.req("GET", f"/v2/docker-hosted/team/app/blobs/sha256:{'0' * 64}")
    assert st == 404 and code(body) == "BLOB_UNKNOWN"
    # permission isolation: another name in the same repository does not see the blob
    st, _, body = reg.req("GET", f"/v2/docker-hosted/team/other/blobs/{sha256(layer)}")
    assert st == 404 and code(body) == "BLOB_UNKNOWN"


def test_chunked_upload_out_of_order_and_status(reg: Reg) -> None:
    data = bytes(range(256)) * 40
    name = "docker-hosted/team/chunks"
    st, h, _ = reg.req("POST", f"/v2/{name}/blobs/uploads/", b"")
    assert st == 202 and h["location"].startswith(f"/v2/{name}/blobs/uploads/")
    loc = h["location"]
    a, b = data[:4000], data[4000:]
    st, h, _ = reg.req("PATCH", loc, a, {"Content-Range": f"0-{len(a) - 1}", "Content-Type": "application/octet-stream"})
    assert st == 202 and h["range"] == f"0-{len(a) - 1}"
    loc = h["location"]
    # out of order: 416 with what was received
    st, h, body = reg.req("PATCH", loc, b, {"Content-Range": f"5000-{5000 + len(b) - 1}"})
    assert st == 416 and h["range"] == f"0-{len(a) - 1}" and code(body) == "BLOB_UPLOAD_INVALID"
    st, h, _ = reg.req("GET", loc)
    assert st == 204 and h["range"] == f"0-{len(a) - 1}"
    st, h, _ = reg.req("PATCH", loc, b, {"Content-Range": f"{len(a)}-{len(data) - 1}"})
    assert st == 202 and h["range"] == f"0-{len(data) - 1}"
    # never visible before the final PUT
    assert reg.req("HEAD", f"/v2/{name}/blobs/{sha256(data)}")[0] == 404
    st, h, _ = reg.req("PUT", f"{loc}?digest={sha256(data)}", b"")
    assert st == 201 and h["location"] == f"/v2/{name}/blobs/{sha256(data)}"
    assert h["docker-content-digest"] == sha256(data)
    st, _, body = reg.req("GET", f"/v2/{name}/blobs/{sha256(data)}")
    assert st == 200 and body == data
    # the session is gone
    st, _, body = reg.req("GET", loc)
    assert st == 404 and code(body) == "BLOB_UPLOAD_UNKNOWN"


def test_streamed_patch_final_chunk_in_put_and_wrong_digest(reg: Reg) -> None:
    name = "docker-hosted/team/stream"
    data = b"streamed-" * 1000
    st, h, _ = reg.req("POST", f"/v2/{name}/blobs/uploads/", b"")
    st, h, _ = reg.req("PATCH", h["location"], data[:5000])  # no Content-Range: streamed
    assert st == 202
    st, h2, _ = reg.req("PUT", f"{h['location']}?digest={sha256(data)}", data[5000:])
    assert st == 201
    assert reg.req("GET", f"/v2/{name}/blobs/{sha256(data)}")[2] == data
    st, h, _ = reg.req("POST", f"/v2/{name}/blobs/uploads/", b"")
    st, _, body = reg.req("PUT", f"{h['location']}?digest=sha256:{'1' * 64}", b"other bytes")
    assert st == 400 and code(body) == "DIGEST_INVALID"
    assert reg.req("HEAD", f"/v2/{name}/blobs/{sha256(b'other bytes')}")[0] == 404
    st, _, body = reg.req("POST", f"/v2/{name}/blobs/uploads/?digest=sha256:{'1' * 64}", b"x")
    assert st == 400 and code(body) == "DIGEST_INVALID"
    st, _, body = reg.req("POST", f"/v2/{name}/blobs/uploads/?digest=md5:abc", b"x")
    assert st == 400 and code(body) == "DIGEST_INVALID"


def test_sha512_blob(reg: Reg) -> None:
    data = b"sha512 content"
    d = "sha512:" + hashlib.sha512(data).hexdigest()
    st, h, _ = reg.req("POST", f"/v2/docker-hosted/team/x/blobs/uploads/?digest={d}", data)
    assert st == 201 and h["docker-content-digest"] == d
    st, h, body = reg.req("GET", f"/v2/docker-hosted/team/x/blobs/{d}")
    assert st == 200 and body == data and h["docker-content-digest"] == d


def test_mount_and_isolation(reg: Reg) -> None:
    img = make_image([{"shared": b"shared layer"}])
    reg.push_image("docker-hosted/team/app", img, "1.0")
    layer = sha256(img.layers[0])
    st, h, _ = reg.req("POST", f"/v2/docker-other/team/copy/blobs/uploads/?mount={layer}&from=docker-hosted/team/app", b"")
    assert st == 201 and h["location"] == f"/v2/docker-other/team/copy/blobs/{layer}"
    assert reg.req("GET", f"/v2/docker-other/team/copy/blobs/{layer}")[2] == img.layers[0]
    # unknown source: an ordinary upload session instead
    st, h, _ = reg.req("POST", f"/v2/docker-other/team/copy/blobs/uploads/?mount=sha256:{'2' * 64}&from=docker-hosted/team/app", b"")
    assert st == 202 and "/blobs/uploads/" in h["location"]
    # a token limited to docker-other cannot mount from docker-hosted when anonymous read is off
    app = reg.server.app
    from dataclasses import replace

    app.set_config(app.config.with_repo(replace(app.config.repo("docker-hosted"), anonymous_read=False)))
    tok, _ = service.create_token(app, "admin", "limited", ("write",), ("docker-other",))
    limited = Reg(reg.server, auth=f"Bearer {tok}")
    st, h, _ = limited.req("POST", f"/v2/docker-other/team/c2/blobs/uploads/?mount={layer}&from=docker-hosted/team/app", b"")
    assert st == 202
    st, _, body = limited.req("GET", "/v2/docker-hosted/team/app/manifests/1.0")
    assert st == 403 and code(body) == "DENIED"
    anon = Reg(reg.server, auth=None)
    st, h, body = anon.req("GET", "/v2/docker-hosted/team/app/manifests/1.0")
    assert st == 401 and 'scope="repository:docker-hosted/team/app:pull"' in h["www-authenticate"]


def test_tags_pagination(reg: Reg) -> None:
    img = make_image([{"t": b"t"}])
    for tag in ["c", "a", "e", "b", "d"]:
        reg.push_image("docker-hosted/team/tags", img, tag)
    st, _, body = reg.req("GET", "/v2/docker-hosted/team/tags/tags/list")
    assert json.loads(body) == {"name": "docker-hosted/team/tags", "tags": ["a", "b", "c", "d", "e"]}
    st, h, body = reg.req("GET", "/v2/docker-hosted/team/tags/tags/list?n=2")
    assert json.loads(body)["tags"] == ["a", "b"]
    assert h["link"] == '</v2/docker-hosted/team/tags/tags/list?n=2&last=b>; rel="next"'
    st, h, body = reg.req("GET", "/v2/docker-hosted/team/tags/tags/list?n=2&last=b")
    assert json.loads(body)["tags"] == ["c", "d"]
    st, h, body = reg.req("GET", "/v2/docker-hosted/team/tags/tags/list?n=2&last=d")
    assert json.loads(body)["tags"] == ["e"] and "link" not in h
    st, _, body = reg.req("GET", "/v2/docker-hosted/team/none/tags/list")
    assert st == 404 and code(body) == "NAME_UNKNOWN"


def test_manifest_errors(reg: Reg) -> None:
    name = "docker-hosted/team/bad"
    img = make_image([{"x": b"x"}])
    st, _, body = reg.req("PUT", f"/v2/{name}/manifests/1.0", img.manifest, {"Content-Type": OCI_MANIFEST})
    assert st == 400 and code(body) == "MANIFEST_BLOB_UNKNOWN"
    st, _, body = reg.req("PUT", f"/v2/{name}/manifests/1.0", b"{not json", {"Content-Type": OCI_MANIFEST})
    assert st == 400 and code(body) == "MANIFEST_INVALID"
    for b in img.blobs():
        reg.push_blob(name, b)
    st, _, body = reg.req("PUT", f"/v2/{name}/manifests/sha256:{'3' * 64}", img.manifest, {"Content-Type": OCI_MANIFEST})
    assert st == 400 and code(body) == "DIGEST_INVALID"
    st, _, body = reg.req("PUT", f"/v2/{name}/manifests/{img.digest}", img.manifest, {"Content-Type": OCI_MANIFEST})
    assert st == 201
    st, _, body = reg.req("GET", "/v2/docker-hosted/Bad_Name/manifests/1.0")
    assert st == 400 and code(body) == "NAME_INVALID"
    st, _, body = reg.req("GET", "/v2/nosuchrepo/team/app/manifests/1.0")
    assert st == 404 and code(body) == "NAME_UNKNOWN"


def test_delete_manifest_tag_and_blob_then_gc(reg: Reg) -> None:
    name = "docker-hosted/team/del"
    shared = {"shared": b"shared by both images"}
    one = make_image([shared, {"one": b"only in one"}])
    two = make_image([shared, {"two": b"only in two"}])
    reg.push_image(name, one, "one")
    reg.push_image(name, two, "two")
    st, _, _ = reg.req("DELETE", f"/v2/{name}/manifests/one")  # a tag
    assert st == 202
    assert reg.req("GET", f"/v2/{name}/manifests/one")[0] == 404
    assert reg.req("GET", f"/v2/{name}/manifests/{one.digest}")[0] == 200
    st, _, _ = reg.req("DELETE", f"/v2/{name}/manifests/{one.digest}")
    assert st == 202
    st, _, body = reg.req("GET", f"/v2/{name}/manifests/{one.digest}")
    assert st == 404 and code(body) == "MANIFEST_UNKNOWN"
    assert reg.req("DELETE", f"/v2/{name}/manifests/{one.digest}")[0] == 404
    only_one = sha256(one.layers[1])
    st, _, _ = reg.req("DELETE", f"/v2/{name}/blobs/{only_one}")
    assert st == 202
    assert reg.req("GET", f"/v2/{name}/blobs/{only_one}")[0] == 404
    app = reg.server.app
    gc(app, apply=True, grace=0)
    # the shared layer and image two survive; one's own blobs are gone
    assert reg.req("GET", f"/v2/{name}/manifests/two")[2] == two.manifest
    for b in two.blobs():
        assert reg.req("GET", f"/v2/{name}/blobs/{sha256(b)}")[2] == b
    assert not app.blobs.exists(only_one.split(":")[1])
    assert not app.blobs.exists(one.digest.split(":")[1])
    assert not app.blobs.exists(sha256(one.config).split(":")[1])  # its link went stale, then the blob


def test_gc_keeps_blobs_of_a_push_in_flight(reg: Reg) -> None:
    """A layer uploaded (or mounted) for a manifest not pushed yet survives gc within the grace period."""
    name = "docker-hosted/team/inflight"
    d = reg.push_blob(name, b"uploaded, manifest still to come")
    img = make_image([{"s": b"shared"}])
    reg.push_image("docker-hosted/team/a", img, "1")
    reg.req("DELETE", f"/v2/docker-hosted/team/a/manifests/{img.digest}")
    st, _, _ = reg.req("POST", f"/v2/{name}/blobs/uploads/?mount={sha256(img.layers[0])}&from=docker-hosted/team/a", b"")
    assert st == 201
    report = gc(reg.server.app, apply=True, grace=3600)
    assert report.oci["stale_blob_links"] == 0
    assert reg.req("GET", f"/v2/{name}/blobs/{d}")[0] == 200
    assert reg.req("GET", f"/v2/{name}/blobs/{sha256(img.layers[0])}")[0] == 200


def test_expired_upload_sessions_are_purged(reg: Reg) -> None:
    from dataclasses import replace

    app = reg.server.app
    app.set_config(app.config.with_repo(replace(app.config.repo("docker-hosted"), upload_expiry=0.5)))
    st, h, _ = reg.req("POST", "/v2/docker-hosted/team/exp/blobs/uploads/", b"")
    reg.req("PATCH", h["location"], b"partial")
    uuid = h["docker-upload-uuid"]
    assert (app.layout.tmp / f"oci-{uuid}.upload").exists()
    import time

    time.sleep(0.7)
    report = gc(app, apply=True, grace=3600)
    assert report.oci["expired_uploads"] == 1
    assert not (app.layout.tmp / f"oci-{uuid}.upload").exists()
    st, _, body = reg.req("PATCH", h["location"], b"more")
    assert st == 404 and code(body) == "BLOB_UPLOAD_UNKNOWN"


def test_referrers(reg: Reg) -> None:
    name = "docker-hosted/team/ref"
    img = make_image([{"m": b"model"}])
    reg.push_image(name, img, "1.0")
    empty = b"{}"
    reg.push_blob(name, empty)
    sig = b"signature"
    reg.push_blob(name, sig)

    def referrer(artifact_type: str, note: str) -> bytes:
        return json.dumps({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": artifact_type,
            "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": sha256(empty), "size": 2},
            "layers": [{"mediaType": "application/octet-stream", "digest": sha256(sig), "size": len(sig)}],
            "subject": {"mediaType": OCI_MANIFEST, "digest": img.digest, "size": len(img.manifest)},
            "annotations": {"note": note}}).encode()

    sig_m, sbom_m = referrer("application/vnd.example.sig", "s"), referrer("application/vnd.example.sbom", "b")
    for m in (sig_m, sbom_m):
        st, h, _ = reg.req("PUT", f"/v2/{name}/manifests/{sha256(m)}", m, {"Content-Type": OCI_MANIFEST})
        assert st == 201 and h["oci-subject"] == img.digest
    st, h, body = reg.req("GET", f"/v2/{name}/referrers/{img.digest}")
    idx = json.loads(body)
    assert st == 200 and h["content-type"] == "application/vnd.oci.image.index.v1+json"
    assert {m["digest"] for m in idx["manifests"]} == {sha256(sig_m), sha256(sbom_m)}
    st, h, body = reg.req("GET", f"/v2/{name}/referrers/{img.digest}?artifactType=application/vnd.example.sig")
    idx = json.loads(body)
    assert h["oci-filters-applied"] == "artifactType"
    assert idx["manifests"] == [{"mediaType": OCI_MANIFEST, "digest": sha256(sig_m), "size": len(sig_m),
                                 "artifactType": "application/vnd.example.sig", "annotations": {"note": "s"}}]
    st, _, body = reg.req("GET", f"/v2/{name}/referrers/sha256:{'4' * 64}")
    assert st == 200 and json.loads(body)["manifests"] == []


def test_group_pull_and_push_policy(reg: Reg) -> None:
    app = reg.server.app
    service.create_repository(app, "docker-group", "group", "docker", members=("docker-other", "docker-hosted"))
    img = make_image([{"g": b"group"}])
    reg.push_image("docker-hosted/team/app", img, "1.0")
    st, h, body = reg.req("GET", "/v2/docker-group/team/app/manifests/1.0")
    assert st == 200 and body == img.manifest
    assert reg.req("GET", f"/v2/docker-group/team/app/blobs/{sha256(img.layers[0])}")[2] == img.layers[0]
    assert json.loads(reg.req("GET", "/v2/docker-group/team/app/tags/list")[2])["tags"] == ["1.0"]
    st, _, body = reg.req("POST", "/v2/docker-group/team/app/blobs/uploads/", b"")
    assert st == 405 and code(body) == "UNSUPPORTED"
    from dataclasses import replace

    app.set_config(app.config.with_repo(replace(app.config.repo("docker-group"), writable_member="docker-hosted")))
    two = make_image([{"g2": b"through the group"}])
    reg.push_image("docker-group/team/two", two, "2.0")
    assert reg.req("GET", "/v2/docker-hosted/team/two/manifests/2.0")[2] == two.manifest


def test_upload_survives_restart(server_process: Any, tmp_path: Any) -> None:
    """A chunked upload resumes after the server restarts between PATCH and PUT."""
    import subprocess
    import sys

    data_dir = server_process.data_dir
    subprocess.run([sys.executable, "-m", "artifactd", "--data-dir", str(data_dir), "init"], check=True,
                   capture_output=True)
    subprocess.run([sys.executable, "-m", "artifactd", "--data-dir", str(data_dir), "repo", "create", "docker-hosted",
                    "--type", "hosted", "--format", "docker"], check=True, capture_output=True)
    token = (data_dir / "admin-credentials.txt").read_text().split("token = ")[1].strip()
    server_process.start()

    class S:
        url = server_process.url
        basic = "Bearer " + token

    reg = Reg(S(), auth=S.basic)  # type: ignore[arg-type]
    data = b"restart-safe " * 5000
    st, h, _ = reg.req("POST", "/v2/docker-hosted/team/r/blobs/uploads/", b"")
    loc = h["location"]
    st, h, _ = reg.req("PATCH", loc, data[:30000], {"Content-Range": "0-29999"})
    assert st == 202
    server_process.stop()
    server_process.start()
    u = urlsplit(server_process.url)
    reg.port = u.port
    st, h, _ = reg.req("GET", loc)
    assert st == 204 and h["range"] == "0-29999"
    st, h, _ = reg.req("PATCH", loc, data[30000:], {"Content-Range": f"30000-{len(data) - 1}"})
    assert st == 202
    st, h, _ = reg.req("PUT", f"{loc}?digest={sha256(data)}", b"")
    assert st == 201
    assert reg.req("GET", f"/v2/docker-hosted/team/r/blobs/{sha256(data)}")[2] == data


def test_prune_cli_dry_run_then_apply(reg: Reg) -> None:
    from click.testing import CliRunner

    from artifactd.cli import cli
    from artifactd.cli.main import app_plugins_commands

    app_plugins_commands()
    name = "docker-hosted/team/prune"
    images = {tag: make_image([{"v": tag.encode()}]) for tag in ("1", "2", "3", "4")}
    for i, (tag, img) in enumerate(images.items()):
        reg.push_image(name, img, tag)
        app = reg.server.app
        with app.db.write() as con:  # tag 1 is the oldest, pushed 40 days ago; tag 4 is new
            con.execute("UPDATE oci_tags SET updated = ? WHERE tag = ?", (f"2020-01-0{i + 1}T00:00:00.000000Z", tag))
    app = reg.server.app
    with app.db.write() as con:
        con.execute("UPDATE oci_tags SET updated = '2999-01-01T00:00:00.000000Z' WHERE tag = '4'")
    data_dir = str(app.layout.root)
    run = CliRunner().invoke(cli, ["--data-dir", data_dir, "oci", "prune", "docker-hosted", "--keep-tags", "2",
                                   "--older-than", "30d"], catch_exceptions=False)
    assert run.exit_code == 0, run.output
    assert "would delete team/prune:2" in run.output and "would delete team/prune:1" in run.output
    assert "team/prune:3" not in run.output and "dry run" in run.output
    assert reg.req("GET", f"/v2/{name}/manifests/1")[0] == 200  # nothing deleted yet
    run = CliRunner().invoke(cli, ["--data-dir", data_dir, "oci", "prune", "docker-hosted", "--keep-tags", "2",
                                   "--older-than", "30d", "--apply", "--json"], catch_exceptions=False)
    out = json.loads(run.output)
    assert out["applied"] and {i["tag"] for i in out["items"]} == {"1", "2"}
    assert reg.req("GET", f"/v2/{name}/manifests/1")[0] == 404
    assert reg.req("GET", f"/v2/{name}/manifests/{images['2'].digest}")[0] == 404
    assert reg.req("GET", f"/v2/{name}/manifests/3")[0] == 200
    gc(app, apply=True, grace=0)
    assert not app.blobs.exists(sha256(images["1"].layers[0]).split(":")[1])
    assert reg.req("GET", f"/v2/{name}/blobs/{sha256(images['3'].layers[0])}")[0] == 200
    run = CliRunner().invoke(cli, ["--data-dir", data_dir, "oci", "prune", "docker-hosted"])
    assert run.exit_code != 0 and "at least one" in run.output


def test_hostile_upload_ids_and_names(reg: Reg) -> None:
    for path in ("/v2/docker-hosted/team/a/blobs/uploads/..", "/v2/docker-hosted/team/a/blobs/uploads/x%0d%0aSet-Cookie:x"):
        st, h, body = reg.req("PATCH", path, b"x")
        assert st == 404 and code(body) == "BLOB_UPLOAD_UNKNOWN" and "set-cookie" not in h
    st, _, body = reg.req("GET", "/v2/docker-hosted/team/../etc/manifests/1")
    assert st in (400, 404)
    st, _, body = reg.req("GET", "/v2/pypi-local/team/app/manifests/1.0")  # not a docker repository
    assert st == 404 and code(body) == "NAME_UNKNOWN"
