"""Storage pages: freezer -> rack -> box, the box as a grid, moving one or many specimens.

Each endpoint calls one library function of :mod:`biobank.registry.boxes`
through :meth:`~biobank.service.app.Ctx.act` (one transaction, audited); the
route table guards them (reading: ``registry_read``; moving: ``registry_write``).
"""

from __future__ import annotations

import re
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import Form, Request
from fastapi.responses import Response

from biobank.core.errors import ConflictError, NotFoundError, ValidationError
from biobank.registry.boxes import box_contents, move_specimens, plan_moves, storage_units
from biobank.registry.vocab import SPECIMEN_TYPES
from biobank.service.app import Ctx
from biobank.service.library_messages import library_message
from biobank.service.views import ctx_of, redirect

__all__: list[str] = []

F = Annotated[str, Form()]
_PART = re.compile(r"[\w.-]{1,32}")


def _part(value: str) -> str:
    """A freezer, rack or box name from a URL (a 404 for anything else)."""
    from biobank.service.app import HTTPError

    if not _PART.fullmatch(value):
        raise HTTPError(404)
    return value.upper()


def storage_home(request: Request) -> Response:
    ctx = ctx_of(request)
    units = ctx.act(lambda store: storage_units(store, ctx.user))
    return ctx.render("storage.html", level="freezers", units=units, path=[])


def storage_freezer(request: Request, freezer: str) -> Response:
    ctx = ctx_of(request)
    fz = _part(freezer)
    units = ctx.act(lambda store: storage_units(store, ctx.user, freezer=fz))
    return ctx.render("storage.html", level="racks", units=units, path=[fz])


def storage_rack(request: Request, freezer: str, rack: str) -> Response:
    ctx = ctx_of(request)
    fz, rk = _part(freezer), _part(rack)
    units = ctx.act(lambda store: storage_units(store, ctx.user, freezer=fz, rack=rk))
    return ctx.render("storage.html", level="boxes", units=units, path=[fz, rk])


def _box_page(
    ctx: Ctx,
    freezer: str,
    rack: str,
    box: str,
    *,
    error: str = "",
    detail: str = "",
    http_status: int = 200,
    form: dict[str, Any] | None = None,
    moved: int = 0,
) -> Response:
    contents = ctx.act(lambda store: box_contents(store, ctx.user, freezer, rack, box))
    values = {"selected": [], "freezer": "", "rack": "", "box": "", "positions": "", "reason": ""}
    return ctx.render(
        "storage_box.html",
        http_status=http_status,
        b=contents,
        types=SPECIMEN_TYPES,
        error=error,
        detail=detail,
        form=values | (form or {}),
        moved=moved,
    )


def storage_box(request: Request, freezer: str, rack: str, box: str, moved: int = 0) -> Response:
    ctx = ctx_of(request)
    return _box_page(ctx, _part(freezer), _part(rack), _part(box), moved=moved)


def storage_move(
    request: Request,
    label: Annotated[list[str] | None, Form()] = None,
    freezer: F = "",
    rack: F = "",
    box: F = "",
    positions: F = "",
    reason: F = "",
    from_box: F = "",
) -> Response:
    """Move the selected specimens to a box: the positions given, else its first free ones."""
    ctx = ctx_of(request)
    _ = ctx.gettext
    labels = [x.strip() for x in label or [] if x.strip()]
    wanted = [p for p in re.split(r"[\s,;，；]+", positions) if p]
    form = {
        "selected": labels,
        "freezer": freezer,
        "rack": rack,
        "box": box,
        "positions": positions,
        "reason": reason,
    }

    def move(store: Any) -> list[dict[str, Any]]:
        moves = plan_moves(
            store, ctx.user, labels, freezer=freezer, rack=rack, box=box, positions=wanted
        )
        return move_specimens(store, ctx.user, moves, reason=reason)

    try:
        moved = ctx.act(move)
    except (ConflictError, ValidationError, NotFoundError) as exc:
        status = (
            409
            if isinstance(exc, ConflictError)
            else 404
            if isinstance(exc, NotFoundError)
            else 422
        )
        message = exc.problem.message if isinstance(exc, ValidationError) else str(exc)
        parts = from_box.split("/")
        if len(parts) != 3 or not all(_PART.fullmatch(p) for p in parts):
            raise
        return _box_page(
            ctx,
            *(p.upper() for p in parts),
            error=_("Nothing was moved."),
            detail=library_message(message, _),
            http_status=status,
            form=form,
        )
    first = moved[0]
    where = "/".join(quote(str(first[f]), safe="") for f in ("freezer", "rack", "box"))
    return redirect(request, f"/storage/{where}?moved={len(moved)}")
