"""Finding and reading the input tables of a data folder; a file that cannot be read is a contract error
naming the file and the fix."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow.lib as pa_lib

from atelier.core.contract import FILE_SUFFIXES, TABLES, DataContractError
from atelier.data.validate.reasons import SEE_README

UNREADABLE_FIX = f"Check that it is a file you can read (permissions, not a folder) and try again. {SEE_README}"


def find_table_files(folder: Path) -> dict[str, Path]:
    """The contract tables present in `folder`, as {table: path} (orders.parquet or orders.csv...).

    Raises DataContractError if the folder does not exist, if `orders` is missing, or if a table
    exists in both formats.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DataContractError(
            f"data folder '{folder}' does not exist. Set data.path in params.yaml to the folder "
            f"holding orders.csv or orders.parquet. {SEE_README}"
        )
    found: dict[str, Path] = {}
    for name in TABLES:
        candidates = [folder / f"{name}{suffix}" for suffix in FILE_SUFFIXES]
        present = [path for path in candidates if path.exists()]
        if len(present) > 1:
            names = " and ".join(path.name for path in present)
            raise DataContractError(
                f"{folder}: both {names} exist, so Atelier cannot tell which '{name}' table to "
                f"read. Keep one of them (move or delete the other). {SEE_README}"
            )
        if present:
            found[name] = present[0]
    required = [name for name, table in TABLES.items() if table.required]
    for name in required:
        if name not in found:
            others = sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))
            listing = ", ".join(others) if others else "nothing"
            raise DataContractError(
                f"{folder}: no {name}.csv or {name}.parquet found (found: {listing}). '{name}' is "
                f"the one required table ({TABLES[name].row} per row). Add it, or set data.path "
                f"in params.yaml to the folder that holds it. {SEE_README}"
            )
    return found


def not_read_files(folder: Path, files: dict[str, Path]) -> list[str]:
    """Names of the entries in `folder` that are not contract tables (hidden files skipped)."""
    used = {Path(path).name for path in files.values()}
    return sorted(p.name for p in Path(folder).iterdir() if not p.name.startswith(".") and p.name not in used)


def first_line(error: BaseException, path: Path) -> str:
    """The first line of a reader's error, without the file name our message already starts with."""
    text = str(error).strip()
    text = text.splitlines()[0] if text else type(error).__name__
    text = text.removeprefix(f"Could not open Parquet input source '{path}': ")
    return text.replace(f": '{path}'", "").replace(f" '{path}'", "").rstrip(".")


def read_csv_table(path: Path) -> pd.DataFrame:
    """A CSV table with every column as text: only an empty cell is missing ("NA" stays the text "NA"), so a bad
    value can be quarantined with its original text."""
    try:
        # The pyarrow parser is ~5x faster than the C one and refuses ragged rows (the C parser would
        # silently turn an extra field into the index).
        return pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""], engine="pyarrow")
    except pd.errors.EmptyDataError:
        raise DataContractError(
            f"{path}: the file is empty (not even a header row). Write a header row with "
            f"the column names, or remove the file. {SEE_README}"
        ) from None
    except pd.errors.ParserError as error:
        raise DataContractError(
            f"{path}: could not be read as a comma-separated UTF-8 file ({first_line(error, path)}). "
            f"Export it as CSV (UTF-8, comma-separated, one header row, the same number of fields on "
            f"every row) or as Parquet. {SEE_README}"
        ) from None
    except OSError as error:
        raise DataContractError(f"{path}: could not be opened ({first_line(error, path)}). {UNREADABLE_FIX}") from None


def read_parquet_table(path: Path, name: str) -> pd.DataFrame:
    """A Parquet table with its own types; an empty, truncated or mislabelled file is a contract error."""
    if path.is_file() and path.stat().st_size == 0:
        raise DataContractError(
            f"{path}: the file is empty (0 bytes), so there is no '{name}' table to read. Export it "
            f"again (the export may have failed or still be running), or remove the file. {SEE_README}"
        )
    try:
        return pd.read_parquet(path)
    except OSError as error:  # includes pyarrow's ArrowIOError: permissions, a folder, a broken disk read
        raise DataContractError(f"{path}: could not be opened ({first_line(error, path)}). {UNREADABLE_FIX}") from None
    except (pa_lib.ArrowException, ValueError) as error:
        raise DataContractError(
            f"{path}: could not be read as Parquet ({first_line(error, path)}). It may be truncated, "
            f"corrupt, still being written, or another format renamed to .parquet. Export it again as "
            f"Parquet, or as CSV named {name}.csv. {SEE_README}"
        ) from None


def read_tables(folder: Path) -> dict[str, pd.DataFrame]:
    """Read the contract tables in `folder`: CSV with every column as text, Parquet with its types."""
    return {
        name: read_csv_table(path) if path.suffix == ".csv" else read_parquet_table(path, name)
        for name, path in find_table_files(folder).items()
    }
