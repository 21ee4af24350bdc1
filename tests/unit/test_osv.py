"""Tests for artifactd_plugins.osv: loading, caching, OSV matching, merging, reporting."""

from __future__ import annotations

import json
import os
import textwrap
import zipfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pytest
from artifactd_plugins import osv
from artifactd_plugins.osv import AdvisoryDB, Finding, cvss3_base_score, merge_findings

SHARED_OSV = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "osv-pypa"
needs_shared = pytest.mark.skipif(
    not SHARED_OSV.is_dir(), reason=f"shared PyPA advisory snapshot not found at {SHARED_OSV}"
)


# --------------------------------------------------------------------------------------------
# helpers


def ecosystem(*events: tuple[str, str], kind: str = "ECOSYSTEM") -> dict[str, Any]:
    return {"type": kind, "events": [{key: value} for key, value in events]}


def record(
    rid: str,
    package: str = "demo",
    *,
    ranges: Iterable[Mapping[str, Any]] = (),
    versions: Iterable[str] = (),
    aliases: Iterable[str] = (),
    **extra: Any,
) -> dict[str, Any]:
    return {
        "id": rid,
        "modified": "2024-01-01T00:00:00Z",
        "aliases": list(aliases),
        "details": f"details of {rid}",
        "affected": [
            {
                "package": {"ecosystem": "PyPI", "name": package},
                "ranges": list(ranges),
                "versions": list(versions),
            }
        ],
        **extra,
    }


def db_of(*records: Mapping[str, Any]) -> AdvisoryDB:
    return AdvisoryDB.from_records(records)


def status_of(db: AdvisoryDB, version: str, package: str = "demo") -> dict[str, str]:
    return {f.id: f.status for f in db.match(package, version)}


def write_json_tree(root: Path, records: Iterable[Mapping[str, Any]]) -> None:
    for rec in records:
        folder = root / rec["affected"][0]["package"]["name"]
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{rec['id']}.json").write_text(json.dumps(rec), encoding="utf-8")


def write_zip(path: Path, records: Iterable[Mapping[str, Any]]) -> None:
    with zipfile.ZipFile(path, "w") as zf:
        for rec in records:
            zf.writestr(f"{rec['id']}.json", json.dumps(rec))


YAML_REQUESTS_LIKE = textwrap.dedent(
    """\
    id: PYSEC-2014-13
    details: Requests before 2.3.0 leaks a netrc password on redirect.
    affected:
    - package:
        name: requests
        ecosystem: PyPI
      ranges:
      - type: GIT
        repo: https://github.com/psf/requests
        events:
        - introduced: "0"
        - fixed: 74ea7cf7a6a27a4eeb2ae24e162bcc942a6706d5
      - type: ECOSYSTEM
        events:
        - introduced: "0"
        - fixed: 1.10
      versions:
      - 1.2.3
      - 1.9
    aliases:
    - CVE-2014-1829
    modified: 2021-07-05T00:01:25.632991Z
    published: 2014-10-15T14:55:00Z
    """
)

YAML_JW_UTIL = textwrap.dedent(
    """\
    id: PYSEC-2020-341
    details: jw.util before 2.3 loads YAML unsafely.
    affected:
    - package:
        name: jw.util
        ecosystem: PyPI
      ranges:
      - type: ECOSYSTEM
        events:
        - introduced: "0"
        - fixed: "2.3"
      versions:
      - -class.-jw.util.version.Version-
      - "2.2"
    modified: "2022-01-05T02:16:25.743194Z"
    """
)

YAML_PRE_1_0 = textwrap.dedent(
    """\
    id: PYSEC-0000-CVE-2014-1830
    package:
      name: Old_Layout
      ecosystem: PyPI
    details: pre-1.0 OSV layout
    affects:
      ranges:
      - type: ECOSYSTEM
        fixed: 2.3.0
      versions:
      - 0.0.1
    aliases:
    - CVE-2014-1830
    modified: '2021-07-05T00:01:25.632991Z'
    """
)

YAML_WITHDRAWN = textwrap.dedent(
    """\
    id: PYSEC-2021-9
    withdrawn: 2021-09-01T00:00:00Z
    details: withdrawn advisory
    affected:
    - package: {name: requests, ecosystem: PyPI}
      ranges: [{type: ECOSYSTEM, events: [{introduced: "0"}]}]
    modified: "2021-09-01T00:00:00Z"
    """
)


@pytest.fixture
def yaml_tree(tmp_path: Path) -> Path:
    root = tmp_path / "advisory-database"
    for rel, text in {
        "vulns/requests/PYSEC-2014-13.yaml": YAML_REQUESTS_LIKE,
        "vulns/requests/PYSEC-2021-9.yaml": YAML_WITHDRAWN,
        "vulns/jw.util/PYSEC-2020-341.yaml": YAML_JW_UTIL,
        "vulns/old-layout/PYSEC-0000-CVE-2014-1830.yml": YAML_PRE_1_0,
        "vulns/broken/PYSEC-1999-1.yaml": "id: [unclosed\n",
        "notes.yaml": "hello: world\n",
        ".github/workflows/ci.yml": "on: push\njobs: {}\n",
        "README.md": "# not an advisory\n",
    }.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


# --------------------------------------------------------------------------------------------
# matching: the OSV algorithm


def test_versions_list_matches_string_or_equal_version() -> None:
    db = db_of(record("PYSEC-1", versions=["1.0", "2.0.post1", "not a version"]))
    assert status_of(db, "1.0") == {"PYSEC-1": "affected"}
    assert status_of(db, "1.0.0") == {"PYSEC-1": "affected"}  # Version("1.0") == Version("1.0.0")
    assert status_of(db, "2.0-1") == {"PYSEC-1": "affected"}  # normalises to 2.0.post1
    assert status_of(db, "1.1") == {}  # unparsable list entries cannot equal a valid version
    assert status_of(db, "not a version") == {"PYSEC-1": "affected"}  # exact string


@pytest.mark.parametrize(
    ("version", "affected"),
    [
        ("0.9", False),
        ("1.0", True),
        ("1.4.9", True),
        ("1.5rc1", True),
        ("1.5", False),
        ("1.5.post1", False),
        ("1.9", False),
        ("2.0", True),
        ("2.2.99", True),
        ("2.3", False),
        ("3.0", False),
    ],
)
def test_introduced_fixed_windows_with_unsorted_events(version: str, affected: bool) -> None:
    events = [("fixed", "2.3"), ("introduced", "1.0"), ("introduced", "2.0"), ("fixed", "1.5")]
    db = db_of(record("PYSEC-1", ranges=[ecosystem(*events)]))
    assert status_of(db, version) == ({"PYSEC-1": "affected"} if affected else {})


def test_introduced_zero_sorts_below_every_version() -> None:
    db = db_of(record("PYSEC-1", ranges=[ecosystem(("introduced", "0"), ("fixed", "1.0"))]))
    assert status_of(db, "0a1") == {"PYSEC-1": "affected"}  # Version("0a1") < Version("0")
    assert status_of(db, "0.0.dev0") == {"PYSEC-1": "affected"}
    assert status_of(db, "1.0") == {}


def test_range_without_introduced_starts_at_zero() -> None:
    db = db_of(record("PYSEC-1", ranges=[ecosystem(("fixed", "1.0"))]))
    assert status_of(db, "0.5") == {"PYSEC-1": "affected"}
    assert status_of(db, "1.0") == {}


def test_last_affected_is_inclusive() -> None:
    db = db_of(record("PYSEC-1", ranges=[ecosystem(("introduced", "0"), ("last_affected", "1.11.0"))]))
    assert status_of(db, "1.11.0") == {"PYSEC-1": "affected"}
    assert status_of(db, "1.11.0.post1") == {}
    assert status_of(db, "1.11.1") == {}
    assert db.match("demo", "1.0")[0].fixed_in is None


def test_limit_events() -> None:
    db = db_of(
        record("PYSEC-1", ranges=[ecosystem(("introduced", "1.0"), ("limit", "2.0"))]),
        record("PYSEC-2", ranges=[ecosystem(("introduced", "1.0"), ("limit", "*"))]),
    )
    assert status_of(db, "1.5") == {"PYSEC-1": "affected", "PYSEC-2": "affected"}
    assert status_of(db, "2.0") == {"PYSEC-2": "affected"}
    assert status_of(db, "0.5") == {}


def test_git_ranges_ignored_and_semver_evaluated() -> None:
    git = ecosystem(("introduced", "0"), ("fixed", "c45d7c49ea75133e52ab22a8e9e13173938e36ff"), kind="GIT")
    db = db_of(
        record("PYSEC-1", ranges=[git]),
        record("PYSEC-2", ranges=[ecosystem(("introduced", "1.0.0"), ("fixed", "1.2.0"), kind="SEMVER")]),
    )
    assert status_of(db, "0.1") == {}
    assert status_of(db, "1.1.0") == {"PYSEC-2": "affected"}


def test_fixed_in_is_smallest_fixed_above_version_across_ranges() -> None:
    ranges = [
        ecosystem(("introduced", "0"), ("fixed", "1.2.5"), ("introduced", "1.3"), ("fixed", "1.3.4")),
        ecosystem(("introduced", "1.3.2"), ("fixed", "bogus"), ("fixed", "2.0")),
    ]
    db = db_of(record("PYSEC-1", ranges=ranges))
    assert db.match("demo", "1.0")[0].fixed_in == "1.2.5"
    assert db.match("demo", "1.3.1")[0].fixed_in == "1.3.4"


def test_unparsable_fixed_bound_is_unverifiable_never_clean() -> None:
    steam_like = record(
        "PYSEC-2019-125", ranges=[ecosystem(("introduced", "0"), ("fixed", "2019-09-12"))], versions=["1.0"]
    )
    db = db_of(steam_like)
    assert status_of(db, "1.0") == {"PYSEC-2019-125": "affected"}  # listed: certain
    assert status_of(db, "0.1") == {"PYSEC-2019-125": "unverifiable"}
    assert status_of(db, "5.0") == {"PYSEC-2019-125": "unverifiable"}


def test_unparsable_bound_only_matters_when_it_could_change_the_answer() -> None:
    db = db_of(record("PYSEC-1", ranges=[ecosystem(("introduced", "1.0"), ("fixed", "1.2"), ("fixed", "0.2.0-n653"))]))
    assert status_of(db, "0.5") == {}  # an extra "fixed" can never make 0.5 affected
    assert status_of(db, "1.1") == {"PYSEC-1": "unverifiable"}  # it might lie in [1.0, 1.1]
    assert status_of(db, "1.3") == {}  # already fixed by 1.2 either way


def test_unparsable_introduced_and_limit_are_unverifiable() -> None:
    db = db_of(
        record("PYSEC-1", ranges=[ecosystem(("introduced", "weird start"), ("fixed", "2.0"))]),
        record("PYSEC-2", ranges=[ecosystem(("introduced", "0"), ("limit", "x.y.z"))]),
    )
    assert status_of(db, "1.0") == {"PYSEC-1": "unverifiable", "PYSEC-2": "unverifiable"}
    assert status_of(db, "2.5") == {"PYSEC-1": "unverifiable", "PYSEC-2": "unverifiable"}


def test_unparsable_checked_version() -> None:
    db = db_of(
        record("PYSEC-1", ranges=[ecosystem(("introduced", "0"), ("fixed", "2.0"))]),
        record("PYSEC-2", versions=["2019-custom build"]),
        record("PYSEC-3", versions=["1.0"]),
        record("PYSEC-4", ranges=[ecosystem(("introduced", "0"), kind="GIT")]),
    )
    findings = db.match("demo", "2019-custom build")
    assert {f.id: f.status for f in findings} == {"PYSEC-1": "unverifiable", "PYSEC-2": "affected"}
    assert all(f.fixed_in is None for f in findings)


def test_package_names_are_canonicalized_and_other_ecosystems_ignored() -> None:
    rec = record("PYSEC-1", "Zope.Interface", ranges=[ecosystem(("introduced", "0"))])
    rec["affected"].append(
        {"package": {"ecosystem": "npm", "name": "other"}, "ranges": [ecosystem(("introduced", "0"))]}
    )
    npm_only = {"id": "GHSA-npm", "affected": [{"package": {"ecosystem": "npm", "name": "demo"}, "versions": ["1"]}]}
    db = db_of(rec, npm_only)
    assert db.count == 1
    assert db.packages == frozenset({"zope-interface"})
    for spelling in ("zope.interface", "ZOPE_INTERFACE", "zope-interface"):
        assert status_of(db, "1.0", spelling) == {"PYSEC-1": "affected"}
    assert db.match("other", "1") == []


def test_withdrawn_records_are_skipped() -> None:
    withdrawn = record("PYSEC-9", ranges=[ecosystem(("introduced", "0"))], withdrawn="2021-01-01T00:00:00Z")
    db = db_of(withdrawn, record("PYSEC-1", versions=["1.0"]))
    assert (db.count, db.withdrawn) == (1, 1)
    assert status_of(db, "1.0") == {"PYSEC-1": "affected"}
    assert db.get("PYSEC-9") is None


def test_duplicate_ids_keep_latest_modified() -> None:
    old = record("PYSEC-1", versions=["1.0"], modified="2020-01-01T00:00:00Z")
    new = record("PYSEC-1", versions=["2.0"], modified="2023-01-01T00:00:00Z")
    assert status_of(db_of(new, old), "2.0") == {"PYSEC-1": "affected"}
    assert status_of(db_of(old, new), "1.0") == {}


# --------------------------------------------------------------------------------------------
# severity, ordering, merging


@pytest.mark.parametrize(
    ("vector", "score"),
    [
        ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", 9.8),
        ("CVSS:3.1/AV:N/AC:H/PR:N/UI:N/S:C/C:H/I:N/A:N", 6.8),
        ("CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:C/C:L/I:L/A:N", 6.1),
        ("CVSS:3.0/AV:L/AC:L/PR:L/UI:N/S:U/C:H/I:H/A:H", 7.8),
        ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:H", 7.5),
        ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:L/I:N/A:N", 5.3),
        ("CVSS:3.1/AV:N/AC:L/PR:H/UI:N/S:C/C:H/I:H/A:H", 9.1),
        ("CVSS:3.1/AV:L/AC:L/PR:L/UI:R/S:U/C:L/I:N/A:N", 2.8),
        ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:N", 0.0),
        ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H/E:P/RL:O", 9.8),  # temporal ignored
        ("CVSS:2.0/AV:N/AC:L/Au:N/C:P/I:P/A:P", None),
        ("AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", None),
        ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H", None),
        ("CVSS:3.1/AV:X/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", None),
        ("CVSS:3.1/AV:N/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", None),
    ],
)
def test_cvss3_base_score(vector: str, score: float | None) -> None:
    assert cvss3_base_score(vector) == score


CRITICAL_V3 = "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"
CVSS_V4 = "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N"


def test_severity_sources() -> None:
    db = db_of(
        record("GHSA-mod", versions=["1"], database_specific={"severity": "MODERATE"}),
        record("PYSEC-crit", versions=["1"], severity=[{"type": "CVSS_V3", "score": CRITICAL_V3}]),
        record("PYSEC-v4", versions=["1"], severity=[{"type": "CVSS_V4", "score": CVSS_V4}]),
        record("PYSEC-none", versions=["1"]),
    )
    severities = {f.id: (f.severity, f.advisory.score) for f in db.match("demo", "1")}
    assert severities == {
        "GHSA-mod": ("medium", None),
        "PYSEC-crit": ("critical", 9.8),
        "PYSEC-v4": ("unknown", None),
        "PYSEC-none": ("unknown", None),
    }


def test_malicious_first_then_severity_then_id() -> None:
    critical = [{"type": "CVSS_V3", "score": CRITICAL_V3}]
    db = db_of(
        record("PYSEC-b-low", versions=["1"], database_specific={"severity": "LOW"}),
        record("PYSEC-a-unknown", versions=["1"]),
        record("PYSEC-c-critical", versions=["1"], severity=critical),
        record("MAL-2024-1", ranges=[ecosystem(("introduced", "0"))], summary="Malicious code in demo (PyPI)"),
        record("GHSA-z-low", versions=["1"], database_specific={"severity": "LOW"}),
    )
    findings = db.match("demo", "1")
    assert [f.id for f in findings] == [
        "MAL-2024-1",
        "PYSEC-c-critical",
        "GHSA-z-low",
        "PYSEC-b-low",
        "PYSEC-a-unknown",
    ]
    assert findings[0].malicious and not findings[1].malicious


def test_alias_merge_across_databases() -> None:
    db = db_of(
        record(
            "PYSEC-2020-1",
            ranges=[ecosystem(("introduced", "0"), ("fixed", "1.5"))],
            aliases=["CVE-2020-1", "GHSA-aaaa"],
        ),
        record(
            "GHSA-aaaa",
            ranges=[ecosystem(("introduced", "0"), ("fixed", "1.4"))],
            aliases=["CVE-2020-1"],
            summary="Bad thing in demo",
            database_specific={"severity": "HIGH"},
        ),
        record("PYSEC-2020-2", versions=["1.0"], aliases=["CVE-2020-2"]),
        record("PYSEC-2020-3", "other", versions=["1.0"], aliases=["CVE-2020-1"]),  # other package
    )
    findings = db.match("demo", "1.0")
    assert {f.id for f in findings} == {"PYSEC-2020-1", "GHSA-aaaa", "PYSEC-2020-2"}
    merged = db.match_merged("demo", "1.0")
    assert [m.ids for m in merged] == [("GHSA-aaaa", "PYSEC-2020-1"), ("PYSEC-2020-2",)]
    first = merged[0]
    assert first.aliases == ("CVE-2020-1",)
    assert (first.severity, first.status, first.fixed_in) == ("high", "affected", "1.5")
    assert first.summary == "Bad thing in demo"
    assert [f.id for f in first.findings] == ["GHSA-aaaa", "PYSEC-2020-1"]


def test_alias_merge_is_transitive() -> None:
    db = db_of(
        record("A-1", versions=["1"], aliases=["X"]),
        record("B-1", versions=["1"], aliases=["X", "Y"]),
        record("C-1", versions=["1"], aliases=["Y"]),
        record("D-1", versions=["1"], aliases=["Z"]),
    )
    assert sorted(m.ids for m in merge_findings(db.match("demo", "1"))) == [("A-1", "B-1", "C-1"), ("D-1",)]


def test_merged_status_prefers_affected() -> None:
    db = db_of(
        record("PYSEC-1", ranges=[ecosystem(("introduced", "0"), ("fixed", "2019-09-12"))], aliases=["CVE-1"]),
        record("GHSA-1", ranges=[ecosystem(("introduced", "0"), ("fixed", "3.0"))], aliases=["CVE-1"]),
    )
    [merged] = db.match_merged("demo", "2.0")
    assert merged.status == "affected"
    assert {f.id: f.status for f in merged.findings} == {"PYSEC-1": "unverifiable", "GHSA-1": "affected"}


def test_merge_findings_rejects_nothing_and_keeps_empty() -> None:
    assert merge_findings([]) == []
    with pytest.raises(ValueError):
        osv.MergedFinding.from_findings([])


# --------------------------------------------------------------------------------------------
# loading: directories, zips, caches


def test_yaml_directory(yaml_tree: Path) -> None:
    db = AdvisoryDB.load(yaml_tree)
    assert db.source == yaml_tree.resolve()
    assert db.count == 3
    assert db.withdrawn == 1
    assert sorted(origin for origin, _ in db.errors) == ["notes.yaml", "vulns/broken/PYSEC-1999-1.yaml"]
    advisory = db.get("PYSEC-2014-13")
    assert advisory is not None
    # Unquoted YAML scalars are kept as written: "1.10" is not the float 1.1, timestamps stay text.
    assert advisory.published == "2014-10-15T14:55:00Z"
    assert advisory.modified == "2021-07-05T00:01:25.632991Z"
    assert advisory.affected[0].ranges[1].events[1] == osv.Event("fixed", "1.10")
    assert db.match("requests", "1.9.5")[0].fixed_in == "1.10"
    assert db.match("requests", "1.10") == []
    assert db.latest_modified == "2022-01-05T02:16:25.743194Z"


def test_non_normalized_directory_names(yaml_tree: Path) -> None:
    db = AdvisoryDB.load(yaml_tree)
    assert "jw-util" in db.packages
    for spelling in ("jw.util", "jw-util", "JW_Util"):
        assert status_of(db, "2.2", spelling) == {"PYSEC-2020-341": "affected"}
    assert [a.id for a in db.advisories_for("jw_util")] == ["PYSEC-2020-341"]
    assert status_of(db, "2.3", "jw.util") == {}


def test_pre_1_0_layout_is_converted(yaml_tree: Path) -> None:
    db = AdvisoryDB.load(yaml_tree)
    assert status_of(db, "2.2.9", "old-layout") == {"PYSEC-0000-CVE-2014-1830": "affected"}
    assert db.match("Old_Layout", "1.0")[0].fixed_in == "2.3.0"
    assert status_of(db, "2.3.0", "old-layout") == {}


def test_zip_source_and_staleness(tmp_path: Path) -> None:
    records = [
        record("GHSA-xxxx", ranges=[ecosystem(("introduced", "0"), ("fixed", "2.0"))], aliases=["CVE-1", "PYSEC-1"],
               database_specific={"severity": "CRITICAL"}),
        record("PYSEC-1", ranges=[ecosystem(("introduced", "0"), ("fixed", "2.0"))], aliases=["CVE-1", "GHSA-xxxx"]),
        record("MAL-2025-7", "evil-pkg", ranges=[ecosystem(("introduced", "0"))]),
        record("PYSEC-2", versions=["1.0"], withdrawn="2024-01-01T00:00:00Z"),
        {"id": "GHSA-npm", "affected": [{"package": {"ecosystem": "npm", "name": "x"}, "versions": ["1"]}]},
    ]
    archive = tmp_path / "all.zip"
    write_zip(archive, records)
    db = AdvisoryDB.load(archive)
    assert (db.count, db.withdrawn, db.errors) == (3, 1, ())
    assert [m.ids for m in db.match_merged("demo", "1.0")] == [("GHSA-xxxx", "PYSEC-1")]
    assert [(f.id, f.malicious, f.status) for f in db.match("evil-pkg", "0.0.1")] == [("MAL-2025-7", True, "affected")]
    assert not db.stale()
    write_zip(archive, records[:2])
    os.utime(archive, ns=(archive.stat().st_atime_ns, archive.stat().st_mtime_ns + 10**9))
    assert db.stale()
    assert AdvisoryDB.load(archive).count == 2


def test_cache_reuse_and_staleness(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = tmp_path / "vulns"
    write_json_tree(source, [record("PYSEC-1", ranges=[ecosystem(("introduced", "0"), ("fixed", "2.0"))])])
    cache = tmp_path / "cache"
    cold = AdvisoryDB.load(source, cache)
    assert not cold.from_cache
    assert len(list(cache.glob("osv-index-*.json"))) == 1

    def no_parsing(name: str, data: bytes) -> object:
        raise AssertionError("the cache should have been used")

    with monkeypatch.context() as patch:
        patch.setattr(osv, "_parse_document", no_parsing)
        warm = AdvisoryDB.load(source, cache)
    assert warm.from_cache
    assert warm.fingerprint == cold.fingerprint
    assert warm.built_at == cold.built_at
    assert status_of(warm, "1.0") == status_of(cold, "1.0") == {"PYSEC-1": "affected"}
    assert not warm.stale()

    # A new file changes the count; an edited file changes size and mtime.
    write_json_tree(source, [record("PYSEC-2", versions=["1.0"])])
    assert warm.stale()
    reloaded = AdvisoryDB.load(source, cache)
    assert not reloaded.from_cache
    assert status_of(reloaded, "1.0") == {"PYSEC-1": "affected", "PYSEC-2": "affected"}
    assert AdvisoryDB.load(source, cache).from_cache

    edited = source / "demo" / "PYSEC-1.json"
    edited.write_text(json.dumps(record("PYSEC-1", ranges=[ecosystem(("introduced", "0"), ("fixed", "1.0"))])))
    os.utime(edited, ns=(edited.stat().st_atime_ns, edited.stat().st_mtime_ns + 10**9))
    assert reloaded.stale()
    assert status_of(AdvisoryDB.load(source, cache), "1.0") == {"PYSEC-2": "affected"}


def test_corrupt_cache_is_rebuilt(tmp_path: Path) -> None:
    source = tmp_path / "vulns"
    write_json_tree(source, [record("PYSEC-1", versions=["1.0"])])
    cache = tmp_path / "cache"
    AdvisoryDB.load(source, cache)
    [cache_file] = cache.glob("osv-index-*.json")
    cache_file.write_text("{not json")
    db = AdvisoryDB.load(source, cache)
    assert not db.from_cache and db.count == 1
    assert AdvisoryDB.load(source, cache).from_cache


def test_vanished_source_is_stale(tmp_path: Path) -> None:
    source = tmp_path / "vulns"
    write_json_tree(source, [record("PYSEC-1", versions=["1.0"])])
    db = AdvisoryDB.load(source)
    (source / "demo" / "PYSEC-1.json").unlink()
    (source / "demo").rmdir()
    source.rmdir()
    assert db.stale()


def test_load_rejects_missing_and_non_zip_sources(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        AdvisoryDB.load(tmp_path / "missing")
    plain = tmp_path / "advisories.txt"
    plain.write_text("nope")
    with pytest.raises(ValueError, match="directory or a zip"):
        AdvisoryDB.load(plain)


# --------------------------------------------------------------------------------------------
# reporting


def test_report_package_is_json_able() -> None:
    db = db_of(
        record("PYSEC-1", ranges=[ecosystem(("introduced", "0"), ("fixed", "2.0"))], aliases=["CVE-1"],
               details="First line.\nSecond line.", references=[{"type": "WEB", "url": "https://example.org/<x>"}]),
        record("GHSA-1", ranges=[ecosystem(("introduced", "0"), ("fixed", "2.1"))], aliases=["CVE-1"],
               database_specific={"severity": "HIGH"}, details=""),
        record("PYSEC-2", ranges=[ecosystem(("introduced", "0"), ("fixed", "weird"))]),
    )
    report = db.report_package("Demo", "1.0")
    assert json.loads(json.dumps(report)) == report
    assert report["package"] == "demo" and report["status"] == "affected"
    assert report["counts"]["high"] == 1 and report["counts"]["unknown"] == 1 and report["counts"]["unverifiable"] == 1
    first = report["findings"][0]
    assert first["ids"] == ["GHSA-1", "PYSEC-1"]
    assert first["aliases"] == ["CVE-1"]
    assert first["fixed_in"] == "2.1"
    assert first["summary"] == "First line."  # headline from details, raw
    assert first["references"] == ["https://example.org/<x>"]  # unescaped
    assert report["findings"][1]["status"] == "unverifiable"
    assert report["database"]["count"] == 3
    # Only PYSEC-2 (unparsable "fixed") is left above 2.1: unverifiable, never "clean".
    assert db.report_package("demo", "3.0")["status"] == "unverifiable"
    clean = db.report_package("unknown-package", "1.0")
    assert (clean["status"], clean["findings"]) == ("clean", [])


def test_findings_are_frozen() -> None:
    finding = db_of(record("PYSEC-1", versions=["1"])).match("demo", "1")[0]
    assert isinstance(finding, Finding)
    with pytest.raises(AttributeError):
        finding.status = "unverifiable"  # type: ignore[misc]


# --------------------------------------------------------------------------------------------
# acceptance on the shared PyPA snapshot


@pytest.fixture(scope="module")
def pypa_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("osv-cache")


@pytest.fixture(scope="module")
def pypa_db(pypa_cache: Path) -> AdvisoryDB:
    if not SHARED_OSV.is_dir():
        pytest.skip(f"shared PyPA advisory snapshot not found at {SHARED_OSV}")
    return AdvisoryDB.load(SHARED_OSV, pypa_cache)


@needs_shared
@pytest.mark.shared_data
@pytest.mark.parametrize(
    ("version", "expected"),
    [
        ("2.2.1", {"PYSEC-2014-13", "PYSEC-2014-14", "PYSEC-2015-17", "PYSEC-2018-28"}),
        ("2.3.0", {"PYSEC-2015-17", "PYSEC-2018-28", "PYSEC-2023-74"}),
        ("2.6.0", {"PYSEC-2018-28", "PYSEC-2023-74"}),
    ],
)
def test_pypa_requests(pypa_db: AdvisoryDB, version: str, expected: set[str]) -> None:
    findings = pypa_db.match("requests", version)
    assert {f.id for f in findings} == expected
    assert {f.status for f in findings} == {"affected"}
    assert {i for m in pypa_db.match_merged("requests", version) for i in m.ids} == expected


@needs_shared
@pytest.mark.shared_data
def test_pypa_snapshot_facts(pypa_db: AdvisoryDB) -> None:
    assert (pypa_db.count, pypa_db.withdrawn, pypa_db.errors) == (2651, 10, ())
    fixed = {f.id: f.fixed_in for f in pypa_db.match("requests", "2.2.1")}
    assert fixed == {
        "PYSEC-2014-13": "2.3.0",
        "PYSEC-2014-14": "2.3.0",
        "PYSEC-2015-17": "2.6.0",
        "PYSEC-2018-28": "2.20.0",
    }
    assert status_of(pypa_db, "2.2", "jw-util") == {"PYSEC-2020-341": "affected"}
    assert status_of(pypa_db, "1.11.0", "py") == {"PYSEC-2022-42969": "affected"}  # last_affected
    assert status_of(pypa_db, "1.11.1", "py") == {}
    assert status_of(pypa_db, "1.0", "steam") == {"PYSEC-2019-125": "unverifiable"}  # fixed: "2019-09-12"
    assert status_of(pypa_db, "0.1.0", "binderhub") == {"PYSEC-2021-371": "unverifiable"}  # fixed: 0.2.0-n653


@needs_shared
@pytest.mark.shared_data
def test_pypa_warm_cache_matches_cold(pypa_db: AdvisoryDB, pypa_cache: Path) -> None:
    warm = AdvisoryDB.load(SHARED_OSV, pypa_cache)
    assert warm.from_cache and not pypa_db.from_cache
    assert (warm.count, warm.fingerprint) == (pypa_db.count, pypa_db.fingerprint)
    assert not warm.stale()
    for version in ("2.2.1", "2.3.0", "2.6.0"):
        assert warm.match("requests", version) == pypa_db.match("requests", version)
