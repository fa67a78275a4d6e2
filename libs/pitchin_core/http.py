"""HTTP plumbing shared by every service: problem+json errors, RED metrics, health."""

from __future__ import annotations

import time
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from opentelemetry import trace
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pitchin_core.errors import DomainError, Unavailable
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
        self.kind = kind
        self.extra = extra


def problem_response(status: int, title: str, detail: str, kind: str = "about:blank", **extra: Any) -> JSONResponse:
    body = {"type": kind, "title": title, "status": status, "detail": detail, **extra}
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON)


def field_errors(exc: RequestValidationError) -> list[dict[str, str]]:
    errors = []
    for err in exc.errors():
        location = [str(part) for part in err.get("loc", ()) if part not in ("body",)]
        errors.append({"field": ".".join(location) or "(body)", "message": str(err.get("msg", "invalid"))})
    return errors


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = field_errors(exc)
        names = ", ".join(e["field"] for e in errors)
        return problem_response(
            422,
            "Invalid request",
            f"These fields are not valid: {names}",
            "/problems/validation",
            errors=errors,
        )

    @app.exception_handler(DomainError)
    async def _refused(request: Request, exc: DomainError) -> JSONResponse:
        response = JSONResponse(exc.problem_body(), status_code=exc.status, media_type=PROBLEM_JSON)
        if isinstance(exc, Unavailable):
            response.headers["Retry-After"] = str(max(1, round(exc.retry_after)))
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
