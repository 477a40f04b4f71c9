"""End to end in a real browser: Playwright drives Debian's chromium against uvicorn.

Log in, register a participant (the resident ID checked as it is typed), register
and withdraw a consent, search it, switch the language. Screenshots go to a
temporary folder; to refresh the committed ones in ``docs/screenshots/``, run
with ``BIOBANK_SCREENSHOTS=docs/screenshots``. Together with
``test_browser_specimens.py`` (accession, aliquot, label, scan) and
``test_browser_storage.py`` (move in the box grid, import with errors then fixed)
this is the issue's browser walk-through.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from service.serving import served
from service.support import PASSWORD, WANG

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def server(app: object) -> Iterator[str]:
    """The app under uvicorn on a free port of 127.0.0.1, in a background thread."""
    with served(app) as url:
        yield url


@pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed")
def test_login_register_withdraw_search_and_switch_language(
    app: object, server: str, tmp_path: Path
) -> None:
    from playwright.sync_api import expect, sync_playwright

    shots = (
        REPO / os.environ["BIOBANK_SCREENSHOTS"]
        if "BIOBANK_SCREENSHOTS" in os.environ
        else tmp_path
    )
    shots.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1200, "height": 800})
        page.goto(f"{server}/dashboard")
        expect(page).to_have_url(f"{server}/login?next=/dashboard")
        page.screenshot(path=shots / "login.zh_CN.png")
        page.fill("input[name=username]", "reg1")
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        expect(page).to_have_url(f"{server}/dashboard")
        page.screenshot(path=shots / "dashboard.zh_CN.png")

        page.goto(f"{server}/participants/new")
        page.fill("#f-national_id", WANG[:-1] + "9")  # a typo in the check character
        expect(page.locator("#national_id-check")).to_contain_text("校验码为“9”")
        page.screenshot(path=shots / "register-check.zh_CN.png")
        page.fill("#f-national_id", WANG)
        expect(page.locator("#national_id-check")).to_have_text("身份证号码有效。")
        page.fill("#f-name", "王芳")
        page.select_option("#f-sex", "female")
        page.fill("#f-birth_date", "1965-03-12")
        page.fill("#f-enrolment_date", "2024-01-02")
        page.fill("#f-site", "S0001")
        page.click("form.stack button[type=submit]")
        expect(page.locator("h1")).to_contain_text("参与者 P-")
        pid = page.locator("h1").inner_text().split()[-1]
        page.screenshot(path=shots / "participant.zh_CN.png")

        # a consent, then its withdrawal (with immediate effect: stored at once)
        page.click("details:has(form[action$='/consents']) > summary")
        consent = page.locator("form[action$='/consents']")
        consent.locator("input[name=version]").fill("v1")
        consent.locator("input[name=signed_date]").fill("2024-01-02")
        consent.locator("input[name=duo_codes]").fill("GRU")
        consent.locator("button[type=submit]").click()
        expect(page.locator("table tbody tr").first).to_contain_text("GRU")
        page.click("details:has(form[action$='/withdraw']) > summary")
        withdraw = page.locator("form[action$='/withdraw']")
        withdraw.locator("input[name=withdrawn_date]").fill("2024-06-01")
        withdraw.locator("input[name=reason]").fill("本人要求")
        withdraw.locator("button[type=submit]").click()
        expect(page.locator("table tbody tr").first).to_contain_text("2024-06-01")
        expect(page.locator("form[action$='/withdraw']")).to_have_count(0)

        page.goto(f"{server}/participants")
        page.fill("#search-q", WANG)
        page.click("form.stack button[type=submit]")
        expect(page).to_have_url(f"{server}/participants/{pid}")
        assert WANG not in page.content()

        page.click("#lang-en")
        expect(page.locator("h1")).to_have_text(f"Participant {pid}")
        page.screenshot(path=shots / "participant.en.png")
        page.goto(f"{server}/dashboard")
        expect(page.locator("h1")).to_have_text("Dashboard")
        page.screenshot(path=shots / "dashboard.en.png")
        browser.close()
    con = app.state.service.store.con  # type: ignore[attr-defined]
    withdrawn = "SELECT withdrawn_date::VARCHAR FROM consent WHERE participant_id = ?"
    assert con.execute(withdrawn, [pid]).fetchall() == [("2024-06-01",)]
    # each page was drawn (a blank or error page compresses to a few kB)
    for name in ("login.zh_CN", "dashboard.zh_CN", "participant.zh_CN", "participant.en"):
        assert (shots / f"{name}.png").stat().st_size > 10_000
