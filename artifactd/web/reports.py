"""The health, license and cleanup reports the web pages show, from the policy services.

Everything comes from :mod:`artifactd.policy` and the plugins' ``artifactd_check_report``
sections (``health``: OSV advisories; ``license``: SPDX verdicts) and retention hooks, so the
pages show exactly what ``artifactd check`` and ``artifactd cleanup`` report. This module only
reshapes those sections for rendering.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

from artifactd import policy
from artifactd.model import Artifact, Principal

if TYPE_CHECKING:
    from artifactd.app import App

log = logging.getLogger(__name__)

SEVERITIES = ("malicious", "critical", "high", "medium", "low", "unknown")
LICENSE_DECISIONS = ("deny", "review", "allow")
_RANK = {s: i for i, s in enumerate(SEVERITIES)}


def state(app: "App") -> str:
    """Changes when report inputs outside the repositories change (the advisory files)."""
    source = (app.config.plugins.get("health") or {}).get("advisories")
    if not source:
        return "-"
    try:
        from artifactd_plugins.osv import source_fingerprint

        path = Path(str(source)).expanduser()
        return source_fingerprint(path if path.is_absolute() else app.layout.root / path)
    except (OSError, ImportError):
        return "unreadable"


def _sections(app: "App", repo: str, artifacts: list[Artifact]) -> dict[str, dict[str, Any]]:
    return {s.get("plugin", f"section{i}"): s for i, s in enumerate(app.hooks.check_report(app, repo, artifacts))}


def _license_entry(entry: dict[str, Any] | None, configured: bool) -> dict[str, Any] | None:
    if entry is None:
        return {"decision": "none", "expression": None, "reason": "no license policy configured"} if not configured else None
    return {"decision": entry["decision"], "expression": entry.get("expression"), "reason": entry.get("reason", "")}


# --- per release -----------------------------------------------------------------------------------

def package_report(app: "App", files: Sequence[Artifact]) -> dict[str, Any]:
    """Advisories (merged by alias, worst first) and the license verdict of one release's files."""
    if not files:
        return {"advisories": [], "database": False, "license": None, "error": None}
    sections = _sections(app, files[0].repo, list(files))
    health = sections.get("health")
    lic = sections.get("license")
    pk = (health or {}).get("packages") or []
    lic_pk = (lic or {}).get("packages") or []
    return {"advisories": pk[0]["findings"] if pk else [],
            "quarantined": bool(pk and pk[0].get("quarantined")),
            "database": bool(health and health.get("database")),
            "error": (health or {}).get("error"),
            "license": _license_entry(lic_pk[0] if lic_pk else None, lic is not None)}


def worst(findings: Sequence[dict[str, Any]]) -> str | None:
    keys = ["malicious" if f.get("malicious") else f.get("severity", "unknown") for f in findings]
    return min(keys, key=lambda k: _RANK.get(k, 99)) if keys else None


# --- per repository --------------------------------------------------------------------------------

def _sections_of(rep: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    return rep["sections"].get("health") or {}, rep["sections"].get("license") or {}


def _counts(health: dict[str, Any], lic: dict[str, Any]) -> tuple[dict[str, int], dict[str, int]]:
    findings = (health.get("summary") or {}).get("findings") or {}
    return ({s: int(findings.get(s, 0)) for s in SEVERITIES},
            {d: int((lic.get("summary") or {}).get(d, 0)) for d in LICENSE_DECISIONS})


def repository_report(app: "App", repo: str) -> dict[str, Any]:
    """Counts by severity and license decision, and the releases with findings, worst first."""
    rep = policy.check_report(app, repo)["repositories"][0]
    health, lic = _sections_of(rep)
    counts, licenses = _counts(health, lic)
    merged: dict[tuple[str, str], dict[str, Any]] = {}
    for p in health.get("packages") or []:
        merged[(p["package"], p["version"])] = {
            "project": p["package"], "name": p["name"], "version": p["version"], "advisories": p["findings"],
            "worst": p["worst"], "quarantined": p.get("quarantined", False), "license": None,
            "last_download": p.get("last_download")}
    for p in lic.get("packages") or []:
        entry = merged.get((p["package"], p["version"]))
        if entry is None:
            if p["decision"] == "allow":
                continue
            entry = merged[(p["package"], p["version"])] = {
                "project": p["package"], "name": p["name"], "version": p["version"], "advisories": [],
                "worst": None, "quarantined": False, "license": None, "last_download": None}
        entry["license"] = _license_entry(p, True)
    order = {"deny": 0, "review": 1}
    packages = sorted(merged.values(), key=lambda p: (
        not p["quarantined"], _RANK.get(p["worst"], 99) if p["worst"] else 99, -len(p["advisories"]),
        order.get((p["license"] or {}).get("decision", ""), 2), p["project"], p["version"]))
    return {"repo": repo, "releases": rep["releases"], "counts": counts, "licenses": licenses, "packages": packages,
            "database": health.get("database"), "error": health.get("error"),
            "health": bool(health), "license": bool(lic)}


def summary(app: "App", repo: str) -> dict[str, int]:
    """The home page's counts: from the sections' summaries, without merging their package lists."""
    counts, licenses = _counts(*_sections_of(policy.check_report(app, repo)["repositories"][0]))
    out = {k: v for k, v in counts.items() if v}
    if licenses["deny"]:
        out["license-denied"] = licenses["deny"]
    if licenses["review"]:
        out["license-review"] = licenses["review"]
    return out


# --- cleanup ---------------------------------------------------------------------------------------

def retention_available(app: "App") -> bool:
    return bool(app.pm.hook.artifactd_retention_select.get_hookimpls())


def cleanup_preview(app: "App", readable: Callable[[str], bool] | None = None) -> dict[str, Any]:
    """The dry run of every cleanup policy (``policy.plan_cleanup``): what, which rule, bytes freed.

    Items in repositories the caller may not read are counted in ``hidden``, not listed.
    """
    policies = {name: dict(p) for name, p in app.config.cleanup.items()}
    out: dict[str, Any] = {"policies": policies, "available": retention_available(app), "items": [], "kept": [],
                           "bytes": 0, "bytes_selected": 0, "capped": 0, "hidden": 0, "repos": []}
    if not policies or not out["available"]:
        return out
    plan = policy.plan_cleanup(app).to_dict()
    for d in plan["deletions"]:
        if readable is not None and not readable(d["repository"]):
            out["hidden"] += 1
            continue
        out["items"].append({"repo": d["repository"], "path": d["path"], "policy": d["policy"], "reason": d["reason"],
                             "size": d["size"], "last_download": d["last_download"]})
    out["kept"] = [{"repo": d["repository"], "path": d["path"], "policy": d["policy"], "kept": d["kept_because"]}
                   for d in plan["kept"] if readable is None or readable(d["repository"])]
    out["repos"] = sorted({d["repository"] for d in plan["deletions"]})
    out["bytes"] = plan["bytes_freed"]
    out["bytes_selected"] = plan["bytes_selected"]
    out["capped"] = plan["capped"]
    return out


def run_cleanup(app: "App", principal: Principal) -> dict[str, Any]:
    """Plan again and apply (``policy.apply_cleanup``: re-checks pins and protections, audits each row)."""
    plan = policy.apply_cleanup(app, policy.plan_cleanup(app), principal)
    return {"deleted": plan.deleted, "bytes": plan.bytes_freed, "skipped": plan.skipped}


def plan_repos(app: "App") -> list[str]:
    return sorted({d.artifact.repo for d in policy.plan_cleanup(app).deletions})
