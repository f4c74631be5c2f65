"""Server-sent events through a real uvicorn server on 127.0.0.1: a posted event reaches the customer's open stream
with the new page, and a reconnect with Last-Event-ID misses nothing."""

from __future__ import annotations

import json
import threading
import time

import httpx

from .conftest import customer_with_arm


def read_events(response: httpx.Response, count: int) -> list[tuple[int, dict]]:
    """The next `count` page events (id, page) of an open event stream (keep-alive comments skipped)."""
    if not hasattr(response, "lines"):
        response.lines = response.iter_lines()  # one line iterator per stream
    events, fields = [], {}
    for line in response.lines:
        if line == "":
            if "data" in fields:
                events.append((int(fields["id"]), json.loads(fields["data"])))
                if len(events) == count:
                    return events
            fields = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(":")
            fields[name] = value.removeprefix(" ")
    raise AssertionError(f"the stream ended after {len(events)} of {count} events")


def click(http: httpx.Client, customer: int, page: dict, position: int = 0) -> dict:
    action = {"type": "product_view", "product_id": page["products"][position]["product_id"],
              "session_id": page["session_id"]}
    answer = http.post(f"/api/customers/{customer}/actions", json=action)
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_an_event_reaches_the_open_stream_with_the_new_page(live, service):
    customer = customer_with_arm(service, "treatment")
    with httpx.Client(base_url=live.url, timeout=10) as http:
        with http.stream("GET", f"/api/customers/{customer}/stream") as stream:
            assert stream.headers["content-type"].startswith("text/event-stream")
            [(first_id, first)] = read_events(stream, 1)
            answer = click(http, customer, first)
            assert answer["pushed"] == {str(customer): first_id + 1}
            [(second_id, second)] = read_events(stream, 1)
        assert second_id == first_id + 1 and second["session_id"] == first["session_id"]
        assert second["profile"]["views_per_session"] != first["profile"]["views_per_session"]
        # Another customer's event does not touch this stream's feed.
        other = customer_with_arm(service, "control")
        page = http.get(f"/api/customers/{other}/page").json()
        assert click(http, other, page)["pushed"] == {}


def test_a_reconnect_with_last_event_id_misses_nothing(live, service):
    customer = customer_with_arm(service, "treatment")
    with httpx.Client(base_url=live.url, timeout=10) as http:
        with http.stream("GET", f"/api/customers/{customer}/stream") as stream:
            [(first_id, first)] = read_events(stream, 1)
        # The browser is away: three clicks happen (another tab), each a new page on the feed.
        for position in range(3):
            click(http, customer, first, position)
        headers = {"Last-Event-ID": str(first_id)}
        with http.stream("GET", f"/api/customers/{customer}/stream", headers=headers) as stream:
            missed = read_events(stream, 3)
            assert [event_id for event_id, _ in missed] == [first_id + 1, first_id + 2, first_id + 3]
            # ... and the resumed stream stays live.
            pushed = []
            thread = threading.Thread(target=lambda: pushed.extend(read_events(stream, 1)))
            thread.start()
            time.sleep(0.2)
            click(http, customer, first, 3)
            thread.join(10)
        assert [event_id for event_id, _ in pushed] == [first_id + 4]
        views = [page["profile"]["views_per_session"] for _, page in [(first_id, first), *missed, *pushed]]
        assert len(set(views)) == 5  # every click changed the profile, and every change arrived
