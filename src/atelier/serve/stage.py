"""The service's reading: what `make repro` built, loaded into a `Service`, and `make serve`'s entry point.

The service starts from the replay's last checkpoint (data/replay/checkpoint: every customer's profile and
the stream processor at the end of the replayed period), the registry's `champion` alias, the segments and
the products, all through `atelier.replay.stage.load_context`, the replay's own loader. `from_cutoff`
starts it from the profiles at the replay's cutoff instead (the closed-loop client then replays the
replay's first days through it). The registry is watched: a promotion or rollback reaches the running
service without a restart.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

import pandas as pd

from atelier.core import paths
from atelier.core.config import ParamsError
from atelier.data.features import FeatureSettings, microseconds
from atelier.model.champion import Champion, try_load_champion
from atelier.model.registry import Registry
from atelier.replay import stage as replay_stage
from atelier.replay.context import ReplayContext
from atelier.replay.engine import StreamProcessor
from atelier.replay.loop import ReplaySettings
from atelier.replay.state import StreamingState
from atelier.serve import client
from atelier.serve.app import create_app
from atelier.serve.service import ServeSettings, Service

#: The environment variable holding the reload token (needed when the service binds off the loopback).
TOKEN_ENV = "ATELIER_SERVE_TOKEN"
#: Checkpoint files the service starts from (written by the replay stage's closed loop).
CHECKPOINT_PROFILES, CHECKPOINT_PROCESSOR, CHECKPOINT_POSITION = "profiles.sqlite", "processor.sqlite", "loop.json"


class NotBuilt(Exception):
    """The pipeline's outputs the service needs are missing: `make repro` has not run."""


def static_dir() -> Path:
    """The shop page's files (HTML, JavaScript, CSS), shipped inside the package."""
    return Path(str(resources.files("atelier.serve") / "static"))


def required(root: Path, from_cutoff: bool) -> list[Path]:
    """The built outputs the service reads (the champion may be missing: pages then fall back)."""
    needed = [paths.VALIDATED_DIR / "orders.parquet", paths.VALIDATED_DIR / "products.parquet", paths.SEGMENTS_FILE]
    if not from_cutoff:
        needed.append(paths.REPLAY_CHECKPOINT_DIR / CHECKPOINT_POSITION)
    return [p for p in needed if not (Path(root) / p).exists()]


def load_context(root: Path, params: dict[str, Any]) -> ReplayContext:
    """The replay's context (validated tables, champion by alias, segments, assortment), without the simulated world."""
    try:
        settings = ReplaySettings.from_params(params["replay"], params["seed"])
        features = FeatureSettings.from_params(params["prep"])
        timeline = params["timeline"]
    except KeyError as missing:
        raise ParamsError(f"params.yaml: missing section {missing}; restore it from the project's params.yaml") \
            from None
    return replay_stage.load_context(root, settings, features, timeline, source="serve", simulate={})


def profiles(root: Path, context: ReplayContext, from_cutoff: bool) -> tuple[StreamingState, StreamProcessor, int]:
    """The profile store, its stream processor and the time they stand at (microseconds): the replay's last
    checkpoint, or the profiles at the cutoff."""
    if from_cutoff:
        state = context.initial_state()
        return state, StreamProcessor(state, context.settings.engine), int(microseconds(context.cutoff))
    folder = Path(root) / paths.REPLAY_CHECKPOINT_DIR
    tables = context.tables
    state = StreamingState.restore(folder / CHECKPOINT_PROFILES, context.features, products=tables.get("products"),
                                   customers=tables.get("customers"))
    processor = StreamProcessor(state, context.settings.engine)
    processor.restore(folder / CHECKPOINT_PROCESSOR)
    return state, processor, int(processor.newest)


def model_watcher(registry_dir: Path, loaded: Champion | None,
                  problem: str | None) -> Callable[[bool], tuple[Champion | None, str | None] | None]:
    """`check(force)`: the registry's champion when the alias moved (promotion, rollback, removal) or `force`,
    else None. A champion that cannot be loaded is (None, why): the service then falls back."""
    last = {"version": None if loaded is None else loaded.version, "problem": problem}

    def check(force: bool) -> tuple[Champion | None, str | None] | None:
        version = None
        with contextlib.suppress(Exception):  # an unreadable registry is reported by try_load_champion below
            version = Registry(registry_dir).alias("champion")
        if not force and version is not None and version == last["version"]:
            return None
        champion, why = try_load_champion(registry_dir)
        current = None if champion is None else champion.version
        if not force and current == last["version"] and why == last["problem"]:
            return None
        last.update(version=current, problem=why)
        return champion, why

    return check


def build(root: Path, params: dict[str, Any], *, host: str, from_cutoff: bool = False) -> tuple[Any, Service]:
    """The app and its service from what `make repro` built; NotBuilt (one line: what to run) when it is missing."""
    root = Path(root)
    missing = required(root, from_cutoff)
    if missing:
        raise NotBuilt(f"run `make repro` first (missing {', '.join(p.as_posix() for p in missing)})")
    settings = ServeSettings.from_params(params.get("serve") or {})
    context = load_context(root, params)
    state, processor, start = profiles(root, context, from_cutoff)
    personalizer = context.personalizer(state)
    snapshots = root / paths.SNAPSHOTS_FILE

    def reference() -> pd.DataFrame:
        return pd.read_parquet(snapshots)

    service = Service(personalizer=personalizer, processor=processor, products=context.tables["products"],
                      model_problem=context.model_problem, settings=settings, start_us=start,
                      reference=reference if snapshots.exists() else None)
    check = model_watcher(root / paths.REGISTRY_DIR, context.scorer, context.model_problem)
    app = create_app(service, static_dir=static_dir(), reload_model=check, host=host,
                     token=os.environ.get(TOKEN_ENV) or None)
    return app, service


def run(root: Path, params: dict[str, Any], *, host: str | None = None, port: int | None = None,
        from_cutoff: bool = False) -> None:
    """`make serve`: build the app and run it with uvicorn (params.yaml `serve` host and port unless given)."""
    import uvicorn

    section = ServeSettings.from_params(params.get("serve") or {})
    host = host or section.host
    app, service = build(root, params, host=host, from_cutoff=from_cutoff)
    print(f"Atelier shop on http://{host}:{port or section.port}/ ({len(service.personalizer.state)} profiles, "
          f"model {service.model.version or 'unavailable'})", flush=True)
    # Open event streams would hold a graceful shutdown forever: they get two seconds to close.
    uvicorn.run(app, host=host, port=port or section.port, log_level="warning", timeout_graceful_shutdown=2)


def run_loop(root: Path, params: dict[str, Any], *, url: str | None = None, days: float = 1.0,
             strength: float | None = None) -> dict[str, Any]:
    """`python -m atelier serve-loop`: replay `days` of the simulated shop through a running service (at `url`,
    default params.yaml `serve`) and return the summary (`atelier.serve.client.summary`)."""
    import httpx

    settings = ServeSettings.from_params(params.get("serve") or {})
    url = url or f"http://{settings.host}:{settings.port}"
    replay_settings = ReplaySettings.from_params(params["replay"], params["seed"])
    context = replay_stage.load_context(root, replay_settings, FeatureSettings.from_params(params["prep"]),
                                        params["timeline"], source=params["data"]["source"],
                                        simulate=params["simulate"])
    if not context.closed:
        raise NotBuilt("the closed loop needs the simulated shop (data.source: simulate, with data/truth): "
                       "run `make repro` first")
    with httpx.Client(base_url=url, timeout=60.0) as http:
        try:
            http.get("/health").raise_for_status()
        except httpx.HTTPError as problem:
            raise NotBuilt(f"no service at {url} ({type(problem).__name__}): start it with `make serve`") from None
        loop = client.remote_loop(context.closed_loop(strength), http, settings.max_batch_records)
        windows = int(round(days * 24 * 60 / replay_settings.window_minutes))
        began = time.perf_counter()
        loop.run(until=windows, progress=True)
        return client.summary(loop, days, time.perf_counter() - began)
