"""The specimen page and its actions, labels, and the scanner's search box.

* ``/specimens/{label}``: the specimen, its lineage tree (ancestors and
  descendants), its labels (Code 128 and QR as SVG, a PDF label) and event
  history; for ``registry_write`` the forms to aliquot it into N children,
  derive another type from it, consume, ship or destroy it (with a reason).
  Each form calls one library function inside :meth:`~biobank.service.app.Ctx.act`
  (one transaction with the ``web.request`` audit entry); a refused form shows
  the page again with the problem beside the form and nothing stored.
* ``/scan?label=``: what the header's search box sends (a scanner types the
  label and Enter): opens the specimen; a wrong check character is said in
  words, with the character expected, rather than "not found".
* ``/labels``: the boxes in storage, each with its PDF label sheet
  (``/labels/box.pdf``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Form, Request
from fastapi.responses import Response

from biobank.core.access import Permission, Principal, require
from biobank.core.errors import ConflictError, ImportRejected, NotFoundError, ValidationError
from biobank.core.store import Store
from biobank.registry import (
    aliquot_specimen,
    box_label_sheet_pdf,
    consume_specimen,
    destroy_specimen,
    get_specimen,
    label_qr_svg,
    ship_specimen,
    specimen_label_pdf,
    specimen_lineage,
)
from biobank.registry.labels import LabelCheck, explain_label
from biobank.registry.vocab import DERIVATIONS, SPECIMEN_STATUSES, SPECIMEN_TYPES, UNITS
from biobank.service import queries
from biobank.service.app import Ctx, HTTPError
from biobank.service.i18n import Gettext
from biobank.service.library_messages import library_message
from biobank.service.views import ctx_of, redirect

__all__: list[str] = []

F = Annotated[str, Form()]


def label_problem(exc: ValidationError, text: str, _: Gettext) -> str:
    """The words for a label that is no label (a wrong check character named as such)."""
    if isinstance(exc, LabelCheck):
        return _(
            "The check character of %(label)s is '%(got)s', but the characters before it give "
            "'%(expected)s': the label was misread or mistyped. Scan it again or type it again.",
            label=exc.label,
            got=exc.got,
            expected=exc.expected,
        )
    return _(
        "'%(text)s' is not a specimen label: a label is letters and digits ending in its "
        "check character.",
        text=text.strip()[:40],
    )


def _checked(ctx: Ctx, label: str) -> str:
    """The label of a URL, or a 422 page saying why it is not one."""
    try:
        return explain_label(label)
    except ValidationError as exc:
        raise HTTPError(422, label_problem(exc, label, ctx.gettext)) from None


# -- the specimen page -----------------------------------------------------------------------
def _view(ctx: Ctx, label: str) -> dict[str, Any]:
    def read(store: Store) -> dict[str, Any]:
        spec = get_specimen(store, ctx.user, label)
        return {
            "s": spec,
            "tree": specimen_lineage(store, ctx.user, label),
            "events": queries.specimen_events(store, ctx.user, spec["label"]),
        }

    return ctx.act(read)


def _render(
    ctx: Ctx,
    label: str,
    *,
    http_status: int = 200,
    problems: dict[str, str] | None = None,
    values: dict[str, str] | None = None,
) -> Response:
    view = _view(ctx, label)
    spec = view["s"]
    return ctx.render(
        "specimen.html",
        http_status=http_status,
        **view,
        types=SPECIMEN_TYPES,
        statuses=SPECIMEN_STATUSES,
        units=UNITS,
        derivable=sorted(DERIVATIONS.get(spec["specimen_type"], ())),
        problems=problems or {},
        values=values or {},
        scan_focus=True,
    )


def specimen_page(request: Request, label: str) -> Response:
    ctx = ctx_of(request)
    return _render(ctx, _checked(ctx, label))


def _messages(exc: ValidationError, _: Gettext) -> str:
    items = exc.problems if isinstance(exc, ImportRejected) else [exc.problem]
    return "; ".join(dict.fromkeys(library_message(p.message, _) for p in items))


def _action(
    request: Request,
    label: str,
    form: str,
    values: dict[str, str],
    fn: Callable[[Ctx, str], Callable[[Store], object]],
) -> Response:
    """Run one action of the page; on a refusal show the page with the problem at ``form``."""
    ctx = ctx_of(request)
    value = _checked(ctx, label)
    try:
        ctx.act(lambda store: fn(ctx, value)(store))  # a form that does not parse is audited too
    except ValidationError as exc:
        problem = {form: _messages(exc, ctx.gettext)}
        return _render(ctx, value, http_status=422, problems=problem, values=values)
    except ConflictError as exc:
        problem = {form: library_message(str(exc), ctx.gettext)}
        return _render(ctx, value, http_status=409, problems=problem, values=values)
    return redirect(request, f"/specimens/{value}")


def _number(text: str, fld: str) -> float:
    try:
        return float(text.strip())
    except ValueError:
        raise ValidationError(
            "quantity must be a positive number (e.g. 0.5)", field=fld, value=text
        ) from None


def _count(text: str) -> int:
    try:
        return int(text.strip())
    except ValueError:
        raise ValidationError(
            "the number of aliquots must be a whole number from 1 to 96", field="count", value=text
        ) from None


def _positions(freezer: str, rack: str, box: str, positions: str) -> list[dict[str, str]] | None:
    """Positions typed as ``A1, A2 A3`` in one box (``None`` when none is given)."""
    wells = [p for p in re.split(r"[\s,;]+", positions.strip()) if p]
    if not wells and not (freezer.strip() or rack.strip() or box.strip()):
        return None
    if not wells:
        wells = [""]
    return [{"freezer": freezer, "rack": rack, "box": box, "position": w} for w in wells]


def specimen_aliquot(
    request: Request,
    label: str,
    count: F = "",
    quantity: F = "",
    unit: F = "",
    freezer: F = "",
    rack: F = "",
    box: F = "",
    positions: F = "",
    reason: F = "aliquoted",
) -> Response:
    values = {
        "count": count,
        "quantity": quantity,
        "freezer": freezer,
        "rack": rack,
        "box": box,
        "positions": positions,
    }

    def run(ctx: Ctx, value: str) -> Callable[[Store], object]:
        n, qty = _count(count), _number(quantity, "quantity")
        spots = _positions(freezer, rack, box, positions)
        return lambda store: aliquot_specimen(
            store,
            ctx.user,
            value,
            count=n,
            quantity=qty,
            unit=unit or None,
            positions=spots,
            reason=reason or "aliquoted",
        )

    return _action(request, label, "aliquot", values, run)


def specimen_derive(
    request: Request,
    label: str,
    specimen_type: F = "",
    count: F = "1",
    quantity: F = "",
    unit: F = "",
    parent_used: F = "",
    reason: F = "derived",
) -> Response:
    values = {"specimen_type": specimen_type, "quantity": quantity, "parent_used": parent_used}

    def run(ctx: Ctx, value: str) -> Callable[[Store], object]:
        if not specimen_type:
            raise ValidationError("choose the type of the derivative", field="specimen_type")
        n, qty = _count(count or "1"), _number(quantity, "quantity")
        used = _number(parent_used, "parent_used") if parent_used.strip() else None
        return lambda store: aliquot_specimen(
            store,
            ctx.user,
            value,
            count=n,
            quantity=qty,
            unit=unit or None,
            specimen_type=specimen_type,
            parent_used=used,
            reason=reason or "derived",
        )

    return _action(request, label, "derive", values, run)


def specimen_consume(
    request: Request, label: str, quantity: F = "", unit: F = "", reason: F = ""
) -> Response:
    def run(ctx: Ctx, value: str) -> Callable[[Store], object]:
        qty = _number(quantity, "quantity") if quantity.strip() else None
        return lambda store: consume_specimen(
            store, ctx.user, value, reason=reason, quantity=qty, unit=unit or None
        )

    return _action(request, label, "consume", {"quantity": quantity, "reason": reason}, run)


def specimen_ship(request: Request, label: str, destination: F = "", reason: F = "") -> Response:
    def run(ctx: Ctx, value: str) -> Callable[[Store], object]:
        return lambda store: ship_specimen(
            store, ctx.user, value, destination=destination.strip(), reason=reason
        )

    values = {"destination": destination, "ship_reason": reason}
    return _action(request, label, "ship", values, run)


def specimen_destroy(request: Request, label: str, reason: F = "") -> Response:
    def run(ctx: Ctx, value: str) -> Callable[[Store], object]:
        return lambda store: destroy_specimen(store, ctx.user, value, reason=reason)

    return _action(request, label, "destroy", {"destroy_reason": reason}, run)


# -- labels ----------------------------------------------------------------------------------
def specimen_qr(request: Request, label: str) -> Response:
    ctx = ctx_of(request)
    value = _checked(ctx, label)
    svg = ctx.act(lambda store: (get_specimen(store, ctx.user, value), label_qr_svg(value))[1])
    return Response(svg, media_type="image/svg+xml")


def specimen_label(request: Request, label: str) -> Response:
    ctx = ctx_of(request)
    value = _checked(ctx, label)
    pdf = ctx.act(lambda store: specimen_label_pdf(store, ctx.user, value))
    return Response(
        pdf,
        media_type="application/pdf",
        headers={"Content-Disposition": f'inline; filename="{value}.pdf"'},
    )


def _boxes(store: Store, principal: Principal) -> list[dict[str, Any]]:
    """Every box holding stored specimens, with how many."""
    require(principal, Permission.REGISTRY_READ)
    cur = store.con.execute(
        "SELECT upper(freezer) AS freezer, upper(rack) AS rack, upper(box) AS box, count(*) AS n"
        " FROM specimen WHERE freezer IS NOT NULL GROUP BY ALL ORDER BY ALL"
    )
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def labels_page(request: Request) -> Response:
    ctx = ctx_of(request)
    boxes = ctx.act(lambda store: _boxes(store, ctx.user))
    return ctx.render("labels.html", boxes=boxes)


def box_labels(request: Request, freezer: str = "", rack: str = "", box: str = "") -> Response:
    ctx = ctx_of(request)
    try:
        pdf, _labels = ctx.act(
            lambda store: box_label_sheet_pdf(store, ctx.user, freezer=freezer, rack=rack, box=box)
        )
    except ValidationError as exc:
        raise HTTPError(422, library_message(exc.problem.message, ctx.gettext)) from None
    except NotFoundError:
        raise HTTPError(404, ctx.gettext("No specimen is stored in this box.")) from None
    name = "-".join(x.strip().upper() for x in (freezer, rack, box))
    return Response(
        pdf,
        media_type="application/pdf",
        headers={"Content-Disposition": f'inline; filename="labels-{name}.pdf"'},
    )


# -- the scanner's search box ----------------------------------------------------------------
def scan(request: Request, label: str = "") -> Response:
    """Open the specimen a scanner (or a person) typed; say clearly why not."""
    ctx = ctx_of(request)
    _ = ctx.gettext
    if not label.strip():
        return redirect(request, "/specimens")
    try:
        value = explain_label(label)
    except ValidationError as exc:
        raise HTTPError(422, label_problem(exc, label, _)) from None
    try:
        ctx.act(lambda store: get_specimen(store, ctx.user, value))
    except NotFoundError:
        raise HTTPError(
            404,
            _(
                "No specimen has the label %(label)s (its check character is right: "
                "it may not be accessioned yet).",
                label=value,
            ),
        ) from None
    return redirect(request, f"/specimens/{value}")
