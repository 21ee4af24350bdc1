"""Modules imported on first use (artifactd.deferred): ``serve`` defers ``ssl`` this way."""
from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from artifactd import deferred
from tests.conftest import Proc


@pytest.fixture
def slowmod(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A module whose code takes a while and counts its runs (in a file, outside the module)."""
    name = f"artifactd_test_slowmod_{time.monotonic_ns()}"
    runs = tmp_path / "runs"
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(f"""
        import time
        with open({str(runs)!r}, "a") as fh:
            fh.write("x")
        time.sleep(0.2)
        VALUE = 42
        def where():
            return __name__
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name
    sys.modules.pop(name, None)


def runs(tmp_path: Path) -> int:
    p = tmp_path / "runs"
    return len(p.read_text()) if p.exists() else 0


def test_import_does_not_run_the_module_its_first_use_does(slowmod: str, tmp_path: Path) -> None:
    assert deferred.defer(slowmod)
    assert not deferred.defer(slowmod)  # already in sys.modules
    mod = __import__(slowmod)  # what `import slowmod` does: the stand-in, nothing run
    assert deferred.is_deferred(slowmod) and runs(tmp_path) == 0
    assert mod.__name__ == slowmod and mod.__spec__ is not None and runs(tmp_path) == 0
    assert mod.VALUE == 42 and mod.where() == slowmod
    assert not deferred.is_deferred(slowmod) and runs(tmp_path) == 1
    assert sys.modules[slowmod] is mod  # one module object, whoever imported it and when
    assert __import__(slowmod) is mod and runs(tmp_path) == 1


def test_threads_that_first_use_it_together_wait_for_one_load(slowmod: str, tmp_path: Path) -> None:
    assert deferred.defer(slowmod)
    mod = __import__(slowmod)
    seen: list[object] = []
    start = threading.Barrier(8)

    def use() -> None:
        start.wait()
        try:
            seen.append(mod.VALUE)
        except AttributeError as exc:  # a half-made module
            seen.append(exc)

    threads = [threading.Thread(target=use) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert seen == [42] * 8
    assert runs(tmp_path) == 1


def test_setting_an_attribute_loads_it_first(slowmod: str, tmp_path: Path) -> None:
    assert deferred.defer(slowmod)
    mod = __import__(slowmod)
    mod.VALUE = 7  # a monkeypatch must not be overwritten by the module's own code later
    assert runs(tmp_path) == 1 and mod.VALUE == 7


def test_what_cannot_be_deferred_is_left_alone() -> None:
    assert not deferred.defer("os")  # imported already
    assert not deferred.defer("email")  # a package
    assert not deferred.defer("artifactd_no_such_module")
    assert not deferred.defer("xml.dom")


def test_ssl_deferred_before_http_server_still_works_when_used() -> None:
    """In a fresh interpreter, as ``serve`` does it: http.server imports without loading ssl;
    http.client still has HTTPSConnection; the first use of ssl loads it, and it works."""
    code = textwrap.dedent("""
        import sys
        from artifactd import deferred
        assert deferred.defer("ssl")
        import http.server, http.client
        assert deferred.is_deferred("ssl") and "_ssl" not in sys.modules
        assert hasattr(http.client, "HTTPSConnection")
        import ssl
        ctx = ssl.create_default_context()
        assert isinstance(ctx, ssl.SSLContext) and "_ssl" in sys.modules
        assert http.client.ssl is ssl is sys.modules["ssl"] and not deferred.is_deferred("ssl")
        import urllib3
        urllib3.PoolManager().connection_from_url("https://127.0.0.1:9/")
        print("ok")
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_a_serving_server_has_not_loaded_ssl(server_process: Proc) -> None:
    """The real ``artifactd serve``, answering requests: no _ssl module in its memory map."""
    import urllib.request

    server_process.start()
    with urllib.request.urlopen(f"{server_process.url}/repository/pypi/simple/", timeout=10) as r:
        assert r.status == 200
    assert server_process.proc is not None
    maps = Path(f"/proc/{server_process.proc.pid}/maps")
    if not maps.exists():
        pytest.skip("no /proc on this system")
    assert "_ssl" not in maps.read_text()
