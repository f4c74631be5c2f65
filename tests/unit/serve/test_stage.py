"""The service's loading and model lifecycle: `make serve` without a built pipeline, the settings' refusals, and
promotion / rollback in the registry reaching a running service without a restart."""

from __future__ import annotations

import time

import pytest
from conftest import tiny_params, write_params
from fastapi.testclient import TestClient

from atelier import cli
from atelier.core.config import ParamsError
from atelier.model.registry import Registry
from atelier.serve import stage
from atelier.serve.app import create_app
from atelier.serve.service import ServeSettings

from .conftest import customer_with_arm


def test_serve_without_a_built_pipeline_says_run_make_repro_first(tmp_path, monkeypatch, capsys):
    write_params(tiny_params(), tmp_path)
    monkeypatch.setenv("ATELIER_ROOT", str(tmp_path))
    for command in (["serve"], ["serve", "--from-cutoff"], ["serve-loop", "--url", "http://127.0.0.1:9"]):
        assert cli.main(command) == 2
        stderr = capsys.readouterr().err
        assert len(stderr.strip().splitlines()) == 1 and stderr.startswith("error: ") and "Traceback" not in stderr
        if command[0] == "serve":
            assert "run `make repro` first" in stderr and "data/validated/orders.parquet" in stderr
    assert cli.main(["serve-loop", "--days", "0"]) == 2 and "--days" in capsys.readouterr().err
    assert stage.required(tmp_path, from_cutoff=False)[-1].name == "loop.json"
    assert "loop.json" not in str(stage.required(tmp_path, from_cutoff=True))


@pytest.mark.parametrize("key, value, message", [
    ("port", 0, "serve.port"), ("port", "80", "serve.port"), ("max_body_bytes", -1, "serve.max_body_bytes"),
    ("watch_seconds", 0, "serve.watch_seconds"), ("host", "", "serve.host"), ("feed_history", True, "feed_history"),
])
def test_serve_settings_refuse_bad_values(key, value, message):
    section = {**tiny_params()["serve"], key: value}
    with pytest.raises(ParamsError, match=message):
        ServeSettings.from_params(section)
    with pytest.raises(ParamsError, match="missing keys"):
        ServeSettings.from_params({"host": "127.0.0.1"})


def test_promotion_and_rollback_reach_the_running_service(tmp_path, registry_dir, make_service):
    registry = Registry(registry_dir).copy_to(tmp_path / "registry")
    champion = registry.alias("champion")
    service = make_service()
    loaded, problem = stage.try_load_champion(registry.root)
    service.set_model(loaded, problem)
    check = stage.model_watcher(registry.root, loaded, problem)
    assert check(False) is None  # nothing moved
    customer = customer_with_arm(service, "treatment")
    with TestClient(create_app(service, static_dir=stage.static_dir(), reload_model=check)) as http:

        def serving(version, reason="personalized", timeout=10.0):
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                page = http.get(f"/api/customers/{customer}/page").json()
                if (page["model_version"], page["reason"]) == (version, reason):
                    return True
                time.sleep(0.05)
            return False

        assert serving(champion)
        second = registry.register(registry.load(champion), name="xgboost",
                                   metadata={"features": registry.metadata(champion)["features"]})
        registry.set_alias("champion", second)  # promotion: the watcher picks it up, no restart
        assert serving(second)
        assert registry.rollback("champion") == champion
        assert serving(champion)
        (registry.root / "aliases.json").unlink()  # no champion any more: pages fall back, readiness says so
        assert serving(None, "model_unavailable")
        ready = http.get("/ready")
        assert ready.status_code == 503 and ready.json()["reason"] == "model_unavailable"
        assert "no 'champion' alias" in ready.json()["detail"]
        registry.set_alias("champion", second)
        assert serving(second) and http.get("/ready").status_code == 200
