"""order_key (the fast sort key of index pages) must order exactly as packaging's Version does."""
from __future__ import annotations

import itertools
import random

from packaging.version import InvalidVersion, Version

from artifactd.repositories.hosted import order_key, version_key

VERSIONS = [
    "0", "0.0", "0.0.0", "1", "1.0", "1.0.0", "1.0.1", "1.1", "1.10", "1.2", "2!0.1", "1!1.0",
    "1.0a1", "1.0a2", "1.0b1", "1.0rc1", "1.0c1", "1.0.dev0", "1.0.dev1", "1.0a1.dev1", "1.0a1.post1",
    "1.0a1.post1.dev2", "1.0.post1", "1.0.post1.dev1", "1.0.post2", "1.0-1", "1.0+local", "1.0+local.2",
    "1.0+local.10", "1.0+2", "1.0+10", "1.0+abc.1", "1.0+1.abc", "1.0+abc", "1.0+ABC.Def", "1.0.0+a",
    "1.0rc1+x", "1.0.dev0+y", "not-a-version", "another one", "v1.0", "1.0.0.0.0", "10", "2", "0.9.dev3",
]


def _cmp(a, b) -> int:
    return (a > b) - (a < b)


def test_order_key_agrees_with_version_comparisons() -> None:
    for a, b in itertools.product(VERSIONS, repeat=2):
        assert _cmp(order_key(a), order_key(b)) == _cmp(version_key(a), version_key(b)), (a, b)


def test_order_key_random_versions() -> None:
    rnd = random.Random(7)
    parts = ["", "a1", "b2", "rc3", ".post1", ".dev4", "+l.1", "+1.l"]
    pool = []
    for _ in range(400):
        v = ".".join(str(rnd.randint(0, 3)) for _ in range(rnd.randint(1, 4))) + rnd.choice(parts) + rnd.choice(parts)
        try:
            Version(v)
        except InvalidVersion:
            continue
        pool.append(v)
    assert sorted(pool, key=version_key) == sorted(pool, key=order_key)
