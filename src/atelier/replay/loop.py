"""The closed loop: visits arrive, the shop decides, the visit plays out, its events stream back.

For each window of `window_minutes`: the visits starting in it are decided on the live profiles as
the stream processor has them at the window's start (scored by the champion, personalized by the
policy, or the default experience for control customers and fallbacks); the world then simulates
those visits given what they were shown; their events and orders go through the network (delays,
late records, duplicates, corruption) and the records that have arrived by the window's end are
processed. Every `checkpoint_every_windows` the whole loop is saved, and a loop restored from a
checkpoint finishes in exactly the state and with exactly the decisions of an uninterrupted one.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm import tqdm

from atelier.core.config import ParamsError
from atelier.core.io import python_scalar, read_parquet, write_parquet
from atelier.data.features import FeatureSettings
from atelier.data.simulate.world import stream
from atelier.model.champion import Champion
from atelier.recommend.serve import ListRecommender
from atelier.replay.abtest import assign_arm
from atelier.replay.engine import EngineSettings, StreamProcessor, stack, to_records
from atelier.replay.explore import Exploration, explore
from atelier.replay.monitor import DriftRule
from atelier.replay.policy import (
    Assortment,
    PolicySettings,
    choose,
    decide,
    default_experience,
    favourite_categories,
)
from atelier.replay.state import StreamingState
from atelier.replay.world import STREAM_REPLAY, NoiseSettings, ReplayWorld, arrivals

#: params.yaml `replay` keys and what each must be (the drift and policy subsections are checked by their own settings).
_NUMBERS = {
    "window_minutes": "a positive number of minutes",
    "watermark_delay_seconds": "0 or more seconds",
    "allowed_lateness_seconds": "0 or more seconds",
    "network_delay_seconds": "0 or more seconds",
    "response_strength": "a number (0: what is shown changes nothing)",
}
_SHARES = ("late_share", "duplicate_share", "malformed_share", "treatment_share")
_COUNTS = {"micro_batch_events": 1, "sensitivity_days": 1, "explain_sample": 0, "checkpoint_every_windows": 1,
           "workers": 1, "throughput_batches": 1}


def _number(section: dict[str, Any], key: str, what: str) -> float:
    """section[key] as a float, or a ParamsError naming `replay.<key>` and what it must be."""
    value = section[key]
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ParamsError(f"params.yaml replay.{key}: {value!r} is not {what}")
    return float(value)


@dataclass(frozen=True)
class ReplaySettings:
    """The real-time phase's tunables (params.yaml `replay`, plus the seed)."""

    window_minutes: float
    micro_batch_events: int
    engine: EngineSettings
    noise: NoiseSettings
    treatment_share: float
    response_strength: float
    sensitivity_strengths: tuple[float, ...]
    sensitivity_days: int
    policy: PolicySettings
    explain_sample: int
    checkpoint_every_windows: int
    drift: DriftRule
    seed: int
    workers: int = 1  # processes for the sensitivity replays (results do not depend on it)
    throughput_batches: int = 10  # micro-batches of the recorded stream the throughput is measured on (a timing)

    @classmethod
    def from_params(cls, section: dict[str, Any], seed: int) -> ReplaySettings:
        """Settings from params.yaml's `replay` section; a ParamsError names the key at fault and the fix."""
        expected = [*_NUMBERS, *_SHARES, *_COUNTS, "sensitivity_strengths", "policy", "drift"]
        missing = [key for key in expected if key not in section]
        if missing:
            raise ParamsError(f"params.yaml replay: missing keys {missing}; "
                              "restore them from the project's params.yaml")
        numbers = {key: _number(section, key, what) for key, what in _NUMBERS.items()}
        if not numbers["window_minutes"] > 0:
            raise ParamsError(f"params.yaml replay.window_minutes: must be positive, got {section['window_minutes']!r}")
        for key in ("watermark_delay_seconds", "allowed_lateness_seconds", "network_delay_seconds"):
            if not numbers[key] >= 0:
                raise ParamsError(f"params.yaml replay.{key}: must be 0 or more, got {section[key]!r}")
        shares = {key: _number(section, key, "a share between 0 and 1") for key in _SHARES}
        for key, share in shares.items():
            if not 0.0 <= share <= 1.0:
                raise ParamsError(f"params.yaml replay.{key}: a share must lie between 0 and 1, got {section[key]!r}")
        counts = {}
        for key, least in _COUNTS.items():
            value = section[key]
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < least:
                raise ParamsError(f"params.yaml replay.{key}: must be a whole number, {least} or more, got {value!r}")
            counts[key] = int(value)
        strengths = section["sensitivity_strengths"]
        if (not isinstance(strengths, (list, tuple)) or not strengths
                or any(isinstance(s, bool) or not isinstance(s, (int, float)) for s in strengths)):
            raise ParamsError("params.yaml replay.sensitivity_strengths: must be a list of response strengths "
                              f"(numbers, e.g. [0.0, 0.5, 1.0]), got {strengths!r}")
        engine = EngineSettings(numbers["watermark_delay_seconds"], numbers["allowed_lateness_seconds"])
        return cls(
            window_minutes=numbers["window_minutes"],
            micro_batch_events=counts["micro_batch_events"],
            engine=engine,
            noise=NoiseSettings(
                network_delay_seconds=numbers["network_delay_seconds"], late_share=shares["late_share"],
                duplicate_share=shares["duplicate_share"], malformed_share=shares["malformed_share"],
                lateness_seconds=engine.watermark_delay_seconds + engine.allowed_lateness_seconds),
            treatment_share=shares["treatment_share"],
            response_strength=numbers["response_strength"],
            sensitivity_strengths=tuple(float(s) for s in strengths),
            sensitivity_days=counts["sensitivity_days"],
            policy=PolicySettings.from_params(section["policy"]),
            explain_sample=counts["explain_sample"],
            checkpoint_every_windows=counts["checkpoint_every_windows"],
            drift=DriftRule.from_params(section["drift"]),
            seed=int(seed),
            workers=counts["workers"],
            throughput_batches=counts["throughput_batches"],
        )


@dataclass
class Personalizer:
    """Decides what a visit sees: live profile -> champion score -> policy (or the default, with the reason)."""

    state: StreamingState
    scorer: Champion | None
    segments: dict[Any, str]
    assortment: Assortment
    policy: PolicySettings
    seed: int
    treatment_share: float
    last_profiles: pd.DataFrame | None = None  # the profiles behind the latest decisions (for monitoring)
    recommender: ListRecommender | None = None  # the learned lists; None: the favourite-category rule's page
    exploration: Exploration | None = None  # off by default: see atelier.replay.explore

    def learned_page(self, customer_id: Any, products: np.ndarray) -> tuple[np.ndarray, str]:
        """A personalized page's products: the learned list (with its source) or, without one, the rule's."""
        if self.recommender is None:
            return products, "rule"
        return self.recommender.page(customer_id, self.assortment.product_id, self.policy.recommendations)

    def _with_learned(self, decisions: pd.DataFrame, customers: np.ndarray) -> pd.DataFrame:
        personalized = (decisions["experience"] == "personalized").to_numpy()
        pages = [self.learned_page(c, p) if is_personal else (p, "default")
                 for c, p, is_personal in zip(customers, decisions["products"], personalized)]
        decisions["products"] = [page for page, _ in pages]
        decisions["list_source"] = np.array([source for _, source in pages], dtype=object)
        return decisions

    def arms(self, customers: np.ndarray) -> np.ndarray:
        return assign_arm(customers, self.seed, self.treatment_share)

    def profiles(self, customers: np.ndarray, as_of: pd.Timestamp) -> pd.DataFrame:
        """Live feature profiles of `customers` (one row per entry, repeats allowed)."""
        unique = pd.unique(customers)
        return self.state.features(unique, as_of).reindex(customers)

    def score(self, profiles: pd.DataFrame) -> np.ndarray | None:
        """Champion scores; None if there is no model, NaN rows if the profile lacks a feature the model needs."""
        if self.scorer is None:
            return None
        if any(f not in profiles for f in self.scorer.features):
            return np.full(len(profiles), np.nan)
        return self.scorer.score_frame(profiles)

    def decide(self, visits: pd.DataFrame, as_of: pd.Timestamp) -> pd.DataFrame:
        """Decisions for visits (customer_id, session_id, ts), on profiles as of `as_of`."""
        customers = visits["customer_id"].to_numpy()
        profiles = self.profiles(customers, as_of)
        known = np.fromiter((self.state.known(c) for c in customers), dtype=bool, count=len(customers))
        segments = np.array([self.segments.get(c, "unsegmented") for c in customers], dtype=object)
        decisions = decide(profiles.reset_index(drop=True), arm=self.arms(customers), propensity=self.score(profiles),
                           segments=segments, known=known, assortment=self.assortment, settings=self.policy)
        decisions = self._with_learned(decisions, customers)
        if self.exploration is not None:
            learned = (None if self.recommender is None else
                       [self.learned_page(c, np.empty(0, dtype=np.int64))[0] for c in customers])
            decisions = explore(decisions, profiles.reset_index(drop=True), visits["session_id"].to_numpy(),
                                self.exploration, self.assortment, self.policy, self.seed, learned)
        self.last_profiles = profiles.reset_index().assign(session_id=visits["session_id"].to_numpy())
        visit = {"session_id": visits["session_id"].to_numpy(), "customer_id": customers, "ts": visits["ts"].to_numpy(),
                 "decided_at": as_of}
        return pd.DataFrame({**visit, **{column: decisions[column] for column in decisions.columns}})

    def decide_one(self, customer_id: Any, session_id: Any, ts_us: int) -> dict[str, Any]:
        """The per-event fast path: one visit, profile as of its first event, no pandas on the way."""
        arm = self.arms(np.array([customer_id]))[0]
        affinity_columns = [f"affinity_{c}" for c in self.assortment.categories]
        fast = self.scorer is not None and self.scorer.numeric == self.scorer.features
        model_columns = self.scorer.numeric if fast else []
        try:
            vector = self.state.feature_vector(customer_id, ts_us, model_columns + affinity_columns)
            scorable = self.scorer is not None and bool(model_columns)
        except KeyError:  # the profile lacks a feature the model needs: score nothing, decide the rest
            vector, scorable = self.state.feature_vector(customer_id, ts_us, affinity_columns), False
            model_columns = []
        if vector is None:
            first = second = None
            propensity: float | None = np.nan if self.scorer is not None else None
        else:
            k = len(model_columns)
            first, second = favourite_categories(vector[k:][None, :],
                                                 np.array(self.assortment.categories, dtype=object))
            first, second = first[0], second[0]
            if self.scorer is None:
                propensity = None
            elif scorable:
                propensity = self.scorer.score_vector(vector[:k])
            else:  # a model that needs demographics (or features the profile lacks): the pipeline, or give up
                profile = self.state.features([customer_id], pd.Timestamp(ts_us, unit="us"))
                propensity = float(self.score(profile)[0])
        decision = choose(arm=arm, known=vector is not None, favourite=first, runner_up=second, propensity=propensity,
                          segment=self.segments.get(customer_id, "unsegmented"), assortment=self.assortment,
                          settings=self.policy)
        decision["products"], decision["list_source"] = (self.learned_page(customer_id, decision["products"])
                                                         if decision["experience"] == "personalized"
                                                         else (decision["products"], "default"))
        return {"session_id": session_id, "customer_id": customer_id, "arm": arm, **decision}


@dataclass
class ClosedLoop:
    """The replay of the period after the cutoff, window by window (see the module docstring)."""

    world: ReplayWorld
    personalizer: Personalizer
    processor: StreamProcessor
    settings: ReplaySettings
    strength: float
    window: int = 0
    pending: pd.DataFrame = field(default_factory=pd.DataFrame)
    outputs: dict[str, list[pd.DataFrame]] = field(default_factory=dict)
    decision_seconds: list[float] = field(default_factory=list)
    batch_seconds: list[float] = field(default_factory=list)
    on_decisions: Callable[[pd.DataFrame], None] | None = None  # subscribe to the stream of decisions

    def windows(self) -> pd.DatetimeIndex:
        """Window starts from the replay start to the end of the simulated period."""
        return pd.date_range(self.world.start, self.world.end(),
                             freq=pd.Timedelta(minutes=self.settings.window_minutes),
                             inclusive="left")

    def _keep(self, kind: str, frame: pd.DataFrame) -> None:
        if len(frame):
            self.outputs.setdefault(kind, []).append(frame)

    def _keep_dead_letters(self, dead_letters: pd.DataFrame) -> None:
        if len(dead_letters):  # an empty frame is not kept anyway: skip the (slow) column drop
            self._keep("dead_letters", dead_letters.drop(columns=["arrival"], errors="ignore"))

    def step(self, begin: pd.Timestamp, end: pd.Timestamp) -> None:
        """One window: decide its visits, play them, deliver the records that have arrived by `end`, process them."""
        positions = self.world.visits_between(begin, end)
        if len(positions):
            began = time.perf_counter()
            decisions = self.personalizer.decide(self.world.visit_table(positions), begin)
            self.decision_seconds.append((time.perf_counter() - began) / len(positions))
            default = default_experience(self.personalizer.assortment, self.settings.policy)["products"]
            outcome = self.world.play(positions, list(decisions["products"]), decisions["banner_category"].to_numpy(),
                                      default, self.strength, self.window)
            visits = outcome.sessions.assign(revenue=session_revenue(outcome.sessions, outcome.orders),
                                             arm=decisions["arm"].to_numpy(),
                                             experience=decisions["experience"].to_numpy())
            self._keep("decisions", decisions)
            self._keep("profiles", self.personalizer.last_profiles)
            self._keep("visits", visits)
            self._keep("events", outcome.events)
            self._keep("orders", outcome.orders)
            if self.on_decisions is not None:
                self.on_decisions(decisions)
            records = to_records(outcome.events, outcome.orders)
            delivered = arrivals(records, self.settings.noise,
                                 stream(self.settings.seed, STREAM_REPLAY, 2, self.window))
            self.pending = stack([self.pending, delivered]) if len(self.pending) else delivered
        if len(self.pending):
            due = (self.pending["arrival"] < end).to_numpy()
            if due.any():
                batch = self.pending[due].sort_values("arrival", kind="stable")
                self.pending = self.pending[~due].reset_index(drop=True)
                result = self.processor.process(batch)
                self.batch_seconds.append(result.seconds)
                self._keep_dead_letters(result.dead_letters)
        self.window += 1

    def run(self, *, until: int | None = None, checkpoint_dir: Path | None = None, progress: bool = True) -> ClosedLoop:
        """Run the remaining windows (up to window `until`, else to the end and flush), checkpointing regularly."""
        starts = self.windows()
        stop = len(starts) if until is None else min(until, len(starts))
        step = pd.Timedelta(minutes=self.settings.window_minutes)
        for index in tqdm(range(self.window, stop), desc=f"replay (strength {self.strength:g})", disable=not progress,
                          mininterval=2.0):
            self.step(starts[index], starts[index] + step)
            if checkpoint_dir is not None and self.window % self.settings.checkpoint_every_windows == 0:
                self.checkpoint(checkpoint_dir)
        if until is None:
            self.flush()
        if checkpoint_dir is not None:
            self.checkpoint(checkpoint_dir)
        return self

    def flush(self) -> None:
        """Process every record still in flight (the end of the replay)."""
        if len(self.pending):
            result = self.processor.process(self.pending.sort_values("arrival", kind="stable"))
            self.pending = self.pending.iloc[0:0]
            self.batch_seconds.append(result.seconds)
            self._keep_dead_letters(result.dead_letters)

    def frames(self, kind: str) -> pd.DataFrame:
        """All the loop produced so far of one kind: decisions, profiles, visits, events, orders or dead_letters.

        The parts are stacked once and kept stacked: a later call (or checkpoint) stacks that frame with the parts
        made since, not every window's part again (the same frame: stacking is done in the same order)."""
        parts = self.outputs.get(kind, [])
        if len(parts) > 1:
            parts[:] = [pd.concat(parts, ignore_index=True)]
        return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()

    def same_profiles(self, other: ClosedLoop, customers: np.ndarray, as_of: pd.Timestamp) -> bool:
        """Whether both loops' profile stores give exactly the same features for `customers` at `as_of`."""
        mine, theirs = self.personalizer.state, other.personalizer.state
        return mine.features(customers, as_of).equals(theirs.features(customers, as_of))

    # ------------------------------------------------------------------------------------------
    # Durability
    # ------------------------------------------------------------------------------------------
    def checkpoint(self, folder: Path) -> None:
        """Save everything needed to continue: profiles, processor, records in flight, outputs so far, position."""
        folder = Path(folder)
        staging = folder.with_name(folder.name + ".writing")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        self.personalizer.state.checkpoint(staging / "profiles.sqlite")
        self.processor.checkpoint(staging / "processor.sqlite")
        frames = {"pending": self.pending, **{kind: self.frames(kind) for kind in self.outputs}}
        for name, frame in frames.items():
            _write_frame(frame, staging / f"{name}.parquet")
        position = {"window": self.window, "kinds": sorted(self.outputs),
                    "columns": {name: [str(c) for c in frame.columns] for name, frame in frames.items()}}
        (staging / "loop.json").write_text(json.dumps(position), encoding="utf-8")
        shutil.rmtree(folder, ignore_errors=True)
        staging.rename(folder)

    def restore(self, folder: Path, feature_settings: FeatureSettings, products: pd.DataFrame | None,
                customers: pd.DataFrame | None) -> ClosedLoop:
        """Continue from a checkpoint written by `checkpoint` (this loop's state is replaced)."""
        folder = Path(folder)
        position = json.loads((folder / "loop.json").read_text(encoding="utf-8"))
        state = StreamingState.restore(folder / "profiles.sqlite", feature_settings, products=products,
                                       customers=customers)
        self.personalizer.state = state
        self.processor.state = state
        self.processor.restore(folder / "processor.sqlite")
        columns = position["columns"]
        self.pending = _read_frame(folder / "pending.parquet")[columns["pending"]]
        self.outputs = {kind: [_read_frame(folder / f"{kind}.parquet")[columns[kind]]] for kind in position["kinds"]}
        self.window = int(position["window"])
        return self


def session_revenue(sessions: pd.DataFrame, orders: pd.DataFrame) -> np.ndarray:
    """Each session's order amount (0 without an order): sessions' ids are sorted and unique, at most one order each."""
    session_ids = sessions["session_id"].to_numpy()
    revenue = np.zeros(len(session_ids))
    revenue[np.searchsorted(session_ids, orders["session_id"].to_numpy())] = orders["amount"].to_numpy(dtype=float)
    return revenue


def _write_frame(frame: pd.DataFrame, path: Path) -> None:
    """Parquet for any output frame (object columns such as product lists and mixed ids survive)."""
    frame = frame.copy()
    for column in frame.columns:
        if frame[column].dtype == object:
            sample = frame[column].dropna()
            if len(sample) and isinstance(sample.iloc[0], np.ndarray):
                frame[column] = frame[column].map(lambda v: None if v is None else [int(x) for x in v])
            elif len(sample) and not all(isinstance(v, str) for v in sample):
                frame[column] = frame[column].map(lambda v: None if v is None else json.dumps(python_scalar(v)))
                frame = frame.rename(columns={column: f"{column}__json"})
    write_parquet(frame.reset_index(drop=True), path)


def _read_frame(path: Path) -> pd.DataFrame:
    frame = read_parquet(path)
    for column in [c for c in frame.columns if c.endswith("__json")]:
        # Parquet nulls may come back as None or NaN (pandas string columns): both mean "no value".
        frame[column.removesuffix("__json")] = frame[column].map(
            lambda v: None if v is None or v != v else json.loads(v))
        frame = frame.drop(columns=column)
    for column in frame.columns:
        if frame[column].dtype == object:
            sample = frame[column].dropna()
            if len(sample) and isinstance(sample.iloc[0], (list, np.ndarray)):
                frame[column] = frame[column].map(lambda v: None if v is None else np.asarray(v, dtype=np.int64))
    return frame
