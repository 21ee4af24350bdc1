"""Benchmarks for artifactd_plugins.osv on the shared PyPA advisory snapshot.

Run (benchmarks are not in ``testpaths``)::

    .venv/bin/python -m pytest benchmarks/bench_osv.py -p no:cacheprovider

* cold load: parse every YAML file (no cache);
* warm load: reuse the JSON index cache (RELIABILITY.md §4 budget: ~0.1 s);
* matching 500 (name, version) pairs on a warm database, both on first touch (advisories are
  built and compiled lazily) and steady state.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from artifactd_plugins.osv import AdvisoryDB

SHARED_OSV = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "osv-pypa"

pytestmark = [
    pytest.mark.shared_data,
    pytest.mark.skipif(not SHARED_OSV.is_dir(), reason=f"shared PyPA advisory snapshot not found at {SHARED_OSV}"),
]

PAIRS = 500


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("osv-cache")
    AdvisoryDB.load(SHARED_OSV, path)
    return path


def sample_pairs(db: AdvisoryDB, count: int = PAIRS) -> list[tuple[str, str]]:
    """Deterministic mix: listed versions (hits), a far-future version (clean) per package."""
    pairs: list[tuple[str, str]] = []
    packages = sorted(db.packages)
    round_ = 0
    while len(pairs) < count:
        for name in packages:
            listed = [v for advisory in db.advisories_for(name) for entry in advisory.affected for v in entry.versions]
            if round_ % 2 == 0 and listed:
                pairs.append((name, listed[len(listed) // 2]))
            else:
                pairs.append((name.replace("-", "_").upper(), "9999.0"))
            if len(pairs) == count:
                break
        round_ += 1
    return pairs


def test_cold_load(benchmark) -> None:  # type: ignore[no-untyped-def]
    db = benchmark.pedantic(AdvisoryDB.load, args=(SHARED_OSV,), rounds=3, iterations=1)
    assert db.count == 2651 and not db.from_cache


def test_warm_load(benchmark, cache_dir: Path) -> None:  # type: ignore[no-untyped-def]
    db = benchmark.pedantic(AdvisoryDB.load, args=(SHARED_OSV, cache_dir), rounds=10, iterations=1, warmup_rounds=1)
    assert db.count == 2651 and db.from_cache


def test_match_500_first_touch(benchmark, cache_dir: Path) -> None:  # type: ignore[no-untyped-def]
    pairs = sample_pairs(AdvisoryDB.load(SHARED_OSV, cache_dir))

    def fresh() -> tuple[tuple[AdvisoryDB], dict[str, object]]:
        return (AdvisoryDB.load(SHARED_OSV, cache_dir),), {}

    def run(db: AdvisoryDB) -> int:
        return sum(len(db.match(name, version)) for name, version in pairs)

    hits = benchmark.pedantic(run, setup=fresh, rounds=5, iterations=1)
    assert hits > 0


def test_match_500_steady_state(benchmark, cache_dir: Path) -> None:  # type: ignore[no-untyped-def]
    db = AdvisoryDB.load(SHARED_OSV, cache_dir)
    pairs = sample_pairs(db)
    hits = benchmark(lambda: sum(len(db.match(name, version)) for name, version in pairs))
    assert hits > 0
