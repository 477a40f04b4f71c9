"""In a real browser (Playwright, Debian's chromium, uvicorn): move a specimen in the box grid;
import a CSV with errors, read the error report, fix the file, commit.

Screenshots go to a temporary folder, or to ``$BIOBANK_SCREENSHOTS`` (e.g.
``docs/screenshots``) to refresh the committed ones.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from service.serving import served
from service.support import PASSWORD, WANG, register_wang

from biobank.core.access import Principal, Role
from biobank.core.ids import make_label
from biobank.registry import add_specimen

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
REPO = Path(__file__).resolve().parents[2]
HEADER = "label,national_id,specimen_type,collected_at,quantity,unit,freezer,rack,box,position"


def _seed(app: object) -> list[str]:
    store = app.state.service.store  # type: ignore[attr-defined]
    reg = Principal("reg1", Role.REGISTRAR)
    pid = register_wang(store, reg)
    labels = [make_label("BB", i) for i in (1, 2)]
    for i, label in enumerate(labels):
        add_specimen(
            store,
            reg,
            label=label,
            participant_id=pid,
            specimen_type="plasma",
            collected_at="2024-01-02T09:00:00",
            quantity=1.0,
            unit="mL",
            freezer="F01",
            rack="R01",
            box="B01",
            position=f"A{i + 1}",
        )
    return labels


@pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed")
def test_move_in_the_grid_and_import_with_an_error_report(app: object, tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    labels = _seed(app)
    shots = (
        REPO / os.environ["BIOBANK_SCREENSHOTS"]
        if "BIOBANK_SCREENSHOTS" in os.environ
        else tmp_path
    )
    shots.mkdir(parents=True, exist_ok=True)
    bad = "\n".join(
        [
            HEADER,
            f"{make_label('BB', 3)},{WANG},plasma,2024-01-03T09:00,1,mL,F01,R01,B01,A2",
            f"{make_label('BB', 4)},{WANG},blood,2024-01-03T09:00,ten,mL,F01,R01,B01,A5",
        ]
    )
    fixed = bad.replace("B01,A2", "B01,A4").replace("blood", "plasma").replace("ten", "1")
    with served(app) as base, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        page.goto(f"{base}/login")
        page.fill("input[name=username]", "reg1")
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")

        # storage: freezer -> rack -> box, then move the first specimen to a clicked free cell
        page.goto(f"{base}/storage")
        page.click("#units a")
        page.click("#units a")
        page.click("#units a")
        expect(page.locator("h1")).to_have_text("盒 F01/R01/B01")
        page.check(f"#pick-{labels[0]}")
        page.click("#cell-C3")  # a free cell: the script fills the target
        expect(page.locator("#m-positions")).to_have_value("C3")
        page.fill("#m-reason", "整理")
        page.screenshot(path=shots / "storage-move.zh_CN.png")
        page.click("#move-submit")
        expect(page.locator("#moved")).to_contain_text("1")
        expect(page.locator("#cell-C3")).to_contain_text(labels[0])
        expect(page.locator("#cell-A1")).not_to_contain_text(labels[0])

        # import: a file with errors, the report, then the fixed file
        page.goto(f"{base}/import")
        page.select_option("#f-kind", "specimens")
        page.set_input_files(
            "#f-file",
            files=[{"name": "specimens.csv", "mimeType": "text/csv", "buffer": bad.encode()}],
        )
        page.click("#upload-form button[type=submit]")
        report = page.locator("#report")
        expect(report).to_contain_text("数量须为正数")
        expect(report).to_contain_text(f"位置 F01/R01/B01/A2 已被 {labels[1]} 占用")
        expect(page.locator("#commit")).to_have_count(0)
        page.screenshot(path=shots / "import-report.zh_CN.png", full_page=True)
        page.click("#lang-en")
        expect(page.locator("#report")).to_contain_text("quantity must be a positive number")
        page.screenshot(path=shots / "import-report.en.png", full_page=True)

        page.click("#upload-again")
        page.select_option("#f-kind", "specimens")
        page.set_input_files(
            "#f-file",
            files=[{"name": "specimens.csv", "mimeType": "text/csv", "buffer": fixed.encode()}],
        )
        page.click("#upload-form button[type=submit]")
        expect(page.locator("#import-summary")).to_contain_text("Would add 2")
        page.click("#commit")
        expect(page.locator("#import-done")).to_contain_text("2 added")
        browser.close()
    con = app.state.service.store.con  # type: ignore[attr-defined]
    assert con.execute("SELECT count(*) FROM specimen").fetchone() == (4,)
    assert (shots / "storage-move.zh_CN.png").stat().st_size > 10_000
