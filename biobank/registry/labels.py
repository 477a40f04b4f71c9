"""Printable labels: a QR code per specimen (segno) and PDF label sheets (reportlab).

The printed text is always the whole label with its check character, so a
scanner reads back exactly what :func:`biobank.core.ids.validate_label`
accepts. The Code 128 barcode is
:func:`biobank.registry.inventory.label_barcode_svg` (python-barcode); the PDF
draws Code 128 with reportlab's own encoder and the QR code from the same
segno matrix as the SVG.

:func:`explain_label` tells a scanned or typed label with a wrong check
character from one that is malformed, naming the character expected.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from biobank.core import audit
from biobank.core.access import Permission, Principal, require
from biobank.core.errors import NotFoundError, ValidationError
from biobank.core.ids import validate_label
from biobank.registry.storage import (
    LOCATION_SQL,
    STORAGE_FIELDS,
    check_location,
    normalise_location,
)

if TYPE_CHECKING:
    from biobank.core.store import Store

__all__ = [
    "SHEET_GRID",
    "LabelCheck",
    "box_label_sheet_pdf",
    "explain_label",
    "label_qr_svg",
    "specimen_label_pdf",
]


class LabelCheck(ValidationError):
    """A label whose check character is wrong: carries the character read and the one expected."""

    def __init__(self, label: str, got: str, expected: str) -> None:
        super().__init__(
            f"the check character of {label} is '{got}' but the characters before it give "
            f"'{expected}': re-scan the tube or re-type the label",
            field="label",
            value=label,
        )
        self.label = label
        self.got = got
        self.expected = expected


def explain_label(text: str) -> str:
    """Return the label (upper-cased) if its check character is right, else raise.

    Raises
    ------
    LabelCheck
        If the label is well-formed but its last character is not the check
        character of the others (a misread or mistyped character).
    ValidationError
        If it is not a label at all (empty, other characters, too short).

    Examples
    --------
    >>> explain_label("bb0000001n")
    'BB0000001N'
    >>> try:
    ...     explain_label("BB0000001X")
    ... except LabelCheck as exc:
    ...     print(exc.got, exc.expected)
    X N
    """
    from stdnum.iso7064 import mod_37_36

    value = (text or "").strip().upper()
    try:
        return validate_label(value)
    except ValidationError:
        if value.isascii() and value.isalnum() and len(value) >= 3:
            expected = str(mod_37_36.calc_check_digit(value[:-1]))
            raise LabelCheck(value, value[-1], expected) from None
        raise


def label_qr_svg(label: str, *, scale: int = 4) -> str:
    """Return a QR code (error correction M) of a specimen label as SVG text.

    Raises
    ------
    ValidationError
        If the label's check character is wrong (a bad label is never printed).
    """
    import segno

    value = validate_label(label)
    buf = io.BytesIO()
    segno.make_qr(value, error="m").save(
        buf, kind="svg", scale=scale, border=4, xmldecl=False, title=value
    )
    return buf.getvalue().decode("utf-8")


#: Label cells of a sheet: A4, 2 columns x 10 rows, side and top margins in points.
SHEET_GRID = (2, 10, 28.0, 36.0)
_COLS, _ROWS, _MARGIN_X, _MARGIN_Y = SHEET_GRID


def _draw_label(
    canvas: Any, x: float, y: float, w: float, h: float, spec: Mapping[str, Any]
) -> None:
    """One label: Code 128 and QR of the label, the label in text, type and position."""
    import segno
    from reportlab.graphics.barcode.code128 import Code128  # type: ignore[import-untyped]

    label = str(spec["label"])
    qr = segno.make_qr(label, error="m")
    size = h - 16
    module = size / (len(qr.matrix) + 8)
    qx, qy = x + 6, y + 8
    canvas.setFillColorRGB(0, 0, 0)
    for r, row in enumerate(qr.matrix):
        for c, dark in enumerate(row):
            if dark:
                canvas.rect(
                    qx + (c + 4) * module, qy + size - (r + 5) * module, module, module, 0, 1
                )
    bx = qx + size + 2
    unit = Code128(label, barWidth=1.0, quiet=True).width  # the bars' width at 1 pt a module
    bar = Code128(
        label,
        barHeight=h * 0.4,
        barWidth=min(1.2, (x + w - bx - 4) / unit),
        humanReadable=False,
        quiet=True,
    )
    bar.drawOn(canvas, bx, y + h * 0.45)
    canvas.setFont("Courier-Bold", 10)
    canvas.drawString(bx + 6, y + h * 0.28, label)
    canvas.setFont("Helvetica", 7)
    where = "/".join(str(spec[f]) for f in STORAGE_FIELDS) if spec.get("freezer") else ""
    canvas.drawString(bx + 6, y + h * 0.12, f"{spec['specimen_type']}  {where}".strip())


def _sheet(specs: Sequence[Mapping[str, Any]], title: str) -> bytes:
    from reportlab.lib.pagesizes import A4  # type: ignore[import-untyped]
    from reportlab.pdfgen.canvas import Canvas  # type: ignore[import-untyped]

    buf = io.BytesIO()
    canvas = Canvas(buf, pagesize=A4, pageCompression=0)
    canvas.setTitle(title)
    canvas.setCreator("biobank")
    pw, ph = A4
    w = (pw - 2 * _MARGIN_X) / _COLS
    h = (ph - 2 * _MARGIN_Y) / _ROWS
    per_page = _COLS * _ROWS
    for i, spec in enumerate(specs):
        if i and i % per_page == 0:
            canvas.showPage()
        k = i % per_page
        col, row = k % _COLS, k // _COLS
        x, y = _MARGIN_X + col * w, ph - _MARGIN_Y - (row + 1) * h
        canvas.setStrokeColorRGB(0.8, 0.8, 0.8)
        canvas.rect(x, y, w, h, 1, 0)
        _draw_label(canvas, x, y, w, h, spec)
    canvas.showPage()
    canvas.save()
    return buf.getvalue()


_COLUMNS = "label, specimen_type, status, freezer, rack, box, position, participant_id"


def specimen_label_pdf(store: Store, principal: Principal, label: str) -> bytes:
    """Return a one-label PDF of a specimen (Code 128, QR and the label text).

    Raises
    ------
    AccessDenied
        Without ``registry_read``.
    NotFoundError
        If the label is unknown.
    ValidationError
        If the label's check character is wrong.
    """
    require(principal, Permission.REGISTRY_READ)
    value = validate_label(label)
    with store.transaction() as con:
        cur = con.execute(f"SELECT {_COLUMNS} FROM specimen WHERE label = ?", [value])
        row = cur.fetchone()
        if row is None:
            raise NotFoundError(f"no specimen with label {value}")
        spec = dict(zip([d[0] for d in cur.description], row, strict=True))
        audit.record(con, principal, "specimen.label", value, {"labels": 1})
    return _sheet([spec], f"label {value}")


def box_label_sheet_pdf(
    store: Store, principal: Principal, *, freezer: str, rack: str, box: str
) -> tuple[bytes, list[str]]:
    """Return a PDF sheet of the labels of every specimen stored in one box, and the labels.

    Labels are in position order (A1, A2 ... B1 ..., numbered positions by number).

    Raises
    ------
    AccessDenied
        Without ``registry_read``.
    ValidationError
        For a malformed freezer, rack or box.
    NotFoundError
        If no specimen is stored in the box.
    """
    require(principal, Permission.REGISTRY_READ)
    loc = {"freezer": freezer, "rack": rack, "box": box, "position": "1"}
    problems = check_location(loc)
    if problems:
        p = problems[0]
        raise ValidationError(p.message, field=p.field, value=p.value)
    loc = normalise_location(loc)
    where = " AND ".join(f"{expr} = ?" for expr in LOCATION_SQL[:3])
    with store.transaction() as con:
        cur = con.execute(
            f"SELECT {_COLUMNS} FROM specimen WHERE freezer IS NOT NULL AND {where}"
            " ORDER BY regexp_extract(upper(position), '^[A-Z]*'),"
            " TRY_CAST(regexp_extract(position, '[0-9]+$') AS INTEGER), label",
            [loc["freezer"], loc["rack"], loc["box"]],
        )
        names = [d[0] for d in cur.description]
        specs = [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
        name = f"{loc['freezer']}/{loc['rack']}/{loc['box']}"
        if not specs:
            raise NotFoundError(f"no specimen is stored in box {name}")
        labels = [str(s["label"]) for s in specs]
        audit.record(con, principal, "specimen.label", name, {"labels": len(labels)})
    return _sheet(specs, f"labels of box {name}"), labels
