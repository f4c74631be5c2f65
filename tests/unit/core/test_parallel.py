"""atelier.core.parallel: results in the items' order whatever the number of worker processes."""

from __future__ import annotations

import os
import time
from functools import partial
from pathlib import Path

import pytest

from atelier.core.parallel import deal, dealt_map, gather, ordered_map, preloaded_modules, start


def _tagged(offset: int, item: int) -> tuple[int, int]:
    return item + offset, os.getpid()


@pytest.mark.parametrize("items", [list(range(7)), [3], [], [5, 1]])
def test_dealt_map_gives_the_items_results_in_order(items):
    results = dealt_map(partial(_tagged, 10), items, workers=2)
    assert [value for value, _ in results] == [item + 10 for item in items]
    assert dealt_map(partial(_tagged, 10), items, workers=1) == [(item + 10, os.getpid()) for item in items]
    if len(items) > 1:  # every other item in the same worker process (one task), none in this one
        pids = [pid for _, pid in results]
        assert os.getpid() not in pids and pids[0::2] == [pids[0]] * len(pids[0::2])
        assert pids[1::2] == [pids[1]] * len(pids[1::2])


def test_dealt_map_with_more_workers_than_items():
    assert [value for value, _ in dealt_map(partial(_tagged, 0), [4, 2], workers=5)] == [4, 2]
    assert [value for value, _ in ordered_map(partial(_tagged, 0), [4, 2], workers=5)] == [4, 2]


def _wait_for(path: Path, seconds: float) -> int:
    """Wait until `path` exists (the caller writes it after `start` returned): the worker's pid."""
    deadline = time.monotonic() + seconds
    while not path.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} never appeared: the caller was blocked while the task ran")
        time.sleep(0.05)
    return os.getpid()


def _fails(message: str) -> None:
    raise ValueError(message)


def test_start_runs_in_another_process_while_the_caller_goes_on(tmp_path):
    signal = tmp_path / "go"
    future = start(_wait_for, signal, seconds=60)
    signal.write_text("")  # only reachable if start returned before the task finished
    assert future.result(timeout=120) not in (os.getpid(), None)
    assert start(partial(_tagged, 3), 4).result(timeout=120)[0] == 7


def test_start_passes_the_tasks_error_to_the_caller():
    with pytest.raises(ValueError, match="bad input"):
        start(_fails, "bad input").result(timeout=120)


def _uses_a_pool(items: list[int]) -> int:
    from joblib import Parallel, delayed

    return sum(Parallel(n_jobs=2, backend="loky")(delayed(abs)(item) for item in items)) + sum(
        ordered_map(abs, items, workers=2))


def test_a_started_task_that_used_a_pool_ends_its_worker_at_once():
    """Without shutting the task's own loky pool (joblib's, which scikit-learn's n_jobs uses), its worker waits at
    exit for the pool's idle timeout (minutes)."""
    import multiprocessing

    def started_workers() -> list:  # start's workers (this process's own loky pool, if any, is not one)
        return [p for p in multiprocessing.active_children() if p.name.startswith("ForkServerProcess")]

    assert start(_uses_a_pool, [-1, 2, -3]).result(timeout=120) == 12
    deadline = time.monotonic() + 60
    while started_workers() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not started_workers()


@pytest.mark.parametrize(("items", "hands"), [(list(range(7)), 2), (list(range(7)), 3), ([4], 2), ([], 2), ([1, 2], 5)])
def test_gather_puts_the_dealt_hands_back_in_order(items, hands):
    dealt = deal(items, hands)
    assert len(dealt) == min(hands, len(items)) and all(dealt)
    assert dealt[0] == items[0::hands] if items else dealt == []
    assert gather([[item * 10 for item in hand] for hand in dealt]) == [item * 10 for item in items]


def test_the_fork_server_preloads_the_callers_atelier_modules_only():
    loaded = ["numpy", "atelier", "atelier.segment.cluster", "atelierx", "sklearn.base", "atelier.core.paths"]
    assert preloaded_modules(loaded) == ["atelier", "atelier.core.paths", "atelier.segment.cluster"]



PROBE_MODULE = """import sys


def modules_loaded(names):
    return [name for name in names if name in sys.modules]
"""
CALLER = """
import atelier.segment.cluster  # the caller's own import (it imports scikit-learn's K-Means)
from atelier.core.parallel import ordered_map, start
from probe import modules_loaded  # imports nothing else
names = ("atelier.segment.cluster", "sklearn.cluster")
print(ordered_map(modules_loaded, [names, names], workers=2))
print(start(modules_loaded, names).result(timeout=120))
"""


def test_workers_start_with_the_modules_their_caller_had_imported(tmp_path):
    """A worker forked from the fork server has the caller's atelier modules (and what they import) loaded
    before its task arrives, instead of importing them again as a spawned worker did (about 3 s each)."""
    import subprocess
    import sys

    (tmp_path / "probe.py").write_text(PROBE_MODULE)
    result = subprocess.run([sys.executable, "-c", CALLER], capture_output=True, text=True, timeout=180,
                            cwd=tmp_path, env={**os.environ, "PYTHONPATH": os.pathsep.join(
                                filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")]))})
    assert result.returncode == 0, result.stderr
    both = "['atelier.segment.cluster', 'sklearn.cluster']"
    assert result.stdout.splitlines() == [f"[{both}, {both}]", both]
