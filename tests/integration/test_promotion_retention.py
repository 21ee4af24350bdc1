"""Promotion and retention together: promoted files are never cleaned up; the two are serialized."""
from __future__ import annotations

import threading
from dataclasses import replace
from pathlib import Path

from artifactd.app import App
from artifactd.generic_service import promote
from artifactd.policy import apply_cleanup, plan_cleanup
from artifactd.service import create_repository, upload_file
from tests.dists import make_wheel


def _setup(app: App, tmp_path: Path) -> None:
    create_repository(app, "py-dev", "hosted")
    create_repository(app, "py-prod", "hosted")
    for v in ("1.0", "1.1", "2.0"):
        upload_file(app, "py-dev", make_wheel(tmp_path / v, "svc", v))
    cfg = app.config
    app.set_config(replace(cfg, cleanup={"dev-cleanup": {"repositories": ["py-dev"], "older-than": "0s"}}))


def test_promoted_release_is_kept_by_cleanup(app: App, tmp_path: Path) -> None:
    _setup(app, tmp_path)
    promote(app, "py-dev", "py-prod", package="svc==1.0")
    plan = plan_cleanup(app, "dev-cleanup")
    deleted = {d.artifact.version for d in plan.deletions}
    kept = {d.artifact.version: why for d, why in plan.kept}
    assert deleted == {"1.1"}  # 2.0 is the latest, 1.0 was promoted
    assert "1.0" in kept and "promot" in kept["1.0"]
    apply_cleanup(app, plan)
    assert sorted(a.version for a in app.db.artifacts("py-dev")) == ["1.0", "2.0"]
    assert [a.version for a in app.db.artifacts("py-prod")] == ["1.0"]


def test_concurrent_promotion_and_cleanup_are_serialized(app: App, tmp_path: Path) -> None:
    """RELIABILITY #41: whichever commits first wins; a promoted copy always survives."""
    for _ in range(5):
        sub = tmp_path / str(_)
        sub.mkdir()
        a = App(sub / "data")
        _setup(a, sub)
        plan = plan_cleanup(a, "dev-cleanup")  # selects 1.0 and 1.1
        assert {d.artifact.version for d in plan.deletions} == {"1.0", "1.1"}
        errors: list[Exception] = []

        def do_promote() -> None:
            try:
                promote(a, "py-dev", "py-prod", package="svc==1.0")
            except Exception as exc:  # the cleanup deleted it first: the promotion is refused
                errors.append(exc)

        t1 = threading.Thread(target=do_promote)
        t2 = threading.Thread(target=lambda: apply_cleanup(a, plan))
        t1.start()
        t2.start()
        t1.join()
        t2.join()
        prod = [x.version for x in a.db.artifacts("py-prod")]
        dev = sorted(x.version for x in a.db.artifacts("py-dev"))
        if errors:
            assert prod == [] and "1.0" not in dev
        else:
            assert prod == ["1.0"] and "1.0" in dev  # the promoted source was protected at apply time
        from artifactd.store.gc import fsck

        assert not fsck(a).damaged
        a.close()
