"""The service's HTTP API (FastAPI's TestClient): every endpoint, every refusal and every fallback reason."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from atelier.model import explain
from atelier.replay.engine import LATE_REASON
from atelier.serve.app import create_app
from atelier.serve.service import REASONS
from atelier.serve.stage import static_dir

from ..replay.test_loop import scorer_needing_more  # noqa: F401  (a champion needing a feature profiles lack)
from .conftest import customer_with_arm


def event(service, customer: int, *, id: int, session: int = 7, seconds: float = 1.0, product: int | None = None,
          **fields) -> dict:
    """An event record `seconds` after the service's clock."""
    when = pd.Timestamp(service.now_us(), unit="us") + pd.Timedelta(seconds=seconds)
    product = int(service.personalizer.assortment.product_id[0]) if product is None else product
    return {"record": "event", "id": id, "customer_id": customer, "session_id": session, "ts": when.isoformat(),
            "event_type": "product_view", "product_id": product, "device": "mobile", "dwell_seconds": 12.0,
            **fields}


def test_health_ready_books_and_the_shop_page(client, service):
    assert client.get("/health").json()["customers"] == len(service.personalizer.state) > 0
    assert client.get("/ready").json() == {"ready": True, "model": {"version": "v1", "name": "xgboost"}}
    books = client.get("/api/books").json()
    assert books["received"] == 0 and books["balanced"] and books["refused_requests"] == 0
    page = client.get("/")
    assert page.status_code == 200 and "/static/app.js" in page.text and "http" not in page.text.split("<body>")[1]
    assert client.get("/static/app.js").status_code == 200
    assert client.get("/static/../stage.py").status_code == 404  # nothing outside the page's folder is served


def test_a_treatment_customer_gets_a_personalized_page_with_exact_contributions(client, service):
    customer = customer_with_arm(service, "treatment")
    page = client.get(f"/api/customers/{customer}/page").json()
    assert (page["reason"], page["experience"], page["arm"]) == ("personalized", "personalized", "treatment")
    assert len(page["products"]) == 6 and page["banner_category"] == page["products"][0]["category"]
    assert 0 < page["propensity"] < 1 and page["model_version"] == "v1"
    # The contributions are xgboost's exact ones: with the bias they add up to the score's log-odds.
    champion = service.model.champion
    vector = [page["profile"][f] for f in champion.numeric]
    exact = champion.contributions_vector(vector)
    margin = float(exact.sum())
    assert abs(1 / (1 + pow(2.718281828459045, -margin)) - page["propensity"]) < 1e-5
    general = explain.xgboost_contributions(champion.pipeline, pd.DataFrame([vector], columns=champion.numeric))
    np.testing.assert_allclose(general.iloc[0].to_numpy(), exact, rtol=1e-6, atol=1e-7)  # the general route agrees
    shown = {c["feature"]: c["contribution"] for c in page["contributions"]}
    assert len(shown) == 5 and all(abs(shown[f] - exact[champion.numeric.index(f)]) < 1e-12 for f in shown)
    assert min(abs(v) for v in shown.values()) >= sorted(abs(exact[:-1]))[-5] - 1e-12


def test_every_fallback_reason(client, service, scorer_needing_more):  # noqa: F811
    seen = {"personalized"}
    control = customer_with_arm(service, "control")
    assert client.get(f"/api/customers/{control}/page").json()["reason"] == "control"
    seen.add("control")
    newcomer = customer_with_arm(service, "treatment", known=False)
    page = client.get(f"/api/customers/{newcomer}/page").json()  # unknown customer: cold start, not an error
    assert (page["reason"], page["known"], page["profile"], page["contributions"]) == ("cold_start", False, None, [])
    seen.add("cold_start")
    treated = customer_with_arm(service, "treatment")
    service.set_model(scorer_needing_more, None)
    assert client.get(f"/api/customers/{treated}/page").json()["reason"] == "missing_features"
    seen.add("missing_features")
    service.set_model(None, "no 'champion' alias in models/registry")
    page = client.get(f"/api/customers/{treated}/page").json()
    assert (page["reason"], page["propensity"], page["banner"]) == ("model_unavailable", None, "bestsellers")
    seen.add("model_unavailable")
    assert client.get("/ready").status_code == 503
    assert client.get("/ready").json() == {"ready": False, "reason": "model_unavailable",
                                           "detail": "no 'champion' alias in models/registry"}
    explained = client.get(f"/api/customers/{treated}/explanation")
    assert explained.status_code == 503 and explained.json()["reason"] == "model_unavailable"
    assert seen == set(REASONS)


def test_lime_explanation_on_request(client, service):
    customer = customer_with_arm(service, "treatment")
    answer = client.get(f"/api/customers/{customer}/explanation").json()
    assert answer["reason"] == "explained" and answer["why"].startswith("P(order)")
    assert 1 <= len(answer["weights"]) <= 5 and {"feature", "condition", "value", "weight"} <= set(answer["weights"][0])
    newcomer = customer_with_arm(service, "treatment", known=False)
    assert client.get(f"/api/customers/{newcomer}/explanation").json()["reason"] == "cold_start"


def test_ingest_applies_once_and_acknowledges_a_duplicate(client, service):
    customer = customer_with_arm(service, "treatment")
    views = lambda: client.get(f"/api/customers/{customer}/page").json()["profile"]["views_per_session"]  # noqa: E731
    before = views()
    record = event(service, customer, id=5)
    first = client.post("/api/events", json=record)
    assert first.status_code == 200 and first.json()["verdicts"] == [{"verdict": "applied"}]
    assert first.json()["changed"] == [customer]
    after = views()
    assert after != before
    again = client.post("/api/events", json=record)
    assert again.status_code == 200 and again.json()["verdicts"] == [{"verdict": "duplicate"}]
    assert views() == after  # not applied twice
    books = client.get("/api/books").json()
    assert (books["received"], books["applied"], books["duplicates"], books["balanced"]) == (2, 1, 1, True)


def test_late_and_malformed_records_are_refused_with_their_reason_and_counted(client, service):
    customer = customer_with_arm(service, "treatment")
    assert client.post("/api/events", json=event(service, customer, id=1, seconds=3600)).status_code == 200
    late = client.post("/api/events", json=event(service, customer, id=2, seconds=-3600))
    assert late.status_code == 422 and late.json()["verdicts"] == [{"verdict": "late", "reason": LATE_REASON}]
    cases = {"missing customer_id": {"customer_id": None}, "missing or unparseable timestamp": {"ts": None},
             "missing session_id": {"session_id": None}, "missing event_type": {"event_type": None},
             "negative dwell_seconds": {"dwell_seconds": -3.0}}
    for number, (reason, change) in enumerate(cases.items()):
        refused = client.post("/api/events", json=event(service, customer, id=100 + number, seconds=3600, **change))
        assert refused.status_code == 422 and refused.json()["verdicts"] == [{"verdict": "malformed", "reason": reason}]
    order = {"record": "order", "id": 9, "customer_id": customer, "ts": event(service, customer, id=0)["ts"],
             "amount": -5.0}
    assert client.post("/api/events", json=order).json()["verdicts"][0]["reason"] == "missing or negative amount"
    books = client.get("/api/books").json()
    assert (books["applied"], books["late"], books["malformed"], books["balanced"]) == (1, 1, 6, True)
    assert [d["reason"] for d in books["recent_dead_letters"]] == [LATE_REASON, *cases, "missing or negative amount"]


def test_a_batch_is_applied_whole_with_a_verdict_per_record(client, service):
    customer = customer_with_arm(service, "treatment")
    other = customer_with_arm(service, "control")
    records = [event(service, customer, id=1), event(service, other, id=2, session=8),
               event(service, customer, id=1), event(service, customer, id=3, customer_id=None)]
    answer = client.post("/api/events", json={"records": records})
    assert answer.status_code == 200
    assert [v["verdict"] for v in answer.json()["verdicts"]] == ["applied", "applied", "duplicate", "malformed"]
    assert answer.json()["changed"] == sorted([customer, other])


@pytest.mark.parametrize("body, where", [
    ({"record": "event", "id": "x", "customer_id": 1, "ts": None}, "body.id"),
    ({"record": "event", "id": -1, "customer_id": 1, "ts": None}, "body.id"),
    ({"record": "click", "id": 1, "customer_id": 1, "ts": None}, "body.record"),
    ({"record": "event", "id": 1, "customer_id": 1, "ts": "yesterday"}, "body.ts"),
    ({"record": "event", "id": 1, "customer_id": 1, "ts": None, "path": "/etc/passwd"}, "body.path"),
    ({"record": "event", "id": 1, "customer_id": 1, "ts": None, "event_type": "hack"}, "body.event_type"),
    ({"record": "event", "id": 1, "customer_id": 1, "ts": None, "dwell_seconds": "NaN"}, "body.dwell_seconds"),
    ({"record": "event", "id": 1, "customer_id": 2**60, "ts": None}, "body.customer_id"),
    ({"records": []}, "body.records"),
])
def test_an_invalid_request_is_refused_whole_and_changes_nothing(client, service, body, where):
    customer = customer_with_arm(service, "treatment")
    if "records" in body:
        sent = body
    else:  # the bad record after a good one: nothing of the request may be applied
        sent = {"records": [event(service, customer, id=77), body]}
        where = where.replace("body.", "body.records.1.")
    answer = client.post("/api/events", json=sent)
    assert answer.status_code == 422 and where in [d["where"] for d in answer.json()["detail"]]
    books = client.get("/api/books").json()
    assert (books["received"], books["refused_requests"]) == (0, 1)


def test_size_limits_and_bad_bodies(client, service, make_service, serve_settings):
    customer = customer_with_arm(service, "treatment")
    too_many = [event(service, customer, id=i) for i in range(serve_settings.max_batch_records + 1)]
    assert client.post("/api/events", json={"records": too_many}).status_code == 413
    huge = b'{"records": [' + b" " * serve_settings.max_body_bytes + b"]}"
    answer = client.post("/api/events", content=huge, headers={"content-type": "application/json"})
    assert answer.status_code == 413 and "max_body_bytes" in answer.json()["detail"]
    streamed = client.post("/api/events", content=iter([b"[" * 1000] * (serve_settings.max_body_bytes // 1000 + 2)),
                           headers={"content-type": "application/json"})  # no content-length: counted as it arrives
    assert streamed.status_code == 413
    assert client.post("/api/events", content=b"not json", headers={"content-type": "application/json"}
                       ).status_code == 422
    for path in ("/api/customers/abc/page", "/api/customers/-1/page", f"/api/customers/{2**53}/page",
                 "/api/customers/1/page?at=yesterday", "/api/customers/1/page?session_id=-4",
                 "/api/customers/1/stream?session_id=x"):
        assert client.get(path).status_code == 422, path
    books = client.get("/api/books").json()
    assert books["received"] == 0 and books["refused_requests"] == 10


def test_a_click_on_the_page_updates_the_profile_and_unknown_products_are_refused(client, service):
    customer = customer_with_arm(service, "treatment")
    page = client.get(f"/api/customers/{customer}/page").json()
    product = page["products"][0]["product_id"]
    action = {"type": "add_to_cart", "product_id": product, "session_id": page["session_id"]}
    answer = client.post(f"/api/customers/{customer}/actions", json=action)
    assert answer.status_code == 200 and answer.json()["verdicts"] == [{"verdict": "applied"}]
    assert client.get(f"/api/customers/{customer}/page").json()["profile"]["cart_adds"] == \
        page["profile"]["cart_adds"] + 1
    refused = client.post(f"/api/customers/{customer}/actions", json={**action, "product_id": 10**9})
    assert refused.status_code == 422 and "not in the shop's products" in refused.json()["detail"][0]["problem"]
    assert client.post(f"/api/customers/{customer}/actions", json={**action, "type": "purchase"}).status_code == 422


def test_examples_offer_each_segment_and_a_new_visitor(client, service, serve_settings):
    examples = client.get("/api/examples").json()
    assert len(examples["segments"]) >= 3
    for segment, ids in examples["segments"].items():
        assert 1 <= len(ids) <= serve_settings.examples_per_segment
        for customer in ids:
            page = client.get(f"/api/customers/{customer}/page").json()
            assert (page["segment"], page["arm"], page["known"]) == (segment, "treatment", True)
    newcomer = client.get(f"/api/customers/{examples['new_visitor']}/page").json()
    assert (newcomer["known"], newcomer["arm"], newcomer["reason"]) == (False, "treatment", "cold_start")


def test_reload_needs_a_token_off_the_loopback(service):
    loads = []

    def reload_model(force):
        loads.append(force)
        return None

    with TestClient(create_app(service, static_dir=static_dir(), reload_model=reload_model)) as local:
        assert local.post("/admin/reload").json()["changed"] is False
    for token, header, status in [(None, None, 403), ("s3cret", None, 401), ("s3cret", "Bearer wrong", 401),
                                  ("s3cret", "Bearer s3cret", 200)]:
        app = create_app(service, static_dir=static_dir(), reload_model=reload_model, host="0.0.0.0", token=token)
        with TestClient(app) as remote:
            headers = {} if header is None else {"Authorization": header}
            assert remote.post("/admin/reload", headers=headers).status_code == status
    assert loads.count(True) == 2  # the loopback call and the one with the right token
