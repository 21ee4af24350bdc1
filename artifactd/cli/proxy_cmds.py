"""Proxy and group commands: ``artifactd repo invalidate`` and ``artifactd why``."""
from __future__ import annotations

from typing import Any

import click

from artifactd import service
from artifactd.cli.core_cmds import repo
from artifactd.cli.main import Ctx, cli, emit, json_option, pass_ctx


@repo.command("invalidate")
@click.argument("name")
@click.argument("project", required=False)
@json_option
@pass_ctx
def repo_invalidate(c: Ctx, name: str, project: str | None, as_json: bool) -> None:
    """Drop a proxy's cached index pages (all, or PROJECT's); cached files stay.

    NAME may be a group: every proxy in it is invalidated. The next request
    revalidates with the upstream.
    """
    out = service.invalidate_cache(c.app(), name, project)

    def human(d: dict[str, int]) -> None:
        for proxy, n in d.items():
            click.echo(f"{proxy}: dropped {n} cached page(s)" + (f" for {project}" if project else ""))

    emit(out, as_json, human)


@cli.command("why")
@click.argument("group")
@click.argument("project")
@json_option
@pass_ctx
def why(c: Ctx, group: str, project: str, as_json: bool) -> None:
    """Show which member of GROUP serves PROJECT, and what first-match hid."""
    info = service.explain_group(c.app(), group, project)

    def human(d: dict[str, Any]) -> None:
        if d["owner"]:
            note = " (on the merge list: members merged)" if d["merge_listed"] else ""
            click.echo(f"{d['project']} in {d['group']}: served by {d['owner']}{note}")
        else:
            click.echo(f"{d['project']} in {d['group']}: not served by any member")
        for r in d["members"]:
            extra = ""
            if "versions" in r:
                vs = r["versions"]
                extra = f"  {r['files']} file(s), versions {', '.join(vs[-5:])}{' ...' if len(vs) > 5 else ''}"
            if r.get("error"):
                extra = f"  {r['error']}"
            click.echo(f"  {r['member']:<20} {r['type']:<7} {r['result']:<16}{extra}")
        if d["hidden"]:
            click.echo("hidden by first-match (dependency-confusion protection): " + ", ".join(d["hidden"]))

    emit(info, as_json, human)
