"""HTTP plumbing shared by every service: problem+json errors, RED metrics, health, request
traces, and workers that run for as long as the app serves."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.telemetry import TelemetryConfig
from opentelemetry import trace
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.sdk.trace import TracerProvider
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pitchin_core.errors import PROBLEM_TYPES, DomainError, Unavailable, problem_type
from pitchin_core.telemetry import Metrics

PROBLEM_JSON = "application/problem+json"


class Problem(Exception):
    """An error answered as RFC 9457 problem details, raised only by the HTTP layer itself.

    Domain and service code raise `pitchin_core.errors.DomainError`s instead; they are
    answered the same way by the handler below.
    """

    def __init__(self, status: int, title: str, detail: str, *, kind: str = "about:blank", **extra: Any) -> None:
        super().__init__(detail)
        self.status = status
        self.title = title
        self.detail = detail
        self.kind = problem_type(kind)
        self.extra = extra


def problem_response(status: int, title: str, detail: str, kind: str = "about:blank", **extra: Any) -> JSONResponse:
    body = {"type": problem_type(kind), "title": title, "status": status, "detail": detail, **extra}
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON)


def field_errors(exc: RequestValidationError | ValidationError) -> list[dict[str, str]]:
    errors = []
    for err in exc.errors():
        location = [str(part) for part in err.get("loc", ()) if part not in ("body",)]
        errors.append({"field": ".".join(location) or "(body)", "message": str(err.get("msg", "invalid"))})
    return errors


def validation_problem(exc: RequestValidationError | ValidationError) -> dict[str, Any]:
    """The 422 body for a request that failed validation, naming each field."""
    errors = field_errors(exc)
    names = ", ".join(e["field"] for e in errors)
    return {
        "type": problem_type("/problems/validation"),
        "title": "Invalid request",
        "status": 422,
        "detail": f"These fields are not valid: {names}",
        "errors": errors,
    }


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse(validation_problem(exc), status_code=422, media_type=PROBLEM_JSON)

    @app.exception_handler(DomainError)
    async def _refused(request: Request, exc: DomainError) -> JSONResponse:
        response = JSONResponse(exc.problem_body(), status_code=exc.status, media_type=PROBLEM_JSON)
        if isinstance(exc, Unavailable):
            response.headers["Retry-After"] = str(max(1, round(exc.retry_after)))
        if exc.status == 401:
            response.headers["WWW-Authenticate"] = 'Bearer realm="pitchin"'  # RFC 9110 §11.6.1
        return response

    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> JSONResponse:
        return problem_response(exc.status, exc.title, exc.detail, exc.kind, **exc.extra)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        # Logged with the trace id by the server; the caller gets the trace id to quote.
        trace_id = format(trace.get_current_span().get_span_context().trace_id, "032x")
        return problem_response(500, "Internal error", "Something went wrong on our side.", trace_id=trace_id)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return problem_response(exc.status_code, str(exc.detail), str(exc.detail))


class RedMetricsMiddleware:
    """Rate, errors and duration per route template, as plain ASGI.

    Starlette's `BaseHTTPMiddleware` (what `@app.middleware("http")` builds) streams every
    response through anyio memory channels; this costs nothing of the kind.
    """

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def record_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, record_status)
        finally:
            # The route template, never the raw path: ids in labels would be unbounded.
            template = getattr(scope.get("route"), "path", "unmatched")
            method = scope["method"]
            service = self.metrics.service
            self.metrics.http_requests.labels(service, method, template, f"{status // 100}xx").inc()
            self.metrics.http_duration.labels(service, method, template).observe(time.perf_counter() - started)


# Probes and scrapes: answered, but neither traced nor in the OpenAPI document.
HEALTH_PATHS = ("healthz", "readyz", "metrics")


def install_health(app: FastAPI, ready: Callable[[], Awaitable[dict[str, str]]], metrics: Metrics) -> None:
    """``/healthz`` (the process answers), ``/readyz`` (so do its dependencies: `ready` names each
    with "ok" or why not; 503 unless all are ok) and ``/metrics`` (Prometheus)."""

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", include_in_schema=False)
    async def readyz() -> JSONResponse:
        checks = await ready()
        ok = all(v == "ok" for v in checks.values())
        return JSONResponse({"status": "ok" if ok else "not ready", **checks}, status_code=200 if ok else 503)

    @app.get("/metrics", include_in_schema=False)
    async def metrics_route() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)


# FastAPI's own OpenTelemetry (on by default since 0.16x) off: the instrumentation below makes
# the server spans, RedMetricsMiddleware the metrics. Both at once was a fifth of a request's CPU.
NATIVE_TELEMETRY_OFF: TelemetryConfig = {"tracing": False, "metrics": False, "logs": False, "operation_spans": False}


def trace_requests(app: FastAPI, tracer_provider: TracerProvider, *, exporting: bool) -> None:
    """A server span per request, but none for probes and scrapes (they would drown the traces).

    Nothing when spans are not exported (no OTLP endpoint): the middleware would still match
    every request's route to name a span no one sees.
    """
    if not exporting:
        return
    FastAPIInstrumentor.instrument_app(
        app,
        tracer_provider=tracer_provider,
        exclude_spans=["receive", "send"],
        excluded_urls=",".join(HEALTH_PATHS),
    )


def run_beside(app: FastAPI, start: Callable[[AsyncExitStack], Awaitable[None]]) -> None:
    """Run workers for as long as the app serves: once the app's own start-up is done, `start`
    starts them and puts what stops them on the exit stack, which unwinds before the app's own
    shutdown (so a worker never outlives the pool or producer it uses)."""
    own_lifespan = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(app_: FastAPI) -> AsyncIterator[None]:
        async with own_lifespan(app_), AsyncExitStack() as workers:
            await start(workers)
            yield

    app.router.lifespan_context = lifespan


# What each error answer of ours looks like (RFC 9457), for the OpenAPI document.
PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["type", "title", "status"],
    "properties": {
        "type": {
            "type": "string",
            "format": "uri",
            "description": "What kind of problem this is: an absolute URI (RFC 9457), one of\n\n"
            + "\n".join(f"- `{problem_type(name)}`: {meaning}" for name, meaning in PROBLEM_TYPES.items()),
            "examples": [problem_type(name) for name in PROBLEM_TYPES],
        },
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["field", "message"],
                "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
            },
        },
    },
}
_PROBLEMS = {
    "400": "The request cannot be read (e.g. a body that is not JSON)",
    "401": "No API key, or one that is not known",
    "403": "The key may not do this",
    "404": "Nothing with this id for this caller",
    "409": "It conflicts with the current state",
    "413": "The body is larger than this route takes",
    "414": "The URL is longer than 8 KiB",
    "415": "The body's media type is not taken here",
    "422": "A field is not valid; `errors` names each",
    "429": "Too many requests; see Retry-After",
    "503": "A dependency is away; retry after Retry-After",
}


def document_problems(app: FastAPI) -> None:
    """Describe every error answer in the OpenAPI document, as the gate and handlers give them.

    Each operation gets the problem+json answers it can give: 409/413/415 when it takes a
    body, and 400, 401, 403, 404, 414, 422, 429 and 503 always; FastAPI's own 422 schema
    (which we never send) is replaced.
    """
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        spec = build()
        components = spec.setdefault("components", {}).setdefault("schemas", {})
        components["Problem"] = PROBLEM_SCHEMA
        components.pop("HTTPValidationError", None)
        components.pop("ValidationError", None)
        content = {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}}
        for operations in spec.get("paths", {}).values():
            for method, operation in operations.items():
                # Routes with their own credentials (publisher keys, offer and unsubscribe
                # tokens) refuse them too, and a token or query can name nothing: so always.
                codes = ["400", "401", "403", "404", "414", "422", "429", "503"]
                if method in ("post", "put", "patch", "delete"):
                    codes += ["409", "413", "415"]
                responses = operation.setdefault("responses", {})
                for code in codes:
                    if code == "422" or code not in responses:
                        responses[code] = {"description": _PROBLEMS[code], "content": content}
        app.openapi_schema = spec
        return spec

    app.openapi = openapi  # type: ignore[method-assign]
