"""Independent tasks on several worker processes, results in order: a loop's results, sooner on several cores.

Each task runs in its own process with the thread count its code sets (threadpool_limits), so a result does
not depend on how many workers there are: the same params give the same numbers with 1 worker or 2.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import Future
from functools import partial
from typing import Any, TypeVar

T = TypeVar("T")


def ordered_map(function: Callable[[T], Any], items: Iterable[T], workers: int) -> list[Any]:
    """`[function(item) for item in items]`, run on up to `workers` processes (in this process if 1).

    `function` must be importable by the workers (a module-level function, or a functools.partial of one).
    """
    items = list(items)
    if workers <= 1 or len(items) <= 1:
        return [function(item) for item in items]
    from joblib import Parallel, delayed

    return Parallel(n_jobs=min(workers, len(items)), backend="loky")(delayed(function)(item) for item in items)


def each(function: Callable[[T], Any], group: list[T]) -> list[Any]:
    """`[function(item) for item in group]`: one worker's share of dealt items (module level, so it can be sent)."""
    return [function(item) for item in group]


def deal(items: list[T], hands: int) -> list[list[T]]:
    """The items dealt to at most `hands` hands, none empty: item i goes to hand i % hands (undone by `gather`)."""
    return [items[first::hands] for first in range(min(hands, len(items)))]


def gather(hands: list[list[Any]]) -> list[Any]:
    """The results of `deal`'s hands (each in its hand's order) back in the order of the dealt items."""
    results: list[Any] = [None] * sum(len(hand) for hand in hands)
    for first, hand in enumerate(hands):
        results[first::len(hands)] = hand
    return results


def dealt_map(function: Callable[[T], Any], items: Iterable[T], workers: int) -> list[Any]:
    """`ordered_map` with the items dealt to `workers` tasks (every `workers`-th item in one), so whatever
    `function` carries (a partial's data) is sent to each process once, not once per item; results in order."""
    items = list(items)
    if workers <= 1 or len(items) <= 1:
        return [function(item) for item in items]
    return gather(ordered_map(partial(each, function), deal(items, workers), workers))


def release_worker_pool() -> None:
    """Shut down this process's pool of worker processes (joblib's reusable loky pool, which `ordered_map` uses), if
    it has one. A worker process that used such a pool otherwise waits at its exit for the pool's idle timeout
    (5 minutes)."""
    from joblib.externals.loky import reusable_executor

    pool = getattr(reusable_executor, "_executor", None)
    if pool is not None:
        pool.shutdown(wait=True)


def _then_release_pool(function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """`function(*args, **kwargs)` in a `start` worker, whose own pool (if the function used one) ends with it."""
    try:
        return function(*args, **kwargs)
    finally:
        release_worker_pool()


def start(function: Callable[..., T], *args: Any, **kwargs: Any) -> Future[T]:
    """Run `function(*args, **kwargs)` in a fresh worker process while the caller goes on: `.result()` waits for it
    and returns its value (or raises its error). Two independent pieces of a stage thus share the two cores.

    `function` must be importable by the worker (a module-level function, or a functools.partial of one); the
    worker is spawned (no fork of a process that holds threads), so it starts from a clean interpreter, and a pool
    of workers the function uses (`ordered_map`) is shut down when it returns, so the worker exits at once.
    """
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    executor = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"))
    try:
        return executor.submit(_then_release_pool, function, *args, **kwargs)
    finally:
        executor.shutdown(wait=False)  # the submitted task still runs; the worker exits when it is done
