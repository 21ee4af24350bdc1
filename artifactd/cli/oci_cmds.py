"""``artifactd oci ...``: image registry maintenance (retention). Dry run unless ``--apply``."""
from __future__ import annotations

from typing import Any

import click

from artifactd.config import parse_duration


@click.group()
def oci() -> None:
    """Docker/OCI repositories: retention of images."""


@oci.command("prune")
@click.argument("repo_name", metavar="REPO")
@click.option("--keep-tags", type=int, default=None, help="Keep the newest N tags of every image.")
@click.option("--older-than", default=None, help="Only tags pushed longer ago than this (e.g. 30d).")
@click.option("--unpulled-for", default=None, help="Only tags whose image was not pulled for this long (e.g. 90d).")
@click.option("--apply", is_flag=True, help="Delete (default: dry run, listing what would go and why).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def prune(ctx: click.Context, repo_name: str, keep_tags: int | None, older_than: str | None,
          unpulled_for: str | None, apply: bool, as_json: bool) -> None:
    """Delete old tags and the manifests they leave untagged; blobs go at the next 'artifactd gc'."""
    import json

    from artifactd.repositories.oci_retention import apply_prune, select_prune

    if keep_tags is None and older_than is None and unpulled_for is None:
        raise click.UsageError("give at least one of --keep-tags, --older-than, --unpulled-for")
    app = ctx.obj.app()
    cfg = app.config.repo(repo_name)
    if cfg is None or cfg.format != "docker" or cfg.type == "group":
        raise click.ClickException(f"{repo_name!r} is not a hosted or proxy docker repository")
    items = select_prune(app, repo_name, keep_tags=keep_tags,
                         older_than=parse_duration(older_than, "--older-than") if older_than else None,
                         unpulled_for=parse_duration(unpulled_for, "--unpulled-for") if unpulled_for else None)
    deleted = apply_prune(app, items) if apply else 0
    out: dict[str, Any] = {"applied": apply, "items": [i.to_dict() for i in items], "deleted_rows": deleted}
    if as_json:
        click.echo(json.dumps(out, indent=2))
        return
    verb = "deleted" if apply else "would delete"
    for i in items:
        what = f"{i.name}:{i.tag}" if i.tag else f"{i.name}@{i.digest}"
        click.echo(f"{verb} {what} ({i.reason})")
    if not items:
        click.echo("nothing to prune")
    elif not apply:
        click.echo("dry run: add --apply to delete; then 'artifactd gc --apply' reclaims the blobs")
