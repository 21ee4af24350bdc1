"""The built-in health and license plugins on realistic data: gates, reports, reload, the CLI."""
from __future__ import annotations

import json
import os
import textwrap
import time
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from artifactd import service
from artifactd.app import App
from artifactd.cli import cli
from artifactd.errors import ConfigError, Forbidden
from artifactd.policy import check_report, escape_text
from artifactd_plugins import health
from tests.dists import make_wheel

SHARED_OSV = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "osv-pypa"

# Small advisory set written for these tests, in the PyPA layout (YAML) plus one JSON GHSA
# duplicate (merged through its CVE alias), a withdrawn record and a malicious-package record.
ADVISORIES = {
    "vulns/requests/PYSEC-T-1.yaml": """
        id: PYSEC-T-1
        aliases: [CVE-2099-0001]
        summary: "Leaks credentials on redirect"
        modified: 2024-01-02T00:00:00Z
        affected:
        - package: {ecosystem: PyPI, name: requests}
          ranges:
          - type: ECOSYSTEM
            events: [{introduced: "0"}, {fixed: "2.3.0"}]
        database_specific: {severity: HIGH}
        """,
    "vulns/requests/PYSEC-T-2.yaml": """
        id: PYSEC-T-2
        summary: starts at 2.3.0
        modified: 2024-01-03T00:00:00Z
        affected:
        - package: {ecosystem: PyPI, name: requests}
          ranges:
          - type: ECOSYSTEM
            events: [{introduced: "2.3.0"}, {fixed: "2.31.0"}]
        """,
    "vulns/requests/PYSEC-T-3.yaml": """
        id: PYSEC-T-3
        withdrawn: 2024-02-01T00:00:00Z
        modified: 2024-02-01T00:00:00Z
        affected:
        - package: {ecosystem: PyPI, name: requests}
          versions: ["2.2.1"]
        """,
    "vulns/Odd.Pkg/PYSEC-T-4.yaml": """
        id: PYSEC-T-4
        summary: unparsable bound
        modified: 2024-01-04T00:00:00Z
        affected:
        - package: {ecosystem: PyPI, name: Odd.Pkg}
          ranges:
          - type: ECOSYSTEM
            events: [{introduced: "0"}, {fixed: "not-a-version"}]
        """,
    "ghsa/GHSA-aaaa-bbbb-cccc.json": json.dumps({
        "id": "GHSA-aaaa-bbbb-cccc", "aliases": ["CVE-2099-0001"], "summary": "Leaks <b>credentials</b> on redirect\x1b[31m",
        "modified": "2024-01-05T00:00:00Z",
        "affected": [{"package": {"ecosystem": "PyPI", "name": "requests"},
                      "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "2.3.0"}]}]}],
        "database_specific": {"severity": "CRITICAL"},
    }),
    "mal/MAL-2099-1.json": json.dumps({
        "id": "MAL-2099-1", "summary": "Malicious code in evilpkg", "modified": "2024-01-06T00:00:00Z",
        "affected": [{"package": {"ecosystem": "PyPI", "name": "evilpkg"}, "versions": ["0.1"]}],
    }),
}


def write_advisories(root: Path) -> Path:
    for rel, text in ADVISORIES.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(textwrap.dedent(text).lstrip())
    return root


def make_app(tmp_path: Path, config: str) -> App:
    data = tmp_path / "data"
    App(data, load_entrypoints=False).close()
    with open(data / "artifactd.toml", "a") as fh:
        fh.write("\n" + textwrap.dedent(config))
    return App(data, load_entrypoints=False)


@pytest.fixture
def osv_dir(tmp_path: Path) -> Path:
    return write_advisories(tmp_path / "osv")


def up(app: App, tmp_path: Path, name: str, version: str, **kw: str) -> None:
    service.upload_file(app, "pypi-local", make_wheel(tmp_path / "w" / f"{name}-{version}", name, version, **kw))


# --- health ------------------------------------------------------------------------------------

def test_health_reports_only_by_default(tmp_path: Path, osv_dir: Path) -> None:
    app = make_app(tmp_path, f'[plugins.health]\nadvisories = "{osv_dir}"\n')
    up(app, tmp_path, "requests", "2.2.1")
    up(app, tmp_path, "Requests", "2.31.0")
    up(app, tmp_path, "odd-pkg", "1.0")
    section = check_report(app, "pypi-local")["repositories"][0]["sections"]["health"]
    by = {(p["package"], p["version"]): p for p in section["packages"]}
    req = by[("requests", "2.2.1")]
    # PYSEC-T-1 and the GHSA share CVE-2099-0001: one merged finding, worst severity, both ids
    assert [f["ids"] for f in req["findings"]] == [["GHSA-aaaa-bbbb-cccc", "PYSEC-T-1"]]
    assert req["findings"][0]["aliases"] == ["CVE-2099-0001"]
    assert req["findings"][0]["severity"] == "critical" and req["findings"][0]["fixed_in"] == "2.3.0"
    assert "PYSEC-T-3" not in json.dumps(section)  # withdrawn
    assert ("requests", "2.31.0") not in by
    assert by[("odd-pkg", "1.0")]["status"] == "unverifiable"  # never "clean"
    assert section["summary"]["quarantined"] == []
    assert section["database"]["count"] == 5


def test_health_blocks_uploads_at_the_threshold(tmp_path: Path, osv_dir: Path) -> None:
    app = make_app(tmp_path, f'[plugins.health]\nadvisories = "{osv_dir}"\nblock-on = "critical"\n')
    with pytest.raises(Forbidden, match="GHSA-aaaa-bbbb-cccc"):
        up(app, tmp_path, "requests", "2.2.1")
    with pytest.raises(Forbidden, match="MAL-2099-1"):  # malicious always counts
        up(app, tmp_path, "evilpkg", "0.1")
    up(app, tmp_path, "requests", "2.4.0")  # PYSEC-T-2 has unknown severity: below "critical"
    gate = app.hooks.check_proxy_fetch("pypi-remote", "requests", "2.2.1", "requests-2.2.1.tar.gz", {})
    assert gate.denied and "PYSEC-T-1" in gate.reasons[0]
    assert app.hooks.check_dependency("requests", "2.2.1").denied
    assert not app.hooks.check_dependency("requests", "2.31.0").denied


def test_health_reloads_when_the_source_changes_and_caches(tmp_path: Path, osv_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(health, "STALE_CHECK_SECONDS", 0.0)
    app = make_app(tmp_path, f'[plugins.health]\nadvisories = "{osv_dir}"\nblock-on = "any"\n')
    assert not app.hooks.check_dependency("newpkg", "1.0").denied
    assert list((app.layout.cache / "osv").iterdir())  # parsed index cached under the data dir
    p = osv_dir / "vulns" / "newpkg" / "PYSEC-T-9.yaml"
    p.parent.mkdir()
    p.write_text("id: PYSEC-T-9\nmodified: 2024-03-01T00:00:00Z\naffected:\n- package: {ecosystem: PyPI, name: newpkg}\n  versions: ['1.0']\n")
    os.utime(p, ns=(time.time_ns() + 10**9, time.time_ns() + 10**9))
    assert app.hooks.check_dependency("newpkg", "1.0").denied


def test_health_loads_an_osv_zip(tmp_path: Path, osv_dir: Path) -> None:
    archive = tmp_path / "all.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for p in osv_dir.rglob("*.json"):
            zf.write(p, p.name)
    app = make_app(tmp_path, f'[plugins.health]\nadvisories = "{archive}"\nblock-on = "any"\n')
    assert "MAL-2099-1" in app.hooks.check_dependency("evilpkg", "0.1").reasons[0]


def test_health_missing_source_fails_closed_and_shows_in_health_checks(tmp_path: Path) -> None:
    app = make_app(tmp_path, f'[plugins.health]\nadvisories = "{tmp_path / "nope"}"\nblock-on = "high"\n')
    assert "unavailable" in app.hooks.check_dependency("x", "1").reasons[0]
    checks = app.hooks.health_checks(app)
    assert checks[0]["name"] == "health-advisories" and not checks[0]["ok"]


def test_health_config_is_validated(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="block-on"):
        make_app(tmp_path, '[plugins.health]\nadvisories = "/x"\nblock-on = "severe"\n')


def test_check_cli_escapes_text_and_json_keeps_it(tmp_path: Path, osv_dir: Path) -> None:
    app = make_app(tmp_path, f'[plugins.health]\nadvisories = "{osv_dir}"\nblock-on = "high"\n'
                             '[plugins.license]\nallow = ["MIT"]\n')
    app.set_config(app.config)  # saved through tomli-w, reloaded by the CLI below
    app.close()  # upload with block-on none, then report with block-on high: quarantined
    data = tmp_path / "data"
    text = (data / "artifactd.toml").read_text()
    (data / "artifactd.toml").write_text(text.replace('block-on = "high"', 'block-on = "none"'))
    a2 = App(data, load_entrypoints=False)
    up(a2, tmp_path, "requests", "2.2.1", license_expression="MIT")
    a2.close()
    (data / "artifactd.toml").write_text(text)
    runner = CliRunner()
    res = runner.invoke(cli, ["--data-dir", str(data), "check"], catch_exceptions=False)
    assert res.exit_code == 1, res.output  # a quarantined release
    assert "QUARANTINED" in res.output and "&lt;b&gt;credentials&lt;/b&gt;" in res.output
    assert "\x1b" not in res.output and "\\x1b" in res.output
    res = runner.invoke(cli, ["--data-dir", str(data), "check", "pypi-local", "--json"], catch_exceptions=False)
    doc = json.loads(res.output)
    h = doc["repositories"][0]["sections"]["health"]
    assert h["summary"]["quarantined"] == ["requests==2.2.1"]
    assert "\x1b" in json.dumps(h["packages"][0]["findings"], ensure_ascii=False) or "\\u001b" in json.dumps(h)


def test_escape_text() -> None:
    assert escape_text("a\x1b[31m<script>\nb") == "a\\x1b[31m&lt;script&gt; b"


@pytest.mark.shared_data
@pytest.mark.skipif(not SHARED_OSV.is_dir(), reason=f"shared PyPA advisory snapshot not found at {SHARED_OSV}")
def test_requests_221_on_the_shared_snapshot(tmp_path: Path) -> None:
    app = make_app(tmp_path, f'[plugins.health]\nadvisories = "{SHARED_OSV}"\n')
    up(app, tmp_path, "requests", "2.2.1")
    up(app, tmp_path, "requests", "2.3.0")
    section = check_report(app, "pypi-local")["repositories"][0]["sections"]["health"]
    by = {p["version"]: sorted(i for f in p["findings"] for i in f["ids"]) for p in section["packages"]}
    assert by["2.2.1"] == ["PYSEC-2014-13", "PYSEC-2014-14", "PYSEC-2015-17", "PYSEC-2018-28"]
    assert by["2.3.0"] == ["PYSEC-2015-17", "PYSEC-2018-28", "PYSEC-2023-74"]


# --- license -----------------------------------------------------------------------------------

LICENSE_CFG = '[plugins.license]\nallow = ["MIT", "Apache-2.0", "BSD-3-Clause"]\ndeny = ["GPL-3.0-only"]\n'


def test_sections_from_streamed_rows_equal_those_from_a_list(tmp_path: Path, osv_dir: Path) -> None:
    """``artifactd check`` streams the rows to the health and license plugins; what they report is
    what they report when handed the same rows as a list."""
    app = make_app(tmp_path, f'[plugins.health]\nadvisories = "{osv_dir}"\n' + LICENSE_CFG)
    for name, version, lic in [("requests", "2.2.1", "Apache-2.0"), ("odd-pkg", "1.0", "MIT"),
                               ("Requests", "2.31.0", "Apache-2.0"), ("evilpkg", "0.1", "MIT"), ("plain", "3", "")]:
        up(app, tmp_path, name, version, **({"license_expression": lic} if lic else {}))
    streamed = check_report(app, "pypi-local")["repositories"][0]
    listed = {s["plugin"]: s for s in app.hooks.check_report(app, "pypi-local", app.db.artifacts("pypi-local"))}
    assert set(streamed["sections"]) == {"health", "license"}
    assert streamed["sections"] == listed
    assert streamed["releases"] == listed["health"]["summary"]["releases"] == 5
    assert len(listed["license"]["packages"]) == 5


def test_license_or_passes_through_the_allowed_branch(tmp_path: Path) -> None:
    app = make_app(tmp_path, LICENSE_CFG)
    up(app, tmp_path, "dual", "1.0", license_expression="MIT OR GPL-3.0-only")
    with pytest.raises(Forbidden, match="GPL-3.0-only is denied"):
        up(app, tmp_path, "copyleft", "1.0", license_expression="GPL-3.0-only")
    with pytest.raises(Forbidden, match="denied"):
        up(app, tmp_path, "both", "1.0", license_expression="MIT AND GPL-3.0-only")
    pkgs = {p["package"]: p for p in check_report(app)["repositories"][0]["sections"]["license"]["packages"]}
    assert pkgs["dual"]["decision"] == "allow" and pkgs["dual"]["chosen"] == "MIT"


def test_license_sources_legacy_field_and_classifiers(tmp_path: Path) -> None:
    app = make_app(tmp_path, LICENSE_CFG)
    up(app, tmp_path, "legacy", "1.0", extra_metadata="License: Apache 2.0\n")
    up(app, tmp_path, "classy", "1.0", extra_metadata="Classifier: License :: OSI Approved :: BSD License\n"
                                                     "Classifier: License :: OSI Approved :: MIT License\n")
    up(app, tmp_path, "nolicense", "1.0")
    pkgs = {p["package"]: p for p in check_report(app)["repositories"][0]["sections"]["license"]["packages"]}
    assert (pkgs["legacy"]["expression"], pkgs["legacy"]["source"], pkgs["legacy"]["decision"]) == \
        ("Apache-2.0", "License", "allow")
    assert (pkgs["classy"]["expression"], pkgs["classy"]["source"]) == ("MIT", "classifiers")
    assert pkgs["nolicense"]["decision"] == "review"


def test_license_unknown_can_block(tmp_path: Path) -> None:
    app = make_app(tmp_path, LICENSE_CFG + 'unknown = "block"\n')
    with pytest.raises(Forbidden, match="unknown"):
        up(app, tmp_path, "nolicense", "1.0")
    with pytest.raises(Forbidden, match="not in the allow list"):
        up(app, tmp_path, "zlibbed", "1.0", license_expression="Zlib")
    gate = app.hooks.check_proxy_fetch("remote", "x", "1.0", "x-1.0.tar.gz", {"License-Expression": "MIT"})
    assert not gate.denied


def test_license_config_typo_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not a valid SPDX"):
        make_app(tmp_path, '[plugins.license]\ndeny = ["GPL-3.0-onyl"]\n')
