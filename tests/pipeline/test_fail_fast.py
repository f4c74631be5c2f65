"""A params.yaml problem a later stage would reject stops the first stage that runs, with the same message.

Each case runs the stage command (`python -m atelier <stage>`, in process) and checks that it exits with
code 2 and one clear message before writing anything.
"""

from __future__ import annotations

import pandas as pd
import pytest
from conftest import tiny_params, write_params

from atelier import cli
from atelier.core.config import ParamsError
from atelier.model.split import split_by_time


def _run(stage: str, params: dict, root, monkeypatch, capsys) -> tuple[int, str]:
    root.mkdir(parents=True, exist_ok=True)
    write_params(params, root)
    monkeypatch.setenv("ATELIER_ROOT", str(root))
    code = cli.main([stage])
    return code, capsys.readouterr().err


def _model_stage_message(cutoffs: list[str], horizon_days: int) -> str:
    """What the model stage says about these cutoffs (it refuses them when it splits the snapshots)."""
    snapshots = pd.DataFrame({"cutoff": pd.to_datetime(cutoffs), "label": [0] * len(cutoffs)})
    with pytest.raises(ParamsError) as error:
        split_by_time(snapshots, horizon_days)
    return str(error.value)


@pytest.mark.parametrize("source", ["simulate", "files"])
def test_cutoffs_closer_than_the_horizon_stop_the_first_stage_with_the_model_stage_s_message(
        source, tmp_path, monkeypatch, capsys):
    params = tiny_params()
    params["timeline"]["cutoffs"] = ["2025-03-01", "2025-04-01", "2025-04-20"]  # 19 days < horizon 30
    params["data"].update(source=source, path="data/simulated" if source == "simulate" else "mine")
    code, err = _run("simulate", params, tmp_path / "project", monkeypatch, capsys)
    assert code == 2 and "Traceback" not in err
    assert err.strip() == f"error: {_model_stage_message(params['timeline']['cutoffs'], 30)}"
    assert "space the cutoffs at least timeline.horizon_days apart" in err
    assert not (tmp_path / "project" / "data" / "simulated").exists(), "nothing simulated"


def test_cutoffs_outside_the_simulated_period_stop_simulate_before_it_simulates(tmp_path, monkeypatch, capsys):
    params = tiny_params()  # simulates 2025-01-01 .. 2025-06-30
    params["timeline"]["cutoffs"] = ["2024-11-01", "2025-03-01"]
    code, err = _run("simulate", params, tmp_path / "project", monkeypatch, capsys)
    assert code == 2
    assert "timeline.cutoffs: 2024-11-01 + 30 days is outside the simulated period 2025-01-01..2025-06-30" in err
    assert not (tmp_path / "project" / "data" / "simulated").exists()


def _orders_folder(root) -> None:
    """A folder of the user's own orders, 1 March to 30 June 2025."""
    folder = root / "mine"
    folder.mkdir(parents=True)
    days = pd.date_range("2025-03-01", "2025-06-30", freq="D")
    pd.DataFrame({
        "customer_id": [f"C{i % 40:03d}" for i in range(len(days))],
        "order_id": [f"O{i:04d}" for i in range(len(days))],
        "ordered_at": days.strftime("%Y-%m-%dT10:00:00"),
        "amount": 25.0,
    }).to_csv(folder / "orders.csv", index=False)


@pytest.mark.parametrize(("cutoffs", "expected"), [
    (["2025-02-01", "2025-04-01"], "params.yaml timeline.cutoffs ['2025-02-01'] are not after the first order "
                                   "(2025-03-01); your orders run from 2025-03-01 to 2025-06-30"),
    (["2025-04-01", "2025-06-15"], "params.yaml timeline.cutoffs: labels at ['2025-06-15'] are censored (the data "
                                   "ends before their window does)"),
])
def test_cutoffs_outside_the_user_s_data_stop_validate(cutoffs, expected, tmp_path, monkeypatch, capsys):
    root = tmp_path / "project"
    _orders_folder(root)
    params = tiny_params()
    params["data"].update(source="files", path="mine")
    params["timeline"]["cutoffs"] = cutoffs
    assert _run("simulate", params, root, monkeypatch, capsys)[0] == 0  # skipped; the data is validate's to read
    code, err = _run("validate", params, root, monkeypatch, capsys)
    assert code == 2 and "Traceback" not in err
    assert expected in err
    assert (root / "metrics" / "validate.json").exists(), "what validation found is written and shown as well"


def test_the_censoring_message_is_the_model_stage_s():
    snapshots = pd.DataFrame({"cutoff": pd.to_datetime(["2025-04-01", "2025-06-15"]), "label": [0, None]})
    with pytest.raises(ParamsError, match=r"labels at \['2025-06-15'\] are censored \(the data ends before"):
        split_by_time(snapshots.astype({"label": "Int8"}), 30)


@pytest.mark.parametrize("stage", ["simulate", "validate", "prep", "model", "index"])
def test_a_misspelled_key_stops_any_stage_before_it_starts(stage, tmp_path, monkeypatch, capsys):
    params = tiny_params()
    params["segmentation"]["n_inits"] = params["segmentation"].pop("n_init")
    root = tmp_path / "project"
    code, err = _run(stage, params, root, monkeypatch, capsys)
    assert code == 2 and "Traceback" not in err
    assert f"error: {root / 'params.yaml'}: " in err
    assert "unknown key 'segmentation.n_inits' (did you mean 'segmentation.n_init'?)" in err
    assert "missing key 'segmentation.n_init'" in err
    assert sorted(path.name for path in root.iterdir()) == ["params.yaml"], "nothing was written"
