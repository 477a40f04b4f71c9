"""In a real browser: accession a tube, aliquot it, print its label, scan it, switch language.

The barcode and QR code are read back by ZBar from chromium's own rendering of
the SVGs (a screenshot of the label images), as a scanner would read the label.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from labels_support import ZBARIMG, decode
from service.support import PASSWORD, register_wang
from service.test_browser import CHROMIUM, server  # noqa: F401 - the uvicorn fixture

from biobank.core.access import Principal, Role
from biobank.core.ids import make_label
from biobank.registry import add_consent

pytestmark = pytest.mark.browser


@pytest.fixture
def participant(app: object) -> str:
    """Wang, registered and consented (the pages for that are tested elsewhere)."""
    store = app.state.service.store  # type: ignore[attr-defined]
    reg = Principal("reg1", Role.REGISTRAR)
    pid = register_wang(store, reg)
    add_consent(store, reg, pid, version="v1", signed_date=dt.date(2024, 1, 2), duo_codes="GRU")
    return pid


@pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed")
def test_accession_aliquot_print_scan_and_switch_language(
    server: str,
    participant: str,
    tmp_path: Path,
) -> None:
    from playwright.sync_api import expect, sync_playwright

    tube = make_label("BB", 1)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        page.goto(f"{server}/login?next=/specimens/new")
        page.fill("input[name=username]", "reg1")
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        # accession: the tube's label is scanned into the form
        page.fill("#f-label", tube)
        page.fill("#f-participant_id", participant)
        page.select_option("select[name=specimen_type]", "whole_blood")
        page.fill("#f-collected_at", "2024-01-02 09:00")
        page.fill("#f-quantity", "4")
        page.select_option("select[name=unit]", "mL")
        for name, value in (
            ("freezer", "F01"),
            ("rack", "R01"),
            ("box", "B01"),
            ("position", "A1"),
        ):
            page.fill(f"#f-{name}", value)
        page.click("form.stack button[type=submit]")
        expect(page.locator("h1")).to_have_text(f"样本 {tube}")

        # aliquot into 3 children of 0.5 mL in B02/A1..A3
        form = page.locator("#form-aliquot")
        form.locator("#aliquot-count").fill("3")
        form.locator("#aliquot-quantity").fill("0.5")
        form.locator("input[name=freezer]").fill("F01")
        form.locator("input[name=rack]").fill("R01")
        form.locator("input[name=box]").fill("B02")
        form.locator("#aliquot-positions").fill("A1 A2 A3")
        form.locator("button[type=submit]").click()
        kids = [make_label("BB", n) for n in (2, 3, 4)]
        for kid in kids:
            expect(page.locator(f"#lineage a[href='/specimens/{kid}']")).to_be_visible()
        expect(page.locator("#remaining")).to_have_text("2.5 / 4 mL")

        # print the first child's label: SVGs drawn by chromium, the PDF served
        page.click(f"#lineage a[href='/specimens/{kids[0]}']")
        expect(page.locator("h1")).to_have_text(f"样本 {kids[0]}")
        page.wait_for_function(  # both SVGs served and drawn
            "() => [...document.querySelectorAll('img.barcode, img.qr')]"
            ".every(i => i.complete && i.naturalWidth > 0) && "
            "document.querySelectorAll('img.barcode, img.qr').length === 2",
            timeout=10_000,
        )
        pdf = page.request.get(f"{server}/specimens/{kids[0]}/label.pdf")
        assert pdf.headers["content-type"] == "application/pdf"
        assert pdf.body().startswith(b"%PDF-")
        if ZBARIMG:
            page.locator(".labels").screenshot(path=tmp_path / "label.png")
            assert decode(tmp_path / "label.png") == [
                f"CODE-128:{kids[0]}",
                f"QR-Code:{kids[0]}",
            ]

        # scan: the scanner types the label and Enter into the header's box
        page.goto(f"{server}/specimens")  # no field of its own: the scanner box has the focus
        expect(page.locator("#scan")).to_be_focused()
        page.keyboard.type(kids[2].lower())
        page.keyboard.press("Enter")
        expect(page).to_have_url(f"{server}/specimens/{kids[2]}")
        misread = kids[2][:-1] + ("X" if kids[2][-1] != "X" else "Y")
        page.keyboard.type(misread)  # the scanner box has the focus on the specimen page
        page.keyboard.press("Enter")
        expect(page.locator(".error-detail")).to_contain_text(f"标签 {misread} 的校验码是")

        page.click("#lang-en")
        page.fill("#scan", misread)
        page.press("#scan", "Enter")
        expect(page.locator(".error-detail")).to_contain_text(
            f"The check character of {misread} is"
        )
        page.goto(f"{server}/specimens/{tube}")
        expect(page.locator("h1")).to_have_text(f"Specimen {tube}")
        expect(page.locator("#form-aliquot h3")).to_have_text("Aliquot")
        browser.close()
