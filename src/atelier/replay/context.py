"""What the replay works on, and the pieces built from it: the profile store at the cutoff, the
personalizer, the closed loop (simulated shop) and the open loop (a retailer's own records).

`atelier.replay.stage.load_context` reads the inputs into a `ReplayContext`; everything here is
built from it in memory, so tests can make a context from any tables.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from atelier.data.features import FeatureSettings, before_cutoff, customer_state
from atelier.model.champion import Champion
from atelier.recommend.serve import ListRecommender
from atelier.replay.engine import Counters, FrameSource, MemorySink, MicroBatchEngine, StreamProcessor, to_records
from atelier.replay.explore import Exploration
from atelier.replay.loop import ClosedLoop, Personalizer, ReplaySettings
from atelier.replay.policy import Assortment
from atelier.replay.state import StreamingState
from atelier.replay.world import ReplayWorld


@dataclass
class ReplayContext:
    """Everything the replay reads, loaded once: data, champion, segments and settings.

    `world` is the simulated shop after the cutoff; it exists only for simulated data (`closed`).
    """

    root: Path
    settings: ReplaySettings
    features: FeatureSettings
    cutoffs: list[pd.Timestamp]
    horizon_days: int
    tables: dict[str, pd.DataFrame]
    scorer: Champion | None
    model_problem: str | None
    segments: dict[Any, str]
    assortment: Assortment
    world: ReplayWorld | None = field(default=None)
    recommender: ListRecommender | None = field(default=None)  # the learned lists (recommend stage), if any
    _start: StreamingState | None = field(default=None, init=False, repr=False, compare=False)  # see initial_state

    @property
    def cutoff(self) -> pd.Timestamp:
        """The replay starts at the last cutoff (the out-of-time test snapshot of the model phase)."""
        return max(self.cutoffs)

    @property
    def closed(self) -> bool:
        """Whether the replay is a closed loop: the simulated shop reacts to what it is shown."""
        return self.world is not None

    @property
    def end(self) -> pd.Timestamp:
        """Where the replay stops: the end of the simulated period (closed loop) or the cutoff (open loop)."""
        return self.world.end() if self.world is not None else self.cutoff

    @property
    def past(self) -> dict[str, pd.DataFrame]:
        """The tables as known at the cutoff (the replay starts from there)."""
        return before_cutoff(self.tables, self.cutoff)

    def initial_state(self) -> StreamingState:
        """The profile store at the cutoff, from the batch state (the same definitions as prep).

        Built on the first call (seconds: the batch state of all the history) and kept; every call gets its own
        copy, so each loop, check or measurement updates a store of its own. A context sent to a worker process
        after the first call carries the store with it (the sweep's runs do not rebuild it)."""
        return copy.deepcopy(self._built_start())

    def _built_start(self) -> StreamingState:
        if self._start is None:
            batch = customer_state(self.past, self.cutoff, self.features)
            self._start = StreamingState.from_batch(batch, self.cutoff, self.features,
                                                    products=self.tables.get("products"),
                                                    customers=self.tables.get("customers"))
        return self._start

    def for_worker(self) -> ReplayContext:
        """This context as a worker process running loops or measurements needs it: the store at the cutoff built
        (here, once) and carried along, the clickstream before the cutoff (most of the data, used only to build
        that store) left out, so that sending it is cheap. Its loops are the same as this context's."""
        start = self._built_start()
        light = dataclasses.replace(self, tables={name: t for name, t in self.tables.items() if name != "events"})
        light._start = start
        return light

    def personalizer(self, state: StreamingState, learned: bool = True,
                     exploration: Exploration | None = None) -> Personalizer:
        """The decision maker on `state`, scoring with `scorer` (None: as if the model had failed to load); its
        personalized pages show the learned lists when there are any and `learned`, else the category rule's;
        `exploration` (off by default) logs propensities for off-policy evaluation."""
        return Personalizer(state=state, scorer=self.scorer, segments=self.segments, assortment=self.assortment,
                            policy=self.settings.policy, seed=self.settings.seed,
                            treatment_share=self.settings.treatment_share,
                            recommender=self.recommender if learned else None, exploration=exploration)

    def closed_loop(self, strength: float | None = None,
                    on_decisions: Callable[[pd.DataFrame], None] | None = None, learned: bool = True,
                    exploration: Exploration | None = None) -> ClosedLoop:
        """A fresh closed loop from the cutoff, with its own profile store and processor.

        `strength` defaults to the setting; `on_decisions` subscribes to the decisions as they are made;
        `learned=False` shows the category rule's pages in the treatment arm instead of the learned lists;
        `exploration` (off by default) makes the policy explore and log its propensities.
        """
        if self.world is None:
            raise ValueError("the closed loop needs the simulated world (data.source: simulate, with data/truth)")
        state = self.initial_state()
        return ClosedLoop(world=self.world, personalizer=self.personalizer(state, learned, exploration),
                          processor=StreamProcessor(state, self.settings.engine), settings=self.settings,
                          strength=self.settings.response_strength if strength is None else float(strength),
                          on_decisions=on_decisions)

    def open_loop(self) -> tuple[pd.DataFrame, pd.DataFrame, Counters]:
        """A retailer's own data: stream its events and orders after the cutoff and log a decision per visit.

        Nothing was shown, so there is no outcome and no A/B test. Returns decisions, dead letters, books.
        """
        state = self.initial_state()
        deciding = self.personalizer(state)
        events = self.tables.get("events")
        after_events = events[events["ts"] >= self.cutoff] if events is not None else None
        orders = self.tables["orders"]
        records = to_records(after_events, orders[orders["ordered_at"] >= self.cutoff]).sort_values("ts", kind="stable")
        sink = MemorySink()
        engine = MicroBatchEngine(StreamProcessor(state, self.settings.engine), decide=deciding.decide)
        counters = engine.run(FrameSource(records, self.settings.micro_batch_events), sink)
        return sink.frames("decisions"), sink.frames("dead_letters"), counters

    def with_replay(self, events: pd.DataFrame, orders: pd.DataFrame) -> dict[str, pd.DataFrame]:
        """The data before the cutoff plus what the replay produced (the world's own records, before network noise)."""
        past = self.past
        tables = dict(past)
        categories = {"event_type": "category", "device": "category"}
        replayed = events[[c for c in past["events"].columns if c in events]].astype(categories)
        tables["events"] = pd.concat([past["events"].astype(categories), replayed], ignore_index=True)
        tables["orders"] = pd.concat([past["orders"], orders[[c for c in past["orders"].columns if c in orders]]],
                                     ignore_index=True)
        tables["customers"] = self.tables["customers"]
        return tables


def id_floor(tables: dict[str, pd.DataFrame]) -> dict[str, int]:
    """The largest session and order ids in the data (replayed ids start above them)."""
    sessions = [tables["events"]["session_id"].max()] if "events" in tables else []
    if "session_id" in tables["orders"]:
        sessions.append(tables["orders"]["session_id"].max())
    return {"session": int(np.nanmax([s for s in sessions if pd.notna(s)] or [0])),
            "order": int(pd.to_numeric(tables["orders"]["order_id"], errors="coerce").max())}
