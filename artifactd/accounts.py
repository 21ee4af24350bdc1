"""Accounts: users, passwords, per-repository permissions, token revocation — all audited.

Use cases shared by the CLI (``artifactd user|perm|token``) and, later, the admin API.
Permission levels are ordered ``read < write < delete < admin``; a grant on repository
``"*"`` applies to every repository. A token's scopes are capped by its user's grants
both when it is created and at every request (:meth:`artifactd.model.Principal.can`),
so revoking a grant also narrows the user's existing tokens.
Nothing here logs or returns a password or a token value.
"""
from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from artifactd import auth
from artifactd.errors import BadRequest, Forbidden, NotFound, RepositoryNotFound
from artifactd.model import LEVELS, Principal, isotime, utcnow

if TYPE_CHECKING:
    from artifactd.app import App

_USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
MIN_PASSWORD = 8
RESERVED_USERS = ("__token__", "system", "anonymous")


def local_principal() -> Principal:
    """Who runs a CLI command, for the audit log: the operating-system user."""
    import getpass  # CLI only: the server never needs it (nor termios, which it imports)

    try:
        who = getpass.getuser()
    except (KeyError, OSError):  # pragma: no cover - no passwd entry (containers)
        who = "unknown"
    return Principal(user=f"local:{who}", scopes=("admin",), is_admin=True)


def _audit(app: "App", who: Principal | None, action: str, target: str | None, repo: str | None = None,
           detail: dict[str, Any] | None = None, address: str | None = None) -> None:
    who = who or local_principal()
    app.db.audit(isotime(utcnow()), who.user, address or ("local" if (who.user or "").startswith("local:") else None),
                 action, repo, target, detail)


def validate_username(name: str) -> str:
    if not _USERNAME.match(name) or name in RESERVED_USERS:
        raise BadRequest(f"invalid user name {name!r}: letters, digits, '.', '_', '@' or '-' (at most 64), "
                         f"not {', '.join(RESERVED_USERS)}")
    return name


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise BadRequest(f"password too short (at least {MIN_PASSWORD} characters)")
    if "\x00" in password:
        raise BadRequest("password contains a NUL character")


def add_user(app: "App", name: str, password: str | None, *, admin: bool = False,
             who: Principal | None = None, address: str | None = None) -> None:
    validate_username(name)
    if password is not None:
        _check_password(password)
    app.db.add_user(name, auth.hash_password(password) if password is not None else None, admin, isotime(utcnow()))
    _audit(app, who, "user-add", name, detail={"admin": admin, "password": password is not None}, address=address)


def delete_user(app: "App", name: str, *, who: Principal | None = None, address: str | None = None) -> None:
    """Remove a user with its tokens and grants (cascade)."""
    admins = [n for n, is_admin, _ in app.db.users() if is_admin]
    if admins == [name]:
        raise Forbidden("refusing to delete the last admin user")
    app.db.delete_user(name)
    _audit(app, who, "user-delete", name, address=address)


def set_password(app: "App", name: str, password: str, *, who: Principal | None = None,
                 address: str | None = None) -> None:
    _check_password(password)
    app.db.set_password(name, auth.hash_password(password))
    _audit(app, who, "user-passwd", name, address=address)


def list_users(app: "App") -> list[dict[str, Any]]:
    perms: dict[str, list[dict[str, str]]] = {}
    for user, repo, level in app.db.permissions():
        perms.setdefault(user, []).append({"repo": repo, "level": level})
    return [{"name": n, "admin": a, "created": c, "permissions": perms.get(n, [])} for n, a, c in app.db.users()]


def _check_repo(app: "App", repo: str) -> None:
    if repo != "*" and app.config.repo(repo) is None:
        raise RepositoryNotFound(f"no repository named {repo!r} (use '*' for every repository)")


def grant(app: "App", user: str, repo: str, level: str, *, who: Principal | None = None,
          address: str | None = None) -> None:
    if level not in LEVELS:
        raise BadRequest(f"unknown level {level!r} (choose from {', '.join(LEVELS)})")
    if app.db.get_user(user) is None:
        raise NotFound(f"no user named {user!r}")
    _check_repo(app, repo)
    app.db.grant(user, repo, level)
    _audit(app, who, "perm-grant", user, repo, {"level": level}, address)


def revoke(app: "App", user: str, repo: str, *, who: Principal | None = None, address: str | None = None) -> None:
    if not app.db.revoke(user, repo):
        raise NotFound(f"{user!r} has no permission on {repo!r}")
    _audit(app, who, "perm-revoke", user, repo, address=address)


def list_permissions(app: "App", user: str | None = None) -> list[dict[str, str]]:
    return [{"user": u, "repo": r, "level": lvl} for u, r, lvl in app.db.permissions(user)]


def check_token_scopes(app: "App", user: str, scopes: tuple[str, ...], repos: tuple[str, ...]) -> None:
    """A token may not carry more than its user holds (on its repositories, or anywhere)."""
    row = app.db.get_user(user)
    if row is None:
        raise NotFound(f"no user named {user!r}")
    if row[2]:
        return
    p = Principal(user=user, scopes=scopes, grants=tuple((r, lvl) for _, r, lvl in app.db.permissions(user)))
    targets = repos or tuple({r for r, _ in p.grants or ()} - {"*"}) or ("*",)
    best = max((LEVELS.get(s, -1) for s in scopes), default=-1)
    held = max((p.level(r) for r in targets), default=-1)
    if best > held:
        levels = {v: k for k, v in LEVELS.items()}
        have = levels.get(held, "nothing")
        raise Forbidden(f"user {user!r} holds {have} on {', '.join(targets)}; "
                        f"a token cannot have scope {levels[best]!r} (grant it with 'artifactd perm grant')")


def revoke_token(app: "App", token_id: int, *, who: Principal | None = None, address: str | None = None) -> None:
    app.db.revoke_token(token_id)
    _audit(app, who, "token-revoke", str(token_id), address=address)
