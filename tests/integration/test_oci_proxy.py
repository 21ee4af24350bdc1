"""A docker proxy of a second artifactd (bearer-token challenge flow), then with the upstream stopped."""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Iterator

import pytest

from artifactd import service
from artifactd.app import App
from artifactd.http.server import serve_in_thread
from tests.conftest import Server
from tests.integration.test_oci import Reg, code
from tests.ocilayout import make_image, sha256

pytestmark = pytest.mark.integration


@pytest.fixture
def upstream(tmp_path: Path) -> Iterator[Server]:
    app = App(tmp_path / "upstream")
    # Not anonymously readable: the proxy must go through the token challenge with credentials.
    service.create_repository(app, "docker-hosted", "hosted", "docker", anonymous_read=False)
    httpd, thread = serve_in_thread(app)
    srv = Server(app, httpd)
    yield srv
    srv.stopped = True  # type: ignore[attr-defined]
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=5)
    app.close()


def test_proxy_pull_through_revalidate_and_stale_if_error(server: Server, upstream: Server) -> None:
    up = Reg(upstream)
    first = make_image([{"app": b"version one"}])
    up.push_image("docker-hosted/library/app", first, "1.0")
    app = server.app
    service.create_repository(app, "docker-proxy", "proxy", "docker", url=f"{upstream.url}/docker-hosted",
                              metadata_ttl=0.0, username="__token__", password=upstream.token)
    service.create_repository(app, "docker-hosted", "hosted", "docker")
    service.create_repository(app, "docker-group", "group", "docker", members=("docker-hosted", "docker-proxy"))
    reg = Reg(server)

    st, h, body = reg.req("GET", "/v2/docker-group/library/app/manifests/1.0")
    assert st == 200 and body == first.manifest and h["docker-content-digest"] == first.digest
    for blob in first.blobs():
        st, _, body = reg.req("GET", f"/v2/docker-group/library/app/blobs/{sha256(blob)}")
        assert st == 200 and body == blob
    assert json.loads(reg.req("GET", "/v2/docker-proxy/library/app/tags/list")[2])["tags"] == ["1.0"]

    # the upstream moves the tag: after the TTL (0 here) the proxy notices
    second = make_image([{"app": b"version two"}])
    up.push_image("docker-hosted/library/app", second, "1.0")
    st, h, body = reg.req("GET", "/v2/docker-proxy/library/app/manifests/1.0")
    assert body == second.manifest
    assert reg.req("GET", f"/v2/docker-proxy/library/app/blobs/{sha256(second.layers[0])}")[2] == second.layers[0]

    # pushing into a proxy (or a group without a writable member) is refused as the spec says
    st, _, body = reg.req("POST", "/v2/docker-proxy/library/app/blobs/uploads/", b"")
    assert st == 405 and code(body) == "UNSUPPORTED"

    # upstream down: the cached tag and digests are served (stale-if-error), the rest is 502
    upstream.httpd.shutdown()
    upstream.httpd.server_close()
    # handler threads keep serving open keep-alive connections: drop the proxy's pooled ones
    app.repository("docker-proxy").upstream.pool.clear()  # type: ignore[attr-defined]
    time.sleep(0.1)
    st, _, body = reg.req("GET", "/v2/docker-group/library/app/manifests/1.0")
    assert st == 200 and body == second.manifest
    assert reg.req("GET", f"/v2/docker-proxy/library/app/manifests/{first.digest}")[2] == first.manifest
    assert reg.req("GET", f"/v2/docker-proxy/library/app/blobs/{sha256(second.layers[0])}")[2] == second.layers[0]
    assert json.loads(reg.req("GET", "/v2/docker-proxy/library/app/tags/list")[2])["tags"] == ["1.0"]
    st, _, body = reg.req("GET", "/v2/docker-proxy/library/other/manifests/1.0")
    assert st == 502


def test_proxy_wrong_credentials_is_502(server: Server, upstream: Server) -> None:
    Reg(upstream).push_image("docker-hosted/x/y", make_image([{"a": b"a"}]), "1")
    service.create_repository(server.app, "docker-proxy", "proxy", "docker", url=f"{upstream.url}/docker-hosted",
                              username="__token__", password="adt_wrong")
    st, _, body = Reg(server).req("GET", "/v2/docker-proxy/x/y/manifests/1")
    assert st == 502 and code(body) == "UNKNOWN"
