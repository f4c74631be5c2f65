"""Where the pipeline catches bad data (`gather_reports`: validate, prep, model and replay), and demos
that inject known bad data and count what the real code catches: `run_demo` for validate's
quarantine (the data phase's fault catalog, `atelier.data.faults`), `schema_demo` for problems that
stop the stage, `stream_demo` for the replay's stream processor."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from atelier.core import paths
from atelier.core.config import get
from atelier.core.contract import TABLES
from atelier.core.parallel import ordered_map
from atelier.data import faults, validate
from atelier.data.features import FeatureSettings, microseconds
from atelier.replay.engine import (
    EngineSettings,
    FrameSource,
    MemorySink,
    MicroBatchEngine,
    StreamProcessor,
    summary,
    to_records,
)
from atelier.replay.state import StreamingState

REPORT_COLUMNS = ["stage", "table", "reason", "rows", "flagged", "source"]
BOOKS = ("received", "applied", "duplicates", "late", "malformed")
BOOK_TOTALS = ("received", "applied")  # counts of the stream, not problems: never flagged


def _read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}


def _reason_classes(path: Path) -> pd.Series:
    """The `reason_classes` column of a quarantine file (each row's classes, as validate.json counts them)."""
    try:
        return pd.read_parquet(path, columns=["reason_classes"])["reason_classes"]
    except (KeyError, ValueError):  # pyarrow: "No match for FieldRef.Name(reason_classes) ..."
        raise validate.DataContractError(
            f"{path}: no 'reason_classes' column; the quarantine was written by an older Atelier. "
            "Rerun the validate stage (dvc repro validate)."
        ) from None


def _prep_checks(report: dict[str, Any]) -> list[tuple[str, str, int | None, bool]]:
    """The prep stage's checks from metrics/prep.json: (table, reason, rows or None, flagged) per check.

    Label windows per cutoff (a censored one flags its customers), feature groups skipped for lack
    of data, whether the iterative imputer converged (when the file says), and whether the fitted
    transformer left every prepared value finite (yes/no checks, no row count). Missing feature
    values are not listed: they are by design (a customer who never ordered has no average order
    value) and imputed; their shares are in the same file.
    """
    rows: list[tuple[str, str, int | None, bool]] = []
    for cutoff, entry in sorted(report.get("cutoffs", {}).items()):
        complete = bool(entry.get("label_complete", True))
        reason = "label window complete" if complete else "label window runs past the data (labels censored)"
        rows.append((f"snapshot {cutoff}", reason, 0 if complete else int(entry.get("customers", 0)), not complete))
    skipped = list(report.get("skipped_groups", []))
    rows += [("features", f"feature group '{group}' skipped for lack of data", None, True) for group in skipped]
    if "skipped_groups" in report and not skipped:
        rows.append(("features", "no feature group skipped", None, False))
    imputer = report.get("imputer") or {}
    if imputer.get("converged") is not None:
        converged, rounds = bool(imputer["converged"]), f"{imputer.get('rounds')} of {imputer.get('max_iter')} rounds"
        rows.append(
            (
                "imputer",
                f"iterative imputer {'converged' if converged else 'stopped at its cap'} ({rounds})",
                None,
                not converged,
            )
        )
    if "prepared_all_finite" in report:
        finite = bool(report["prepared_all_finite"])
        rows.append(
            ("prepared", "every prepared value finite" if finite else "non-finite prepared values", None, not finite)
        )
    return rows


def _model_checks(report: dict[str, Any]) -> list[tuple[str, str, int | None, bool]]:
    """The model stage's warnings from metrics/model.json: the overfitting flag of each candidate (no row count)."""
    rows: list[tuple[str, str, int | None, bool]] = []
    for candidate, entry in sorted(report.get("cv", {}).items()):
        if "overfitting" not in entry:
            continue
        flagged = bool(entry["overfitting"])
        gap = f" (train AUC - CV AUC = {float(entry['gap']):.3f})" if entry.get("gap") is not None else ""
        rows.append((candidate, ("overfitting" if flagged else "no overfitting") + gap, None, flagged))
    return rows


def gather_reports(root: Path) -> pd.DataFrame:
    """Every place the pipeline checks data in project folder `root`: (stage, table, reason, rows, flagged, source).

    Stages in pipeline order: validate (validate.json and the quarantine files), prep (label
    windows, skipped feature groups, finite prepared values: metrics/prep.json), model (each
    candidate's overfitting flag: metrics/model.json) and replay (the dead letters and the
    stream's books). `rows` counts the rows a check caught; it is missing (<NA>) for a check
    with a yes/no answer. `flagged` says whether the row reports a problem (a count above 0, a
    failed check); the books' received and applied totals are never flagged.

    Some rows are counted by two sources (validate.json and the quarantine files; the dead letters
    and the replay's books): filter on `source` before summing. A table validate checked without
    finding anything has a row "nothing quarantined" (0). Sources that do not exist (a stage not
    run, optional tables not given) are skipped and listed in `attrs["missing"]`.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"project folder '{root}' does not exist; pass the folder holding params.yaml")
    rows: list[tuple[str, str, str, int | None, bool, str]] = []
    missing: list[str] = []
    report = _read_json(root / paths.VALIDATE_METRICS)
    source = str(paths.VALIDATE_METRICS)
    for name, entry in report.get("tables", {}).items():
        counts = entry.get("reasons") or {"nothing quarantined": 0}
        rows += [("validate", name, reason, int(n), int(n) > 0, source) for reason, n in counts.items()]
    found = sorted(path.stem for path in (root / paths.QUARANTINE_DIR).glob("*.parquet"))
    for name in list(report.get("tables", {})) + [t for t in found if t not in report.get("tables", {})]:
        relative = paths.QUARANTINE_DIR / f"{name}.parquet"
        if name in found:
            counts = validate.class_counts(_reason_classes(root / relative))
            rows += [("validate", name, reason, int(n), int(n) > 0, str(relative)) for reason, n in counts.items()]
        else:
            missing.append(str(relative))
    if not report:
        missing[:0] = [source] + ([str(paths.QUARANTINE_DIR / "*.parquet")] if not found else [])
    for stage, path, checks in (
        ("prep", paths.PREP_METRICS, _prep_checks),
        ("model", paths.MODEL_METRICS, _model_checks),
    ):
        stage_rows = checks(_read_json(root / path))
        if stage_rows:
            rows += [(stage, table, reason, count, flagged, str(path)) for table, reason, count, flagged in stage_rows]
        else:
            missing.append(str(path))
    if (root / paths.DEAD_LETTERS_FILE).exists():
        dead = pd.read_parquet(
            root / paths.DEAD_LETTERS_FILE
        )  # a replay without dead letters writes an empty file with `reason` only
        dead = dead if {"record", "reason"} <= set(dead.columns) else pd.DataFrame({"record": [], "reason": []})
        counts = dead.groupby(["record", "reason"], observed=True).size().sort_values(ascending=False, kind="stable")
        rows += [
            ("replay", f"{record}s", reason, int(n), True, str(paths.DEAD_LETTERS_FILE))
            for (record, reason), n in counts.items()
        ]
    else:
        missing.append(str(paths.DEAD_LETTERS_FILE))
    books, source = _read_json(root / paths.REPLAY_METRICS).get("books"), f"{paths.REPLAY_METRICS} (books)"
    if books:
        rows += [
            ("replay", "stream", key, int(books[key]), key not in BOOK_TOTALS and int(books[key]) > 0, source)
            for key in BOOKS
            if key in books
        ]
    else:
        missing.append(source)
    frame = pd.DataFrame(rows, columns=REPORT_COLUMNS)
    strings = {column: "string" for column in ("stage", "table", "reason", "source")}
    frame = frame.astype(strings | {"rows": "Int64", "flagged": "bool"})
    frame.attrs["missing"] = missing
    return frame


# --------------------------------------------------------------------------------------------
# Injected bad rows, validated with the real code


def _bounds(params: dict[str, Any]) -> dict[str, Any]:
    """validate_tables' keyword arguments from params.yaml's `validate` section (valid_until null = now)."""
    until = get(params, "validate.valid_until")
    return {
        "valid_from": pd.Timestamp(get(params, "validate.valid_from")),
        "valid_until": pd.Timestamp.now(tz="UTC") if until is None else pd.Timestamp(until),
        "max_bad_value_share": float(get(params, "validate.max_bad_value_share")),
    }


#: pandas formats the rows of `to_csv` in chunks of this many cells, each chunk on its own (CSVFormatter).
CSV_CHUNK_CELLS = 100_000


def _csv_text(chunk_rows: int, part: tuple[pd.DataFrame, bool]) -> str:
    frame, header = part
    return frame.to_csv(index=False, header=header, chunksize=chunk_rows)


def write_csv(frame: pd.DataFrame, path: Path, workers: int = 1) -> None:
    """`frame.to_csv(path, index=False)`, its rows formatted in up to `workers` parts on as many processes.

    The parts split where pandas starts a new chunk of rows anyway (it formats each chunk on its own, dates
    included), so the file holds the same bytes as one `to_csv`.
    """
    chunk_rows = max(1, CSV_CHUNK_CELLS // max(1, len(frame.columns)))
    chunks = -(-len(frame) // chunk_rows)
    if workers <= 1 or chunks <= 1:
        frame.to_csv(path, index=False, chunksize=chunk_rows)
        return
    rows = -(-chunks // workers) * chunk_rows  # whole chunks per part
    parts = [(frame.iloc[start:start + rows], start == 0) for start in range(0, len(frame), rows)]
    texts = ordered_map(partial(_csv_text, chunk_rows), parts, workers)
    with open(path, "w", encoding="utf-8", newline="") as handle:
        handle.writelines(texts)


def validate_as_csv(tables: dict[str, pd.DataFrame], params: dict[str, Any], folder: Path,
                    workers: int = 1) -> validate.ValidationResult:
    """Write `tables` to `folder` as contract CSV files (each on up to `workers` processes: the same files) and
    validate them as the `validate` stage reads them (read_tables + validate_tables; nothing is written into the
    project's data/ folder)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for name in TABLES:
        (folder / f"{name}.csv").unlink(missing_ok=True)  # no table lingers from an earlier demo
    for name, frame in tables.items():
        write_csv(frame, folder / f"{name}.csv", workers)
    sources = {name: str(path) for name, path in validate.find_table_files(folder).items()}
    return validate.validate_tables(validate.read_tables(folder), sources=sources, **_bounds(params))


def run_demo(
    tables: dict[str, pd.DataFrame], params: dict[str, Any], workdir: Path, seed: int, per_problem: int,
    workers: int = 1,
) -> pd.DataFrame:
    """Inject every row fault of `faults.FAULTS`, validate the CSV copy in `workdir`, say per fault what was caught.

    Columns (see `faults.scorecard`): table, problem, injected, caught (injected rows quarantined
    with the expected reason class), missed, caught_by, counted_as (every reason class the injected
    rows got), also_quarantined (untouched rows quarantined because of them: the rest of a session
    that now has two customers). The last row of each table is the control: `injected` counts its
    untouched rows and `caught` those quarantined without an injected cause (false alarms; should be 0).
    `workers`: processes writing the CSV copy (`write_csv`: the same files).
    """
    bounds = _bounds(params)
    corrupted, manifest = faults.inject(
        tables, seed, per_problem, valid_from=bounds["valid_from"], valid_until=bounds["valid_until"]
    )
    result = validate_as_csv(corrupted, params, Path(workdir) / "row_problems", workers)
    return faults.scorecard(corrupted, manifest, result.quarantine)


def schema_scenarios(tables: dict[str, pd.DataFrame]) -> Iterator[tuple[str, dict[str, pd.DataFrame], str]]:
    """Problems that must stop validation: (name, corrupted tables, a fragment the error message must hold)."""
    orders = tables["orders"]
    yield (
        "orders.amount missing",
        {**tables, "orders": orders.drop(columns="amount")},
        "required column 'amount' is missing",
    )
    as_text = orders.assign(amount="EUR " + orders["amount"].map("{:.2f}".format))
    yield "orders.amount is text", {**tables, "orders": as_text}, "column 'amount' looks like the wrong type"


def schema_demo(tables: dict[str, pd.DataFrame], params: dict[str, Any], workdir: Path) -> pd.DataFrame:
    """Each schema scenario through `validate_as_csv`: did it stop, and does the message name file, column and fix?

    Only orders is written: the stage stops on it whatever the other tables hold.
    """
    rows = []
    for name, corrupted, fragment in schema_scenarios(tables):
        folder = Path(workdir) / re.sub(r"\W+", "_", name)
        try:
            validate_as_csv({"orders": corrupted["orders"]}, params, folder)
            stopped, message = False, ""
        except validate.DataContractError as error:
            stopped, message = True, str(error)
        names_fix = any(words in message for words in ("Add it", "Fix the values"))
        rows.append((name, stopped, str(folder / "orders.csv") in message, fragment in message, names_fix, message))
    return pd.DataFrame(rows, columns=["scenario", "stopped", "names_file", "names_column", "names_fix", "message"])


# --------------------------------------------------------------------------------------------
# Injected bad records in the stream


def stream_demo(
    events: pd.DataFrame, seed: int, per_problem: int, settings: EngineSettings
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Inject duplicate, late and malformed events into `events` (put in time order), replay them through a
    `StreamProcessor` on an empty state, and return injected vs counted per problem, and the books.

    Duplicates arrive right after their original; a late event arrives two micro-batches after the
    watermark passed it by more than the allowed lateness; malformed events lose their customer or
    event type. An unknown event type is not malformed (the contract keeps it): that row is a
    control expected to be applied. `books` is the processor's total for the expected outcome.
    """
    required = ["event_id", "customer_id", "session_id", "ts", "event_type"]
    if not isinstance(events, pd.DataFrame) or any(c not in events.columns for c in required):
        raise ValueError(f"events must be a DataFrame with the contract columns {required}")
    faults.check_count(per_problem)
    if not isinstance(settings, EngineSettings):
        raise ValueError(f"settings must be an EngineSettings (params.yaml replay), got {type(settings).__name__}")
    batch_size = max(256, 4 * per_problem)  # > 3 x per_problem: moved and copied records cannot close the gap
    stream = to_records(events.sort_values("ts", kind="stable"), None).reset_index(drop=True)
    if len(stream) < 3 * batch_size:
        raise ValueError(
            f"events: {len(stream):,} events are too few for the stream demo; give at least {3 * batch_size:,}"
        )
    stream["customer_id"] = stream["customer_id"].astype(
        "Int64" if pd.api.types.is_integer_dtype(stream["customer_id"]) else object
    )
    stream["event_type"] = stream["event_type"].astype(object)
    ts = microseconds(stream["ts"])
    lateness = int((settings.watermark_delay_seconds + settings.allowed_lateness_seconds) * 1_000_000) + 1
    rng = np.random.default_rng(seed)
    in_time = np.flatnonzero(ts + lateness < ts[-2 * batch_size])
    late = faults.draw_disjoint(rng, in_time, [per_problem], "events (late)")[0]
    rest = np.setdiff1d(np.arange(len(stream)), late)
    duplicate, no_customer, no_type, unknown_type = faults.draw_disjoint(rng, rest, [per_problem] * 4, "events")
    stream.loc[no_customer, "customer_id"] = None
    stream.loc[no_type, "event_type"] = None
    stream.loc[unknown_type, "event_type"] = "wishlist"
    ids = stream["id"].to_numpy()
    arrival = np.arange(len(stream), dtype=float)
    arrival[late] = np.searchsorted(ts, ts[late] + lateness) + 2 * batch_size + 0.5
    copies = stream.iloc[duplicate].assign(arrival=duplicate + 0.25)
    stream = pd.concat([stream.assign(arrival=arrival), copies], ignore_index=True).sort_values(
        "arrival", kind="stable"
    )
    sink = MemorySink()
    engine = MicroBatchEngine(StreamProcessor(StreamingState(FeatureSettings()), settings))
    books = summary(engine.run(FrameSource(stream.drop(columns="arrival"), batch_size), sink))
    dead = sink.frames("dead_letters")
    reason = pd.Series(dead["reason"].to_numpy(), index=dead["id"].to_numpy()) if len(dead) else pd.Series(dtype=object)

    def dead_as(rows: np.ndarray, prefix: str) -> int:
        return int(reason.reindex(ids[rows]).fillna("").astype(str).str.startswith(prefix).sum())

    table = pd.DataFrame(
        [
            ("duplicate event_id", "duplicate (dropped)", books["duplicates"], books["duplicates"]),
            ("later than the allowed lateness", "late (dead letter)", dead_as(late, "late"), books["late"]),
            (
                "missing customer_id",
                "malformed (dead letter)",
                dead_as(no_customer, "missing customer_id"),
                books["malformed"],
            ),
            (
                "missing event_type",
                "malformed (dead letter)",
                dead_as(no_type, "missing event_type"),
                books["malformed"],
            ),
            (
                "unknown event_type 'wishlist' (kept by the contract)",
                "applied",
                per_problem - int(pd.Index(ids[unknown_type]).isin(reason.index).sum()),
                books["applied"],
            ),
        ],
        columns=["problem", "expected", "counted", "books"],
    )
    table.insert(1, "injected", per_problem)
    table.insert(4, "missed", table["injected"] - table["counted"])
    return table, books


# --------------------------------------------------------------------------------------------
# What the pipeline's own checks found, per stage


def flags_by_stage(caught: pd.DataFrame) -> dict[str, tuple[int, list[str]]]:
    """Per stage of `gather_reports` (in its order): (checks, flags), flags as "table: reason (n rows)"
    (the row count left out for a yes/no check); an empty list when the stage flagged nothing."""
    result = {}
    for stage, rows in caught.groupby("stage", sort=False):
        found = rows[rows["flagged"].to_numpy(dtype=bool)]
        result[str(stage)] = (
            int(len(rows)),
            [
                f"{table}: {reason}"
                + ("" if pd.isna(count) else f" ({int(count):,} row{'' if int(count) == 1 else 's'})")
                for table, reason, count in zip(found["table"], found["reason"], found["rows"])
            ],
        )
    return result
