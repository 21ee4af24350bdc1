"""The plugin contract: one ``test_hook_<name>`` per hookspec (a meta-test checks), plugin manager rules.

Test plugins are classes registered through ``App(plugins=[...], load_entrypoints=False)``
(devpi's ``makexom(plugins=[...])``, datasette's class plugins).
"""
from __future__ import annotations

import inspect
import re
import urllib.request
from pathlib import Path
from typing import Any, Iterator

import click
import pluggy
import pytest

from artifactd import hookimpl, hookspecs, service
from artifactd.app import App
from artifactd.errors import ConfigError, Forbidden
from artifactd.http.server import serve_in_thread
from artifactd.model import Artifact, Deletion, Verdict
from artifactd.plugins import Hooks, make_plugin_manager
from tests.dists import make_wheel

ROOT = Path(__file__).resolve().parents[2]
SPECS = sorted(n for n, f in inspect.getmembers(hookspecs, inspect.isfunction) if n.startswith("artifactd_"))


def make_app(tmp_path: Path, *plugins: object, config: str = "") -> App:
    data = tmp_path / "data"
    App(data, load_entrypoints=False).close()
    if config:
        with open(data / "artifactd.toml", "a") as fh:
            fh.write("\n" + config)
    return App(data, plugins=list(plugins), load_entrypoints=False)


@pytest.fixture
def wheel(tmp_path: Path) -> Path:
    return make_wheel(tmp_path / "dist", "demo", "1.0", license_expression="MIT")


def upload(app: App, path: Path) -> Artifact:
    return service.upload_file(app, "pypi-local", path).artifact


# --- meta-tests -----------------------------------------------------------------------------

def test_every_hookspec_has_a_test() -> None:
    text = "\n".join(p.read_text() for p in (ROOT / "tests").rglob("test_*.py"))
    missing = [n for n in SPECS if f"def test_hook_{n.removeprefix('artifactd_')}(" not in text]
    assert not missing, f"hookspecs without a test_hook_<name>: {missing}"


def test_every_hookspec_is_documented_with_its_signature() -> None:
    doc = (ROOT / "docs" / "plugins.md").read_text()
    for name in SPECS:
        sig = inspect.signature(getattr(hookspecs, name))
        params = ", ".join(sig.parameters)
        assert re.search(rf"{name}\({re.escape(params)}\)", doc), f"docs/plugins.md lacks `{name}({params})`"


def test_every_hookspec_has_a_docstring() -> None:
    for name in SPECS:
        assert (getattr(hookspecs, name).__doc__ or "").strip(), name


# --- plugin manager -------------------------------------------------------------------------

def test_builtins_are_registered_and_listed(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    names = {p.name for p in app.hooks.plugins()}
    assert {"pypi", "health", "license", "retention"} <= names


def test_builtins_are_entry_points_too() -> None:
    text = (ROOT / "pyproject.toml").read_text()
    for name, mod in (("health", "health"), ("license", "license"), ("retention", "retention")):
        assert f'{name} = "artifactd_plugins.{mod}"' in text


def test_disable_a_plugin_by_name_in_the_config(tmp_path: Path) -> None:
    app = make_app(tmp_path, config='[plugins]\ndisable = ["health", "retention"]\n')
    infos = {p.name: p for p in app.hooks.plugins()}
    assert infos["health"].blocked and infos["retention"].blocked
    assert not infos["license"].blocked


def test_an_essential_plugin_cannot_be_disabled(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="essential"):
        make_app(tmp_path, config='[plugins]\ndisable = ["pypi"]\n')


def test_disable_must_be_a_list_of_names(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="plugins.disable"):
        make_app(tmp_path, config='[plugins]\ndisable = "health"\n')


def test_an_implementation_of_an_unknown_hook_is_rejected() -> None:
    class Typo:
        @hookimpl
        def artifactd_check_uplaod(self) -> None:  # misspelt on purpose
            pass

    with pytest.raises(ConfigError, match="artifactd_check_uplaod"):
        make_plugin_manager(load_entrypoints=False, plugins=[Typo()])


def test_a_gate_that_raises_fails_closed(tmp_path: Path, wheel: Path) -> None:
    class Broken:
        @hookimpl
        def artifactd_check_upload(self) -> None:
            raise RuntimeError("boom")

    app = make_app(tmp_path, Broken())
    with pytest.raises(Forbidden, match="plugin error: boom"):
        upload(app, wheel)


# --- setup ------------------------------------------------------------------------------------

def test_hook_addhooks(tmp_path: Path) -> None:
    class ExtraSpecs:
        @pluggy.HookspecMarker("artifactd")
        def artifactd_extra(self, x: int) -> int:  # type: ignore[empty-body]
            """An extra hook."""

    class Adder:
        @hookimpl
        def artifactd_addhooks(self, pluginmanager: pluggy.PluginManager) -> None:
            pluginmanager.add_hookspecs(ExtraSpecs)

    class User:
        @hookimpl
        def artifactd_extra(self, x: int) -> int:
            return x * 2

    pm = make_plugin_manager(load_entrypoints=False, plugins=[Adder(), User()])
    assert pm.hook.artifactd_extra(x=21) == [42]


def test_hook_register_formats(tmp_path: Path) -> None:
    class Fmt:
        @hookimpl
        def artifactd_register_formats(self, registry: dict[str, Any]) -> None:
            registry["raw"] = "raw files"

    app = make_app(tmp_path, Fmt())
    formats = app.hooks.register_formats()
    assert formats["raw"] == "raw files" and "pypi" in formats


def test_hook_register_repository_kinds(tmp_path: Path) -> None:
    made = []

    class Kind:
        @hookimpl
        def artifactd_register_repository_kinds(self, registry: dict[Any, Any]) -> None:
            # A kind no built-in provides: a proxy of generic files.
            registry[("proxy", "generic")] = lambda app, cfg: made.append(cfg.name) or cfg

    app = make_app(tmp_path, Kind(), config='[repositories.files]\ntype = "proxy"\nformat = "generic"\n'
                                            'url = "http://127.0.0.1:9/"\n')
    app.repository("files")
    assert made == ["files"]


def test_hook_register_commands() -> None:
    group = click.Group("x")

    class Cmd:
        @hookimpl
        def artifactd_register_commands(self, cli: click.Group) -> None:
            cli.add_command(click.Command("hello", callback=lambda: None))

    Hooks(make_plugin_manager(load_entrypoints=False, plugins=[Cmd()])).register_commands(group)
    assert "hello" in group.commands


def test_hook_configure(tmp_path: Path) -> None:
    seen: list[Any] = []

    class Conf:
        @hookimpl
        def artifactd_configure(self, config: Any) -> None:
            section = config.plugins.get("conf", {})
            if section.get("bad"):
                raise ConfigError("plugins.conf.bad: not allowed")
            seen.append(dict(section))

    app = make_app(tmp_path, Conf(), config="[plugins.conf]\nlevel = 1\n")
    assert seen[-1] == {"level": 1}
    path = app.layout.config
    path.write_text(path.read_text().replace("level = 1", "level = 2\nbad = true"))
    import os
    os.utime(path, ns=(1, 10**18))
    assert app.reload_if_changed() is False  # the plugin refused it: previous config kept
    assert app.config.plugins["conf"] == {"level": 1}
    assert seen[-1] == {"level": 1}


def test_hook_startup(tmp_path: Path) -> None:
    events = []

    class Life:
        @hookimpl
        def artifactd_startup(self, app: App) -> None:
            events.append("start")

    app = make_app(tmp_path, Life())
    httpd, thread = serve_in_thread(app)
    httpd.shutdown()
    httpd.server_close()
    thread.join(5)
    assert events == ["start"]


def test_hook_shutdown(tmp_path: Path) -> None:
    events = []

    class Life:
        @hookimpl
        def artifactd_shutdown(self, app: App) -> None:
            events.append("stop")
            raise RuntimeError("errors in shutdown are logged, not raised")

    app = make_app(tmp_path, Life())
    httpd, thread = serve_in_thread(app)
    httpd.shutdown()
    httpd.server_close()
    thread.join(5)
    assert events == ["stop"]


# --- gates ------------------------------------------------------------------------------------

class DenyEvil:
    @hookimpl
    def artifactd_check_upload(self, artifact: Artifact) -> Verdict | None:
        return Verdict.deny("evil inside") if "evil" in (artifact.filename or "") else None


class DenyAlways:
    @hookimpl
    def artifactd_check_upload(self) -> Verdict:
        return Verdict.deny("never on Fridays")


class AllowAlways:
    @hookimpl(tryfirst=True)
    def artifactd_check_upload(self) -> Verdict:
        return Verdict.allow("fine by me")


def test_hook_check_upload(tmp_path: Path) -> None:
    app = make_app(tmp_path, AllowAlways(), DenyEvil(), DenyAlways())
    evil = make_wheel(tmp_path / "d", "evil", "1.0")
    with pytest.raises(Forbidden) as info:
        upload(app, evil)
    # every implementation ran; an early allow masks nothing; all reasons are reported
    assert "evil inside" in info.value.message and "never on Fridays" in info.value.message
    assert app.db.artifacts("pypi-local") == []


def test_hook_check_proxy_fetch(tmp_path: Path) -> None:
    class NoOld:
        @hookimpl
        def artifactd_check_proxy_fetch(self, project: str, version: str, filename: str) -> Verdict | None:
            return Verdict.deny(f"{filename}: too old") if version.startswith("0.") else None

    app = make_app(tmp_path, NoOld())
    bad = app.hooks.check_proxy_fetch("pypi-remote", "demo", "0.1", "demo-0.1.tar.gz", {})
    good = app.hooks.check_proxy_fetch("pypi-remote", "demo", "1.0", "demo-1.0.tar.gz", {})
    assert bad.denied and bad.reasons[0].endswith("demo-0.1.tar.gz: too old")
    assert not good.denied


def test_hook_check_promotion(tmp_path: Path, wheel: Path) -> None:
    class OnlyToProd:
        @hookimpl
        def artifactd_check_promotion(self, source: str, target: str, artifact: Artifact) -> Verdict | None:
            return None if target == "prod" else Verdict.deny(f"{artifact.filename} may only go to prod")

    app = make_app(tmp_path, OnlyToProd())
    art = upload(app, wheel)
    assert not app.hooks.check_promotion("pypi-local", "prod", art).denied
    assert app.hooks.check_promotion("pypi-local", "staging", art).denied


def test_hook_check_dependency(tmp_path: Path) -> None:
    class NoLeftPad:
        @hookimpl
        def artifactd_check_dependency(self, name: str, version: str) -> Verdict | None:
            return Verdict.deny("unpublished") if name == "left-pad" else None

    app = make_app(tmp_path, NoLeftPad())
    assert app.hooks.check_dependency("left-pad", "1.0").reasons[0].endswith("unpublished")
    assert not app.hooks.check_dependency("requests", "2.32.0").denied


# --- providers --------------------------------------------------------------------------------

def test_hook_license_of(tmp_path: Path, wheel: Path) -> None:
    class Table:
        @hookimpl
        def artifactd_license_of(self, artifact: Artifact) -> str | None:
            return {"demo": "Apache-2.0", "third": "BSD-3-Clause"}.get(artifact.project or "")

    app = make_app(tmp_path, Table(), config='[plugins.license]\ndeny = ["Apache-2.0"]\n')
    art = upload(app, make_wheel(tmp_path / "x", "other", "1.0", license_expression="MIT"))
    assert app.hooks.license_of(art, art.metadata) == "MIT"  # built-in provider answers last
    with pytest.raises(Forbidden, match="Apache-2.0"):  # the provider's answer drives the license gate
        upload(app, wheel)
    # ... and the report: the provider's answer where it gives one, the file's own metadata elsewhere
    upload(app, make_wheel(tmp_path / "t", "third", "1.0", license_expression="MIT"))
    from artifactd.policy import check_report

    section = check_report(app, "pypi-local")["repositories"][0]["sections"]["license"]
    pkgs = {p["package"]: p for p in section["packages"]}
    assert (pkgs["third"]["expression"], pkgs["third"]["source"]) == ("BSD-3-Clause", "provider")
    assert pkgs["other"]["expression"] == "MIT" and pkgs["other"]["source"] != "provider"


def test_hook_upstream_auth(tmp_path: Path) -> None:
    class Creds:
        @hookimpl
        def artifactd_upstream_auth(self, url: str) -> tuple[str, str] | None:
            return ("ci", "secret") if url.startswith("https://internal.example/") else None

    app = make_app(tmp_path, Creds())
    assert app.hooks.upstream_auth("https://internal.example/simple/") == ("ci", "secret")
    assert app.hooks.upstream_auth("https://other.example/simple/") is None


# --- reports ----------------------------------------------------------------------------------

def test_hook_health_checks(tmp_path: Path) -> None:
    class Disk:
        @hookimpl
        def artifactd_health_checks(self) -> list[dict[str, Any]]:
            return [{"name": "disk", "ok": False, "detail": "almost full"}]

    app = make_app(tmp_path, Disk())
    httpd, thread = serve_in_thread(app)
    try:
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(httpd.url + "/-/health", timeout=5)
        assert info.value.code == 503
        assert b"almost full" in info.value.read()
        info.value.close()
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


def test_hook_check_report(tmp_path: Path, wheel: Path) -> None:
    from artifactd.policy import check_report

    class Count:
        @hookimpl
        def artifactd_check_report(self, repository: str, artifacts: list[Artifact]) -> dict[str, Any]:
            return {"plugin": "count", "summary": {"files": sum(1 for _ in artifacts)}, "packages": []}

    app = make_app(tmp_path, Count())
    upload(app, wheel)
    report = check_report(app, "pypi-local")
    assert report["repositories"][0]["sections"]["count"]["summary"] == {"files": 1}


def test_check_report_loads_no_files_when_no_plugin_reports(tmp_path: Path, wheel: Path, monkeypatch: Any) -> None:
    """Unconfigured plugins answer None: the report then counts files and releases in SQL and
    never loads the repository's rows (the web home page asks for it on every repository)."""
    from artifactd.policy import check_report

    app = make_app(tmp_path)
    upload(app, wheel)
    upload(app, make_wheel(tmp_path / "d2", "demo", "2.0"))
    loaded: list[str] = []
    real = app.db.iter_artifacts
    monkeypatch.setattr(app.db, "iter_artifacts", lambda repo, *a, **k: loaded.append(repo) or real(repo, *a, **k))
    rep = check_report(app, "pypi-local")["repositories"][0]
    assert (rep["files"], rep["releases"], rep["sections"]) == (2, 2, {})
    assert loaded == []

    class Count:
        @hookimpl
        def artifactd_check_report(self, repository: str, artifacts: list[Artifact]) -> dict[str, Any]:
            return {"plugin": "count", "summary": {"files": sum(1 for _ in artifacts)}, "packages": []}

    app.pm.register(Count())
    rep = check_report(app, "pypi-local")["repositories"][0]
    assert (rep["files"], rep["releases"], rep["sections"]["count"]["summary"]) == (2, 2, {"files": 2})
    assert loaded == ["pypi-local"]

    # The installed plugins (health, license) unconfigured, as after `artifactd init`: nothing loaded.
    full = App(tmp_path / "with-entry-points")
    try:
        upload(full, wheel)
        assert {"health", "license"} <= {name for name, _ in full.pm.list_name_plugin()}
        monkeypatch.setattr(full.db, "iter_artifacts", lambda repo, *a, **k: loaded.append("full") or iter([]))
        rep = check_report(full, "pypi-local")["repositories"][0]
        assert (rep["files"], rep["releases"], rep["sections"]) == (1, 1, {})
        assert loaded == ["pypi-local"]
    finally:
        full.close()


def test_check_report_streams_rows_one_release_at_a_time(tmp_path: Path, monkeypatch: Any) -> None:
    """Plugins get the repository's rows as a sequence that streams from the database, one
    release's files after another; random access still works (it reads them all once)."""
    from artifactd.policy import check_report
    from artifactd.store import db as dbmod
    from artifactd_plugins import iter_releases, releases  # the public spelling for plugin authors
    from tests.dists import make_sdist

    app = make_app(tmp_path)
    # uploaded interleaved, so that upload order is not release order
    for name, version, sdist in [("zeta", "1.0", False), ("alpha", "2.0", False), ("zeta", "1.0", True),
                                 ("alpha", "1.0", True), ("alpha", "2.0", True), ("mid", "0.1", False)]:
        maker = make_sdist if sdist else make_wheel
        upload(app, maker(tmp_path / f"{name}-{version}-{sdist}", name, version))
    monkeypatch.setattr(dbmod, "_row_to_artifact", counting := _CountingRows(dbmod._row_to_artifact))
    seen: dict[str, Any] = {}

    class Streamer:
        @hookimpl
        def artifactd_check_report(self, repository: str, artifacts: Any) -> dict[str, Any] | None:
            if not artifacts:
                return {"plugin": "stream", "summary": {}, "packages": []}
            groups = []
            for key, files in iter_releases(artifacts):
                groups.append((key, [f.filename for f in files]))
                # rows are read a batch at a time: never the whole repository ahead of the consumer
                assert counting.made <= sum(len(g[1]) for g in groups) + 2
            seen["groups"] = groups
            seen["len"] = len(artifacts)
            seen["first"] = artifacts[0].filename  # indexing reads the rows into a list
            seen["again"] = [key for key, _ in iter_releases(artifacts)]  # a second pass
            return {"plugin": "stream", "summary": {}, "packages": []}

    app.pm.register(Streamer())
    monkeypatch.setattr(app.db, "iter_artifacts", lambda repo, batch=2: type(app.db).iter_artifacts(app.db, repo, batch))
    rep = check_report(app, "pypi-local")["repositories"][0]
    assert (rep["files"], rep["releases"]) == (6, 4)
    expected = [(k, [f.filename for f in v]) for k, v in sorted(releases(app.db.artifacts("pypi-local")).items())]
    assert seen["groups"] == expected
    for key in [("alpha", "2.0"), ("zeta", "1.0")]:  # wheel before sdist within a release
        assert [f.rsplit(".", 1)[-1] for f in dict(seen["groups"])[key]] == ["whl", "gz"]
    assert seen["len"] == 6 and seen["first"] is not None
    assert seen["again"] == [k for k, _ in expected]


def test_streamed_rows_survive_writes_between_rows(tmp_path: Path) -> None:
    """A plugin may write (every write hands the thread's pooled connection back) while it walks
    the rows: the walk goes on, over the snapshot it started with."""
    app = make_app(tmp_path)
    for v in ("1.0", "2.0", "3.0"):
        upload(app, make_wheel(tmp_path / v, "demo", v))
    seen = []
    for art in app.db.artifact_rows("pypi-local"):
        seen.append(art.version)
        if len(seen) == 1:
            upload(app, make_wheel(tmp_path / "4.0", "demo", "4.0"))  # a write mid-walk
            app.db.set_aside()
    assert seen == ["1.0", "2.0", "3.0"]
    assert [a.version for a in app.db.artifact_rows("pypi-local")] == ["1.0", "2.0", "3.0", "4.0"]


class _CountingRows:
    """Wraps ``_row_to_artifact`` and counts the Artifacts made."""

    def __init__(self, real: Any) -> None:
        self.real, self.made = real, 0

    def __call__(self, row: Any) -> Artifact:
        self.made += 1
        return self.real(row)


# --- retention --------------------------------------------------------------------------------

def test_hook_retention_select(tmp_path: Path, wheel: Path) -> None:
    from artifactd.policy import plan_cleanup

    given: list[Any] = []

    class All:
        @hookimpl
        def artifactd_retention_select(self, artifacts: Any) -> list[Deletion]:
            given.append(artifacts)
            return [Deletion(a, "everything", "test policy") for a in artifacts]

    app = make_app(tmp_path, All(), config='[cleanup.everything]\nrepositories = ["pypi-local"]\nolder-than = "999d"\n')
    upload(app, wheel)
    upload(app, make_wheel(tmp_path / "d2", "demo", "2.0"))
    plan = plan_cleanup(app)
    assert [d.artifact.version for d in plan.deletions] == ["1.0"]  # 2.0 is the latest: kept
    assert [why for _, why in plan.kept] == ["latest release of demo"]
    # the rows stream from the database (not a list held whole), and can be read again
    assert not isinstance(given[0], list) and given[0].release_ordered
    assert [a.version for a in given[0]] == [a.version for a in given[0]] == ["1.0", "2.0"]


def test_hook_retention_keep(tmp_path: Path, wheel: Path) -> None:
    from artifactd.policy import plan_cleanup

    class KeepOne:
        @hookimpl(tryfirst=True)
        def artifactd_retention_keep(self, artifact: Artifact) -> str | None:
            return "legal hold" if artifact.version == "1.0" else None

    app = make_app(tmp_path, KeepOne(), config='[cleanup.p]\nrepositories = ["pypi-local"]\nolder-than = "0s"\n')
    for v in ("1.0", "1.1", "2.0"):
        upload(app, make_wheel(tmp_path / v, "demo", v))
    plan = plan_cleanup(app)
    assert [d.artifact.version for d in plan.deletions] == ["1.1"]
    assert sorted(why for _, why in plan.kept) == ["latest release of demo", "legal hold"]


# --- events -----------------------------------------------------------------------------------

class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, ...]] = []

    @hookimpl
    def artifactd_after_upload(self, repository: str, artifact: Artifact) -> None:
        self.events.append(("upload", repository, artifact.filename or ""))

    @hookimpl
    def artifactd_after_download(self, repository: str, artifact: Artifact, cached: bool) -> None:
        self.events.append(("download", repository, artifact.filename or "", str(cached)))

    @hookimpl
    def artifactd_after_delete(self, repository: str, artifact: Artifact, reason: str) -> None:
        self.events.append(("delete", repository, artifact.filename or "", reason))

    @hookimpl
    def artifactd_after_promotion(self, source: str, target: str, artifact: Artifact) -> None:
        self.events.append(("promotion", source, target))
        raise RuntimeError("event errors are logged, never fatal")


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    yield Recorder()


def test_hook_after_upload(tmp_path: Path, wheel: Path, recorder: Recorder) -> None:
    app = make_app(tmp_path, recorder)
    upload(app, wheel)
    upload(app, wheel)  # same bytes again: no new commit, no event
    assert recorder.events == [("upload", "pypi-local", wheel.name)]


def test_hook_after_download(tmp_path: Path, wheel: Path, recorder: Recorder) -> None:
    app = make_app(tmp_path, recorder)
    art = upload(app, wheel)
    httpd, thread = serve_in_thread(app)
    try:
        with urllib.request.urlopen(f"{httpd.url}/repository/pypi-local/packages/{art.path}", timeout=5) as r:
            r.read()
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)
    assert ("download", "pypi-local", wheel.name, "True") in recorder.events
    assert app.db.get_by_id(art.id).downloads == 1  # type: ignore[union-attr]


def test_hook_after_delete(tmp_path: Path, wheel: Path, recorder: Recorder) -> None:
    from artifactd.policy import apply_cleanup, plan_cleanup

    app = make_app(tmp_path, recorder, config='[cleanup.p]\nrepositories = ["pypi-local"]\nolder-than = "0s"\n')
    upload(app, wheel)
    upload(app, make_wheel(tmp_path / "d2", "demo", "2.0"))
    apply_cleanup(app, plan_cleanup(app))
    deletes = [e for e in recorder.events if e[0] == "delete"]
    assert [e[:3] for e in deletes] == [("delete", "pypi-local", wheel.name)]
    assert deletes[0][3].startswith("cleanup p: uploaded")


def test_hook_after_promotion(tmp_path: Path, wheel: Path, recorder: Recorder) -> None:
    app = make_app(tmp_path, recorder)
    art = upload(app, wheel)
    app.hooks.after_promotion("pypi-local", "prod", art)  # raises inside: logged only
    assert ("promotion", "pypi-local", "prod") in recorder.events


# --- finding third-party plugins without importlib.metadata ----------------------------------

def _dist(site: Path, name: str, entry_points: str | None) -> None:
    d = site / f"{name}-1.0.dist-info"
    d.mkdir(parents=True)
    (d / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    if entry_points is not None:
        (d / "entry_points.txt").write_text(entry_points)


def test_others_declare_sees_a_third_party_entry_point(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from artifactd.plugins import _others_declare

    _dist(tmp_path, "unrelated", "[console_scripts]\nx = y:z\n")
    _dist(tmp_path, "nothing_declared", None)
    _dist(tmp_path, "artifactd", "[artifactd]\npypi = artifactd.formats.pypi.plugin\n")
    monkeypatch.setattr("sys.path", [str(tmp_path), str(tmp_path / "gone")])
    assert not _others_declare("artifactd"), "artifactd's own entry points are the built-ins"
    _dist(tmp_path, "acme_plugin", "[console_scripts]\nacme = acme:main\n\n[artifactd]\nacme = acme_plugin\n")
    assert _others_declare("artifactd")
    assert not _others_declare("some.other.group")


def test_others_declare_leaves_a_zip_on_sys_path_to_importlib_metadata(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from artifactd.plugins import _others_declare

    bundle = tmp_path / "bundle.zip"
    bundle.write_bytes(b"PK\x05\x06" + b"\0" * 18)  # an empty zip: what is inside is not looked at
    monkeypatch.setattr("sys.path", [str(bundle)])
    assert _others_declare("artifactd")


def test_a_third_party_plugin_on_sys_path_is_loaded_and_listed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.delitem(sys.modules, "acme_plugin", raising=False)  # and restored: imported below
    site = tmp_path / "site"
    site.mkdir()
    (site / "acme_plugin.py").write_text(
        "import artifactd\n\n@artifactd.hookimpl\ndef artifactd_startup(app):\n    pass\n")
    _dist(site, "acme_plugin", "[artifactd]\nacme = acme_plugin\n")
    monkeypatch.syspath_prepend(str(site))
    import importlib

    importlib.invalidate_caches()
    infos = {p.name: p for p in Hooks(make_plugin_manager()).plugins()}
    assert infos["acme"].module == "acme_plugin" and infos["acme"].hooks == ("artifactd_startup",)
    assert (infos["acme"].distribution, infos["acme"].version) == ("acme_plugin", "1.0")
    # the built-ins name their distribution whether or not entry points were read
    assert infos["health"].distribution == "artifactd"
