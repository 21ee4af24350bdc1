"""Generic files: ``props``, ``search``, ``download`` and ``promote``.

They work directly on the data directory (the same :class:`~artifactd.app.App` a server
uses), so they can run next to a live server.
"""
from __future__ import annotations

import getpass
import os
from pathlib import Path
from typing import Any

import click

from artifactd import generic_service
from artifactd.cli.main import Ctx, cli, emit, json_option, pass_ctx
from artifactd.formats.generic.paths import parse_assignments, parse_filters
from artifactd.model import Principal


def local_principal() -> Principal:
    """Who runs a local command: ``$ARTIFACTD_USER``, else the OS user (full rights on the data dir)."""
    try:
        name = os.environ.get("ARTIFACTD_USER") or getpass.getuser()
    except (KeyError, OSError):  # pragma: no cover - no passwd entry
        name = "local"
    return Principal(user=name, scopes=("admin",), is_admin=True)


def _fmt_props(props: dict[str, list[str]]) -> str:
    return ";".join(f"{k}={','.join(v)}" for k, v in sorted(props.items()))


# --- props ---------------------------------------------------------------------------------

@cli.group()
def props() -> None:
    """Get, set and delete properties of stored files."""


@props.command("get")
@click.argument("repo_name", metavar="REPO")
@click.argument("path")
@json_option
@pass_ctx
def props_get(c: Ctx, repo_name: str, path: str, as_json: bool) -> None:
    """Show a file's properties."""
    p = generic_service.get_properties(c.app(), repo_name, path)
    def human(d: dict[str, list[str]]) -> None:
        for k, v in sorted(d.items()):
            click.echo(f"{k}={','.join(v)}")

    emit(p, as_json, human)


@props.command("set")
@click.argument("repo_name", metavar="REPO")
@click.argument("path")
@click.argument("assignments", nargs=-1, required=True, metavar="KEY=VALUE...")
@json_option
@pass_ctx
def props_set(c: Ctx, repo_name: str, path: str, assignments: tuple[str, ...], as_json: bool) -> None:
    """Set properties (KEY=V or KEY=V1,V2); replaces those keys' values, keeps other keys."""
    p = generic_service.set_properties(c.app(), repo_name, path, parse_assignments(assignments),
                                       principal=local_principal())
    emit(p, as_json, lambda d: click.echo(f"{repo_name}:{path} {_fmt_props(d)}"))


@props.command("delete")
@click.argument("repo_name", metavar="REPO")
@click.argument("path")
@click.argument("keys", nargs=-1, required=True, metavar="KEY...")
@json_option
@pass_ctx
def props_delete(c: Ctx, repo_name: str, path: str, keys: tuple[str, ...], as_json: bool) -> None:
    """Remove property keys (KEY or KEY=anything)."""
    p = generic_service.delete_properties(c.app(), repo_name, path, [k.split("=", 1)[0] for k in keys],
                                          principal=local_principal())
    emit(p, as_json, lambda d: click.echo(f"{repo_name}:{path} {_fmt_props(d) or '(no properties)'}"))


# --- search / download ------------------------------------------------------------------------

@cli.command()
@click.option("--repo", "repos", multiple=True, help="Search this repository (groups: their members); repeat.")
@click.option("--prop", "props_", multiple=True, metavar="KEY=VALUE", help="Property filter (KEY: has the key); repeat to AND.")
@click.option("--name", default=None, metavar="GLOB", help="Glob on the file name (or the whole path).")
@click.option("--limit", default=1000, show_default=True, help="At most this many results.")
@json_option
@pass_ctx
def search(c: Ctx, repos: tuple[str, ...], props_: tuple[str, ...], name: str | None, limit: int,
           as_json: bool) -> None:
    """Find stored files by repository, properties and name (newest first)."""
    app = c.app()
    rows = generic_service.search(app, repos=list(repos) or None, props=parse_filters(props_), name=name, limit=limit)
    out = [generic_service.describe(app, a, p) for a, p in rows]

    def human(rows: list[dict[str, Any]]) -> None:
        for r in rows:
            click.echo(f"{r['repo']}:{r['path']}  {r['size']}  sha256={r['sha256'][:12]}  {_fmt_props(r['properties'])}")
        if not rows:
            click.echo("no matches", err=True)

    emit(out, as_json, human)


@cli.command()
@click.argument("repo_name", metavar="REPO")
@click.option("--prop", "props_", multiple=True, metavar="KEY=VALUE", help="Property filter; repeat to AND.")
@click.option("--build", default=None, metavar="NAME/NUMBER", help="Only files this build recorded.")
@click.option("--name", default=None, metavar="GLOB", help="Glob on the file name.")
@click.option("--all", "all_matches", is_flag=True, help="Every match (default: the newest per path).")
@click.option("-o", "--output", "outdir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Directory to write the files to (as DIR/<path>).")
@json_option
@pass_ctx
def download(c: Ctx, repo_name: str, props_: tuple[str, ...], build: str | None, name: str | None,
             all_matches: bool, outdir: Path, as_json: bool) -> None:
    """Download matching files and verify their sha256 (exit 1 when nothing matches)."""
    app = c.app()
    if not props_ and not build and not name:
        raise click.UsageError("give --prop, --build or --name (use --name '*' for everything)")
    arts = generic_service.select_downloads(app, repo_name, props=parse_filters(props_), build=build, name=name,
                                            all_matches=all_matches)
    if not arts:
        raise click.ClickException(f"no file in {repo_name} matches")
    paths = [a.path for a in arts]
    by_repo = all_matches and len(set(paths)) != len(paths)
    got = generic_service.download_to(app, arts, outdir, by_repo=by_repo)
    def human(rows: list[dict[str, Any]]) -> None:
        for r in rows:
            click.echo(f"{r['file']}  sha256={r['sha256']}  verified")

    emit(got, as_json, human)


# --- promote -------------------------------------------------------------------------------------

@cli.command()
@click.argument("source")
@click.argument("target")
@click.option("--package", default=None, metavar="NAME==VERSION", help="Every file of this release (PyPI).")
@click.option("--path", default=None, metavar="P", help="A file, or a folder ending in '/' (generic).")
@click.option("--move", is_flag=True, help="Move instead of copy (one transaction).")
@click.option("--force", is_flag=True, help="Promote even if a gate denies (recorded as forced).")
@click.option("--comment", default=None, help="Recorded with the promotion.")
@json_option
@pass_ctx
def promote(c: Ctx, source: str, target: str, package: str | None, path: str | None, move: bool, force: bool,
            comment: str | None, as_json: bool) -> None:
    """Copy (or move) a release or a path from SOURCE to TARGET after the promotion gates."""
    if (package is None) == (path is None):
        raise click.UsageError("give exactly one of --package NAME==VERSION or --path P")
    res = generic_service.promote(c.app(), source, target, package=package, path=path, move=move, force=force,
                                  comment=comment, principal=local_principal())

    def human(d: dict[str, Any]) -> None:
        verb = "moved" if move else "copied"
        for it in d["items"]:
            click.echo(f"{it['outcome'] if it['outcome'] == 'unchanged' else verb}: {source}:{it['path']} -> {target}")
        if d["forced"]:
            click.echo("FORCED over: " + "; ".join(d["overridden"]), err=True)
        for r in d["reviews"]:
            click.echo(f"review: {r}", err=True)

    emit(res.to_dict(), as_json, human)
