from __future__ import annotations

import threading
import time

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
