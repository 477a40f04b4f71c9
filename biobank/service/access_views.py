"""Pages of data access: researchers apply, approvers (the data access committee) decide.

``/access`` lists the user's own requests and has the application form;
``/access/review`` lists every request for an approver, with the approve and
reject forms of the pending ones. Each form calls one library function of
:mod:`biobank.research.access_requests`, which checks the rules again (the
approver is not the applicant, a foreign-party request needs the human genetic
resources authority's approval number); permissions are guarded by the route
table (:mod:`biobank.service.routes`).
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import Form, Request
from fastapi.responses import FileResponse, Response

from biobank.core.classification import EXTRACTABLE, classification
from biobank.core.errors import AccessDenied, ConflictError, ValidationError
from biobank.research.access_requests import (
    approve_request,
    list_requests,
    reject_request,
    submit_request,
)
from biobank.research.extracts import EXTRACT_DATASETS, download_extract, list_extracts
from biobank.service.i18n import N_
from biobank.service.views import ctx_of, problems_of, redirect

__all__: list[str] = []

F = Annotated[str, Form()]
FL = Annotated[list[str] | None, Form()]

#: Statuses of a request, translated where they are shown.
STATUSES = (N_("pending"), N_("approved"), N_("rejected"))
_NOT_APPROVED = N_("Not approved: %(why)s")
_NOT_REJECTED = N_("Not rejected: %(why)s")


def _requestable_fields() -> list[tuple[str, str]]:
    """``(table.column, class)`` of every field a request may name."""
    return sorted(
        (f"{t}.{c}", cls.value)
        for (t, c), cls in classification().items()
        if t in EXTRACT_DATASETS and cls in EXTRACTABLE
    )


def _own(request: Request, problems: dict[str, str] | None = None, status: int = 200) -> Response:
    ctx = ctx_of(request)
    rows, extracts = ctx.act(
        lambda store: (
            list_requests(store.con, ctx.user).to_dicts(),
            list_extracts(store, ctx.user).to_dicts(),
        )
    )
    return ctx.render(
        "access.html",
        http_status=status,
        requests=rows,
        extracts=extracts,
        fields=_requestable_fields(),
        problems=problems or {},
        today=dt.date.today().isoformat(),
    )


def access_page(request: Request) -> Response:
    return _own(request)


def access_submit(
    request: Request,
    project: F = "",
    title: F = "",
    institution: F = "",
    country: F = "CN",
    foreign_party: F = "",
    purpose: F = "",
    fields: FL = None,
    period_start: F = "",
    period_end: F = "",
    hgr_approval: F = "",
) -> Response:
    ctx = ctx_of(request)
    try:
        ctx.act(
            lambda store: submit_request(
                store,
                ctx.user,
                project=project.strip(),
                title=title,
                institution=institution,
                country=country,
                foreign_party=foreign_party == "1",
                purpose=purpose,
                fields=fields or [],
                period_start=period_start or dt.date.today(),
                period_end=period_end,
                hgr_approval=hgr_approval or None,
            )
        )
    except ValidationError as exc:
        return _own(request, problems_of(exc, ctx), status=422)
    return redirect(request, "/access")


def _review(request: Request, error: str = "", status: int = 200) -> Response:
    ctx = ctx_of(request)
    rows: list[dict[str, Any]] = ctx.act(
        lambda store: list_requests(store.con, ctx.user)
    ).to_dicts()
    return ctx.render(
        "access_review.html",
        http_status=status,
        requests=rows,
        error=error,
        today=dt.date.today().isoformat(),
    )


def review_page(request: Request) -> Response:
    return _review(request)


def access_approve(
    request: Request,
    request_id: int,
    reason: F = "",
    expires_on: F = "",
    hgr_approval: F = "",
) -> Response:
    ctx = ctx_of(request)
    try:
        ctx.act(
            lambda store: approve_request(
                store,
                ctx.user,
                request_id,
                reason=reason,
                expires_on=expires_on or None,
                hgr_approval=hgr_approval or None,
            )
        )
    except (ValidationError, ConflictError, AccessDenied) as exc:
        return _review(request, error=ctx.gettext(_NOT_APPROVED, why=str(exc)), status=422)
    return redirect(request, "/access/review")


def access_reject(request: Request, request_id: int, reason: F = "") -> Response:
    ctx = ctx_of(request)
    try:
        ctx.act(lambda store: reject_request(store, ctx.user, request_id, reason=reason))
    except (ValidationError, ConflictError) as exc:
        return _review(request, error=ctx.gettext(_NOT_REJECTED, why=str(exc)), status=422)
    return redirect(request, "/access/review")


def extract_download(request: Request, extract_id: int) -> Response:
    ctx = ctx_of(request)
    path = ctx.act(lambda store: download_extract(store, ctx.user, extract_id))
    return FileResponse(path, filename=path.name, media_type="application/octet-stream")
