"""Tests for atelier.data.validate.files: finding and reading tables; unreadable files are contract errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from atelier.core.contract import DataContractError
from atelier.data.validate import find_table_files, not_read_files, read_tables

from .contract_samples import reasons_by_row, sample_customers, sample_orders, sample_products, sample_tables, validated


def test_missing_orders_table(tmp_path):
    sample_products().to_csv(tmp_path / "products.csv", index=False)
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(DataContractError, match=r"no orders\.csv or orders\.parquet") as caught:
        find_table_files(tmp_path)
    assert str(tmp_path) in str(caught.value) and "notes.txt" in str(caught.value)
    assert "data.path" in str(caught.value)


def test_missing_folder(tmp_path):
    with pytest.raises(DataContractError, match="does not exist") as caught:
        find_table_files(tmp_path / "nope")
    assert str(tmp_path / "nope") in str(caught.value) and "data.path" in str(caught.value)


def test_both_formats_for_one_table(tmp_path):
    sample_orders().to_csv(tmp_path / "orders.csv", index=False)
    sample_orders().to_parquet(tmp_path / "orders.parquet")
    with pytest.raises(DataContractError, match="orders.parquet and orders.csv") as caught:
        find_table_files(tmp_path)
    assert str(tmp_path) in str(caught.value) and "Keep one" in str(caught.value)


def test_ragged_csv_is_a_contract_error(tmp_path):
    (tmp_path / "orders.csv").write_text("customer_id,order_id,ordered_at,amount\n1,2,2025-01-01,3,4\n")
    with pytest.raises(DataContractError, match="orders.csv"):
        read_tables(tmp_path)


def _broken_parquet(kind: str, folder: Path) -> bytes:
    if kind == "garbage":
        return np.random.default_rng(0).integers(0, 256, 500, dtype=np.uint8).tobytes()
    if kind == "csv renamed":
        return sample_orders().to_csv(index=False).encode()
    sample_orders().to_parquet(folder / "whole.parquet")
    whole = (folder / "whole.parquet").read_bytes()
    (folder / "whole.parquet").unlink()
    return whole[: len(whole) // 2]  # "truncated": an interrupted copy


@pytest.mark.parametrize("table", ["orders", "events"])
@pytest.mark.parametrize("kind", ["garbage", "csv renamed", "truncated"])
def test_unreadable_parquet_is_a_contract_error_naming_the_file_and_the_fix(tmp_path, table, kind):
    sample_tables()["orders"].to_parquet(tmp_path / "orders.parquet")
    (tmp_path / f"{table}.parquet").write_bytes(_broken_parquet(kind, tmp_path))
    with pytest.raises(DataContractError) as caught:
        read_tables(tmp_path)
    message = str(caught.value)
    assert message.startswith(f"{tmp_path / table}.parquet: could not be read as Parquet (")
    assert "Export it again as Parquet, or as CSV" in message and "Data contract" in message
    assert "\n" not in message and "Traceback" not in message
    assert message.count(str(tmp_path)) == 1  # pyarrow's own copy of the path is dropped


def test_empty_parquet_file_is_a_contract_error(tmp_path):
    (tmp_path / "orders.parquet").write_bytes(b"")
    with pytest.raises(DataContractError, match=r"orders\.parquet: the file is empty \(0 bytes\)") as caught:
        read_tables(tmp_path)
    assert "Export it" in str(caught.value)


def test_csv_that_is_not_utf8_text_is_a_contract_error(tmp_path):
    (tmp_path / "orders.csv").write_bytes(b"customer_id,order_id,ordered_at,amount\n1,2,2025-01-01,\xff\xfe\n")
    with pytest.raises(DataContractError) as caught:
        read_tables(tmp_path)
    message = str(caught.value)
    assert message.startswith(f"{tmp_path / 'orders.csv'}: could not be read as a comma-separated UTF-8 file")
    assert "UTF8" in message and "Export it as CSV" in message and "\n" not in message


def test_table_path_that_is_a_folder_is_a_contract_error(tmp_path):
    (tmp_path / "orders.csv").mkdir()
    with pytest.raises(DataContractError, match=r"orders\.csv: could not be opened .*not a folder"):
        read_tables(tmp_path)


def test_csv_and_parquet_inputs_give_the_same_tables(tmp_path):
    csv_dir, parquet_dir = tmp_path / "csv", tmp_path / "parquet"
    csv_dir.mkdir()
    parquet_dir.mkdir()
    raw = sample_tables()
    raw["orders"].loc[1, "amount"] = "-1"
    typed_products = sample_products().astype({"product_id": "int64", "price": "float64"})
    for name, frame in raw.items():
        frame.to_csv(csv_dir / f"{name}.csv", index=False)
    for name, frame in {**raw, "products": typed_products}.items():
        frame.to_parquet(parquet_dir / f"{name}.parquet")
    from_csv = read_tables(csv_dir)
    assert all(str(from_csv[name][c].dtype) == "str" for name in from_csv for c in from_csv[name].columns)
    assert from_csv["orders"]["quantity"].isna().sum() == 1  # empty cell -> missing
    from_parquet = read_tables(parquet_dir)
    assert from_parquet["products"]["price"].dtype == "float64"
    a, b = validated(from_csv), validated(from_parquet)
    for name in raw:
        pd.testing.assert_frame_equal(a.tables[name], b.tables[name], check_dtype=True)
    assert reasons_by_row(a, "orders") == reasons_by_row(b, "orders") == {2: "amount is negative"}


def test_csv_only_empty_cells_are_missing(tmp_path):
    sample_orders().to_csv(tmp_path / "orders.csv", index=False)
    customers = sample_customers()
    customers["region"] = ["NA", "None", None]  # "NA" (North America) is a value, not a gap
    customers.to_csv(tmp_path / "customers.csv", index=False)
    result = validated(read_tables(tmp_path))
    region = result.tables["customers"]["region"]
    assert region.tolist()[:2] == ["NA", "None"] and pd.isna(region.tolist()[2])


def test_csv_keeps_leading_zeros(tmp_path):
    orders = sample_orders()
    orders["customer_id"] = ["0012", "2", "3", "0012", "2"]
    orders.to_csv(tmp_path / "orders.csv", index=False)
    result = validated(read_tables(tmp_path))
    assert result.tables["orders"]["customer_id"].tolist() == ["0012", "2", "3", "0012", "2"]
    assert str(result.tables["orders"]["customer_id"].dtype) == "string"


def test_not_read_files_lists_what_is_not_a_contract_table(tmp_path):
    sample_orders().to_csv(tmp_path / "orders.csv", index=False)
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / ".hidden").write_text("x")
    assert not_read_files(tmp_path, find_table_files(tmp_path)) == ["notes.txt"]
