"""The built-in ``license`` plugin: SPDX license policy as a gate and a report.

Configuration (``artifactd.toml``)::

    [plugins.license]
    allow = ["MIT", "BSD-3-Clause", "Apache-2.0"]
    deny = ["AGPL-3.0-only"]
    unknown = "review"     # or "allow" / "block"

Without a ``[plugins.license]`` table the plugin does nothing. The expression comes from the
``artifactd_license_of`` providers (this plugin's own provider runs last: ``License-Expression``,
else ``License``, else ``License ::`` classifiers, canonicalized with ``packaging.licenses``).
It is evaluated on the expression tree by :mod:`artifactd_plugins.licenses`: OR passes if any
branch passes, AND needs every term, deny beats allow.

``unknown`` decides what a "review" outcome does at the gates (no or invalid expression, or a
license in neither list while the allow list is non-empty): ``review`` lets it through and
reports it, ``block`` refuses it (403), ``allow`` lets it through silently. Denied licenses are
always refused at upload, first proxy fetch and promotion.
"""
from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pluggy

from artifactd import hookimpl
from artifactd.errors import ConfigError
from artifactd.model import Verdict

from artifactd_plugins._common import classifiers_of, iter_releases, meta_value
if TYPE_CHECKING:
    from artifactd_plugins.licenses import LicensePolicy, LicenseVerdict
    from artifactd.app import App
    from artifactd.config import Config
    from artifactd.model import Artifact

NAME = "license"
_KEYS = {"allow", "deny", "unknown"}
UNKNOWN = ("review", "allow", "block")


@dataclass(frozen=True)
class LicenseSettings:
    """``[plugins.license]``, validated."""

    policy: LicensePolicy
    allow: tuple[str, ...]
    deny: tuple[str, ...]
    unknown: str


def parse_settings(section: Mapping[str, Any]) -> LicenseSettings:
    """Validate ``[plugins.license]``; a typo in a deny list is an error, never a silent no-op."""
    for key in section:
        if key not in _KEYS:
            raise ConfigError(f"plugins.license: unknown key {key!r} (expected one of {', '.join(sorted(_KEYS))})")
    lists: dict[str, tuple[str, ...]] = {}
    for key in ("allow", "deny"):
        value = section.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"plugins.license.{key}: expected a list of SPDX license ids")
        lists[key] = tuple(value)
    # The SPDX machinery (and packaging's license table) loads only when a policy is configured.
    from artifactd_plugins.licenses import LicenseExpressionError, LicensePolicy

    unknown = section.get("unknown", "review")
    if unknown not in UNKNOWN:
        raise ConfigError(f"plugins.license.unknown: expected one of {', '.join(UNKNOWN)}, got {unknown!r}")
    try:
        policy = LicensePolicy.build(lists["allow"], lists["deny"], unknown)
    except (LicenseExpressionError, ValueError) as exc:
        raise ConfigError(f"plugins.license: {exc}") from None
    return LicenseSettings(policy, lists["allow"], lists["deny"], unknown)


class _State:
    def __init__(self) -> None:
        self.settings: LicenseSettings | None = None
        self.pm: pluggy.PluginManager | None = None
        self.lock = threading.Lock()


STATE = _State()


def expression_of(artifact: "Artifact | None", metadata: Mapping[str, Any],
                  pm: pluggy.PluginManager | None = None) -> tuple[str | None, str]:
    """(expression, source): the first other provider's answer, else this plugin's own reading.

    The report asks this for every release (50,000 on a large index): this plugin's own reading
    is worked out once, and the ``artifactd_license_of`` hook is called only when some other
    plugin implements it (through it, this plugin's trylast answer was the same reading again).
    """
    own, source = _from_metadata(metadata)
    others = _other_providers(pm or STATE.pm) if artifact is not None else None
    if others is not None:
        found = others(artifact=artifact, metadata=dict(metadata))
        if found:
            return str(found), source if own == found else "provider"
    return own, source


_OTHERS: list[Any] = [None, None]  # (the hook implementations it was built for, the subset caller)


def _other_providers(pm: pluggy.PluginManager | None) -> Any:
    """``artifactd_license_of`` without this plugin's own implementation; None when no other
    plugin implements it."""
    if pm is None:
        return None
    everyone = pm.hook.artifactd_license_of.get_hookimpls()
    impls = tuple(i for i in everyone if i.function is not artifactd_license_of)
    if not impls:
        return None
    if _OTHERS[0] != impls:
        ours = [i.plugin for i in everyone if i.function is artifactd_license_of]
        _OTHERS[:] = [impls, pm.subset_hook_caller("artifactd_license_of", remove_plugins=ours)]
    return _OTHERS[1]


def _from_metadata(metadata: Mapping[str, Any]) -> tuple[str | None, str]:
    from artifactd_plugins.licenses import license_expression_from

    return license_expression_from(
        meta_value(metadata, "license_expression"), meta_value(metadata, "license"), classifiers_of(metadata)
    )


def judge(expression: str | None, settings: LicenseSettings) -> LicenseVerdict:
    return settings.policy.evaluate(expression)


def _gate(name: str | None, version: str | None, artifact: "Artifact | None", metadata: Mapping[str, Any]) -> Verdict | None:
    settings = STATE.settings
    if settings is None:
        return None
    expression, _source = expression_of(artifact, metadata)
    verdict = judge(expression, settings)
    what = f"{name} {version}" if name else "this file"
    text = f"{what}: license {expression or 'unknown'}: {verdict.reason}"
    if verdict.decision == "deny":
        return Verdict.deny(text)
    if verdict.decision == "review":
        if settings.unknown == "block":
            return Verdict.deny(text + " (unknown = block)")
        if settings.unknown == "review":
            return Verdict("review", text)
    return None


# --- hooks -----------------------------------------------------------------------------------


@hookimpl
def artifactd_addhooks(pluginmanager: pluggy.PluginManager) -> None:
    STATE.pm = pluginmanager  # to ask the license_of providers from the gates


@hookimpl
def artifactd_configure(config: "Config") -> None:
    section = config.plugins.get(NAME)
    STATE.settings = parse_settings(section) if section is not None else None


@hookimpl(trylast=True)
def artifactd_license_of(metadata: dict[str, Any]) -> str | None:
    return _from_metadata(metadata)[0]


@hookimpl
def artifactd_check_upload(artifact: "Artifact", metadata: dict[str, Any]) -> Verdict | None:
    if artifact.kind != "pypi":
        return None
    return _gate(artifact.project_name or artifact.project, artifact.version, artifact, metadata or artifact.metadata)


@hookimpl
def artifactd_check_proxy_fetch(project: str, version: str, metadata: dict[str, Any]) -> Verdict | None:
    return _gate(project, version, None, metadata)


@hookimpl
def artifactd_check_promotion(artifact: "Artifact") -> Verdict | None:
    if artifact.kind != "pypi":
        return None
    return _gate(artifact.project_name or artifact.project, artifact.version, artifact, artifact.metadata)


@hookimpl
def artifactd_check_report(app: "App", repository: str, artifacts: Sequence["Artifact"]) -> dict[str, Any] | None:
    settings = STATE.settings
    if settings is None:
        return None
    counts = {"deny": 0, "review": 0, "allow": 0}
    packages: list[dict[str, Any]] = []
    for (project, version), files in iter_releases(artifacts):
        art = files[0]
        expression, source = expression_of(art, art.metadata, app.pm)
        verdict = judge(expression, settings)
        counts[verdict.decision] += 1
        packages.append({
            "package": project, "name": art.project_name or project, "version": version,
            "expression": expression, "source": source,
            "decision": verdict.decision, "chosen": verdict.chosen, "reason": verdict.reason,
        })
    order = {"deny": 0, "review": 1, "allow": 2}
    packages.sort(key=lambda p: (order[p["decision"]], p["package"], p["version"]))
    return {
        "plugin": NAME,
        "policy": {"allow": list(settings.allow), "deny": list(settings.deny), "unknown": settings.unknown},
        "summary": counts,
        "packages": packages,
    }
