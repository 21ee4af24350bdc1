"""The health, license and cleanup reports the web pages show, behind a few functions.

Until the built-in policy plugins provide a report service, the reports are computed here
from the pure policy modules (``artifactd_plugins.osv`` and ``artifactd_plugins.licenses``)
and the ``[plugins.health]`` / ``[plugins.license]`` configuration; the cleanup preview asks
the retention hooks. Swapping in the plugins' own service means changing
:func:`package_report` and :func:`cleanup_preview` only.
"""
from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

from artifactd.model import Artifact, Principal, isotime, utcnow

if TYPE_CHECKING:
    from artifactd.app import App

log = logging.getLogger(__name__)

SEVERITIES = ("malicious", "critical", "high", "medium", "low", "unknown")
LICENSE_DECISIONS = ("deny", "review", "allow")
_RANK = {s: i for i, s in enumerate(SEVERITIES)}

_lock = threading.Lock()
_dbs: dict[str, tuple[str, Any]] = {}  # source → (fingerprint, AdvisoryDB)
_errors: dict[str, str] = {}


# --- configuration ---------------------------------------------------------------------------

def _health_cfg(app: "App") -> dict[str, Any]:
    return dict(app.config.plugins.get("health", {}) or {})


def _license_cfg(app: "App") -> dict[str, Any] | None:
    cfg = app.config.plugins.get("license")
    return dict(cfg) if cfg else None


def advisory_db(app: "App") -> Any | None:
    """The configured OSV database, loaded once and reloaded when its files change; None if unset."""
    from artifactd_plugins.osv import AdvisoryDB, source_fingerprint

    source = _health_cfg(app).get("advisories")
    if not source:
        return None
    key = str(source)
    try:
        fingerprint = source_fingerprint(Path(key))
    except OSError as exc:
        _errors[key] = f"advisory source unreadable: {exc}"
        return None
    with _lock:
        hit = _dbs.get(key)
        if hit is not None and hit[0] == fingerprint:
            return hit[1]
        try:
            db = AdvisoryDB.load(Path(key), cache_dir=app.layout.root / "cache" / "advisories")
        except (OSError, ValueError) as exc:
            _errors[key] = f"advisory source unusable: {exc}"
            log.warning("advisories not loaded from %s: %s", key, exc)
            return None
        _errors.pop(key, None)
        _dbs[key] = (fingerprint, db)
        return db


def advisory_error(app: "App") -> str | None:
    source = _health_cfg(app).get("advisories")
    return _errors.get(str(source)) if source else None


def state(app: "App") -> str:
    """Changes when report inputs outside the repositories change (the advisory files)."""
    db = advisory_db(app)
    return db.fingerprint if db is not None else "-"


# --- per package ------------------------------------------------------------------------------

def license_verdict(app: "App", art: Artifact) -> dict[str, Any] | None:
    """``{"decision", "expression", "reason"}`` under ``[plugins.license]``; None when unconfigured."""
    from artifactd_plugins.licenses import LicenseExpressionError, evaluate, license_expression_from

    cfg = _license_cfg(app)
    meta = art.metadata or {}
    expression = app.hooks.license_of(art, meta)
    if expression is None:
        expression, _ = license_expression_from(meta.get("license_expression"), meta.get("license"),
                                                meta.get("classifiers") or ())
    if cfg is None:
        return {"decision": "none", "expression": expression, "reason": "no license policy configured"}
    try:
        verdict = evaluate(expression, cfg.get("allow", ()), cfg.get("deny", ()), cfg.get("unknown", "review"))
    except (LicenseExpressionError, ValueError, TypeError) as exc:
        return {"decision": "review", "expression": expression, "reason": f"license policy invalid: {exc}"}
    return {"decision": verdict.decision, "expression": verdict.expression or expression, "reason": verdict.reason}


def package_report(app: "App", art: Artifact) -> dict[str, Any]:
    """Advisories (merged by alias, worst first) and the license verdict of one distribution."""
    db = advisory_db(app)
    findings: list[dict[str, Any]] = []
    if db is not None and art.project and art.version:
        findings = [f.to_json() for f in db.match_merged(art.project, art.version)]
    return {"advisories": findings, "database": db is not None, "license": license_verdict(app, art)}


def worst(findings: Iterable[dict[str, Any]]) -> str | None:
    keys = ["malicious" if f.get("malicious") else f.get("severity", "unknown") for f in findings]
    return min(keys, key=lambda k: _RANK.get(k, 99)) if keys else None


# --- per repository ----------------------------------------------------------------------------

def releases(app: "App", repo: str) -> list[Artifact]:
    """One artifact per (project, version) of a PyPI repository: the first uploaded file."""
    seen: dict[tuple[str, str], Artifact] = {}
    for art in app.db.artifacts(repo, kind="pypi"):
        key = (art.project or "", art.version or "")
        if key not in seen or art.id < seen[key].id:
            seen[key] = art
    return list(seen.values())


def repository_report(app: "App", repo: str) -> dict[str, Any]:
    """Counts by severity and license decision, and packages worst first (Nexus-style health check)."""
    counts = {s: 0 for s in SEVERITIES}
    lic = {d: 0 for d in LICENSE_DECISIONS}
    packages = []
    for art in releases(app, repo):
        rep = package_report(app, art)
        for f in rep["advisories"]:
            counts["malicious" if f["malicious"] else f["severity"]] += 1
        verdict = rep["license"]
        if verdict and verdict["decision"] in lic:
            lic[verdict["decision"]] += 1
        w = worst(rep["advisories"])
        packages.append({"project": art.project, "name": art.project_name or art.project, "version": art.version,
                         "advisories": rep["advisories"], "worst": w, "license": verdict,
                         "downloads": art.downloads, "last_download": art.last_download})
    packages.sort(key=lambda p: (
        _RANK.get(p["worst"], 99) if p["worst"] else 99,
        -len(p["advisories"]),
        0 if (p["license"] or {}).get("decision") == "deny" else 1 if (p["license"] or {}).get("decision") == "review" else 2,
        p["project"] or "", p["version"] or ""))
    plugin_sections = app.hooks.check_report(app, repo, [])
    return {"repo": repo, "counts": counts, "licenses": lic, "packages": packages, "plugins": plugin_sections}


def summary(app: "App", repo: str) -> dict[str, int]:
    rep = repository_report(app, repo)
    out = {k: v for k, v in rep["counts"].items() if v}
    if rep["licenses"]["deny"]:
        out["license-denied"] = rep["licenses"]["deny"]
    if rep["licenses"]["review"]:
        out["license-review"] = rep["licenses"]["review"]
    return out


# --- cleanup -----------------------------------------------------------------------------------

def cleanup_policies(app: "App") -> dict[str, dict[str, Any]]:
    return {name: dict(p) for name, p in app.config.cleanup.items()}


def retention_available(app: "App") -> bool:
    return bool(app.pm.hook.artifactd_retention_select.get_hookimpls())


def cleanup_preview(app: "App", readable: Any = None) -> dict[str, Any]:
    """What the retention plugins would delete now: ``{"policies", "available", "items", "kept", "bytes"}``.

    Each item: repo, path, policy, reason, size. Deletions vetoed by ``retention_keep`` are listed
    under ``kept`` with the veto's reason. Nothing is changed.
    """
    policies = cleanup_policies(app)
    out: dict[str, Any] = {"policies": policies, "available": retention_available(app), "items": [], "kept": [],
                           "bytes": 0}
    if not policies or not out["available"]:
        return out
    repos: list[str] = []
    for p in policies.values():
        for r in p.get("repositories", ()) or ():
            if r not in repos and app.config.repo(r) is not None and (readable is None or readable(r)):
                repos.append(r)
    now = time.time()
    for repo in repos:
        arts = app.db.artifacts(repo)
        seen: set[int] = set()
        for d in app.hooks.retention_select(app, repo, arts, now):
            if d.artifact.id in seen:
                continue
            seen.add(d.artifact.id)
            item = {"id": d.artifact.id, "repo": repo, "path": d.artifact.path, "policy": d.policy,
                    "reason": d.reason, "size": d.artifact.size}
            veto = app.hooks.retention_keep(app, repo, d.artifact)
            if veto:
                out["kept"].append({**item, "kept": veto})
            else:
                out["items"].append(item)
                out["bytes"] += d.artifact.size
    return out


def run_cleanup(app: "App", principal: Principal, address: str | None, readable: Any = None) -> dict[str, Any]:
    """Apply the current preview: delete what it lists (blobs go at the next gc), audited per file."""
    preview = cleanup_preview(app, readable)
    deleted = []
    for item in preview["items"]:
        art = app.db.get_by_id(item["id"])
        if art is None or art.path != item["path"]:
            continue
        if app.hooks.retention_keep(app, item["repo"], art):  # re-checked just before deleting
            continue
        app.db.delete_artifact(art.id)
        app.db.audit(isotime(utcnow()), principal.user, address, "cleanup", item["repo"], art.path,
                     {"policy": item["policy"], "reason": item["reason"], "size": art.size, "sha256": art.sha256})
        app.hooks.after_delete(item["repo"], art, f"cleanup {item['policy']}: {item['reason']}")
        deleted.append(item)
    return {"deleted": deleted, "bytes": sum(i["size"] for i in deleted)}
