from __future__ import annotations

import random
import threading
import time
from pathlib import Path

from artifactd.config import default_config, make_repo
from artifactd.fifo import FifoGate
from artifactd.http.server import _local_only


def test_waiters_enter_in_arrival_order() -> None:
    gate = FifoGate(1)
    order: list[int] = []
    gate.__enter__()
    threads = []
    for i in range(8):
        t = threading.Thread(target=lambda i=i: (gate.__enter__(), order.append(i), gate.__exit__(None, None, None)))
        t.start()
        threads.append(t)
        time.sleep(0.02)  # arrive one after another
    gate.__exit__(None, None, None)
    for t in threads:
        t.join(timeout=5)
    assert order == list(range(8))


def test_released_lets_others_run_and_takes_the_slot_back() -> None:
    gate = FifoGate(1)
    ran = threading.Event()
    with gate:
        with gate.released():
            t = threading.Thread(target=lambda: (gate.__enter__(), ran.set(), gate.__exit__(None, None, None)))
            t.start()
            assert ran.wait(5)
            t.join()
        # the slot is ours again: another thread cannot get in
        blocked = threading.Event()
        t2 = threading.Thread(target=lambda: (gate.__enter__(), blocked.set(), gate.__exit__(None, None, None)))
        t2.start()
        assert not blocked.wait(0.1)
    assert blocked.wait(5)
    t2.join()


def test_only_hosted_and_groups_of_hosted_are_gated() -> None:
    cfg = default_config()
    proxy = make_repo(name="remote", type="proxy", format="pypi", url="http://127.0.0.1:9/simple/")
    cfg = cfg.with_repo(proxy)
    cfg = cfg.with_repo(make_repo(name="all", type="group", format="pypi", members=("pypi-local", "remote")))
    assert _local_only(cfg, "pypi-local", ()) and _local_only(cfg, "pypi", ())
    assert not _local_only(cfg, "remote", ()) and not _local_only(cfg, "all", ())
    assert not _local_only(cfg, "missing", ())


def test_the_servers_answer_follows_each_configuration(tmp_path: Path) -> None:
    """Remembered per configuration object: a group that gains a proxy member is no longer gated,
    and loses the gate's answer again when the proxy leaves (many configurations in a row, so a
    cache keyed by ``id(cfg)`` would sooner or later read a dead configuration's answer)."""
    from dataclasses import replace

    from artifactd.app import App
    from artifactd.http.server import make_server

    app = App(tmp_path / "d")
    server = make_server(app, "127.0.0.1", 0)
    try:
        app.set_config(app.config.with_repo(
            make_repo(name="remote", type="proxy", format="pypi", url="http://127.0.0.1:9/simple/")))
        with_proxy = random.Random(7)
        for _ in range(100):
            group = app.config.repo("pypi")
            assert group is not None
            assert server.local_only("pypi") is (group.members == ("pypi-local",))
            members = ("pypi-local", "remote") if with_proxy.random() < 0.5 else ("pypi-local",)
            app.set_config(app.config.with_repo(replace(group, members=members)), save=False)
    finally:
        server.server_close()
        app.close()
