"""Fixtures of the serve tests: the replay tests' tiny shop (context with a registered champion), a service on it
started from the cutoff, and a real uvicorn server on a free 127.0.0.1 port."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator

import pandas as pd
import pytest
import uvicorn
from conftest import tiny_params
from fastapi.testclient import TestClient

from atelier.data.features import microseconds
from atelier.replay.engine import StreamProcessor
from atelier.serve.app import create_app
from atelier.serve.service import ServeSettings, Service
from atelier.serve.stage import static_dir

# The replay tests' session fixtures: the tiny shop's context with its champion (one set of test data).
from ..replay.conftest import (  # noqa: F401
    context,
    feature_settings,
    known_customers,
    model_settings,
    params,
    registry_dir,
    scorer,
    snapshots,
    start_state,
)


@pytest.fixture(scope="session")
def serve_settings() -> ServeSettings:
    return ServeSettings.from_params({**tiny_params()["serve"], "watch_seconds": 0.05})


@pytest.fixture
def make_service(context, serve_settings, snapshots) -> Callable[..., Service]:  # noqa: F811
    """A fresh service on the tiny shop's profiles at the cutoff (each call: its own profile store)."""

    def make(**changes) -> Service:
        state = context.initial_state()
        personalizer = context.personalizer(state)
        return Service(personalizer=personalizer, processor=StreamProcessor(state, context.settings.engine),
                       products=context.tables["products"], model_problem=None,
                       settings=changes.pop("settings", serve_settings), start_us=int(microseconds(context.cutoff)),
                       reference=lambda: snapshots, **changes)

    return make


@pytest.fixture
def service(make_service) -> Service:
    return make_service()


@pytest.fixture
def client(service) -> Iterator[TestClient]:
    with TestClient(create_app(service, static_dir=static_dir())) as http:
        yield http


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class LiveServer:
    """uvicorn serving an app on 127.0.0.1 in a thread (a real HTTP server), stopped on exit."""

    def __init__(self, app) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning",
                                                    timeout_graceful_shutdown=1))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *_) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture
def live(service) -> Iterator[LiveServer]:
    with LiveServer(create_app(service, static_dir=static_dir())) as server:
        yield server


def customer_with_arm(service: Service, arm: str, known: bool = True) -> int:
    """A customer with product views before the cutoff (or, unless `known`, one never seen) in `arm`."""
    state = service.personalizer.state
    candidates = sorted(state._ids) if known else range(10**7, 10**7 + 1000)
    as_of = pd.Timestamp(service.now_us(), unit="us")
    for customer in candidates:
        if service.personalizer.arms([customer])[0] != arm or state.known(customer) != known:
            continue
        if not known or state.features([customer], as_of)["views_per_session"].iloc[0] > 0:
            return int(customer)
    raise AssertionError(f"no {arm} customer (known={known})")
