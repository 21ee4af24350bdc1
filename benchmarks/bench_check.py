"""``artifactd check`` over a repository of 500 packages against the full shared PyPA snapshot.

Run (benchmarks are not in ``testpaths``)::

    .venv/bin/python -m pytest benchmarks/bench_check.py -p no:cacheprovider -s

Measures: cold load (parse every YAML file, write the JSON cache), warm load (the cached index),
and the whole report (``policy.check_report``: health + license sections) on a warm database.
The repository holds 500 releases: half at versions the snapshot lists as affected, half clean.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from artifactd.app import App
from artifactd.store.db import NewArtifact
from artifactd_plugins import health
from artifactd_plugins.osv import AdvisoryDB

SHARED_OSV = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "osv-pypa"

pytestmark = [
    pytest.mark.shared_data,
    pytest.mark.skipif(not SHARED_OSV.is_dir(), reason=f"shared PyPA advisory snapshot not found at {SHARED_OSV}"),
]

PACKAGES = 500


def populate(app: App, db: AdvisoryDB) -> None:
    """500 rows (no blobs needed for a report): affected versions and clean ones, with licenses."""
    names = sorted(db.packages)
    for i in range(PACKAGES):
        name = names[i % len(names)]
        listed = [v for a in db.advisories_for(name) for e in a.affected for v in e.versions]
        version = listed[len(listed) // 2] if i % 2 == 0 and listed else f"9999.{i}"
        meta = {"name": name, "version": version,
                "license_expression": ["MIT", "GPL-3.0-only", "MIT OR GPL-3.0-only", None][i % 4]}
        app.db.add_artifact(NewArtifact(
            repo="pypi-local", path=f"{name}/{version}/{name}-{version}.tar.gz", sha256=f"{i:064x}", size=1000,
            created="2024-01-01T00:00:00.000000Z", project=name, project_name=name, version=version,
            filename=f"{name}-{version}.tar.gz", packagetype="sdist", metadata_json=json.dumps(meta)))


def test_check_500_packages(tmp_path: Path) -> None:
    from artifactd.policy import check_report

    data = tmp_path / "data"
    App(data).close()
    with open(data / "artifactd.toml", "a") as fh:
        fh.write(f'\n[plugins.health]\nadvisories = "{SHARED_OSV}"\nblock-on = "high"\n'
                 '[plugins.license]\nallow = ["MIT", "Apache-2.0"]\ndeny = ["GPL-3.0-only"]\n')
    t = time.perf_counter()
    app = App(data)
    cold_db = health.STATE.database()
    cold = time.perf_counter() - t
    assert cold_db is not None and not cold_db.from_cache
    populate(app, cold_db)
    app.close()

    # a fresh process-equivalent: new App, state reset, index from the JSON cache
    health.STATE.db = None
    t = time.perf_counter()
    app = App(data)
    warm_db = health.STATE.database()
    warm = time.perf_counter() - t
    assert warm_db is not None and warm_db.from_cache
    t = time.perf_counter()
    report = check_report(app, "pypi-local")
    first = time.perf_counter() - t
    t = time.perf_counter()
    report = check_report(app, "pypi-local")
    steady = time.perf_counter() - t
    h = report["repositories"][0]["sections"]["health"]
    lic = report["repositories"][0]["sections"]["license"]
    print(f"\ncold load (YAML parse + cache write): {cold:.2f} s; warm load (App + JSON cache): {warm:.3f} s")
    print(f"check report, {PACKAGES} packages, first run: {first:.3f} s; steady: {steady:.3f} s; "
          f"warm load + first report: {warm + first:.3f} s")
    print(f"affected releases {h['summary']['affected']}, quarantined {len(h['summary']['quarantined'])}, "
          f"license {lic['summary']}")
    assert h["summary"]["releases"] == PACKAGES
    assert warm + first < 1.0, "warm load + report must stay well under 1 s"
    app.close()
