"""Independent tasks on several worker processes, results in order: a loop's results, sooner on several cores.

Each task runs in its own process with the thread count its code sets (threadpool_limits), so a result does
not depend on how many workers there are: the same params give the same numbers with 1 worker or 2.

Workers are forked from a fork server (multiprocessing's "forkserver"): a clean process, started once per
calling process, that has imported the caller's own `atelier` modules (and so NumPy, pandas, scikit-learn...).
A worker thus starts ready in milliseconds; spawned from scratch, each one spent about 3 s of CPU importing
them, which in a small run was much of a stage's time. The server holds no threads, so forking it is safe.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import Future
from functools import partial
from typing import Any, TypeVar

T = TypeVar("T")


def preloaded_modules(loaded: Iterable[str]) -> list[str]:
    """Of the `loaded` module names (sys.modules), the `atelier` ones a worker's fork server imports first: what the
    caller has imported is what its tasks need."""
    return sorted(name for name in loaded if name == "atelier" or name.startswith("atelier."))


def _context() -> Any:
    """The "forkserver" context; its server (started at the first worker) preloads `preloaded_modules`."""
    import multiprocessing
    import sys

    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(preloaded_modules(list(sys.modules)))  # no effect once the server runs
    return context


def ordered_map(function: Callable[[T], Any], items: Iterable[T], workers: int) -> list[Any]:
    """`[function(item) for item in items]`, run on up to `workers` processes (in this process if 1).

    `function` must be importable by the workers (a module-level function, or a functools.partial of one).
    """
    items = list(items)
    if workers <= 1 or len(items) <= 1:
        return [function(item) for item in items]
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(max_workers=min(workers, len(items)), mp_context=_context()) as executor:
        return list(executor.map(function, items))


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
    """Shut down this process's pool of worker processes (joblib's reusable loky pool, which joblib's `Parallel` and
    scikit-learn's n_jobs use), if it has one. A worker process that used such a pool otherwise waits at its exit
    for the pool's idle timeout (5 minutes)."""
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


def _settle(done: Future[T], outcome: Future[T]) -> None:
    """Give `outcome` what the finished `done` gave: its value or its error."""
    error = done.exception()
    if error is None:
        outcome.set_result(done.result())
    else:
        outcome.set_exception(error)


def start(function: Callable[..., T], *args: Any, **kwargs: Any) -> Future[T]:
    """Run `function(*args, **kwargs)` in a fresh worker process while the caller goes on: `.result()` waits for it
    and returns its value (or raises its error). Two independent pieces of a stage thus share the two cores.

    `function` must be importable by the worker (a module-level function, or a functools.partial of one); the
    worker is forked from the fork server (never from the caller, which may hold threads), and a loky pool the
    function uses is shut down when it returns, so the worker exits at once. The worker is asked for from a
    thread, so the caller never waits, not even for the fork server's first start (its imports take seconds).
    """
    import threading
    from concurrent.futures import ProcessPoolExecutor

    context = _context()  # here: the server preloads what the caller has imported by now
    outcome: Future[T] = Future()

    def submit() -> None:
        executor = ProcessPoolExecutor(max_workers=1, mp_context=context)
        try:
            executor.submit(_then_release_pool, function, *args, **kwargs).add_done_callback(
                partial(_settle, outcome=outcome))
        except BaseException as error:  # noqa: BLE001  (the caller gets it from the future, as a task's own error)
            outcome.set_exception(error)
        finally:
            executor.shutdown(wait=False)  # the submitted task still runs; the worker exits when it is done

    threading.Thread(target=submit, name="atelier-start", daemon=True).start()
    return outcome
