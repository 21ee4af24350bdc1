"""``artifactd audit``, ``artifactd export`` and ``artifactd import``."""
from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import click

from artifactd.cli.main import Ctx, cli, emit, json_option, pass_ctx
from artifactd.config import parse_duration
from artifactd.errors import ConfigError
from artifactd.model import isotime, parse_isotime, utcnow
from artifactd.store import backup
from artifactd.store.layout import Layout


def parse_since(value: str) -> str:
    """``1h``/``7d`` (ago) or an ISO time → the stored time format."""
    try:
        return isotime(utcnow() - dt.timedelta(seconds=parse_duration(value, "--since")))
    except ConfigError:
        pass
    try:
        t = parse_isotime(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is neither a duration (1h, 7d) nor an ISO time") from None
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.timezone.utc)
    return isotime(t)


@cli.command()
@click.option("--since", default=None, help="Only records newer than this: a duration (1h, 7d) or an ISO time.")
@click.option("--limit", type=int, default=None, help="At most this many records (newest first).")
@json_option
@pass_ctx
def audit(c: Ctx, since: str | None, limit: int | None, as_json: bool) -> None:
    """Show the audit log of writes: who, what, when, from which address."""
    rows = c.app().db.audit_records(parse_since(since) if since else None, limit=limit)

    def human(rows: list[dict[str, Any]]) -> None:
        for r in reversed(rows):
            where = f"{r['repo']}:" if r["repo"] else ""
            click.echo(f"{r['time']}  {r['user'] or '-':<20} {r['address'] or '-':<15} {r['action']:<13} "
                       f"{where}{r['target'] or ''}")

    emit(rows, as_json, human)


@cli.command("export")
@click.argument("dest", type=click.Path(file_okay=False, path_type=Path))
@click.option("--copy", is_flag=True, help="Copy blobs even when hard links are possible.")
@json_option
@pass_ctx
def export_cmd(c: Ctx, dest: Path, copy: bool, as_json: bool) -> None:
    """Write a consistent snapshot (database + referenced blobs) to DEST; safe while serving."""
    app = c.app()
    m = backup.export(app.layout, dest, copy=copy)
    emit(m, as_json, lambda m: click.echo(
        f"exported {m['counts']['artifacts']} artifacts, {m['blobs']} blobs ({m['bytes']} bytes; "
        f"{m['linked']} linked, {m['copied']} copied) to {dest}"))


@cli.command("import")
@click.argument("src", type=click.Path(file_okay=False, exists=True, path_type=Path))
@click.option("--force", is_flag=True, help="Import into a non-empty data directory (replaces its database).")
@click.option("--copy", is_flag=True, help="Copy blobs even when hard links are possible.")
@json_option
@pass_ctx
def import_cmd(c: Ctx, src: Path, force: bool, copy: bool, as_json: bool) -> None:
    """Restore an export into the data directory (empty unless --force); run 'artifactd fsck' after."""
    r = backup.import_(src, Layout(c.data_dir), force=force, copy=copy)
    emit(r, as_json, lambda r: click.echo(
        f"imported {r['artifacts']} artifacts, {r['blobs']} blobs ({r['bytes']} bytes) into {r['into']}"))
