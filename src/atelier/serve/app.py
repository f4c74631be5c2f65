"""The web app: FastAPI routes over a `Service`, the shop page, server-sent events and the model watcher.

Every request is validated (pydantic models with `extra="forbid"`, ids as bounded integers, a body size
limit); a request refused as a whole changes nothing and is counted in the books. Handlers run on the
event loop one at a time, so a batch is applied whole before any other request sees the profiles; only
loading a model and LIME run in worker threads.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import time
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal

import pandas as pd
from fastapi import Body, FastAPI, Header, HTTPException, Query, Request
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.sse import EventSourceResponse, ServerSentEvent
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from atelier.serve.service import Service, is_loopback, to_microseconds

#: Ids are whole numbers that JavaScript can hold exactly.
MAX_ID = 2**53 - 1
CustomerId = Annotated[int, PathParam(ge=0, le=MAX_ID, description="the customer's id (unknown: a new visitor)")]
Identifier = Annotated[int, Field(ge=0, le=MAX_ID)]
#: Seconds between keep-alive comments on an idle event stream.
KEEPALIVE_SECONDS = 15.0


class Record(BaseModel):
    """One clickstream event or order, as the replay's stream carries it. Fields the stream processor checks itself
    (a missing customer, session, time or event type; a negative dwell or amount) may be null or out of range:
    such a record is refused by the processor with its reason and counted as malformed."""

    model_config = ConfigDict(extra="forbid")
    record: Literal["event", "order"]
    id: Identifier
    customer_id: Identifier | None
    ts: datetime | None
    session_id: Identifier | None = None
    event_type: Literal["product_view", "add_to_cart", "purchase"] | None = None
    product_id: Identifier | None = None
    device: str | None = Field(default=None, max_length=32, pattern=r"^[a-z_]*$")
    dwell_seconds: float | None = Field(default=None, allow_inf_nan=False, le=86_400)
    amount: float | None = Field(default=None, allow_inf_nan=False, le=1e7)
    quantity: int | None = Field(default=None, ge=0, le=10_000)
    discount: float | None = Field(default=None, allow_inf_nan=False, ge=0, le=1e7)


class Batch(BaseModel):
    """Records in arrival order; applied as one micro-batch."""

    model_config = ConfigDict(extra="forbid")
    records: list[Record] = Field(min_length=1)


class Action(BaseModel):
    """A shopper's action on the page."""

    model_config = ConfigDict(extra="forbid")
    type: Literal["product_view", "add_to_cart"]
    product_id: Identifier
    session_id: Identifier
    dwell_seconds: float | None = Field(default=None, ge=0, le=3600, allow_inf_nan=False)


class BodyLimit:
    """ASGI middleware: refuse request bodies above `limit` bytes with 413 (declared or streamed)."""

    def __init__(self, app: Any, limit: int, on_refusal: Callable[[], None]) -> None:
        self.app, self.limit, self.on_refusal = app, limit, on_refusal

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
            await self._refuse(send)
            return
        if declared is not None or scope["method"] in ("GET", "HEAD"):
            await self.app(scope, receive, send)
            return
        # A body without a declared length is read here first, up to the limit, then handed on.
        chunks, seen, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return
            chunks.append(message.get("body", b""))
            seen += len(chunks[-1])
            if seen > self.limit:
                await self._refuse(send)
                return
            more = message.get("more_body", False)
        body, delivered = b"".join(chunks), False

        async def replay() -> dict:
            nonlocal delivered
            if delivered:
                return await receive()
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    async def _refuse(self, send: Callable) -> None:
        self.on_refusal()
        body = json.dumps({"detail": f"request body larger than {self.limit} bytes (params.yaml serve.max_body_bytes)"
                           }).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})


def create_app(service: Service, *, static_dir: Path, reload_model: Callable[[bool], tuple | None] | None = None,
               host: str = "127.0.0.1", token: str | None = None) -> FastAPI:
    """The app. `reload_model(force)` returns (champion, problem) when the registry's champion changed (or `force`),
    else None; it is polled every `watch_seconds` and by POST /admin/reload. `host` is where the server binds:
    off the loopback, /admin/reload needs `token` (Authorization: Bearer <token>)."""
    settings = service.settings

    async def check_model(force: bool) -> dict[str, Any]:
        if reload_model is None:
            return {"changed": False, "model": service.model.version}
        outcome = await asyncio.to_thread(reload_model, force)
        if outcome is not None:
            champion, problem = outcome
            service.set_model(champion, problem)
            service.refresh(service.feeds.watched())  # watched pages show the new model at once
        return {"changed": outcome is not None, "model": service.model.version, "problem": service.model.problem}

    async def watch_registry() -> None:
        while True:
            await asyncio.sleep(settings.watch_seconds)
            with contextlib.suppress(Exception):  # a half-written registry is read again at the next tick
                await check_model(False)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        watcher = asyncio.create_task(watch_registry()) if reload_model is not None else None
        yield
        if watcher is not None:
            watcher.cancel()

    app = FastAPI(title="Atelier personalization service", lifespan=lifespan, docs_url="/docs", redoc_url=None)

    def count_refusal() -> None:
        service.refused_requests += 1

    app.add_middleware(BodyLimit, limit=settings.max_body_bytes, on_refusal=count_refusal)

    @app.exception_handler(RequestValidationError)
    async def refused(_: Request, problem: RequestValidationError) -> JSONResponse:
        count_refusal()
        return JSONResponse(status_code=422, content={"detail": _errors(problem.errors())})

    @app.get("/", include_in_schema=False)
    async def shop() -> FileResponse:
        return FileResponse(static_dir / "index.html")

    app.mount("/static", StaticFiles(directory=static_dir), name="static")

    # Responses are built as JSONResponse: the service already returns plain JSON values, so FastAPI's
    # recursive encoder (a large share of a page's time) is skipped.
    @app.get("/health")
    async def health() -> JSONResponse:
        return JSONResponse({"status": "ok", "customers": len(service.personalizer.state),
                             "now": _iso(service.now_us())})

    @app.get("/ready")
    async def ready() -> JSONResponse:
        state = service.readiness()
        return JSONResponse(status_code=200 if state["ready"] else 503, content=state)

    @app.get("/api/books")
    async def books() -> JSONResponse:
        return JSONResponse(service.books())

    @app.get("/api/examples")
    async def examples() -> JSONResponse:
        return JSONResponse(service.examples())

    @app.get("/api/customers/{customer_id}/page")
    async def page(customer_id: CustomerId,
                   session_id: Annotated[int | None, Query(ge=0, le=MAX_ID)] = None,
                   at: Annotated[datetime | None, Query(description="decide as of this time (a replay)")] = None
                   ) -> JSONResponse:
        return JSONResponse(service.page(customer_id, session_id, None if at is None else to_microseconds(at)))

    @app.get("/api/customers/{customer_id}/explanation")
    async def explanation(customer_id: CustomerId) -> JSONResponse:
        result = await asyncio.to_thread(service.explanation, customer_id)
        return JSONResponse(status_code=503 if result["reason"] == "model_unavailable" else 200, content=result)

    @app.post("/api/events")
    async def ingest(payload: Annotated[dict[str, Any], Body(description="one record, or {'records': [...]}")]
                     ) -> JSONResponse:
        try:
            records = (Batch.model_validate(payload).records if "records" in payload
                       else [Record.model_validate(payload)])
        except ValidationError as problem:
            count_refusal()
            return JSONResponse(status_code=422, content={"detail": _errors(problem.errors(), "body")})
        if len(records) > settings.max_batch_records:
            count_refusal()
            raise HTTPException(413, f"{len(records)} records in one request; at most {settings.max_batch_records} "
                                     "(params.yaml serve.max_batch_records): split the batch")
        received = time.perf_counter()
        outcome = service.ingest([r.model_dump() for r in records])
        pushed = service.refresh(outcome["changed"])
        refused_all = all(v["verdict"] in ("late", "malformed") for v in outcome["verdicts"])
        return JSONResponse(status_code=422 if refused_all else 200, content={
            **outcome, "pushed": {str(k): v for k, v in pushed.items()},
            "server_ms": (time.perf_counter() - received) * 1000})

    @app.post("/api/customers/{customer_id}/actions")
    async def act(customer_id: CustomerId, action: Action) -> JSONResponse:
        try:
            outcome = service.click(customer_id, action.session_id, action.type, action.product_id,
                                    action.dwell_seconds)
        except ValueError as problem:
            count_refusal()
            return JSONResponse(status_code=422, content={"detail": [{"where": "body.product_id",
                                                                      "problem": problem.args[0]}]})
        pushed = service.refresh(outcome["changed"])
        return JSONResponse(content={**outcome, "pushed": {str(k): v for k, v in pushed.items()}})

    @app.get("/api/customers/{customer_id}/stream", response_class=EventSourceResponse)
    async def stream(customer_id: CustomerId, request: Request,
                     session_id: Annotated[int | None, Query(ge=0, le=MAX_ID)] = None,
                     last_event_id: Annotated[int | None, Header(ge=0, le=MAX_ID)] = None
                     ) -> AsyncIterator[ServerSentEvent]:
        """The customer's page, again whenever their profile changes; resumes after `Last-Event-ID`."""
        feed = service.feeds.open(customer_id, service.fresh_id() if session_id is None else session_id)
        if session_id is not None:
            feed.session_id = session_id
        queue: asyncio.Queue = asyncio.Queue()

        def listener(event_id: int, body: dict[str, Any]) -> None:
            queue.put_nowait((event_id, body))

        feed.listeners.add(listener)
        try:
            if last_event_id is None:
                service.feeds.publish(customer_id, service.page(customer_id, feed.session_id))
            else:
                for event_id, body in service.feeds.since(customer_id, last_event_id):
                    yield ServerSentEvent(raw_data=json.dumps(body), id=str(event_id), event="page")
            while True:
                try:
                    event_id, body = await asyncio.wait_for(queue.get(), KEEPALIVE_SECONDS)
                except TimeoutError:
                    if await request.is_disconnected():
                        return
                    yield ServerSentEvent(comment="keep-alive")
                    continue
                yield ServerSentEvent(raw_data=json.dumps(body), id=str(event_id), event="page")
        finally:
            feed.listeners.discard(listener)

    @app.post("/admin/reload")
    async def reload(authorization: Annotated[str | None, Header()] = None) -> dict[str, Any]:
        """Load the registry's champion now (the watcher does it every `watch_seconds` anyway)."""
        if not is_loopback(host):
            if not token:
                raise HTTPException(403, "reload is disabled off the loopback unless ATELIER_SERVE_TOKEN is set")
            if authorization is None or not hmac.compare_digest(authorization, f"Bearer {token}"):
                raise HTTPException(401, "reload needs 'Authorization: Bearer <ATELIER_SERVE_TOKEN>'")
        return await check_model(True)

    return app


def _errors(errors: list[dict[str, Any]], prefix: str | None = None) -> list[dict[str, Any]]:
    """Validation errors as the service returns them: where (dotted path), what is wrong, what was sent (short)."""
    return [{"where": ".".join(str(p) for p in ([prefix] if prefix else []) + list(e.get("loc", ()))),
             "problem": e.get("msg", ""), "got": _short(e.get("input"))} for e in errors]


def _short(value: Any) -> Any:
    """A refused input as echoed back: short text, never the whole body."""
    text = value if isinstance(value, (int, float, bool)) or value is None else repr(value)
    return text[:80] if isinstance(text, str) else text


def _iso(microseconds: int) -> str:
    return pd.Timestamp(microseconds, unit="us").isoformat()
