"""Benchmark: the shop service under a bounded load, on 127.0.0.1 only, at default size.

    python benchmarks/serve_load.py            # needs `make repro`
    python benchmarks/serve_load.py --quick    # fewer requests

Starts `python -m atelier serve` on a free 127.0.0.1 port (the data `make repro` built), then measures
(issue 12 targets on 2 cores in brackets), each with a fixed request count and a time cap, and stops it:
  - live page requests at concurrency 1, 8 and 32: p50/p99 latency and requests/s  [p99 <= 10 ms at 200 req/s]
  - ingest: batches of new events, events/s                                        [>= 5,000 events/s]
  - event -> server-sent push: a click posted to the end of its page event         [p99 <= 50 ms]
  - peak memory (VmHWM) of the service process. Prints one JSON line.
The load generator runs on the same machine as the service (it takes CPU from it).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import queue
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"
#: Stop any one measurement after this many seconds, whatever its request count.
CAP_SECONDS = 30.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


def percentiles(milliseconds: list[float]) -> dict[str, float]:
    values = np.asarray(milliseconds)
    return {"p50_ms": round(float(np.percentile(values, 50)), 2), "p99_ms": round(float(np.percentile(values, 99)), 2),
            "n": int(len(values))}


async def page_load(url: str, customers: list[int], concurrency: int, requests: int) -> dict:
    """`requests` live pages, `concurrency` at a time: latency percentiles and requests/s."""
    latencies: list[float] = []
    counter = iter(range(requests))
    began = time.perf_counter()
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)

    async def worker(http: httpx.AsyncClient) -> None:
        for index in counter:
            if time.perf_counter() - began > CAP_SECONDS:
                return
            start = time.perf_counter()
            response = await http.get(f"/api/customers/{customers[index % len(customers)]}/page")
            response.raise_for_status()
            latencies.append((time.perf_counter() - start) * 1000)

    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as http:
        await asyncio.gather(*(worker(http) for _ in range(concurrency)))
    seconds = time.perf_counter() - began
    return {"concurrency": concurrency, **percentiles(latencies),
            "requests_per_second": round(len(latencies) / seconds, 1)}


def ingest(http: httpx.Client, customers: list[int], products: list[int], batches: int, size: int) -> dict:
    """`batches` batches of `size` new product views (fresh ids, on the shop's clock): events/s through the API."""
    now = pd.Timestamp(http.get("/health").json()["now"])
    rng = np.random.default_rng(0)
    sent, began = 0, time.perf_counter()
    for batch in range(batches):
        if time.perf_counter() - began > CAP_SECONDS:
            break
        at = now + pd.Timedelta(seconds=batch)
        records = [{"record": "event", "id": 9 * 10**14 + batch * size + i, "customer_id": int(rng.choice(customers)),
                    "session_id": 9 * 10**14 + batch, "ts": (at + pd.Timedelta(milliseconds=i)).isoformat(),
                    "event_type": "product_view", "product_id": int(rng.choice(products)), "device": "mobile",
                    "dwell_seconds": 10.0} for i in range(size)]
        answer = http.post("/api/events", json={"records": records})
        answer.raise_for_status()
        sent += size
    seconds = time.perf_counter() - began
    return {"events": sent, "batch": size, "events_per_second": round(sent / seconds, 1)}


def push_latency(url: str, customer: int, clicks: int) -> dict:
    """A click posted -> the customer's new page arriving on their open event stream (milliseconds)."""
    arrivals: queue.Queue = queue.Queue()
    ready = threading.Event()

    def listen() -> None:
        with contextlib.suppress(httpx.HTTPError), httpx.Client(base_url=url, timeout=None) as http, \
                http.stream("GET", f"/api/customers/{customer}/stream") as stream:  # ends when the service stops
            for line in stream.iter_lines():
                if line.startswith("data:"):
                    arrivals.put((time.perf_counter(), json.loads(line[5:])))
                    ready.set()

    threading.Thread(target=listen, daemon=True).start()
    ready.wait(30)
    _, page = arrivals.get(timeout=30)
    latencies = []
    with httpx.Client(base_url=url, timeout=30) as http:
        for click in range(clicks):
            product = page["products"][click % len(page["products"])]["product_id"]
            start = time.perf_counter()
            http.post(f"/api/customers/{customer}/actions",
                      json={"type": "product_view", "product_id": product, "session_id": page["session_id"]})
            arrived, page = arrivals.get(timeout=30)
            latencies.append((arrived - start) * 1000)
    return percentiles(latencies)


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    quick = parser.parse_args().quick
    port = free_port()
    url = f"http://{HOST}:{port}"
    service = subprocess.Popen([sys.executable, "-m", "atelier", "serve", "--host", HOST, "--port", str(port)],
                               cwd=REPO, env={**os.environ, "OMP_NUM_THREADS": "1"}, stdout=subprocess.DEVNULL)
    try:
        began = time.perf_counter()
        with httpx.Client(base_url=url, timeout=30) as http:
            while True:
                if service.poll() is not None:
                    raise SystemExit(f"the service exited with code {service.returncode}: run `make repro` first?")
                try:
                    http.get("/health").raise_for_status()
                    break
                except httpx.HTTPError:
                    time.sleep(0.2)
            startup = time.perf_counter() - began
            examples = http.get("/api/examples").json()
            customers = sorted({c for ids in examples["segments"].values() for c in ids})
            customers += list(range(1, 200))
            products = [p["product_id"] for p in http.get(f"/api/customers/{customers[0]}/page").json()["products"]]
            pages = [asyncio.run(page_load(url, customers, c, (300 if quick else 2000) * (1 if c == 1 else 2)))
                     for c in (1, 8, 32)]
            ingested = ingest(http, customers, products, 5 if quick else 30, 1000)
            pushed = push_latency(url, customers[0], 30 if quick else 200)
            books = http.get("/api/books").json()
        result = {"startup_seconds": round(startup, 1), "pages": pages, "ingest": ingested, "event_to_push": pushed,
                  "books_balanced": books["balanced"], "service_peak_rss_mb": peak_rss_mb(service.pid),
                  "cpus": os.cpu_count(), "load_average_1min": round(os.getloadavg()[0], 2)}
    finally:
        service.terminate()
        try:
            service.wait(30)
        except subprocess.TimeoutExpired:
            service.kill()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
