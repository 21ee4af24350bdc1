"""``artifactd check``, ``cleanup``, ``pin``/``unpin``: thin commands over :mod:`artifactd.policy`."""
from __future__ import annotations

import sys
from typing import Any

import click

from artifactd import policy
from artifactd.cli.main import Ctx, cli, emit, json_option, pass_ctx


def _esc(text: Any, limit: int = 300) -> str:
    return policy.escape_text(None if text is None else str(text), limit)


def _fmt_bytes(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{n} B" if unit == "B" else f"{value:.1f} {unit} ({n} bytes)"
        value /= 1024
    return f"{n} B"  # pragma: no cover


# --- check ---------------------------------------------------------------------------------------

@cli.command("check")
@click.argument("repository", required=False, metavar="[REPO]")
@click.option("--all", "show_all", is_flag=True, help="Also list releases without findings.")
@json_option
@pass_ctx
def check_cmd(c: Ctx, repository: str | None, show_all: bool, as_json: bool) -> None:
    """Health (advisories) and license report, per repository and per package, worst first.

    Exit status 1 when any release is quarantined (block-on would refuse it) or its license is denied.
    """
    report = policy.check_report(c.app(), repository)
    emit(report, as_json, lambda r: _print_check(r, show_all))
    bad = any(
        (s.get("summary", {}).get("quarantined") if name == "health" else s.get("summary", {}).get("deny"))
        for repo in report["repositories"] for name, s in repo["sections"].items()
    )
    if bad:
        sys.exit(1)


def _print_check(report: dict[str, Any], show_all: bool) -> None:
    if not any(r["sections"] for r in report["repositories"]):
        click.echo("no policy plugin is configured ([plugins.health] advisories, [plugins.license])")
    for repo in report["repositories"]:
        click.echo(f"repository {_esc(repo['repository'])}: {repo['releases']} releases, {repo['files']} files")
        health = repo["sections"].get("health")
        if health:
            _print_health(health)
        lic = repo["sections"].get("license")
        if lic:
            _print_license(lic, show_all)
        for name, section in repo["sections"].items():
            if name not in ("health", "license"):
                click.echo(f"  {_esc(name)}: {_esc(section.get('summary'))}")


def _print_health(h: dict[str, Any]) -> None:
    db = h.get("database")
    if db:
        click.echo(f"  health: advisories {_esc(db['source'])} ({db['count']} records, newest modified "
                   f"{db['latest_modified']}, built {db['built_at'][:19]}); block-on {h['policy']['block_on']}")
    if h.get("error"):
        click.echo(f"  health: ERROR {_esc(h['error'])}")
    s = h.get("summary", {})
    counts = s.get("by_worst_severity", {})
    click.echo("    affected releases: " + str(s.get("affected", 0)) + " — "
               + ", ".join(f"{k} {v}" for k, v in counts.items()))
    quarantined = s.get("quarantined", [])
    click.echo(f"    quarantined: {len(quarantined)}" + (f" ({', '.join(_esc(q) for q in quarantined)})" if quarantined else ""))
    for p in h.get("packages", []):
        flag = "  QUARANTINED" if p["quarantined"] else ""
        click.echo(f"    {_esc(p['name'])} {_esc(p['version'])}  {p['worst']}{flag}"
                   + (f"  last download {p['last_download'][:10]}" if p.get("last_download") else ""))
        for f in p["findings"]:
            ids = ", ".join(_esc(i) for i in f["ids"])
            aliases = f" ({', '.join(_esc(a) for a in f['aliases'])})" if f["aliases"] else ""
            sev = "malicious" if f["malicious"] else f["severity"]
            status = " UNVERIFIABLE" if f["status"] == "unverifiable" else ""
            fixed = f"fixed in {_esc(f['fixed_in'])}" if f["fixed_in"] else "no fix listed"
            click.echo(f"      {ids}{aliases}  {sev}{status}  {fixed}")
            if f["summary"]:
                click.echo(f"        {_esc(f['summary'], 160)}")


def _print_license(lic: dict[str, Any], show_all: bool) -> None:
    pol = lic["policy"]
    s = lic["summary"]
    click.echo(f"  license: allow [{', '.join(_esc(x) for x in pol['allow'])}] deny [{', '.join(_esc(x) for x in pol['deny'])}]"
               f" unknown={pol['unknown']}: deny {s['deny']}, review {s['review']}, allow {s['allow']}")
    for p in lic["packages"]:
        if p["decision"] == "allow" and not show_all:
            continue
        chosen = f" via {_esc(p['chosen'])}" if p.get("chosen") and p["chosen"] != p["expression"] else ""
        click.echo(f"    {_esc(p['name'])} {_esc(p['version'])}  {p['decision'].upper()}  "
                   f"{_esc(p['expression']) or 'no license'} [{p['source']}]{chosen}  {_esc(p['reason'], 200)}")


# --- cleanup -------------------------------------------------------------------------------------

@cli.command("cleanup")
@click.option("--policy", "policy_name", default=None, help="Run one policy (default: all of them).")
@click.option("--apply", is_flag=True, help="Delete (default: dry run).")
@click.option("--max-deletions", type=int, default=policy.DEFAULT_MAX_DELETIONS, show_default=True,
              help="Delete at most this many files per run.")
@json_option
@pass_ctx
def cleanup_cmd(c: Ctx, policy_name: str | None, apply: bool, max_deletions: int, as_json: bool) -> None:
    """Retention cleanup: lists every deletion and the rule that matched, and the exact bytes freed."""
    app = c.app()
    plan = policy.plan_cleanup(app, policy_name, max_deletions=max_deletions)
    if apply:
        policy.apply_cleanup(app, plan)
    emit(plan.to_dict(), as_json, _print_cleanup)


def _print_cleanup(d: dict[str, Any]) -> None:
    if not d["policies"]:
        click.echo("no cleanup policies configured ([cleanup.NAME] in artifactd.toml)")
        return
    verb = "deleted" if d["applied"] else "would delete"
    for row in d["deletions"]:
        click.echo(f"{'DELETE' if d['applied'] else 'would delete'} {_esc(row['repository'])}:{_esc(row['path'])} "
                   f"({row['size']} bytes)  [{_esc(row['policy'])}] {_esc(row['reason'])}")
    for row in d["kept"]:
        click.echo(f"keep   {_esc(row['repository'])}:{_esc(row['path'])}  [{_esc(row['policy'])}] {_esc(row['kept_because'])}")
    for row in d["skipped"]:
        click.echo(f"skipped {_esc(row['repository'])}:{_esc(row['path'])}: {_esc(row['reason'])}")
    n = d["deleted"] if d["applied"] else len(d["deletions"])
    click.echo(f"{verb} {n} files ({d['bytes_selected']} bytes selected); "
               f"{'freed' if d['applied'] else 'would free'} {_fmt_bytes(d['bytes_freed'])} after dedup; "
               f"{len(d['kept'])} kept by protections")
    if d["capped"]:
        click.echo(f"{d['capped']} more not deleted this run (--max-deletions)")
    if not d["applied"] and d["deletions"]:
        click.echo("dry run: add --apply to delete")


# --- pin / unpin ---------------------------------------------------------------------------------

def _pin_cmd(pinned: bool) -> Any:
    @click.argument("repo_name", metavar="REPO")
    @click.argument("project")
    @click.argument("version")
    @pass_ctx
    def cmd(c: Ctx, repo_name: str, project: str, version: str) -> None:
        n = policy.set_pinned(c.app(), repo_name, project, version, pinned)
        click.echo(f"{'pinned' if pinned else 'unpinned'} {n} file(s) of {project} {version} in {repo_name}")

    return cmd


pin_cmd = cli.command("pin", help="Pin a release: cleanup never deletes it.")(_pin_cmd(True))
unpin_cmd = cli.command("unpin", help="Remove a pin.")(_pin_cmd(False))
