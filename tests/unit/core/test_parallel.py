"""atelier.core.parallel: results in the items' order whatever the number of worker processes."""

from __future__ import annotations

import os
from functools import partial

import pytest

from atelier.core.parallel import dealt_map, ordered_map


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
