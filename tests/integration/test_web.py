"""The web interface over plain HTTP (no browser): escaping, headers, sessions, CSRF, permissions,
pagination, caching, reports and the write actions."""
from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import pytest

from artifactd import build_service, service
from artifactd.model import isotime, utcnow
from artifactd.store.db import NewArtifact
from tests.webutil import Client, check_html, configure, populate

PAGES = ["/ui/", "/ui/repo/pypi-local/", "/ui/repo/pypi-local/project/requests/",
         "/ui/repo/pypi-local/project/requests/2.2.1/", "/ui/repo/pypi/", "/ui/repo/pypi/project/requests/2.2.1/",
         "/ui/health/", "/ui/cleanup/", "/ui/builds/", "/ui/login/"]


@pytest.fixture
def site(server: Any, tmp_path: Path) -> Any:
    configure(server.app, tmp_path)
    populate(server.app, tmp_path)
    return server


def _hostile(app: Any) -> None:
    """Rows no upload would accept (names are validated), as a corrupted store or a hostile upstream could hold."""
    evil = "<script>alert(1)</script>"
    meta = {"name": evil, "summary": "<img src=x onerror=alert(1)>", "requires_dist": ['x; extra == "<b>"'],
            "license_expression": "MIT", "project_urls": ["Home, javascript:alert(1)"]}
    art, _ = app.db.add_artifact(NewArtifact(
        repo="pypi-local", path="evil/1.0/evil-1.0-py3-none-any.whl", sha256="ab" * 32, size=10, created=isotime(utcnow()),
        project="evil", project_name=evil, version="1.0", filename="evil-1.0-py3-none-any.whl", packagetype="bdist_wheel",
        metadata_json=json.dumps(meta)))
    app.db.set_properties(art.id, {"note": ['"><script>alert(2)</script>']})


def test_root_redirects_to_the_ui_and_headers_are_strict(site: Any) -> None:
    c = Client(site.url)
    status, headers, _ = c.get("/")
    assert status == 301 and headers["location"] == "/ui/"
    status, headers, body = c.get("/ui/")
    assert status == 200
    csp = headers["content-security-policy"]
    for part in ("default-src 'none'", "style-src 'self'", "form-action 'self'", "frame-ancestors 'none'", "base-uri 'none'"):
        assert part in csp
    assert "script-src" not in csp
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"]
    assert headers["content-type"] == "text/html; charset=utf-8"
    status, headers, css = c.get("/ui/static/app.css")
    assert status == 200 and headers["content-type"].startswith("text/css") and "badge" in css


def test_every_page_is_valid_html_without_scripts(site: Any) -> None:
    _hostile(site.app)
    c = Client(site.url)
    c.login("__token__", site.token)
    for path in PAGES + ["/ui/repo/pypi-local/project/evil/", "/ui/repo/pypi-local/project/evil/1.0/",
                         "/ui/repo/secret/", "/ui/repo/pypi-local/?q=%3Cscript%3E", "/ui/nope/"]:
        status, _, body = c.get(path)
        assert status in (200, 404), (path, status)
        checked = check_html(body)
        assert not checked.errors, (path, checked.errors)


def test_hostile_names_summaries_and_properties_render_as_text(site: Any) -> None:
    _hostile(site.app)
    c = Client(site.url)
    for path in ("/ui/repo/pypi-local/", "/ui/repo/pypi-local/project/evil/", "/ui/repo/pypi-local/project/evil/1.0/",
                 "/ui/repo/pypi-local/?prop=note"):
        status, _, body = c.get(path)
        assert status == 200, path
        assert "<script" not in body.lower() and "<img" not in body.lower(), path
        assert "javascript:" not in re.findall(r'href="([^"]*)"', body).__str__(), path
    _, _, body = c.get("/ui/repo/pypi-local/project/evil/1.0/")
    assert "&lt;img src=x onerror=alert(1)&gt;" in body
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body
    assert "&quot;&gt;&lt;script&gt;alert(2)&lt;/script&gt;" in body
    assert "javascript:alert(1)" in body  # shown as text, never as a link
    # reflected input (pypiserver #77): the query string and the login "next" are escaped or refused
    _, _, body = c.get("/ui/repo/pypi-local/?q=%3Cscript%3Ealert(3)%3C/script%3E")
    assert "<script" not in body and "&lt;script&gt;alert(3)" in body
    _, _, body = c.get("/ui/login/?next=%22%3E%3Cscript%3Ealert(4)%3C/script%3E")
    assert "<script" not in body
    _, _, body = c.get("/ui/?%3Cscript%3E")
    assert "<script" not in body


def test_crlf_in_paths_and_next_never_reach_headers(site: Any) -> None:
    c = Client(site.url)
    status, _, _ = c.get("/ui/repo/pypi-local/project/a%0d%0aSet-Cookie:x=1/")
    assert status == 400
    token = c.csrf("/ui/login/")
    status, headers, _ = c.post("/ui/login", {"csrf": token, "username": "__token__", "password": site.token,
                                              "next": "/ui/\r\nSet-Cookie: evil=1"})
    assert status == 303 and headers["location"] == "/ui/"
    token = c.csrf("/ui/")
    c.post("/ui/logout", {"csrf": token})
    token = c.csrf("/ui/login/")
    status, headers, _ = c.post("/ui/login", {"csrf": token, "username": "__token__", "password": site.token,
                                              "next": "//elsewhere.example/"})
    assert headers["location"] == "/ui/"


def test_login_logout_cookie_flags_and_session_lifetime(site: Any) -> None:
    service_user(site.app, "alice", "correct horse")
    c = Client(site.url)
    status, headers, body = c.login("alice", "correct horse")
    assert status == 303 and headers["location"] == "/ui/"
    cookie = next(x for x in c.last_set_cookies if x.startswith("artifactd_session="))
    for flag in ("HttpOnly", "SameSite=Strict", "Path=/ui", "Max-Age="):
        assert flag in cookie
    sid = c.cookies["artifactd_session"]
    # only the hash of the session id is stored
    assert site.app.db.con.execute("SELECT COUNT(*) FROM web_sessions WHERE id_hash = ?", (sid,)).fetchone()[0] == 0
    _, _, body = c.get("/ui/")
    assert "alice" in body and "Log out" in body
    token = c.csrf("/ui/")
    status, headers, _ = c.post("/ui/logout", {"csrf": token})
    assert status == 303
    assert any(x.startswith("artifactd_session=;") and "Max-Age=0" in x for x in c.last_set_cookies)
    # the old session id is dead even if replayed
    c.cookies["artifactd_session"] = sid
    _, _, body = c.get("/ui/")
    assert "Log out" not in body
    audit = [r["action"] for r in site.app.db.audit_records()]
    assert "web-login" in audit and "web-logout" in audit


def service_user(app: Any, name: str, password: str, admin: bool = False) -> None:
    from artifactd import auth

    app.db.add_user(name, auth.hash_password(password), admin, isotime(utcnow()))


def test_wrong_password_then_throttled(site: Any) -> None:
    service_user(site.app, "bob", "right")
    c = Client(site.url)
    statuses = []
    for _ in range(12):  # the server's throttle (artifactd.http.throttle) blocks past its limit
        status, headers, body = c.login("bob", "wrong")
        statuses.append(status)
        if status == 429:
            break
    assert statuses[0] == 403 and statuses[-1] == 429, statuses
    assert int(headers["retry-after"]) > 0
    status, headers, body = c.login("bob", "right")  # blocked before the password is even checked
    assert status == 429 and "Too many failed logins" in body
    assert "web-login-failed" in [r["action"] for r in site.app.db.audit_records()]


def test_login_form_needs_its_csrf_token(site: Any) -> None:
    c = Client(site.url)
    c.get("/ui/login/")
    status, _, _ = c.post("/ui/login", {"csrf": "forged", "username": "__token__", "password": site.token})
    assert status == 403
    assert "artifactd_session" not in c.cookies


def test_csrf_is_checked_on_write_forms(site: Any) -> None:
    c = Client(site.url)
    c.login("__token__", site.token)
    path = "/ui/repo/pypi-local/project/requests/2.2.1/yank"
    status, _, _ = c.post(path, {"reason": "x"})
    assert status == 403
    status, _, _ = c.post(path, {"reason": "x", "csrf": "not-the-token"})
    assert status == 403
    assert not any(a.yanked for a in site.app.db.project_artifacts("pypi-local", "requests"))
    token = c.csrf("/ui/repo/pypi-local/project/requests/2.2.1/")
    status, headers, _ = c.post(path, {"reason": "CVE-2014-1830", "csrf": token})
    assert status == 303
    arts = {a.version: a for a in site.app.db.project_artifacts("pypi-local", "requests")}
    assert arts["2.2.1"].yanked and arts["2.2.1"].yanked_reason == "CVE-2014-1830" and not arts["2.31.0"].yanked
    _, _, body = c.get("/ui/repo/pypi-local/project/requests/2.2.1/")
    assert "yanked" in body and "Unyank 2.2.1" in body
    # the simple index shows it too (same serial bump)
    assert any(r["action"] == "yank" and r["user"] == "admin" for r in site.app.db.audit_records())
    # anonymous users (no session) cannot post at all
    anon = Client(site.url)
    status, _, _ = anon.post("/ui/repo/pypi-local/project/requests/2.2.1/unyank", {"csrf": token})
    assert status == 403


def test_write_actions_need_the_permission(site: Any) -> None:
    _, info = service.create_token(site.app, "admin", "reader", ("read",))
    reader, _ = service.create_token(site.app, "admin", "reader2", ("read",))
    c = Client(site.url)
    c.login("__token__", reader)
    _, _, body = c.get("/ui/repo/pypi-local/project/requests/2.2.1/")
    assert "Yank 2.2.1" not in body
    token = c.csrf("/ui/")
    status, _, _ = c.post("/ui/repo/pypi-local/project/requests/2.2.1/yank", {"csrf": token})
    assert status == 403


def test_private_repository_hidden_when_anonymous(site: Any) -> None:
    anon = Client(site.url)
    _, _, body = anon.get("/ui/")
    assert "pypi-local" in body and "secret" not in body
    status, _, body = anon.get("/ui/repo/secret/")
    assert status == 404 and "hidden-thing" not in body
    status, _, _ = anon.get("/ui/repo/secret/project/hidden-thing/1.0/")
    assert status == 404
    _, _, body = anon.get("/ui/health/")
    assert "secret" not in body
    c = Client(site.url)
    c.login("__token__", site.token)
    _, _, body = c.get("/ui/")
    assert "secret" in body
    status, _, body = c.get("/ui/repo/secret/")
    assert status == 200 and "hidden-thing" in body
    # the anonymous cached page is not served to the admin, nor the other way round
    _, _, body = anon.get("/ui/")
    assert "secret" not in body


def test_advisory_license_and_metadata_on_the_version_page(site: Any) -> None:
    c = Client(site.url)
    _, _, body = c.get("/ui/repo/pypi-local/project/requests/2.2.1/")
    assert "PYSEC-2014-14" in body and "CVE-2014-1830" in body and "2.3.0" in body  # fixed in
    assert "high" in body
    assert "requests leaks Proxy-Authorization on redirect &lt;b&gt;not bold&lt;/b&gt;" in body
    assert "Apache-2.0" in body and "allow" in body
    assert "urllib3&gt;=1.21" in body and "&gt;=3.8" in body
    assert "index-url = http://" in body and "twine upload" in body and "curl" in body
    _, _, body = c.get("/ui/repo/pypi-local/project/requests/2.31.0/")
    assert "PYSEC-2014-14" not in body and "no known advisories" in body
    _, _, body = c.get("/ui/repo/pypi-local/project/copyleft/0.1/")
    assert "deny" in body and "AGPL-3.0-only" in body


def test_health_report_worst_first_with_svg_charts(site: Any) -> None:
    c = Client(site.url)
    _, _, body = c.get("/ui/health/")
    assert "<svg" in body and "Advisories by severity in pypi-local" in body
    assert body.index(">requests<") < body.index(">copyleft<")  # the advisory outranks the license finding
    assert "tinylib" not in body  # clean and allowed: not a finding
    _, _, home = c.get("/ui/")
    assert "1 high" in home and "1 license-denied" in home


def test_cleanup_preview_and_run(site: Any) -> None:
    c = Client(site.url)
    _, _, body = c.get("/ui/cleanup/")
    assert "dev-cleanup" in body and "requests-2.2.1-py3-none-any.whl" in body
    assert "tinylib" not in body  # the only release is never proposed
    assert "Run cleanup" not in body  # anonymous
    c.login("__token__", site.token)
    _, _, body = c.get("/ui/cleanup/")
    assert "Run cleanup" in body
    token = c.csrf("/ui/cleanup/")
    status, _, body = c.post("/ui/cleanup/run", {"csrf": token})
    assert status == 200 and "1 file deleted" in body
    assert [a.version for a in site.app.db.project_artifacts("pypi-local", "requests")] == ["2.31.0"]
    assert any(r["action"] == "cleanup-delete" and r["user"] == "admin" for r in site.app.db.audit_records())


def test_pin_protects_from_cleanup(site: Any) -> None:
    c = Client(site.url)
    c.login("__token__", site.token)
    token = c.csrf("/ui/repo/pypi-local/project/requests/2.2.1/")
    status, _, _ = c.post("/ui/repo/pypi-local/project/requests/2.2.1/pin", {"csrf": "wrong"})
    assert status == 403
    status, _, _ = c.post("/ui/repo/pypi-local/project/requests/2.2.1/pin", {"csrf": token})
    assert status == 303
    _, _, body = c.get("/ui/repo/pypi-local/project/requests/2.2.1/")
    assert "pinned" in body and "Unpin 2.2.1" in body
    _, _, body = c.get("/ui/cleanup/")
    assert "Kept although selected" in body and "Run cleanup" not in body
    assert any(r["action"] == "pin" and r["user"] == "admin" for r in site.app.db.audit_records())


def test_cleanup_without_policies(server: Any) -> None:
    _, _, body = Client(server.url).get("/ui/cleanup/")
    assert "No cleanup policies configured" in body


def test_generic_repository_browse_search_and_build_promotion(server: Any, tmp_path: Path) -> None:
    from artifactd import generic_service
    from artifactd.config import make_repo

    app = server.app
    cfg = app.config.with_repo(make_repo(name="models-dev", type="hosted", format="generic"))
    app.set_config(cfg.with_repo(make_repo(name="models-prod", type="hosted", format="generic")))
    f = tmp_path / "model.pkl"
    f.write_bytes(b"model-bytes")
    generic_service.upload_local(app, "models-dev", f, "fraud/1.0/model.pkl", properties={"accuracy": ["0.94"]})
    build_service.publish(app, "fraud-train", "7", artifacts=["models-dev:fraud/1.0/model.pkl"])
    c = Client(server.url)
    _, _, body = c.get("/ui/repo/models-dev/")
    assert "fraud/" in body
    _, _, body = c.get("/ui/repo/models-dev/browse/fraud/1.0/")
    assert "model.pkl" in body
    _, _, body = c.get("/ui/repo/models-dev/browse/fraud/1.0/model.pkl")
    assert "accuracy=0.94" in body and "fraud-train #7" in body
    _, _, body = c.get("/ui/repo/models-dev/?prop=accuracy%3D0.94")
    assert "fraud/1.0/model.pkl" in body
    _, _, body = c.get("/ui/builds/")
    assert "fraud-train" in body
    _, _, body = c.get("/ui/builds/fraud-train/7/")
    assert "published" in body and "Promote" not in body
    c.login("__token__", server.token)
    token = c.csrf("/ui/builds/fraud-train/7/")
    status, _, body = c.post("/ui/builds/fraud-train/7/promote", {"csrf": token, "target": "models-prod",
                                                                  "status": "released", "comment": "<ok>"})
    assert status == 200 and "Promoted to models-prod" in body
    assert app.db.get_artifact("models-prod", "fraud/1.0/model.pkl") is not None
    _, _, body = c.get("/ui/builds/fraud-train/7/")
    assert "released" in body and "&lt;ok&gt;" in body
    _, _, body = c.get("/ui/repo/models-prod/browse/fraud/1.0/model.pkl")
    assert "models-dev" in body  # promotion history


def test_ten_thousand_projects_list_in_pages(server: Any) -> None:
    app = server.app
    now = isotime(utcnow())
    with app.db.write() as con:
        con.executemany(
            "INSERT INTO artifacts(repo, path, sha256, size, created, kind, project, project_name, version, filename) "
            "VALUES(?,?,?,?,?,?,?,?,?,?)",
            [("pypi-local", f"p{i:05d}/1.0/p{i:05d}-1.0.tar.gz", f"{i:064x}", 100, now, "pypi", f"p{i:05d}",
              f"P{i:05d}", "1.0", f"p{i:05d}-1.0.tar.gz") for i in range(10_000)])
        app.db._bump(con, "pypi-local")
    c = Client(server.url)
    t0 = time.monotonic()
    status, _, body = c.get("/ui/repo/pypi-local/")
    first = time.monotonic() - t0
    assert status == 200
    assert body.count('href="/ui/repo/pypi-local/project/') == 50
    assert "P00000" in body and "P00050" not in body and "page 1 of 200" in body and 'rel="next"' in body
    assert len(body) < 100_000
    _, _, body = c.get("/ui/repo/pypi-local/?page=200")
    assert "P09999" in body and 'rel="next"' not in body
    _, _, body = c.get("/ui/repo/pypi-local/?q=p0999")
    assert "page 1 of 1 " not in body and "P09990" in body and "P09999" in body and "P00001" not in body
    assert first < 2.0, f"first page took {first:.2f}s"
    _, _, home = c.get("/ui/")
    assert "10000 projects" in home


def test_pages_are_cached_by_serial_and_revalidate(site: Any, tmp_path: Path) -> None:
    from tests.dists import make_wheel

    c = Client(site.url)
    _, h1, _ = c.get("/ui/repo/pypi-local/")
    status, _, _ = c.get("/ui/repo/pypi-local/", headers={"If-None-Match": h1["etag"]})
    assert status == 304
    service.upload_file(site.app, "pypi-local", make_wheel(tmp_path / "n", "newproj", "1.0"))
    status, h2, body = c.get("/ui/repo/pypi-local/", headers={"If-None-Match": h1["etag"]})
    assert status == 200 and h2["etag"] != h1["etag"] and "newproj" in body


def test_group_pages_show_the_owning_member(site: Any) -> None:
    c = Client(site.url)
    _, _, body = c.get("/ui/repo/pypi/")
    assert "requests" in body
    _, _, body = c.get("/ui/repo/pypi/project/requests/")
    assert "Served by" in body and "pypi-local" in body
    status, _, body = c.get("/ui/repo/pypi/project/Requests/")
    assert status == 301


def test_image_repository_pages(server: Any) -> None:
    from tests.integration.test_oci import Reg
    from tests.ocilayout import make_image

    service.create_repository(server.app, "docker-hosted", "hosted", "docker")
    image = make_image([{"app/hello.txt": b"hello"}, {"app/two.txt": b"two"}])
    Reg(server).push_image("docker-hosted/team/web", image, "v1")
    c = Client(server.url)
    _, _, home = c.get("/ui/")
    assert "docker-hosted" in home and "1 image" in home
    _, _, body = c.get("/ui/repo/docker-hosted/")
    assert "team/web" in body and "docker pull" in body
    status, _, body = c.get("/ui/repo/docker-hosted/image/?name=team%2Fweb")
    assert status == 200 and "v1" in body and image.digest in body
    assert not check_html(body).errors
    status, _, body = c.get(f"/ui/repo/docker-hosted/image/?name=team%2Fweb&digest={image.digest}")
    assert status == 200 and "Layers (2)" in body
    assert not check_html(body).errors
    status, _, _ = c.get("/ui/repo/docker-hosted/image/?name=nope")
    assert status == 404


def test_proxy_upstream_health_and_uncached_files(server: Any, tmp_path: Path, monkeypatch: Any) -> None:
    from artifactd.web import routes

    monkeypatch.setattr(routes, "PROXY_STATUS_TTL", 0.05)
    from tests.dists import make_wheel
    from tests.integration.test_proxy import add_proxy
    from artifactd.app import App
    from artifactd.http.server import serve_in_thread

    up_app = App(tmp_path / "upstream")
    httpd, thread = serve_in_thread(up_app)
    try:
        service.upload_file(up_app, "pypi-local", make_wheel(tmp_path / "u", "remote-only", "1.0",
                                                             license_expression="MIT"))
        add_proxy(server.app, f"{httpd.url}/repository/pypi-local/simple/")
        c = Client(server.url)
        _, _, home = c.get("/ui/")
        assert "remote" in home
        # a project only the upstream has: its page comes from the proxy's index, files not cached yet
        status, _, body = c.get("/ui/repo/remote/project/remote-only/1.0/")
        assert status == 200 and "remote_only-1.0-py3-none-any.whl" in body
        assert not check_html(body).errors
        status, _, body = c.get("/ui/repo/pypi/project/remote-only/")
        assert status == 200 and "Served by" in body
        time.sleep(0.1)
        _, _, home = c.get("/ui/")
        assert "healthy" in home and "last success" in home
        _, _, body = c.get("/ui/repo/remote/")
        assert "Upstream health" in body and "healthy" in body
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)
        up_app.close()
