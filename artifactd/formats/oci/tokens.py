"""Short-lived registry bearer tokens, HMAC-signed with a per-data-directory secret.

``/v2/token`` authenticates the client's Basic credentials (a user's password or an
artifactd API token) and returns ``oci1.<payload>.<signature>``: the principal's
rights at issue time, narrowed to the repositories and actions the requested
``scope`` names. Revoking the API token stops new tokens; issued ones expire after
:data:`LIFETIME` seconds. The secret never leaves ``<data>/oci-token.key`` (0600).
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from artifactd.errors import Unauthorized
from artifactd.model import Principal

if TYPE_CHECKING:
    from artifactd.app import App

PREFIX = "oci1."
LIFETIME = 900
ACTIONS = {"pull": "read", "push": "write", "delete": "delete"}


@dataclass(frozen=True)
class Grant:
    principal: Principal
    access: dict[str, tuple[str, ...]] | None  # repo → artifactd actions; None: the principal's full rights

    def allows(self, action: str, repo: str) -> bool:
        if self.access is None:
            return True
        return action in self.access.get(repo, ())


def _secret(app: "App") -> bytes:
    path = app.layout.root / "oci-token.key"
    try:
        return bytes.fromhex(path.read_text().strip())
    except FileNotFoundError:
        pass
    key = secrets.token_hex(32)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process won the race
        return bytes.fromhex(path.read_text().strip())
    with os.fdopen(fd, "w") as fh:
        fh.write(key + "\n")
    return bytes.fromhex(key)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def parse_scopes(scopes: list[str]) -> dict[str, set[str]]:
    """``repository:docker-hosted/team/app:pull,push`` → {"docker-hosted": {"read", "write"}}."""
    out: dict[str, set[str]] = {}
    for scope in scopes:
        for part in scope.split(" "):
            kind, _, rest = part.partition(":")
            name, _, actions = rest.rpartition(":")
            if kind != "repository" or not name:
                continue
            repo = name.split("/", 1)[0]
            wanted = set(ACTIONS.values()) if "*" in actions.split(",") else {
                ACTIONS[a] for a in actions.split(",") if a in ACTIONS}
            out.setdefault(repo, set()).update(wanted)
    return out


def issue(app: "App", principal: Principal, scopes: list[str]) -> dict[str, Any]:
    """The token response body (``token``, ``access_token``, ``expires_in``, ``issued_at``)."""
    now = int(time.time())
    access: dict[str, list[str]] | None = None
    if scopes:
        access = {}
        for repo, actions in parse_scopes(scopes).items():
            granted = sorted(a for a in actions if _may(app, principal, a, repo))
            if granted:
                access[repo] = granted
    payload = {"sub": principal.user, "scp": list(principal.scopes), "rep": list(principal.repos),
               "adm": principal.is_admin, "acc": access, "iat": now, "exp": now + LIFETIME}
    body = _b64(json.dumps(payload, separators=(",", ":")).encode())
    sig = _b64(hmac.new(_secret(app), body.encode(), hashlib.sha256).digest())
    token = f"{PREFIX}{body}.{sig}"
    issued = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))
    return {"token": token, "access_token": token, "expires_in": LIFETIME, "issued_at": issued}


def _may(app: "App", principal: Principal, action: str, repo: str) -> bool:
    try:
        app.require(principal, action, repo)
    except Exception:
        return False
    return True


def verify(app: "App", token: str) -> Grant:
    """Check signature and expiry. Raises Unauthorized."""
    try:
        body, sig = token[len(PREFIX):].split(".")
        want = _b64(hmac.new(_secret(app), body.encode(), hashlib.sha256).digest())
        if not hmac.compare_digest(want, sig):
            raise ValueError("bad signature")
        payload = json.loads(_unb64(body))
    except (ValueError, UnicodeDecodeError):
        raise Unauthorized("invalid registry token") from None
    if payload.get("exp", 0) < time.time():
        raise Unauthorized("registry token has expired")
    p = Principal(user=payload.get("sub"), scopes=tuple(payload.get("scp") or ()),
                  repos=tuple(payload.get("rep") or ()), is_admin=bool(payload.get("adm")))
    acc = payload.get("acc")
    return Grant(p, None if acc is None else {k: tuple(v) for k, v in acc.items()})
