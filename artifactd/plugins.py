"""The plugin manager and the typed facade callers use instead of ``pm.hook``."""
from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Any, Iterable, Sequence

import pluggy

from artifactd import hookspecs
from artifactd.errors import ConfigError
from artifactd.model import Verdict

if TYPE_CHECKING:
    from pathlib import Path

    import click

    from artifactd.app import App
    from artifactd.config import Config
    from artifactd.model import Artifact, Deletion

log = logging.getLogger(__name__)

GROUP = "artifactd"
ESSENTIAL = ("pypi",)
#: Built-ins, registered like third-party plugins but importable without an installed distribution.
BUILTINS: dict[str, str] = {
    "pypi": "artifactd.formats.pypi.plugin",
    "generic": "artifactd.formats.generic.plugin",
    "docker": "artifactd.formats.oci.plugin",
    "health": "artifactd_plugins.health",
    "license": "artifactd_plugins.license",
    "retention": "artifactd_plugins.retention",
}


def make_plugin_manager(
    disabled: Iterable[str] = (),
    *,
    load_entrypoints: bool = True,
    plugins: Sequence[object] = (),
) -> pluggy.PluginManager:
    """Specs, then blocked names, then entry points (or the built-ins), then ``check_pending``.

    Raises ConfigError when an essential plugin is disabled or missing, or when a plugin
    implements a hook artifactd does not define.
    """
    pm = pluggy.PluginManager(GROUP)
    pm.add_hookspecs(hookspecs)
    for name in disabled:
        if name in ESSENTIAL:
            raise ConfigError(f"plugin {name!r} is essential and cannot be disabled")
        pm.set_blocked(name)
    # Historic: replayed to every plugin registered below, which may add specs or keep ``pm``.
    pm.hook.artifactd_addhooks.call_historic(kwargs={"pluginmanager": pm})
    if load_entrypoints:
        _load_entrypoints(pm)
    for name, modname in BUILTINS.items():
        if not pm.has_plugin(name) and not pm.is_blocked(name):
            pm.register(_import(modname), name=name)
    for p in plugins:
        pm.register(p)
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        raise ConfigError(f"plugin error: {exc}") from None
    for name in ESSENTIAL:
        if not pm.has_plugin(name):
            raise ConfigError(f"essential plugin {name!r} is not installed")
    return pm


def _import(modname: str) -> ModuleType:
    import importlib

    return importlib.import_module(modname)


def _load_entrypoints(pm: pluggy.PluginManager) -> None:
    if not _others_declare(GROUP):
        return  # artifactd's own entry points name the built-ins, which are registered next
    try:
        pm.load_setuptools_entrypoints(GROUP)
    except Exception as exc:
        from importlib.metadata import entry_points

        names = ", ".join(sorted(ep.name for ep in entry_points(group=GROUP)))
        raise ConfigError(f"a plugin failed to load ({names}): {exc}") from exc


def _others_declare(group: str) -> bool:
    """Whether an installed distribution other than artifactd declares entry points in ``group``.

    importlib.metadata knows, but importing it and reading every installed distribution's
    metadata took ~20 ms of the server's ~160 ms start. Reading the entry_points.txt of the
    dist-info and egg-info directories on sys.path takes ~1 ms. Whatever this cannot look
    into (a zip file on sys.path, a finder that brings its own distributions) counts as yes,
    and importlib.metadata decides.
    """
    from importlib.machinery import PathFinder

    if any(getattr(f, "find_distributions", None) for f in sys.meta_path if f is not PathFinder):
        return True
    header = f"[{group}]"
    for entry in dict.fromkeys(sys.path):
        try:
            with os.scandir(entry or ".") as it:
                names = [e.name for e in it if e.name.endswith((".dist-info", ".egg-info"))]
        except NotADirectoryError:
            return True  # a zip (or egg) on sys.path
        except OSError:
            continue  # gone or unreadable: importlib.metadata would find nothing there either
        for name in names:
            if name.split("-", 1)[0].split(".", 1)[0].lower() == "artifactd":
                continue
            try:
                with open(os.path.join(entry or ".", name, "entry_points.txt"), encoding="utf-8") as f:
                    if any(line.strip().replace(" ", "") == header for line in f):
                        return True
            except OSError:
                continue  # no entry points (or an egg-info file): nothing declared
    return False


@dataclass(frozen=True)
class PluginInfo:
    """A registered plugin, as ``artifactd plugins list`` shows it."""

    name: str
    module: str
    hooks: tuple[str, ...]
    distribution: str | None
    version: str | None
    blocked: bool = False


@dataclass(frozen=True)
class GateResult:
    """All verdicts of one gate: ``denied`` when any plugin denied."""

    verdicts: tuple[Verdict, ...]

    @property
    def denied(self) -> bool:
        return any(v.decision == "deny" for v in self.verdicts)

    @property
    def reasons(self) -> list[str]:
        return [f"{v.plugin}: {v.reason}" if v.plugin else v.reason for v in self.verdicts if v.decision == "deny"]

    @property
    def reviews(self) -> list[str]:
        return [f"{v.plugin}: {v.reason}" if v.plugin else v.reason for v in self.verdicts if v.decision == "review"]


class Hooks:
    """Typed facade over the plugin manager: one method per hook."""

    def __init__(self, pm: pluggy.PluginManager) -> None:
        self.pm = pm

    # setup
    def register_formats(self) -> dict[str, Any]:
        registry: dict[str, Any] = {}
        self.pm.hook.artifactd_register_formats(registry=registry)
        return registry

    def register_repository_kinds(self) -> dict[Any, Any]:
        registry: dict[Any, Any] = {}
        self.pm.hook.artifactd_register_repository_kinds(registry=registry)
        return registry

    def register_commands(self, cli: "click.Group") -> None:
        self.pm.hook.artifactd_register_commands(cli=cli)

    def configure(self, config: "Config") -> None:
        self.pm.hook.artifactd_configure(config=config)

    def startup(self, app: "App") -> None:
        self.pm.hook.artifactd_startup(app=app)

    def shutdown(self, app: "App") -> None:
        self._events("artifactd_shutdown", app=app)

    # gates
    def _gate(self, hookname: str, **kwargs: Any) -> GateResult:
        verdicts: list[Verdict] = []
        hook = getattr(self.pm.hook, hookname)
        for impl in reversed(hook.get_hookimpls()):
            args = {k: v for k, v in kwargs.items() if k in impl.argnames}
            try:
                res = impl.function(**args)
            except Exception as exc:  # a broken gate fails closed, and says so
                log.exception("plugin %s failed in %s", impl.plugin_name, hookname)
                res = Verdict.deny(f"plugin error: {exc}")
            if res is None:
                continue
            for v in res if isinstance(res, (list, tuple)) else [res]:
                if not v.plugin:
                    v = Verdict(v.decision, v.reason, impl.plugin_name)
                verdicts.append(v)
        return GateResult(tuple(verdicts))

    def check_upload(self, repository: str, artifact: "Artifact", blob_path: "Path", metadata: dict[str, Any]) -> GateResult:
        return self._gate("artifactd_check_upload", repository=repository, artifact=artifact,
                          blob_path=blob_path, metadata=metadata)

    def check_proxy_fetch(self, repository: str, project: str, version: str, filename: str,
                          metadata: dict[str, Any]) -> GateResult:
        return self._gate("artifactd_check_proxy_fetch", repository=repository, project=project,
                          version=version, filename=filename, metadata=metadata)

    def check_promotion(self, source: str, target: str, artifact: "Artifact") -> GateResult:
        return self._gate("artifactd_check_promotion", source=source, target=target, artifact=artifact)

    def check_dependency(self, name: str, version: str) -> GateResult:
        return self._gate("artifactd_check_dependency", name=name, version=version)

    # providers
    def license_of(self, artifact: "Artifact", metadata: dict[str, Any]) -> str | None:
        result: str | None = self.pm.hook.artifactd_license_of(artifact=artifact, metadata=metadata)
        return result

    def upstream_auth(self, url: str) -> tuple[str, str] | None:
        result: tuple[str, str] | None = self.pm.hook.artifactd_upstream_auth(url=url)
        return result

    # reports
    def health_checks(self, app: "App") -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for res in self.pm.hook.artifactd_health_checks(app=app):
            out.extend(res or [])
        return out

    def check_report(self, app: "App", repository: str, artifacts: Sequence["Artifact"]) -> list[dict[str, Any]]:
        return [r for r in self.pm.hook.artifactd_check_report(app=app, repository=repository, artifacts=artifacts) if r]

    # retention
    def retention_select(self, app: "App", repository: str, artifacts: Sequence["Artifact"], now: float) -> list["Deletion"]:
        out: list[Deletion] = []
        for res in self.pm.hook.artifactd_retention_select(app=app, repository=repository, artifacts=artifacts, now=now):
            out.extend(res or [])
        return out

    def retention_keep(self, app: "App", repository: str, artifact: "Artifact") -> str | None:
        result: str | None = self.pm.hook.artifactd_retention_keep(app=app, repository=repository, artifact=artifact)
        return result

    # events
    def listens(self, hookname: str) -> bool:
        """Whether any plugin implements this hook."""
        return bool(getattr(self.pm.hook, hookname).get_hookimpls())

    def _events(self, hookname: str, **kwargs: Any) -> None:
        hook = getattr(self.pm.hook, hookname)
        for impl in reversed(hook.get_hookimpls()):
            try:
                impl.function(**{k: v for k, v in kwargs.items() if k in impl.argnames})
            except Exception:
                log.exception("plugin %s failed in %s", impl.plugin_name, hookname)

    def after_upload(self, repository: str, artifact: "Artifact") -> None:
        self._events("artifactd_after_upload", repository=repository, artifact=artifact)

    def after_download(self, repository: str, artifact: "Artifact", cached: bool) -> None:
        self._events("artifactd_after_download", repository=repository, artifact=artifact, cached=cached)

    def after_delete(self, repository: str, artifact: "Artifact", reason: str) -> None:
        self._events("artifactd_after_delete", repository=repository, artifact=artifact, reason=reason)

    def after_promotion(self, source: str, target: str, artifact: "Artifact") -> None:
        self._events("artifactd_after_promotion", source=source, target=target, artifact=artifact)

    # introspection
    def plugins(self) -> list[PluginInfo]:
        out = []
        dists = {id(p): d for p, d in self.pm.list_plugin_distinfo()}
        for name, plugin in self.pm.list_name_plugin():
            if plugin is None:
                out.append(PluginInfo(name, "", (), None, None, blocked=True))
                continue
            hooks = tuple(sorted(h.name for h in self.pm.get_hookcallers(plugin) or []))
            module = getattr(plugin, "__name__", type(plugin).__name__)
            d = dists.get(id(plugin))
            dist: str | None
            version: str | None
            if d is not None:
                dist, version = d.project_name, d.version
            elif BUILTINS.get(name) == module:  # ours, registered without reading entry points
                from artifactd import __version__

                dist, version = "artifactd", __version__
            else:
                dist = version = None
            out.append(PluginInfo(name=name, module=module, hooks=hooks, distribution=dist, version=version))
        return sorted(out, key=lambda p: p.name)
