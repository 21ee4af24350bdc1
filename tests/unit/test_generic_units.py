"""Units: matrix parameters, path checks, requirements parsing, the schema migration."""
from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from artifactd.build_service import parse_requirements, validate_build
from artifactd.errors import BadRequest
from artifactd.formats.generic.paths import clean_path, parse_assignments, parse_filters, parse_matrix, split_matrix
from artifactd.store import db as dbmod
from artifactd.store.db import SCHEMA_VERSION, MetadataStore


def test_split_matrix_only_last_segment() -> None:
    assert split_matrix("/repository/r/a;x=1/b.bin;k=v;k2=1,2") == ("/repository/r/a;x=1/b.bin", "k=v;k2=1,2")
    assert split_matrix("/repository/r/dir/") == ("/repository/r/dir/", "")
    assert split_matrix("/repository/r/b.bin") == ("/repository/r/b.bin", "")


def test_parse_matrix_decodes_once() -> None:
    assert parse_matrix("k=v;k2=v1,v2;enc=a%3Bb%2Cc%253D;flag") == {
        "k": ["v"], "k2": ["v1", "v2"], "enc": ["a;b,c%3D"], "flag": [""]}
    assert parse_matrix("k=1;k=2;k=1") == {"k": ["1", "2"]}
    for bad in ("=v", "k%0A=1", "k=%ff"):
        with pytest.raises(BadRequest):
            parse_matrix(bad)


def test_assignments_and_filters() -> None:
    assert parse_assignments(["a=1", "b=x,y", "c="]) == {"a": ["1"], "b": ["x", "y"], "c": [""]}
    with pytest.raises(BadRequest):
        parse_assignments(["novalue"])
    assert parse_filters(["a=1", "b"]) == [("a", "1"), ("b", None)]


@pytest.mark.parametrize("bad", ["../x", "a/../b", "a//b", "a/./b", "a\\b", "a/\x00", "x" * 2000])
def test_clean_path_refuses(bad: str) -> None:
    with pytest.raises(BadRequest):
        clean_path(bad)


def test_clean_path() -> None:
    assert clean_path("/models/a/1.0/model.pkl") == "models/a/1.0/model.pkl"
    assert clean_path("models/") == "models/"
    with pytest.raises(BadRequest):
        clean_path("models/", folder_ok=False)


def test_parse_requirements_formats() -> None:
    text = """
# pip-compile --generate-hashes
numpy==1.26.4 \\
    --hash=sha256:AAAA \\
    --hash=sha256:bbbb
requests[socks]==2.32.3 ; python_version >= "3.8"  # via x
-e git+https://example.invalid/x.git#egg=x
-r other.txt
--index-url http://127.0.0.1/simple/
unpinned>=1.0
Django===4.2
"""
    assert parse_requirements(text) == [
        ("numpy", "1.26.4", ["sha256:aaaa", "sha256:bbbb"]),
        ("requests", "2.32.3", []),
        ("Django", "4.2", []),
    ]
    freeze = "click==8.1.7\npluggy==1.5.0\nartifactd @ file:///work\n"
    assert [d[0] for d in parse_requirements(freeze)] == ["click", "pluggy"]


def test_parse_pylock() -> None:
    text = """lock-version = "1.0"
created-by = "tests"
[[packages]]
name = "numpy"
version = "1.26.4"
[[packages.wheels]]
name = "numpy-1.26.4-cp311-none-any.whl"
hashes = {sha256 = "abcd"}
[[packages]]
name = "local-thing"
"""
    assert parse_requirements(text) == [("numpy", "1.26.4", ["sha256:abcd"])]


def test_build_names() -> None:
    validate_build("fraud-detector", "42")
    validate_build("ML pipeline", "2024.06.01-3")
    for name, number in (("a/b", "1"), ("ok", "../1"), ("", "1"), ("ok", "")):
        with pytest.raises(BadRequest):
            validate_build(name, number)


def test_migration_from_schema_1(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    con = sqlite3.connect(path)
    con.executescript(dbmod._SCHEMA)
    con.execute("INSERT INTO meta(key, value) VALUES('schema', '1')")
    con.execute("INSERT INTO artifacts(repo, path, sha256, size, created) VALUES('r', 'p', ?, 1, 't')", ("a" * 64,))
    con.execute("INSERT INTO artifacts(repo, path, sha256, size, created, project) VALUES('r', 'q/1/q.whl', ?, 1, 't', 'q')",
                ("b" * 64,))
    con.commit()
    con.close()
    store = MetadataStore(path)
    assert store.schema_version() == SCHEMA_VERSION == 4
    assert store.builds() == [] and store.promotions() == []
    assert store.get_artifact("r", "p") is not None
    assert store.project_serial("r", "q") == 1  # v3: per-project serials filled in for existing rows
    plan = store.con.execute("EXPLAIN QUERY PLAN SELECT project, MAX(project_name) FROM artifacts "
                             "WHERE repo = 'r' AND project IS NOT NULL GROUP BY project").fetchall()
    assert "COVERING INDEX artifacts_project_name" in str(plan)  # v4: the project list reads only the index
    store.close()
    again = MetadataStore(path)  # idempotent
    assert again.schema_version() == 4
    again.close()


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    store = MetadataStore(tmp_path / "x.db")
    store.con.execute("UPDATE meta SET value = '99' WHERE key = 'schema'")
    store.close()
    with pytest.raises(RuntimeError, match="newer"):
        MetadataStore(tmp_path / "x.db")


def test_name_glob_search_builds_only_the_matches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A name glob is applied row by row, newest first, up to ``limit``: rows that do not match
    are never built (a glob over 50,000 files held them all, metadata parsed: ~200 MB)."""
    from artifactd import generic_service, service
    from artifactd.app import App

    app = App(tmp_path / "data", load_entrypoints=False)
    try:
        service.create_repository(app, "files", "hosted", "generic")
        src = tmp_path / "f"
        for i in range(30):
            src.write_bytes(f"file {i}".encode())
            generic_service.upload_local(app, "files", src, f"models/m{i:02d}.{'onnx' if i % 3 == 0 else 'bin'}",
                                         properties={"k": ["v"]} if i % 2 == 0 else {})
        built: list[str] = []
        real = dbmod._row_to_artifact
        monkeypatch.setattr(dbmod, "_row_to_artifact", lambda r: built.append(r[2]) or real(r))

        rows = generic_service.search(app, repos=["files"], name="*.onnx")
        assert [a.path for a, _ in rows] == [f"models/m{i:02d}.onnx" for i in (27, 24, 21, 18, 15, 12, 9, 6, 3, 0)]
        assert built == [a.path for a, _ in rows]  # the 20 .bin files were never built
        built.clear()
        rows = generic_service.search(app, repos=["files"], name="models/*.onnx", props=[("k", "v")], limit=2)
        assert [a.path for a, _ in rows] == ["models/m24.onnx", "models/m18.onnx"]
        assert built == ["models/m24.onnx", "models/m18.onnx"]
        assert generic_service.search(app, repos=["files"], name="*.onnx", limit=0) == []
        assert len(generic_service.search(app, repos=["files"])) == 30  # no glob: the SQL limit as before
    finally:
        app.close()
