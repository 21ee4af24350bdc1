"""Build records: ``artifactd build publish|show|list|scan|promote``."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from artifactd import build_service
from artifactd.cli.generic_cmds import local_principal
from artifactd.cli.main import Ctx, cli, emit, json_option, pass_ctx
from artifactd.formats.generic.paths import parse_assignments


@cli.group()
def build() -> None:
    """Publish, show, scan and promote build records."""


@build.command("publish")
@click.argument("name")
@click.argument("number")
@click.option("--artifact", "artifacts", multiple=True, metavar="REPO:PATH", help="A stored file the build produced; repeat.")
@click.option("--requirements", "requirements", type=click.Path(dir_okay=False, allow_dash=True, path_type=Path),
              default=None, help="requirements/lock file (or pylock.toml, or '-' for pip freeze output on stdin).")
@click.option("--pip-freeze", "freeze", is_flag=True, help="Record 'python -m pip freeze' of this interpreter.")
@click.option("--python", "python", default=None, help="With --pip-freeze: the interpreter to ask.")
@click.option("--vcs-commit", default=None)
@click.option("--vcs-branch", default=None)
@click.option("--vcs-url", default=None)
@click.option("--prop", "props", multiple=True, metavar="KEY=VALUE", help="Build property; repeat.")
@json_option
@pass_ctx
def build_publish(c: Ctx, name: str, number: str, artifacts: tuple[str, ...], requirements: Path | None, freeze: bool,
                  python: str | None, vcs_commit: str | None, vcs_branch: str | None, vcs_url: str | None,
                  props: tuple[str, ...], as_json: bool) -> None:
    """Record build NAME NUMBER: artifacts with digests, dependencies, VCS data, properties."""
    deps: list[build_service.Dependency] = []
    if requirements is not None:
        text = sys.stdin.read() if str(requirements) == "-" else requirements.read_text(encoding="utf-8")
        deps += build_service.parse_requirements(text)
    if freeze:
        deps += build_service.pip_freeze(python)
    record = build_service.publish(c.app(), name, number, artifacts=artifacts, dependencies=deps,
                                   vcs={"commit": vcs_commit, "branch": vcs_branch, "url": vcs_url},
                                   properties=parse_assignments(props), principal=local_principal())
    emit(record, as_json, lambda r: click.echo(
        f"published build {name}/{number}: {len(r['artifacts'])} artifact(s), {len(r['dependencies'])} dependencies"))


def _print_build(r: dict[str, Any]) -> None:
    click.echo(f"build {r['name']}/{r['number']}  status: {r['status']}  created {r['created']} by {r['created_by']}")
    if r["vcs"]:
        click.echo("vcs: " + ", ".join(f"{k}={v}" for k, v in r["vcs"].items()))
    if r["properties"]:
        click.echo("properties: " + ", ".join(f"{k}={','.join(v)}" for k, v in r["properties"].items()))
    click.echo("artifacts:")
    for a in r["artifacts"]:
        click.echo(f"  {a['repo']}:{a['path']}  {a['size']}  sha256={a['sha256']}")
    click.echo(f"dependencies: {len(r['dependencies'])}")
    for d in r["dependencies"]:
        click.echo(f"  {d['name']}=={d['version']}" + (f"  ({len(d['hashes'])} hashes)" if d["hashes"] else ""))
    if r["scan"]:
        click.echo(f"scan: {r['scan']['result']} at {r['scan']['time']}")
    click.echo("history:")
    for h in r["history"]:
        extra = " FORCED" if h["forced"] else ""
        where = f" -> {h['repo']}" if h["repo"] else ""
        note = f"  \"{h['comment']}\"" if h["comment"] else ""
        click.echo(f"  {h['time']}  {h['status']}{where}{extra}  by {h['user']}{note}")


@build.command("show")
@click.argument("name")
@click.argument("number")
@json_option
@pass_ctx
def build_show(c: Ctx, name: str, number: str, as_json: bool) -> None:
    """Show a build record with its status history."""
    emit(build_service.show(c.app(), name, number), as_json, _print_build)


@build.command("list")
@click.option("--name", default=None, help="Only builds with this name.")
@json_option
@pass_ctx
def build_list(c: Ctx, name: str | None, as_json: bool) -> None:
    """List build records."""
    rows = build_service.list_builds(c.app(), name)
    def human(rows: list[dict[str, Any]]) -> None:
        for r in rows:
            click.echo(f"{r['name']}/{r['number']}  {r['status']}  {r['created']}")

    emit(rows, as_json, human)


@build.command("scan")
@click.argument("name")
@click.argument("number")
@json_option
@pass_ctx
def build_scan(c: Ctx, name: str, number: str, as_json: bool) -> None:
    """Run the health and license gates over the build's dependencies and artifacts (exit 1 if it fails)."""
    res = build_service.scan(c.app(), name, number, principal=local_principal())

    def human(r: dict[str, Any]) -> None:
        click.echo(f"scan of {name}/{number}: {r['result']} ({len(r['dependencies'])} dependencies, "
                   f"{len(r['artifacts'])} artifacts)")
        for d in r["denied"]:
            click.echo(f"  DENY   {d}")
        for d in r["reviews"]:
            click.echo(f"  review {d}")

    emit(res, as_json, human)
    if res["result"] != "passed":
        sys.exit(1)


@build.command("promote")
@click.argument("name")
@click.argument("number")
@click.option("--to", "target", required=True, metavar="REPO", help="Target hosted repository.")
@click.option("--status", default="promoted", show_default=True, help="Status recorded in the history (e.g. Production).")
@click.option("--comment", default=None)
@click.option("--move", is_flag=True, help="Move instead of copy.")
@click.option("--force", is_flag=True, help="Promote even if a gate denies (recorded as forced).")
@json_option
@pass_ctx
def build_promote(c: Ctx, name: str, number: str, target: str, status: str, comment: str | None, move: bool,
                  force: bool, as_json: bool) -> None:
    """Copy (or move) every artifact of the build to REPO, with properties; record the status."""
    res = build_service.promote(c.app(), name, number, target, status=status, comment=comment, move=move,
                                force=force, principal=local_principal())

    def human(r: dict[str, Any]) -> None:
        for it in r["items"]:
            click.echo(f"{it['outcome']}: {it['repo']}:{it['path']} -> {target}")
        click.echo(f"build {name}/{number} status: {status}" + (" (FORCED)" if r["forced"] else ""))
        for d in r["overridden"]:
            click.echo(f"  overridden: {d}", err=True)

    emit(res, as_json, human)
