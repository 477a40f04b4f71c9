"""Labels: Code 128 and QR as SVG, PDF sheets of a box, read back by ZBar; check characters."""

from __future__ import annotations

from pathlib import Path

import pytest
from labels_support import (
    code128_svg_png,
    decode,
    needs_poppler,
    needs_zbar,
    pdf_pages_png,
    qr_svg_png,
    sheet_cells,
)
from registry_support import loaded, loaded_template, store, users  # noqa: F401

from biobank.core.access import Principal
from biobank.core.errors import AccessDenied, NotFoundError, ValidationError
from biobank.core.store import Store
from biobank.registry import aliquot_specimen
from biobank.registry.inventory import label_barcode_svg
from biobank.registry.labels import (
    SHEET_GRID,
    LabelCheck,
    box_label_sheet_pdf,
    explain_label,
    label_qr_svg,
    specimen_label_pdf,
)

BLOOD = "BB0000001N"


def test_a_wrong_check_character_is_told_apart_from_a_malformed_label() -> None:
    assert explain_label(" bb0000001n ") == BLOOD
    with pytest.raises(LabelCheck) as info:
        explain_label("BB0000001X")
    assert (info.value.got, info.value.expected) == ("X", "N")
    assert "check character of BB0000001X is 'X'" in str(info.value)
    for bad in ("", "B", "BB-0001", "标签123"):
        with pytest.raises(ValidationError) as other:
            explain_label(bad)
        assert not isinstance(other.value, LabelCheck)


def test_no_barcode_is_made_for_a_mistyped_label() -> None:
    for make in (label_barcode_svg, label_qr_svg):
        with pytest.raises(ValidationError):
            make("BB0000001X")


def test_the_svgs_hold_the_label_with_its_check_character() -> None:
    assert f">{BLOOD}</text>" in label_barcode_svg(BLOOD)
    assert f"<title>{BLOOD}</title>" in label_qr_svg(BLOOD)


@needs_zbar
def test_the_svgs_decode_to_the_label(tmp_path: Path) -> None:
    for label in (BLOOD, "BB00000097", "XY0123456" + "0"):
        try:
            explain_label(label)
        except LabelCheck as exc:
            label = label[:-1] + exc.expected
        bar = code128_svg_png(label_barcode_svg(label), tmp_path / "bar.png")
        assert decode(bar) == [f"CODE-128:{label}"]
        qr = qr_svg_png(label_qr_svg(label), tmp_path / "qr.png")
        assert decode(qr) == [f"QR-Code:{label}"]


def test_the_box_sheet_is_a_pdf_of_the_specimens_in_position_order(
    loaded: Store,
    users: dict[str, Principal],
) -> None:
    pdf, labels = box_label_sheet_pdf(
        loaded, users["registrar"], freezer="f01", rack="r1", box="b01"
    )
    assert pdf.startswith(b"%PDF-1.")
    assert pdf.rstrip().endswith(b"%%EOF")
    # wells A1, A2, A3, A4 (the consumed buffy coat has no position)
    assert labels == ["BB0000001N", "BB0000003J", "BB0000004H", "BB0000005F"]
    for label in labels:  # uncompressed page: the label text is in the content stream
        assert f"({label}) Tj".encode() in pdf
    row = loaded.con.execute(
        "SELECT user_name, action, target FROM audit_log ORDER BY entry_id DESC LIMIT 1"
    ).fetchone()
    assert row == ("reg1", "specimen.label", "F01/R1/B01")


def test_box_sheets_are_refused_for_empty_boxes_and_other_roles(
    loaded: Store,
    users: dict[str, Principal],
) -> None:
    with pytest.raises(NotFoundError, match="no specimen is stored in box F01/R1/B99"):
        box_label_sheet_pdf(loaded, users["registrar"], freezer="F01", rack="R1", box="B99")
    with pytest.raises(ValidationError):
        box_label_sheet_pdf(loaded, users["registrar"], freezer="F 1", rack="R1", box="B01")
    with pytest.raises(AccessDenied):
        box_label_sheet_pdf(loaded, users["researcher"], freezer="F01", rack="R1", box="B01")
    with pytest.raises(AccessDenied):
        specimen_label_pdf(loaded, users["auditor"], BLOOD)


@needs_zbar
@needs_poppler
def test_every_label_of_a_two_page_sheet_decodes(
    loaded: Store,
    users: dict[str, Principal],
    tmp_path: Path,
) -> None:
    reg = users["registrar"]
    spots = [
        {"freezer": "F05", "rack": "R1", "box": "B1", "position": f"{n}"} for n in range(1, 23)
    ]
    kids = aliquot_specimen(loaded, reg, BLOOD, count=22, quantity=0.2, positions=spots)
    pdf, labels = box_label_sheet_pdf(loaded, reg, freezer="F05", rack="R1", box="B1")
    assert labels == [k.label for k in kids]  # positions 1..22 in number order
    pages = pdf_pages_png(pdf, tmp_path)
    assert len(pages) == 2  # 20 labels a page
    cells = [cell for page in pages for cell in sheet_cells(page, SHEET_GRID)]
    found = [decode(cell) for cell in cells]
    # one label a cell, in position order, then empty cells
    expected = [[f"CODE-128:{x}", f"QR-Code:{x}"] for x in labels]
    assert found == expected + [[]] * (len(cells) - len(labels))
    one = pdf_pages_png(specimen_label_pdf(loaded, reg, BLOOD), tmp_path / "one")
    assert decode(sheet_cells(one[0], SHEET_GRID)[0]) == [f"CODE-128:{BLOOD}", f"QR-Code:{BLOOD}"]
