"""Build records: publish, show, scan (dependency and artifact gates) and promote.

A build is ``NAME/NUMBER`` with its artifacts (repository, path, sha256, size), its
Python dependencies (name, version, hashes), VCS data, properties and a status history.
Publishing tags every artifact with ``build.name``/``build.number`` properties, which
promotion carries to the copies, so "the production model of build 42" is a search.
"""
from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from packaging.utils import canonicalize_name

from artifactd.errors import BadRequest, Forbidden, NotFound
from artifactd.formats.generic.paths import Properties, clean_path
from artifactd.generic_service import check_target, repo_config
from artifactd.model import SYSTEM, Artifact, Principal, isotime, utcnow

if TYPE_CHECKING:
    from artifactd.app import App

Dependency = tuple[str, str, list[str]]  # (name, version, hashes like "sha256:<hex>")

_BUILD_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._ -]{0,127}$")
_BUILD_NUMBER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$")
_PIN = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[[^\]]*\])?\s*===?\s*([^\s;\\]+)")
_HASH = re.compile(r"--hash[= ]\s*([A-Za-z0-9_]+:[0-9A-Fa-f]+)")


def validate_build(name: str, number: str) -> None:
    if not _BUILD_NAME.match(name) or "/" in name:
        raise BadRequest(f"invalid build name {name!r}: letters, digits, space, '.', '_' or '-'")
    if not _BUILD_NUMBER.match(number):
        raise BadRequest(f"invalid build number {number!r}: letters, digits, '.', '_', '+' or '-'")


# --- dependencies ---------------------------------------------------------------------------

def parse_requirements(text: str) -> list[Dependency]:
    """Pinned dependencies from a requirements/lock file or ``pip freeze`` output.

    Understands ``name==version``, extras, environment markers, ``--hash=`` options and
    backslash continuations (pip-compile / ``uv pip compile --generate-hashes``), and
    ``pylock.toml`` (PEP 751). Unpinned lines, editable installs, URLs and options are
    skipped: only exact pins identify what the build ran with.
    """
    if text.lstrip().startswith(("lock-version", "[[packages]]")) or "\n[[packages]]" in text:
        return _parse_pylock(text)
    out: dict[tuple[str, str], list[str]] = {}
    logical = text.replace("\\\r\n", " ").replace("\\\n", " ")
    for line in logical.splitlines():
        line = line.split(" #", 1)[0].strip()
        if not line or line.startswith(("#", "-")):
            continue
        m = _PIN.match(line)
        if not m:
            continue
        key = (m.group(1), m.group(2))
        hashes = out.setdefault(key, [])
        hashes.extend(h.lower() for h in _HASH.findall(line) if h.lower() not in hashes)
    return [(n, v, h) for (n, v), h in out.items()]


def _parse_pylock(text: str) -> list[Dependency]:
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise BadRequest(f"invalid pylock.toml: {exc}") from None
    out: list[Dependency] = []
    for pkg in doc.get("packages", []):
        name, version = pkg.get("name"), pkg.get("version")
        if not name or not version:
            continue
        hashes: list[str] = []
        for dist in list(pkg.get("wheels", [])) + ([pkg["sdist"]] if "sdist" in pkg else []):
            for algo, value in (dist.get("hashes") or {}).items():
                h = f"{algo}:{value}".lower()
                if h not in hashes:
                    hashes.append(h)
        out.append((name, str(version), hashes))
    return out


def pip_freeze(python: str | None = None) -> list[Dependency]:
    """``python -m pip freeze --all`` of the given interpreter (default: this one)."""
    proc = subprocess.run([python or sys.executable, "-m", "pip", "freeze", "--all"], capture_output=True,
                          text=True, timeout=120)
    if proc.returncode != 0:
        raise BadRequest(f"pip freeze failed: {proc.stderr.strip().splitlines()[-1:] or proc.returncode}")
    return parse_requirements(proc.stdout)


# --- publish / show ---------------------------------------------------------------------------

def parse_artifact_ref(ref: str) -> tuple[str, str]:
    repo, sep, path = ref.partition(":")
    if not sep or not repo or not path:
        raise BadRequest(f"expected REPO:PATH, got {ref!r}")
    return repo, clean_path(path, folder_ok=False)


def publish(app: "App", name: str, number: str, *, artifacts: Sequence[str], dependencies: Sequence[Dependency] = (),
            vcs: Mapping[str, Any] | None = None, properties: Properties | None = None,
            principal: Principal = SYSTEM) -> dict[str, Any]:
    """Record build ``name/number``. Every ``REPO:PATH`` must be a stored file. Returns the record."""
    validate_build(name, number)
    arts: list[Artifact] = []
    for ref in artifacts:
        repo, path = parse_artifact_ref(ref)
        repo_config(app, repo)
        art = app.db.get_artifact(repo, path)
        if art is None:
            raise NotFound(f"build artifact {repo}:{path} is not stored")
        arts.append(art)
    deps = [(n.strip(), v.strip(), list(h)) for n, v, h in dependencies]
    for n, v, _ in deps:
        if not n or not v:
            raise BadRequest("a dependency needs a name and a version")
    now = isotime(utcnow())
    vcs_clean = {k: v for k, v in (vcs or {}).items() if v}
    app.db.add_build(name, number, now, principal.user, arts, deps, vcs_clean, properties or {})
    app.db.audit(now, principal.user, None, "build-publish", None, f"{name}/{number}",
                 {"artifacts": len(arts), "dependencies": len(deps)})
    return show(app, name, number)


def show(app: "App", name: str, number: str) -> dict[str, Any]:
    record = app.db.build(name, number)
    if record is None:
        raise NotFound(f"build {name}/{number} not found")
    record.pop("id", None)
    return record


def list_builds(app: "App", name: str | None = None) -> list[dict[str, Any]]:
    rows = app.db.builds(name)
    for r in rows:
        r.pop("id", None)
    return rows


# --- scan and promote -------------------------------------------------------------------------

def _verdicts(gate: Any) -> list[dict[str, str]]:
    return [{"decision": v.decision, "reason": v.reason, "plugin": v.plugin} for v in gate.verdicts]


def evaluate(app: "App", record: dict[str, Any]) -> dict[str, Any]:
    """Run the dependency gate over every dependency and the upload gate over every artifact.

    Returns ``{"result": "passed"|"failed", "denied": [...], "reviews": [...], "dependencies": [...],
    "artifacts": [...]}``; nothing is stored.
    """
    denied: list[str] = []
    reviews: list[str] = []
    deps_out = []
    for d in record["dependencies"]:
        gate = app.hooks.check_dependency(d["name"], d["version"])
        label = f"{canonicalize_name(d['name'])}=={d['version']}"
        denied += [f"{label}: {r}" for r in gate.reasons]
        reviews += [f"{label}: {r}" for r in gate.reviews]
        deps_out.append({"name": d["name"], "version": d["version"], "verdicts": _verdicts(gate),
                         "denied": gate.denied})
    arts_out = []
    for a in record["artifacts"]:
        art = app.db.get_artifact(a["repo"], a["path"])
        label = f"{a['repo']}:{a['path']}"
        if art is None or art.sha256 != a["sha256"]:
            denied.append(f"{label}: the stored file is missing or differs from the build record")
            arts_out.append({**a, "verdicts": [], "denied": True})
            continue
        metadata: dict[str, Any] = art.metadata if art.kind == "pypi" else app.db.properties(art.id)
        gate = app.hooks.check_upload(art.repo, art, app.blobs.path(art.sha256), metadata)
        denied += [f"{label}: {r}" for r in gate.reasons]
        reviews += [f"{label}: {r}" for r in gate.reviews]
        arts_out.append({**a, "verdicts": _verdicts(gate), "denied": gate.denied})
    return {"result": "failed" if denied else "passed", "denied": denied, "reviews": reviews,
            "dependencies": deps_out, "artifacts": arts_out}


def scan(app: "App", name: str, number: str, *, principal: Principal = SYSTEM) -> dict[str, Any]:
    """Evaluate the gates over the build and store the verdict (also in its history)."""
    record = app.db.build(name, number)
    if record is None:
        raise NotFound(f"build {name}/{number} not found")
    now = isotime(utcnow())
    result = evaluate(app, record) | {"time": now, "user": principal.user}
    app.db.set_build_scan(record["id"], result, now, principal.user)
    app.db.audit(now, principal.user, None, "build-scan", None, f"{name}/{number}", {"result": result["result"]})
    return result


def promote(app: "App", name: str, number: str, target: str, *, status: str = "promoted",
            comment: str | None = None, move: bool = False, force: bool = False,
            principal: Principal = SYSTEM) -> dict[str, Any]:
    """Copy (or move) every artifact of the build to ``target`` with its properties.

    Runs the scan gates again (dependencies and artifacts) and ``check_promotion`` for
    every artifact; any deny refuses the promotion (Forbidden, nothing changed) unless
    ``force``, which is recorded with the overridden reasons. Status, comment, user and
    time go into the build's history, in the same transaction as the copies.
    """
    record = app.db.build(name, number)
    if record is None:
        raise NotFound(f"build {name}/{number} not found")
    if not record["artifacts"]:
        raise BadRequest(f"build {name}/{number} has no artifacts to promote")
    tcfg = repo_config(app, target)
    evaluation = evaluate(app, record)
    denied = list(evaluation["denied"])
    reviews = list(evaluation["reviews"])
    items: list[tuple[int, str]] = []
    arts: list[Artifact] = []
    for a in record["artifacts"]:
        if a["repo"] == target:
            continue  # already there (an earlier move)
        check_target(app, a["repo"], target)
        art = app.db.get_artifact(a["repo"], a["path"])
        if art is None:
            continue  # reported by evaluate() as denied
        gate = app.hooks.check_promotion(a["repo"], target, art)
        denied += [f"{a['repo']}:{a['path']}: {r}" for r in gate.reasons]
        reviews += [f"{a['repo']}:{a['path']}: {r}" for r in gate.reviews]
        items.append((art.id, target))
        arts.append(art)
    if denied and not force:
        raise Forbidden("promotion refused: " + "; ".join(denied))
    now = isotime(utcnow())
    detail = {"overridden": denied, "reviews": reviews, "files": len(items)}
    done = app.db.promote(items, move=move, overwrite=tcfg.overwrite_allowed, time=now, user=principal.user,
                          forced=bool(denied), comment=comment, build_id=record["id"], status=status,
                          detail=detail)
    if not items:  # nothing to copy: still record the status change
        app.db.promote([], move=move, overwrite=False, time=now, user=principal.user, forced=bool(denied),
                       comment=comment, build_id=record["id"], status=status, detail=detail)
    for src, copy, _ in done:
        app.hooks.after_promotion(src.repo, target, copy)
    app.db.audit(now, principal.user, None, "build-promote", target, f"{name}/{number}",
                 {"status": status, "move": move, "forced": bool(denied), "overridden": denied})
    return {"build": f"{name}/{number}", "target": target, "status": status, "move": move, "forced": bool(denied),
            "overridden": denied, "reviews": reviews,
            "items": [{"repo": s.repo, "path": s.path, "sha256": s.sha256, "outcome": o} for s, _, o in done]}
