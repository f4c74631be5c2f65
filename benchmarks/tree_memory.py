"""The peak resident memory of a process and all its descendants, sampled on a background thread.

A stage's work now runs in several processes at once (the stage, its notebook's kernel, worker processes that
overlap independent pieces), so its peak memory is the largest *sum* over the processes alive together, not
the largest single process (which `getrusage`'s ru_maxrss reports). Likewise its CPU time: a worker that
outlives the process that started it (a killed notebook kernel's pool) is never reaped by the stage, so
`getrusage` misses it; the sampler adds up every process it saw, each at its last sample (within `every`).
"""

from __future__ import annotations

import os
import threading

import psutil


class TreeMemory:
    """Sample the resident memory of process `pid` (default: this one) plus all its descendants every `every`
    seconds until `stop()`; `peak` is the largest total seen, in bytes; `cpu_seconds()` the CPU time (user +
    system) of every process seen, at its last sample."""

    def __init__(self, pid: int | None = None, every: float = 0.2) -> None:
        self.peak, self.every, self._stop = 0, every, threading.Event()
        self._cpu: dict[tuple[int, float], float] = {}
        self._root = psutil.Process(os.getpid() if pid is None else pid)
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._stop.is_set():
            total = 0
            try:
                tree = [self._root, *self._root.children(recursive=True)]
            except psutil.Error:  # the root has exited
                tree = []
            for process in tree:
                try:
                    total += process.memory_info().rss
                    times = process.cpu_times()
                    self._cpu[process.pid, process.create_time()] = times.user + times.system
                except psutil.Error:  # exited between listing and reading
                    pass
            self.peak = max(self.peak, total)
            self._stop.wait(self.every)

    def cpu_seconds(self) -> float:
        """The CPU seconds of every process seen (call after `stop`)."""
        return round(sum(self._cpu.values()), 1)

    def stop(self) -> int:
        """Stop sampling; the peak in MB."""
        self._stop.set()
        self._thread.join()
        return round(self.peak / 2**20)
