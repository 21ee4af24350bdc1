"""Repository, upload/yank, token, store (fsck, gc) and plugin commands."""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Callable

import click

from artifactd import service
from artifactd.cli.main import Ctx, cli, emit, json_option, pass_ctx
from artifactd.config import parse_duration
from artifactd.errors import ArtifactdError


# --- repositories ------------------------------------------------------------------------------

@cli.group()
def repo() -> None:
    """List, show, create and delete repositories."""


@repo.command("list")
@json_option
@pass_ctx
def repo_list(c: Ctx, as_json: bool) -> None:
    """List repositories."""
    app = c.app()
    rows = []
    for cfg in app.config.repositories.values():
        count, size = app.db.count_artifacts(cfg.name)
        row: dict[str, Any] = {"name": cfg.name, "type": cfg.type, "format": cfg.format, "files": count, "bytes": size}
        if cfg.members:
            row["members"] = list(cfg.members)
        if cfg.url:
            row["url"] = service.redact_url(cfg.url)
        rows.append(row)

    def human(rows: list[dict[str, Any]]) -> None:
        click.echo(f"{'NAME':<20} {'TYPE':<7} {'FORMAT':<8} {'FILES':>7}  DETAIL")
        for r in rows:
            detail = ", ".join(r.get("members", [])) or r.get("url", "")
            click.echo(f"{r['name']:<20} {r['type']:<7} {r['format']:<8} {r['files']:>7}  {detail}")

    emit(rows, as_json, human)


@repo.command("show")
@click.argument("name")
@json_option
@pass_ctx
def repo_show(c: Ctx, name: str, as_json: bool) -> None:
    """Show a repository's definition, size and (proxies) upstream health."""
    info = service.describe_repository(c.app(), name)

    def human(d: dict[str, Any]) -> None:
        for k, v in d.items():
            click.echo(f"{k}: {v}")

    emit(info, as_json, human)


@repo.command("create")
@click.argument("name")
@click.option("--type", "rtype", type=click.Choice(["hosted", "proxy", "group"]), required=True)
@click.option("--format", "fmt", type=click.Choice(["pypi", "generic", "docker"]), default="pypi", show_default=True)
@click.option("--member", "members", multiple=True, help="Group member, in order (repeat).")
@click.option("--merge", "merge", multiple=True, help="Group: project allowed from several members (repeat).")
@click.option("--url", default=None, help="Proxy: upstream index URL.")
@click.option("--metadata-ttl", default=None, help="Proxy: how long index pages stay fresh (e.g. 30m).")
@click.option("--timeout", default=None, help="Proxy: how long to wait for the upstream (e.g. 30s).")
@click.option("--connections", type=int, default=None,
              help="PyPI proxy: at most this many requests to the upstream at once (default: no cap).")
@click.option("--offline/--online", default=None, help="Proxy: serve the cache only.")
@click.option("--anonymous-read/--no-anonymous-read", default=None, help="Allow reads without credentials.")
@json_option
@pass_ctx
def repo_create(c: Ctx, name: str, rtype: str, fmt: str, members: tuple[str, ...], merge: tuple[str, ...],
                url: str | None, metadata_ttl: str | None, timeout: str | None, connections: int | None,
                offline: bool | None, anonymous_read: bool | None, as_json: bool) -> None:
    """Create a hosted, proxy or group repository."""
    extra: dict[str, Any] = {"offline": offline, "anonymous_read": anonymous_read, "connections": connections}
    if metadata_ttl:
        extra["metadata_ttl"] = parse_duration(metadata_ttl, "--metadata-ttl")
    if timeout:
        extra["timeout"] = parse_duration(timeout, "--timeout")
    cfg = service.create_repository(c.app(), name, rtype, fmt, members=members, merge=merge, url=url, **extra)
    emit(cfg.to_toml() | {"name": name}, as_json, lambda d: click.echo(f"created {rtype} {fmt} repository {name!r}"))


@repo.command("delete")
@click.argument("name")
@click.option("--force", is_flag=True, help="Also delete the files it holds.")
@pass_ctx
def repo_delete(c: Ctx, name: str, force: bool) -> None:
    """Delete a repository (its blobs are reclaimed by 'artifactd gc')."""
    n = service.delete_repository(c.app(), name, force=force)
    click.echo(f"deleted repository {name!r} ({n} files)")


# --- upload / yank -------------------------------------------------------------------------------

@cli.command()
@click.argument("repo_name", metavar="REPO")
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--path", "target", default=None, metavar="P",
              help="Generic: the path to store at (a folder when it ends in '/'); default the file name.")
@click.option("--prop", "props", multiple=True, metavar="KEY=VALUE", help="Generic: a property; repeat.")
@json_option
@pass_ctx
def upload(c: Ctx, repo_name: str, files: tuple[Path, ...], target: str | None, props: tuple[str, ...],
           as_json: bool) -> None:
    """Import local wheels/sdists (PyPI) or any files (generic, with --path/--prop) into a hosted repository."""
    from artifactd import generic_service
    from artifactd.cli.generic_cmds import local_principal
    from artifactd.formats.generic.paths import parse_assignments

    app = c.app()
    cfg = app.config.repo(repo_name)
    generic = cfg is not None and cfg.format == "generic"
    if not generic and (target or props):
        raise click.UsageError("--path and --prop apply to generic repositories")
    if generic and target and len(files) > 1 and not target.endswith("/"):
        raise click.UsageError("with several files, --path must be a folder ending in '/'")
    properties = parse_assignments(props)
    results = []
    failed = False
    for f in files:
        try:
            if generic:
                g = generic_service.upload_local(app, repo_name, f, target, properties=properties,
                                                 principal=local_principal())
                r = service.UploadResult(g.artifact, g.created)
            else:
                r = service.upload_file(app, repo_name, f)
            results.append({"file": str(f), "path": r.artifact.path, "sha256": r.artifact.sha256, "created": r.created})
            if not as_json:
                click.echo(f"{'stored' if r.created else 'unchanged'}: {f.name} -> {repo_name}:{r.artifact.path} "
                           f"sha256={r.artifact.sha256}")
        except ArtifactdError as exc:
            failed = True
            results.append({"file": str(f), "error": exc.message})
            if not as_json:
                click.echo(f"error: {f.name}: {exc.message}", err=True)
    if as_json:
        click.echo(json.dumps(results, indent=2))
    if failed:
        sys.exit(1)


def _yank_cmd(undo: bool) -> Callable[..., None]:
    @click.argument("repo_name", metavar="REPO")
    @click.argument("project")
    @click.argument("version", required=False)
    @click.option("--file", "filename", default=None, help="Only this file of the release.")
    @pass_ctx
    def cmd(c: Ctx, repo_name: str, project: str, version: str | None, filename: str | None, **kw: Any) -> None:
        if version is None and filename is None:
            raise click.UsageError("give a VERSION or --file")
        n = service.yank(c.app(), repo_name, project, version, filename=filename, reason=kw.get("reason"), undo=undo)
        click.echo(f"{'unyanked' if undo else 'yanked'} {n} file(s) of {project} {version or filename}")

    return cmd


yank_cmd = cli.command("yank", help="Yank a release (PEP 592): installers skip it unless pinned exactly.")(
    click.option("--reason", default=None, help="Shown to users by pip/uv.")(_yank_cmd(False)))
unyank_cmd = cli.command("unyank", help="Undo a yank.")(_yank_cmd(True))


# --- tokens --------------------------------------------------------------------------------------

@cli.group()
def token() -> None:
    """Create, list and revoke API tokens."""


@token.command("create")
@click.option("--user", default="admin", show_default=True)
@click.option("--name", default="token", show_default=True, help="A label for the token.")
@click.option("--scope", "scopes", multiple=True, type=click.Choice(service.SCOPES), help="read, write, delete or admin (repeat); default write.")
@click.option("--repo", "repos", multiple=True, help="Limit the token to these repositories (repeat).")
@click.option("--expires", default=None, help="Lifetime, e.g. 90d.")
@json_option
@pass_ctx
def token_create(c: Ctx, user: str, name: str, scopes: tuple[str, ...], repos: tuple[str, ...],
                 expires: str | None, as_json: bool) -> None:
    """Create a token (printed once; only its hash is stored)."""
    secs = parse_duration(expires, "--expires") if expires else None
    tok, info = service.create_token(c.app(), user, name, scopes or ("write",), repos, secs)
    obj = {"token": tok, "id": info.id, "user": info.user, "name": info.name, "scopes": list(info.scopes),
           "repos": list(info.repos), "expires": info.expires}
    emit(obj, as_json, lambda o: click.echo(f"{tok}\n(id {info.id}; use username '__token__'; it is not shown again)"))


@token.command("list")
@click.option("--user", default=None)
@json_option
@pass_ctx
def token_list(c: Ctx, user: str | None, as_json: bool) -> None:
    """List tokens (never their values)."""
    rows = [{"id": t.id, "user": t.user, "name": t.name, "scopes": list(t.scopes), "repos": list(t.repos),
             "created": t.created, "expires": t.expires, "last_used": t.last_used, "revoked": t.revoked}
            for t in c.app().db.tokens(user)]

    def human(rows: list[dict[str, Any]]) -> None:
        for r in rows:
            state = "revoked" if r["revoked"] else "active"
            click.echo(f"{r['id']:>4}  {r['user']:<12} {r['name']:<24} {','.join(r['scopes']):<12} {state}")

    emit(rows, as_json, human)


@token.command("revoke")
@click.argument("token_id", type=int)
@pass_ctx
def token_revoke(c: Ctx, token_id: int) -> None:
    """Revoke a token by id."""
    from artifactd.accounts import revoke_token

    revoke_token(c.app(), token_id)
    click.echo(f"revoked token {token_id}")


# --- store -----------------------------------------------------------------------------------------

@cli.command()
@click.option("--quick", is_flag=True, help="Check presence and size only, do not re-hash.")
@json_option
@pass_ctx
def fsck(c: Ctx, quick: bool, as_json: bool) -> None:
    """Re-hash every blob; report missing, corrupt and orphaned ones (exit 1 on damage)."""
    from artifactd.store.gc import fsck as run

    report = run(c.app(), rehash=not quick)

    def human(r: Any) -> None:
        click.echo(f"checked {r.checked} blobs ({r.bytes_checked} bytes)")
        for m in r.missing:
            click.echo(f"MISSING {m['sha256']} used by {', '.join(m['used_by'])}")
        for m in r.corrupt:
            click.echo(f"CORRUPT {m['sha256']} used by {', '.join(m['used_by'])}")
        for o in r.orphans:
            click.echo(f"orphan  {o['sha256']} ({o['size']} bytes; 'artifactd gc' removes it)")
        if r.temp_files:
            click.echo(f"{len(r.temp_files)} temporary file(s) in {c.app().layout.tmp}")
        click.echo("damaged" if r.damaged else "ok")

    emit(report.to_dict(), as_json, lambda _: human(report))
    if report.damaged:
        sys.exit(1)


@cli.command()
@click.option("--apply", is_flag=True, help="Delete (default: dry run).")
@click.option("--grace", default="24h", show_default=True, help="Keep unreferenced blobs younger than this.")
@json_option
@pass_ctx
def gc(c: Ctx, apply: bool, grace: str, as_json: bool) -> None:
    """Remove unreferenced blobs older than the grace period (dry run by default)."""
    from artifactd.store.gc import gc as run

    report = run(c.app(), apply=apply, grace=parse_duration(grace, "--grace"))

    def human(r: Any) -> None:
        verb = "removed" if apply else "would remove"
        click.echo(f"{verb} {len(r.removed)} blobs, {r.bytes_freed} bytes; {r.kept_young} kept within the grace period"
                   + (f"; {r.temp_removed} temporary files" if r.temp_removed else ""))
        if not apply and r.removed:
            click.echo("dry run: add --apply to delete")

    emit(report.to_dict(), as_json, lambda _: human(report))


@cli.group()
def plugins() -> None:
    """Inspect plugins."""


@plugins.command("list")
@json_option
@pass_ctx
def plugins_list(c: Ctx, as_json: bool) -> None:
    """List loaded plugins and the hooks each implements."""
    infos = c.app().hooks.plugins()
    rows = [{"name": p.name, "module": p.module, "distribution": p.distribution, "version": p.version,
             "hooks": list(p.hooks), "blocked": p.blocked} for p in infos]

    def human(rows: list[dict[str, Any]]) -> None:
        for r in rows:
            state = "disabled" if r["blocked"] else ", ".join(h.removeprefix("artifactd_") for h in r["hooks"])
            click.echo(f"{r['name']:<12} {r['module']:<36} {state}")

    emit(rows, as_json, human)
