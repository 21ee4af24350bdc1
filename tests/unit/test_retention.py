"""The built-in retention plugin and ``artifactd cleanup``: selection, protections, exact bytes, apply."""
from __future__ import annotations

import datetime as dt
import json
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from artifactd import service
from artifactd.app import App
from artifactd.cli import cli
from artifactd.errors import ConfigError
from artifactd.model import isotime
from artifactd.policy import apply_cleanup, plan_cleanup
from tests.dists import make_wheel

NOW = dt.datetime.now(dt.timezone.utc)


def make_app(tmp_path: Path, config: str) -> App:
    data = tmp_path / "data"
    App(data, load_entrypoints=False).close()
    with open(data / "artifactd.toml", "a") as fh:
        fh.write("\n" + textwrap.dedent(config))
    return App(data, load_entrypoints=False)


def put(app: App, tmp_path: Path, name: str, version: str, *, days_old: float = 0, repo: str = "pypi-local",
        payload: bytes = b"", downloaded_days_ago: float | None = None) -> int:
    path = make_wheel(tmp_path / "w" / repo / f"{name}-{version}", name, version, payload=payload)
    art = service.upload_file(app, repo, path).artifact
    created = isotime(NOW - dt.timedelta(days=days_old))
    last = isotime(NOW - dt.timedelta(days=downloaded_days_ago)) if downloaded_days_ago is not None else None
    with app.db.write() as con:  # backdate: tests cannot wait 30 days
        con.execute("UPDATE artifacts SET created = ?, last_download = ? WHERE id = ?", (created, last, art.id))
    return art.id


SEEDS = """
[repositories.py-dev]
type = "hosted"
[repositories.py-prod]
type = "hosted"
[cleanup.dev-cleanup]
repositories = ["py-dev"]
older-than = "30d"
[cleanup.prod-cleanup]
repositories = ["py-prod"]
older-than = "365d"
"""


def test_seed_policies_dev_and_prod(tmp_path: Path) -> None:
    app = make_app(tmp_path, SEEDS)
    for v, age in (("1.0", 400), ("1.1", 40), ("1.2", 10), ("2.0", 1)):
        put(app, tmp_path, "acme", v, days_old=age, repo="py-dev")
        put(app, tmp_path, "acme", v, days_old=age, repo="py-prod")
    plan = plan_cleanup(app)
    got = sorted((d.artifact.repo, d.artifact.version, d.policy) for d in plan.deletions)
    assert got == [("py-dev", "1.0", "dev-cleanup"), ("py-dev", "1.1", "dev-cleanup"),
                   ("py-prod", "1.0", "prod-cleanup")]
    assert "older-than 30d" in plan.deletions[0].reason
    # the same bytes live in py-prod (dedup): deleting py-dev 1.1 frees nothing; 1.0 goes from both
    assert plan.bytes_freed == sum(d.artifact.size for d in plan.deletions if d.artifact.version == "1.0") // 2 \
        + _metadata_bytes(app, "1.0")
    assert plan.bytes_selected == sum(d.artifact.size for d in plan.deletions)


def _metadata_bytes(app: App, version: str) -> int:
    arts = [a for a in app.db.artifacts("py-dev") if a.version == version]
    return sum(app.blobs.path(a.metadata_sha256).stat().st_size for a in arts if a.metadata_sha256)


def test_criteria_are_anded_and_protections_win(tmp_path: Path) -> None:
    app = make_app(tmp_path, """
        [cleanup.old-pre]
        repositories = ["pypi-local"]
        older-than = "7d"
        prereleases-only = true
        name-pattern = "ac*"
    """)
    put(app, tmp_path, "acme", "1.0rc1", days_old=30)
    put(app, tmp_path, "acme", "1.0", days_old=20)
    put(app, tmp_path, "acme", "2.0.dev1", days_old=1)   # too young
    put(app, tmp_path, "acme", "2.0b1", days_old=10)
    put(app, tmp_path, "other", "1.0a1", days_old=30)    # name does not match
    put(app, tmp_path, "other", "1.0", days_old=30)
    plan = plan_cleanup(app)
    assert sorted(d.artifact.version for d in plan.deletions) == ["1.0rc1"]
    kept = {d.artifact.version: why for d, why in plan.kept}
    assert kept == {"2.0b1": "latest release of acme"}  # the newest overall, even a prerelease


def test_keep_latest_not_downloaded_pin_and_promoted(tmp_path: Path) -> None:
    app = make_app(tmp_path, """
        [cleanup.keep3]
        repositories = ["pypi-local"]
        keep-latest = 2
        not-downloaded-for = "90d"
    """)
    ids = {v: put(app, tmp_path, "acme", v, days_old=200, downloaded_days_ago=d)
           for v, d in (("1.0", None), ("1.1", 100), ("1.2", 5), ("1.3", 100), ("1.4", 100), ("1.5", None))}
    runner = CliRunner()
    res = runner.invoke(cli, ["--data-dir", str(app.layout.root), "pin", "pypi-local", "acme", "1.1"], catch_exceptions=False)
    assert "pinned 1 file" in res.output
    with app.db.write() as con:
        con.execute("INSERT INTO properties(artifact_id, key, value) VALUES(?, 'promoted', 'prod')", (ids["1.3"],))
    plan = plan_cleanup(app)
    assert sorted(d.artifact.version for d in plan.deletions) == ["1.0"]  # 1.2 downloaded recently
    kept = {d.artifact.version: why for d, why in plan.kept}
    assert kept == {"1.1": "pinned", "1.3": "protected by property promoted=prod"}
    assert "never downloaded" in plan.deletions[0].reason and "keep-latest 2" in plan.deletions[0].reason
    res = runner.invoke(cli, ["--data-dir", str(app.layout.root), "unpin", "pypi-local", "acme", "1.1"], catch_exceptions=False)
    assert sorted(d.artifact.version for d in plan_cleanup(app).deletions) == ["1.0", "1.1"]


def test_apply_deletes_audits_and_frees_exact_bytes(tmp_path: Path) -> None:
    app = make_app(tmp_path, '[cleanup.p]\nrepositories = ["pypi-local"]\nolder-than = "30d"\n')
    put(app, tmp_path, "acme", "1.0", days_old=60, payload=b"x" * 5000)
    put(app, tmp_path, "acme", "2.0", days_old=1)
    plan = plan_cleanup(app)
    expected = plan.bytes_freed
    victim = plan.deletions[0].artifact
    assert expected == victim.size + app.blobs.path(victim.metadata_sha256).stat().st_size  # type: ignore[arg-type]
    done = apply_cleanup(app, plan)
    assert done.deleted == 1 and done.bytes_freed == expected and done.blobs_removed == 2
    assert not app.blobs.path(victim.sha256).exists()
    assert [a.version for a in app.db.artifacts("pypi-local")] == ["2.0"]
    audit = [r for r in app.db.audit_records() if r["action"] == "cleanup-delete"]
    assert audit[0]["target"] == victim.path and audit[0]["detail"]["policy"] == "p"


def test_apply_skips_a_release_pinned_after_the_plan(tmp_path: Path) -> None:
    app = make_app(tmp_path, '[cleanup.p]\nrepositories = ["pypi-local"]\nolder-than = "30d"\n')
    put(app, tmp_path, "acme", "1.0", days_old=60)
    put(app, tmp_path, "acme", "2.0", days_old=1)
    plan = plan_cleanup(app)
    app.db.set_pinned("pypi-local", "acme", "1.0", True)
    done = apply_cleanup(app, plan)
    assert done.deleted == 0 and done.skipped and done.bytes_freed == 0
    assert len(app.db.artifacts("pypi-local")) == 2


def test_cli_dry_run_and_apply(tmp_path: Path) -> None:
    app = make_app(tmp_path, '[cleanup.p]\nrepositories = ["pypi-local"]\nolder-than = "30d"\n')
    put(app, tmp_path, "acme", "1.0", days_old=60)
    put(app, tmp_path, "acme", "2.0", days_old=1)
    data = str(app.layout.root)
    runner = CliRunner()
    out = runner.invoke(cli, ["--data-dir", data, "cleanup"], catch_exceptions=False).output
    assert "would delete pypi-local:acme/1.0/" in out and "[p] uploaded 60d ago (older-than 30d)" in out
    assert "dry run" in out and len(app.db.artifacts("pypi-local")) == 2
    doc = json.loads(runner.invoke(cli, ["--data-dir", data, "cleanup", "--apply", "--json"]).output)
    assert doc["applied"] and doc["deleted"] == 1 and doc["bytes_freed"] > 0
    res = runner.invoke(cli, ["--data-dir", data, "cleanup", "--policy", "nope"])
    assert res.exit_code == 1 and "no cleanup policy named 'nope'" in res.output


def test_max_deletions_caps_a_run(tmp_path: Path) -> None:
    app = make_app(tmp_path, '[cleanup.p]\nrepositories = ["pypi-local"]\nolder-than = "1d"\n')
    for i in range(5):
        put(app, tmp_path, "acme", f"1.{i}", days_old=10)
    plan = plan_cleanup(app, max_deletions=2)
    assert len(plan.deletions) == 2 and plan.capped == 2  # 1.4 is the latest: kept


@pytest.mark.parametrize("table, msg", [
    ('repositories = ["x"]\n', "at least one criterion"),
    ('older-than = "1d"\n', "repositories"),
    ('repositories = ["x"]\nolder-than = "soon"\n', "duration"),
    ('repositories = ["x"]\nkeep-latest = 0\n', "positive integer"),
    ('repositories = ["x"]\nolder-than = "1d"\nfoo = 1\n', "unknown key 'foo'"),
])
def test_policy_validation(tmp_path: Path, table: str, msg: str) -> None:
    with pytest.raises(ConfigError, match=msg):
        make_app(tmp_path, "[cleanup.bad]\n" + table)
