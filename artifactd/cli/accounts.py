"""``artifactd user`` and ``artifactd perm``: accounts and per-repository permissions."""
from __future__ import annotations

import sys
from typing import Any

import click

from artifactd import accounts
from artifactd.cli.main import Ctx, cli, emit, json_option, pass_ctx
from artifactd.model import LEVELS


def _read_password(stdin: bool, prompt: bool) -> str | None:
    if stdin and prompt:
        raise click.UsageError("give --password-stdin or --password, not both")
    if stdin:
        line = sys.stdin.readline()
        return line[:-1] if line.endswith("\n") else line
    if prompt:
        return str(click.prompt("Password", hide_input=True, confirmation_prompt=True))
    return None


def _password_options(f: Any) -> Any:
    f = click.option("--password", "prompt", is_flag=True, help="Prompt for a password (never on the command line).")(f)
    f = click.option("--password-stdin", "stdin", is_flag=True, help="Read the password from the first line of stdin.")(f)
    return f


@cli.group()
def user() -> None:
    """Add, list, delete users and set passwords."""


@user.command("add")
@click.argument("name")
@_password_options
@click.option("--admin", is_flag=True, help="Administrator: every permission on every repository.")
@pass_ctx
def user_add(c: Ctx, name: str, stdin: bool, prompt: bool, admin: bool) -> None:
    """Create a user (without a password it can only use tokens)."""
    accounts.add_user(c.app(), name, _read_password(stdin, prompt), admin=admin)
    click.echo(f"created {'admin ' if admin else ''}user {name!r}")


@user.command("list")
@json_option
@pass_ctx
def user_list(c: Ctx, as_json: bool) -> None:
    """List users and their permissions."""
    rows = accounts.list_users(c.app())

    def human(rows: list[dict[str, Any]]) -> None:
        for r in rows:
            perms = "all (admin)" if r["admin"] else ", ".join(f"{p['repo']}:{p['level']}" for p in r["permissions"])
            click.echo(f"{r['name']:<20} {perms or '-'}")

    emit(rows, as_json, human)


@user.command("delete")
@click.argument("name")
@pass_ctx
def user_delete(c: Ctx, name: str) -> None:
    """Delete a user with its tokens and permissions."""
    accounts.delete_user(c.app(), name)
    click.echo(f"deleted user {name!r}")


@user.command("passwd")
@click.argument("name")
@click.option("--password-stdin", "stdin", is_flag=True, help="Read the password from the first line of stdin.")
@pass_ctx
def user_passwd(c: Ctx, name: str, stdin: bool) -> None:
    """Set a user's password (prompted, or from stdin)."""
    password = _read_password(stdin, not stdin)
    assert password is not None
    accounts.set_password(c.app(), name, password)
    click.echo(f"password of {name!r} changed")


@cli.group()
def perm() -> None:
    """Grant, revoke and list per-repository permissions (read < write < delete < admin)."""


@perm.command("grant")
@click.argument("user_name", metavar="USER")
@click.argument("repo", metavar="REPO")
@click.argument("level", type=click.Choice(tuple(LEVELS)))
@pass_ctx
def perm_grant(c: Ctx, user_name: str, repo: str, level: str) -> None:
    """Give USER LEVEL on REPO ('*': every repository); replaces an earlier grant on REPO."""
    accounts.grant(c.app(), user_name, repo, level)
    click.echo(f"granted {level} on {repo} to {user_name}")


@perm.command("revoke")
@click.argument("user_name", metavar="USER")
@click.argument("repo", metavar="REPO")
@pass_ctx
def perm_revoke(c: Ctx, user_name: str, repo: str) -> None:
    """Remove USER's grant on REPO (this also narrows the user's tokens at once)."""
    accounts.revoke(c.app(), user_name, repo)
    click.echo(f"revoked {user_name}'s permission on {repo}")


@perm.command("list")
@click.option("--user", "user_name", default=None)
@json_option
@pass_ctx
def perm_list(c: Ctx, user_name: str | None, as_json: bool) -> None:
    """List grants."""
    rows = accounts.list_permissions(c.app(), user_name)

    def human(rows: list[dict[str, Any]]) -> None:
        for r in rows:
            click.echo(f"{r['user']:<20} {r['repo']:<24} {r['level']}")

    emit(rows, as_json, human)
