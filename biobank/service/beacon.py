"""The Beacon v2 endpoints under ``/api/beacon``: a thin layer over :mod:`biobank.research.beacon`.

Routes are declared in :mod:`biobank.service.routes` with access
:data:`~biobank.service.app.BEACON`: anyone may ask; a partner centre's bearer
token (``Authorization: Bearer ...``, checked by the route guard) raises the
granularity. Every error under ``/api/beacon`` has the specification's shape
(``beaconErrorResponse``), whatever raised it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from biobank.core.errors import (
    AccessDenied,
    BiobankError,
    NotFoundError,
    QuotaExceeded,
    ValidationError,
)
from biobank.research.beacon import BeaconRequest, answer, parse_get, parse_post, resolve_requester
from biobank.research.beacon import responses as docs
from biobank.research.beacon.config import BeaconConfig
from biobank.research.beacon.query import cohort_sizes
from biobank.research.partners import Partner
from biobank.service.app import Service, route_path

__all__ = ["BEACON_PREFIX", "beacon_error", "endpoints"]

BEACON_PREFIX = "/api/beacon"

_STATUS: list[tuple[type[BiobankError], int]] = [
    (QuotaExceeded, 429),
    (AccessDenied, 403),
    (NotFoundError, 404),
    (ValidationError, 400),
]


def _service(request: Request) -> Service:
    service: Service = request.app.state.service
    return service


def beacon_error(request: Request, status: int, message: str) -> Response:
    """The ``beaconErrorResponse`` for ``status`` (used by the app's error handlers too)."""
    config: BeaconConfig = _service(request).beacon
    return JSONResponse(docs.error_response(config, status, message), status_code=status)


def _base_url(request: Request) -> str:
    """The beacon's root URL (Starlette's base URL includes the proxy's ``root_path``)."""
    return str(request.base_url).rstrip("/") + BEACON_PREFIX


def _partner(request: Request) -> Partner | None:
    partner: Partner | None = getattr(request.state, "partner", None)
    return partner


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _run_entry(request: Request, parsed: BeaconRequest) -> dict[str, Any]:
    service = _service(request)
    config = service.beacon
    with service.locked() as store:
        requester = resolve_requester(store.con, _partner(request), _client(request), config)
        if parsed.entry_type in {"cohorts", "datasets"}:
            sizes = cohort_sizes(store, requester, config) if parsed.entry_type == "cohorts" else {}
            return docs.collections_response(store.con, config, parsed, sizes=sizes)
        result = answer(store, parsed, requester, config)
    return docs.answer_response(config, parsed, result)


def _failure(request: Request, exc: BiobankError) -> Response:
    status = next((s for cls, s in _STATUS if isinstance(exc, cls)), 500)
    message = exc.problem.message if isinstance(exc, ValidationError) else str(exc)
    if isinstance(exc, ValidationError) and exc.problem.field:
        message = f"{exc.problem.field}: {message}"
    return beacon_error(request, status, message)


def _entry_get(entry_type: str) -> Callable[[Request], Any]:
    async def endpoint(request: Request) -> Response:
        config = _service(request).beacon
        try:
            parsed = parse_get(entry_type, request.query_params, max_range=config.max_range)
            return JSONResponse(await run_in_threadpool(_run_entry, request, parsed))
        except BiobankError as exc:
            return _failure(request, exc)

    endpoint.__name__ = f"beacon_{entry_type}_get"
    return endpoint


def _entry_post(entry_type: str) -> Callable[[Request], Any]:
    async def endpoint(request: Request) -> Response:
        config = _service(request).beacon
        raw = await request.body()
        try:
            try:
                body = json.loads(raw.decode("utf-8")) if raw.strip() else {}
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise ValidationError(
                    f"the request body is not JSON ({exc}): send a beaconRequestBody object",
                    field="body",
                ) from exc
            parsed = parse_post(entry_type, body, max_range=config.max_range)
            return JSONResponse(await run_in_threadpool(_run_entry, request, parsed))
        except BiobankError as exc:
            return _failure(request, exc)

    endpoint.__name__ = f"beacon_{entry_type}_post"
    return endpoint


def _framework(build: Callable[[Request, BeaconConfig], dict[str, Any]]) -> Callable[..., Any]:
    def endpoint(request: Request) -> Response:
        if request.query_params and route_path(request) != f"{BEACON_PREFIX}/filtering_terms":
            unknown = sorted(request.query_params)[0]
            return beacon_error(request, 400, f"{unknown}: this endpoint takes no parameters")
        return JSONResponse(build(request, _service(request).beacon))

    return endpoint


def _filtering_terms(request: Request, config: BeaconConfig) -> dict[str, Any]:
    service = _service(request)
    with service.locked() as store:
        return docs.filtering_terms_response(store.con, config)


def endpoints() -> list[tuple[str, str, Callable[..., Any], str]]:
    """``(method, path, endpoint, name)`` of every Beacon route, for the route table."""
    framework: list[tuple[str, Callable[[Request, BeaconConfig], dict[str, Any]]]] = [
        ("", lambda r, c: docs.info_response(c)),
        ("/info", lambda r, c: docs.info_response(c)),
        ("/service-info", lambda r, c: docs.service_info(c, str(r.base_url).rstrip("/"))),
        ("/map", lambda r, c: docs.map_response(c, _base_url(r))),
        ("/configuration", lambda r, c: docs.configuration_response(c)),
        ("/entry_types", lambda r, c: docs.entry_types_response(c)),
        ("/filtering_terms", _filtering_terms),
    ]
    out: list[tuple[str, str, Callable[..., Any], str]] = []
    for suffix, build in framework:
        name = "beacon_" + (suffix.strip("/").replace("-", "_") or "root")
        out.append(("GET", BEACON_PREFIX + suffix, _framework(build), name))
    for entry in docs.ENTRY_TYPE_INFO:
        out.append(("GET", f"{BEACON_PREFIX}/{entry}", _entry_get(entry), f"beacon_{entry}"))
        out.append(("POST", f"{BEACON_PREFIX}/{entry}", _entry_post(entry), f"beacon_{entry}_post"))
    return out
