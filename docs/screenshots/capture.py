"""Screenshots of every page of the web service, in Chinese and in English.

Builds a small store in a temporary folder (three participants, a tube of blood
aliquoted and derived into buffy coat and DNA, a saliva kit, one account per
role), starts the service on 127.0.0.1, logs in as the admin (who sees every
page) in Debian's chromium and saves ``<page>.<locale>.png`` (1280 x 800,
palette PNG) here. The pages are every GET route of
:data:`biobank.service.routes.ROUTES` that renders HTML, so a page added later
is captured without touching this script; a route with a path parameter this
script cannot fill is listed and skipped. Run from the repository::

    .venv/bin/python docs/screenshots/capture.py            # into docs/screenshots/
    .venv/bin/python docs/screenshots/capture.py --out /tmp/shots

Needs ``chromium`` and ``fonts-wqy-microhei`` (``./run test`` installs both).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import re
import secrets
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
CHROMIUM = Path("/usr/bin/chromium")
PASSWORD = "screenshots only 1"
LOCALES = ("zh_CN", "en")
#: Route name -> file name (the rest keep their route name, ``_`` as ``-``).
NAMES = {
    "login_form": "login",
    "password_form": "password",
    "participant_form": "participant-new",
    "specimen_form": "specimen-new",
}
#: Not pages: files, redirects, and what ends the session.
SKIP = {"switch_language", "specimen_barcode", "specimen_qr", "specimen_label", "box_labels"}
SKIP |= {"scan"}  # captured below with a misread label


def seed(path: Path) -> dict[str, str]:
    """Create the store at ``path``; return the values of path parameters."""
    from biobank.core.access import Principal, Role
    from biobank.core.ids import center_key, make_label
    from biobank.core.store import Store
    from biobank.registry import (
        add_consent,
        add_specimen,
        aliquot_specimen,
        register_participant,
    )
    from biobank.service.accounts import create_account

    people = [
        ("110105196503120128", "王芳", "female", "1965-03-12", "GRU"),
        ("310104197805210255", "李强", "male", "1978-05-21", "HMB"),
        ("440106198911300365", "陈静", "female", "1989-11-30", "DS:C50"),
    ]
    with Store(path) as store:
        center_key(store.path, create=True)
        admin = create_account(store, None, "admin", Role.ADMIN, PASSWORD, client="capture")
        for name, role in (("reg1", Role.REGISTRAR), ("aud1", Role.AUDITOR)):
            create_account(store, admin, name, role, PASSWORD, client="capture")
        store.con.execute("UPDATE web_account SET must_change = FALSE")
        reg = Principal("reg1", Role.REGISTRAR)
        pids = []
        for number, name, sex, born, duo in people:
            pid = register_participant(
                store,
                reg,
                national_id=number,
                name=name,
                sex=sex,
                birth_date=born,
                enrolment_date="2024-01-02",
                site="S0001",
                phone="13800138000",
            )
            add_consent(
                store, reg, pid, version="v1", signed_date=dt.date(2024, 1, 2), duo_codes=duo
            )
            pids.append(pid)
        blood = make_label("BB", 1)
        add_specimen(
            store,
            reg,
            label=blood,
            participant_id=pids[0],
            specimen_type="whole_blood",
            collected_at="2024-01-02T09:00",
            quantity=10,
            unit="mL",
            freezer="F01",
            rack="R01",
            box="B01",
            position="A1",
        )
        spots = [
            {"freezer": "F01", "rack": "R01", "box": "B01", "position": p}
            for p in ["A2", "A3", "A4"]
        ]
        aliquot_specimen(store, reg, blood, count=3, quantity=1.0, positions=spots)
        (buffy,) = aliquot_specimen(
            store, reg, blood, count=1, quantity=0.5, specimen_type="buffy_coat", reason="derived"
        )
        aliquot_specimen(
            store,
            reg,
            buffy.label,
            count=1,
            quantity=20,
            unit="µg",
            specimen_type="dna",
            parent_used=0.2,
            positions=[{"freezer": "F01", "rack": "R01", "box": "B01", "position": "B1"}],
            reason="extracted",
        )
        add_specimen(
            store,
            reg,
            label=make_label("BB", 100),
            participant_id=pids[1],
            specimen_type="saliva",
            collected_at="2024-02-20T10:00",
            quantity=2,
            unit="mL",
            freezer="F02",
            rack="R01",
            box="B01",
            position="A1",
        )
    path.chmod(0o600)
    Path(str(path) + ".key").chmod(0o600)
    return {
        "pid": pids[0],
        "label": blood,
        "name": "reg1",
        "code": "en",
        "freezer": "F01",
        "rack": "R01",
        "box": "B01",
    }


@contextmanager
def serve(store: Path) -> Iterator[str]:
    """The service over ``store`` under uvicorn on a free port, in a thread."""
    import uvicorn

    from biobank.service import create_app

    app = create_app(store, secret_key=secrets.token_hex(32))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def pages(values: dict[str, str]) -> tuple[list[tuple[str, str]], list[str]]:
    """``(file name, path)`` of every HTML page, and the routes skipped."""
    from biobank.service.routes import ROUTES

    out, skipped = [], []
    for spec in ROUTES:
        if spec.method != "GET" or spec.path.startswith("/api/") or spec.name in SKIP:
            continue
        params = re.findall(r"\{(\w+)\}", spec.path)
        if any(p not in values for p in params):
            skipped.append(spec.name)
            continue
        path = spec.path
        for p in params:
            path = path.replace("{" + p + "}", values[p])
        out.append((NAMES.get(spec.name, spec.name.replace("_", "-")), path))
    return out, skipped


def shrink(png: Path) -> None:
    """Rewrite a screenshot as a palette PNG (a third of the size, text stays sharp)."""
    from PIL import Image

    with Image.open(png) as img:
        small = img.convert("RGB").quantize(colors=128, method=Image.Quantize.MEDIANCUT)
    small.save(png, optimize=True)


def capture(base: str, out: Path, values: dict[str, str]) -> list[Path]:
    """Log in and save every page in every language; return the files written."""
    from playwright.sync_api import sync_playwright

    todo, skipped = pages(values)
    if skipped:
        print("skipped (path parameters unknown to capture.py):", ", ".join(skipped))
    written: list[Path] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        for locale in LOCALES:
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            page.goto(f"{base}/lang/{locale}?next=/login")

            def shot(name: str, page: Any = page, locale: str = locale) -> None:
                file = out / f"{name}.{locale}.png"
                page.screenshot(path=file)
                shrink(file)
                written.append(file)

            shot("login")
            page.fill("input[name=username]", "admin")
            page.fill("input[name=password]", PASSWORD)
            page.click("button[type=submit]")
            page.wait_for_url(f"{base}/")
            for name, path in todo:
                if name == "login":
                    continue
                page.goto(base + path)
                shot(name)
            # interactions worth a picture of their own
            page.goto(f"{base}/participants/new")
            page.fill("#f-national_id", "110105196503120129")  # a mistyped check character
            page.wait_for_selector("#national_id-check.error")
            shot("register-check")
            page.goto(f"{base}/specimens/{values['label']}")
            page.fill("#scan", values["label"][:-1] + ("X" if values["label"][-1] != "X" else "Y"))
            page.press("#scan", "Enter")
            page.wait_for_selector(".error-detail")
            shot("scan-check")
            page.close()
        browser.close()
    return written


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=HERE, help="folder of the PNGs")
    args = parser.parse_args()
    if not CHROMIUM.exists():
        print("chromium is not installed: apt-get install chromium fonts-wqy-microhei")
        return 1
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        os.environ.pop("BIOBANK_CENTER_KEY", None)
        os.environ.pop("BIOBANK_KEY_FILE", None)
        store = Path(tmp) / "screens.duckdb"
        values = seed(store)
        with serve(store) as base:
            files = capture(base, args.out, values)
    total = sum(f.stat().st_size for f in files)
    print(f"{len(files)} screenshots, {total / 1e6:.1f} MB, in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
