"""Accounts and permissions over HTTP: 401 vs 403 (STANDARDS R26/R28), per-repository grants,
token scopes capped by grants, failed-login throttling (§3 #47), secrets never logged (#48)."""
from __future__ import annotations

import base64
import hashlib
import logging
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from click.testing import CliRunner

from artifactd import accounts
from artifactd.cli import cli
from artifactd.errors import Forbidden
from artifactd.http.throttle import LoginThrottle
from artifactd.service import create_repository, create_token, redact_url
from tests.conftest import Server
from tests.dists import make_wheel
from tests.integration.test_upload_errors import form, post, twine_fields

PASSWORD = "correct horse battery"


def basic(user: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{secret}".encode()).decode()


def upload(server: Server, auth: str | None, tmp_path: Path, name: str = "permpkg", version: str = "1.0",
           repo: str = "pypi-local") -> tuple[int, bytes]:
    w = make_wheel(tmp_path / f"{name}-{version}", name, version)
    data = w.read_bytes()
    body, ctype = form(twine_fields(name, version, data), [("content", w.name, data)])
    import tests.integration.test_upload_errors as ue

    old = ue.PATH
    ue.PATH = f"/repository/{repo}/"
    try:
        status, _, text, _ = post(server, body, ctype, auth=auth)
    finally:
        ue.PATH = old
    return status, text


def get(url: str, auth: str | None = None) -> tuple[int, dict[str, str], bytes]:
    req = urllib.request.Request(url, headers={"Authorization": auth} if auth else {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


@pytest.fixture
def bob(server: Server) -> str:
    accounts.add_user(server.app, "bob", PASSWORD)
    return basic("bob", PASSWORD)


def test_no_credentials_upload_is_401_with_challenge(server: Server, tmp_path: Path) -> None:
    status, _ = upload(server, None, tmp_path)
    assert status == 401


def test_wrong_password_is_401(server: Server, bob: str, tmp_path: Path) -> None:
    assert upload(server, basic("bob", "wrong password"), tmp_path)[0] == 401
    assert upload(server, basic("nobody", PASSWORD), tmp_path)[0] == 401


def test_user_without_grant_is_403_then_allowed_after_grant(server: Server, bob: str, tmp_path: Path) -> None:
    assert upload(server, bob, tmp_path)[0] == 403
    accounts.grant(server.app, "bob", "pypi-local", "read")
    assert upload(server, bob, tmp_path)[0] == 403
    accounts.grant(server.app, "bob", "pypi-local", "write")
    assert upload(server, bob, tmp_path)[0] == 200


def test_grant_is_per_repository_and_star_means_all(server: Server, bob: str, tmp_path: Path) -> None:
    create_repository(server.app, "other", "hosted", "pypi")
    accounts.grant(server.app, "bob", "other", "write")
    assert upload(server, bob, tmp_path, repo="pypi-local")[0] == 403
    assert upload(server, bob, tmp_path, repo="other")[0] == 200
    accounts.revoke(server.app, "bob", "other")
    accounts.grant(server.app, "bob", "*", "delete")
    assert upload(server, bob, tmp_path, name="permpkg2", repo="pypi-local")[0] == 200


def test_read_only_token_upload_is_403(server: Server, tmp_path: Path) -> None:
    """RELIABILITY §3 #28."""
    tok, _ = create_token(server.app, "admin", "ro", ("read",))
    assert upload(server, basic("__token__", tok), tmp_path)[0] == 403


def test_bearer_token_accepted(server: Server, tmp_path: Path) -> None:
    tok, _ = create_token(server.app, "admin", "ci", ("write",))
    assert upload(server, f"Bearer {tok}", tmp_path)[0] == 200


def test_token_scope_capped_by_user_grants(server: Server, bob: str, tmp_path: Path) -> None:
    accounts.grant(server.app, "bob", "pypi-local", "write")
    with pytest.raises(Forbidden):
        create_token(server.app, "bob", "too much", ("delete",))
    tok, _ = create_token(server.app, "bob", "ok", ("write",))
    auth = basic("__token__", tok)
    assert upload(server, auth, tmp_path)[0] == 200
    accounts.revoke(server.app, "bob", "pypi-local")  # narrows the existing token at once
    assert upload(server, auth, tmp_path, name="permpkg3")[0] == 403


def test_token_limited_to_repos(server: Server, tmp_path: Path) -> None:
    create_repository(server.app, "other", "hosted", "pypi")
    tok, _ = create_token(server.app, "admin", "one repo", ("write",), ("other",))
    assert upload(server, basic("__token__", tok), tmp_path)[0] == 403
    assert upload(server, basic("__token__", tok), tmp_path, repo="other")[0] == 200


def test_revoked_and_expired_tokens_are_401(server: Server, tmp_path: Path) -> None:
    tok, info = create_token(server.app, "admin", "short", ("write",))
    accounts.revoke_token(server.app, info.id)
    assert upload(server, basic("__token__", tok), tmp_path)[0] == 401
    tok2, info2 = create_token(server.app, "admin", "expired", ("write",), expires_in=1)
    server.app.db.con.execute("UPDATE tokens SET expires = '2000-01-01T00:00:00.000000Z' WHERE id = ?", (info2.id,))
    assert upload(server, basic("__token__", tok2), tmp_path)[0] == 401


def test_anonymous_read_off_per_repository(server: Server, bob: str) -> None:
    create_repository(server.app, "private", "hosted", "pypi", anonymous_read=False)
    status, headers, _ = get(server.simple("private"))
    assert status == 401 and headers.get("WWW-Authenticate", "").startswith("Basic")
    assert get(server.simple("private"), bob)[0] == 403  # valid but not allowed
    accounts.grant(server.app, "bob", "private", "read")
    assert get(server.simple("private"), bob)[0] == 200
    assert get(server.simple("pypi-local"))[0] == 200  # the others stay public


def test_deleted_user_loses_access(server: Server, bob: str, tmp_path: Path) -> None:
    accounts.grant(server.app, "bob", "pypi-local", "write")
    tok, _ = create_token(server.app, "bob", "t", ("write",))
    accounts.delete_user(server.app, "bob")
    assert upload(server, bob, tmp_path)[0] == 401
    assert upload(server, basic("__token__", tok), tmp_path)[0] == 401


def test_failed_logins_are_throttled_with_retry_after(server: Server, bob: str, tmp_path: Path) -> None:
    """RELIABILITY §3 #47: repeated failures → 429 with Retry-After; even the right password waits."""
    server.httpd.login_throttle = LoginThrottle(limit=3, window=60, base=2)
    accounts.grant(server.app, "bob", "pypi-local", "write")
    for _ in range(3):
        assert get(server.simple("pypi-local") + "x/", basic("bob", "guess"))[0] in (401, 404)
    status, headers, body = get(server.simple("pypi-local"), basic("bob", "guess"))
    assert status == 429 and int(headers["Retry-After"]) >= 1
    assert upload(server, bob, tmp_path)[0] == 429
    assert b"guess" not in body


def test_throttle_is_exponential_and_per_address() -> None:
    now = [0.0]
    t = LoginThrottle(limit=2, window=60, base=1, clock=lambda: now[0])
    t.failure("10.0.0.1", "bob")
    t.failure("10.0.0.1", "bob")  # limit reached: blocked 1 s
    with pytest.raises(Exception) as e1:
        t.check("10.0.0.1", None)
    now[0] += 1.5
    t.check("10.0.0.1", None)
    t.failure("10.0.0.1", "bob")  # 3rd: 2 s
    with pytest.raises(Exception) as e2:
        t.check("10.0.0.1", None)
    assert e2.value.retry_after >= e1.value.retry_after  # type: ignore[attr-defined]
    t.check("10.0.0.2", "alice")  # another address, another user: not affected
    t.success("10.0.0.2", "alice")  # a success elsewhere does not reset 10.0.0.1
    with pytest.raises(Exception):
        t.check("10.0.0.1", None)
    with pytest.raises(Exception):
        t.check("10.0.0.9", "bob")  # the user name is blocked from any address


def test_tokens_and_passwords_never_in_logs_or_bodies(server: Server, bob: str, tmp_path: Path,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    """RELIABILITY §3 #48: grep everything we captured for the secrets."""
    caplog.set_level(logging.DEBUG)
    accounts.grant(server.app, "bob", "pypi-local", "read")
    tok, _ = create_token(server.app, "admin", "secret", ("write",))
    bad_tok = "adt_" + "x" * 43
    bodies = []
    for auth in (basic("__token__", tok), basic("__token__", bad_tok), f"Bearer {bad_tok}", bob,
                 basic("bob", "wrong-" + PASSWORD), "Basic !!!notbase64", f"Weird {tok}"):
        bodies.append(upload(server, auth, tmp_path)[1])
        bodies.append(get(server.simple("pypi-local") + "nope/", auth)[2])
        bodies.append(get(server.url + "/repository/missing/simple/", auth)[2])
    text = caplog.text + b"".join(bodies).decode("latin-1")
    for secret in (tok, bad_tok, PASSWORD, hashlib.sha256(tok.encode()).hexdigest()):
        assert secret not in text
    audit = str(server.app.db.audit_records(limit=None))
    assert tok not in audit and PASSWORD not in audit


def test_redact_upstream_credentials() -> None:
    assert redact_url("https://user:s3cret@up.example/simple/") == "https://***@up.example/simple/"
    assert "s3cret" not in redact_url("https://user:s3cret@up.example:8443/simple/")


def test_cli_user_perm_and_audit(tmp_path: Path) -> None:
    data = str(tmp_path / "d")
    r = CliRunner()

    def ok(*args: str, input: str | None = None) -> str:
        res = r.invoke(cli, ["--data-dir", data, *args], input=input)
        assert res.exit_code == 0, res.output
        return res.output

    ok("init")
    ok("user", "add", "carol", "--password-stdin", input="a long password\n")
    assert "carol" in ok("user", "list")
    ok("perm", "grant", "carol", "pypi-local", "write")
    assert '"level": "write"' in ok("perm", "list", "--json")
    res = r.invoke(cli, ["--data-dir", data, "perm", "grant", "carol", "nope", "read"])
    assert res.exit_code != 0 and "nope" in res.output
    ok("user", "passwd", "carol", "--password-stdin", input="another long password\n")
    ok("perm", "revoke", "carol", "pypi-local")
    res = r.invoke(cli, ["--data-dir", data, "user", "add", "short", "--password-stdin"], input="abc\n")
    assert res.exit_code != 0 and "too short" in res.output
    ok("user", "delete", "carol")
    out = ok("audit", "--since", "1h", "--json")
    for action in ("user-add", "perm-grant", "user-passwd", "perm-revoke", "user-delete"):
        assert f'"{action}"' in out
    assert "a long password" not in out
