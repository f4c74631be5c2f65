"""The service's loading and model lifecycle: `make serve` without a built pipeline, the settings' refusals, and
promotion / rollback in the registry reaching a running service without a restart."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
from conftest import REPO, tiny_params, write_params
from fastapi.testclient import TestClient

from atelier.core.config import ParamsError
from atelier.model.registry import Registry
from atelier.serve import stage
from atelier.serve.app import create_app
from atelier.serve.service import ServeSettings

from .conftest import customer_with_arm


def test_serve_without_a_built_pipeline_says_run_make_repro_first(tmp_path):
    write_params(tiny_params(), tmp_path)
    for command in ("serve", "serve-loop"):
        done = subprocess.run([sys.executable, "-m", "atelier", command, "--url", "http://127.0.0.1:9"],
                              env={**os.environ, "ATELIER_ROOT": str(tmp_path)}, capture_output=True, text=True,
                              timeout=120, cwd=REPO)
        assert done.returncode == 2 and "Traceback" not in done.stderr
        assert len(done.stderr.strip().splitlines()) == 1 and done.stderr.startswith("error: ")
    assert "run `make repro` first" in subprocess.run(
        [sys.executable, "-m", "atelier", "serve"], env={**os.environ, "ATELIER_ROOT": str(tmp_path)},
        capture_output=True, text=True, timeout=120).stderr
    assert stage.required(tmp_path, from_cutoff=True) and stage.required(tmp_path, from_cutoff=False)[-1].name == \
        "loop.json"


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
