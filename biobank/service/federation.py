"""The federated analysis endpoints under ``/api/federation`` (partner centres only).

Each takes a JSON question (:mod:`biobank.research.federation.centre`) from a
partner authenticated by its bearer token (the route guard, access
:data:`~biobank.service.app.PARTNER`) and answers aggregates; errors have the
API's shape ``{"error": {"status", "title", "detail"}}``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from biobank.core.errors import ValidationError
from biobank.research.federation import QUESTIONS, answer_question
from biobank.research.partners import Partner
from biobank.service.app import HTTPError, Service

__all__ = ["FEDERATION_PREFIX", "endpoints"]

FEDERATION_PREFIX = "/api/federation"


def _answer(request: Request, kind: str, question: Any) -> dict[str, Any]:
    service: Service = request.app.state.service
    partner: Partner | None = getattr(request.state, "partner", None)
    if partner is None:  # pragma: no cover - the guard refuses first
        raise HTTPError(401)
    with service.locked() as store:
        return answer_question(store, partner, kind, question, min_count=service.beacon.min_count)


def _endpoint(kind: str) -> Callable[[Request], Any]:
    async def endpoint(request: Request) -> Response:
        raw = await request.body()
        try:
            question = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ValidationError("the question must be a JSON object", field="body") from exc
        return JSONResponse(await run_in_threadpool(_answer, request, kind, question))

    endpoint.__name__ = f"federation_{kind}"
    return endpoint


def _capabilities(request: Request) -> Response:
    service: Service = request.app.state.service
    return JSONResponse({"questions": list(QUESTIONS), "min_count": service.beacon.min_count})


def endpoints() -> list[tuple[str, str, Callable[..., Any], str]]:
    """``(method, path, endpoint, name)`` of every federation route, for the route table."""
    out: list[tuple[str, str, Callable[..., Any], str]] = [
        ("GET", FEDERATION_PREFIX, _capabilities, "federation_capabilities")
    ]
    out += [
        ("POST", f"{FEDERATION_PREFIX}/{k}", _endpoint(k), f"federation_{k}") for k in QUESTIONS
    ]
    return out
