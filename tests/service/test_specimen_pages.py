"""The specimen page over HTTP: aliquot, derive, consume, ship, destroy; labels; the scanner box."""

from __future__ import annotations

import datetime as dt
import html
import re
from pathlib import Path

import pytest
from labels_support import code128_svg_png, decode, needs_zbar, qr_svg_png
from service.support import TestClient, audit_rows, csrf, logged_in, register_wang

from biobank.core.access import Principal, Role
from biobank.core.ids import is_valid_label, make_label
from biobank.registry import add_consent, add_specimen

BLOOD = "BB0000001N"
PAGE = f"/specimens/{BLOOD}"


@pytest.fixture
def seeded(app: object) -> object:
    """The app with Wang and 4 mL of her whole blood in F01/R01/B01/A1."""
    store = app.state.service.store  # type: ignore[attr-defined]
    reg = Principal("reg1", Role.REGISTRAR)
    pid = register_wang(store, reg)
    add_consent(store, reg, pid, version="v1", signed_date=dt.date(2024, 1, 2), duo_codes="GRU")
    add_specimen(
        store,
        reg,
        label=BLOOD,
        participant_id=pid,
        specimen_type="whole_blood",
        collected_at="2024-01-02T09:00:00",
        quantity=4.0,
        unit="mL",
        freezer="F01",
        rack="R01",
        box="B01",
        position="A1",
    )
    return app


def _post(client: TestClient, action: str, data: dict[str, str], label: str = BLOOD) -> object:
    return client.post(
        f"/specimens/{label}/{action}", data={"csrftoken": csrf(client, "/labels"), **data}
    )


def _specimens(app: object) -> list[tuple[object, ...]]:
    con = app.state.service.store.con  # type: ignore[attr-defined]
    return con.execute(  # type: ignore[no-any-return]
        "SELECT label, parent_label, specimen_type, quantity, unit, status, position"
        " FROM specimen ORDER BY label"
    ).fetchall()


def test_the_page_shows_lineage_labels_history_and_the_forms(seeded: object) -> None:
    page = logged_in(seeded, Role.REGISTRAR).get(PAGE)
    assert page.status_code == 200
    for marker in ("form-aliquot", "form-derive", "form-consume", "form-ship", "form-destroy"):
        assert f'id="{marker}"' in page.text
    assert f"/specimens/{BLOOD}/qr.svg" in page.text
    assert f"/specimens/{BLOOD}/label.pdf" in page.text
    assert "/labels/box.pdf?freezer=F01&amp;rack=R01&amp;box=B01" in page.text
    assert 'id="scan"' in page.text  # the scanner box, focused on this page
    assert "registered" in page.text  # the history


def test_other_roles_get_no_page_and_no_action(seeded: object) -> None:
    for role in (Role.RESEARCHER, Role.AUDITOR):
        client = logged_in(seeded, role)
        assert client.get(PAGE).status_code == 403
        assert _post(client, "destroy", {"reason": "x"}).status_code == 403
        assert client.get("/scan", params={"label": BLOOD}).status_code == 403
        assert BLOOD not in client.get("/").text  # and no scanner box either
    assert _specimens(seeded)[0][5] == "available"


def test_aliquot_into_three_children_in_one_action(seeded: object) -> None:
    client = logged_in(seeded, Role.REGISTRAR)
    response = _post(
        client,
        "aliquot",
        {
            "count": "3",
            "quantity": "500",
            "unit": "µL",
            "freezer": "f01",
            "rack": "r01",
            "box": "b02",
            "positions": "a1, a2 A03",
        },
    )
    assert response.status_code == 303, response.text  # type: ignore[attr-defined]
    assert response.headers["location"] == PAGE  # type: ignore[attr-defined]
    kids = [make_label("BB", n) for n in (2, 3, 4)]
    assert _specimens(seeded)[1:] == [
        (k, BLOOD, "whole_blood", 500.0, "µL", "available", p)
        for k, p in zip(kids, ["A1", "A2", "A3"], strict=True)
    ]
    assert all(is_valid_label(k) for k in kids)
    page = client.get(PAGE).text
    assert "2.5 / 4 mL" in page  # 4 mL - 3 x 0.5 mL
    for k in kids:
        assert f'href="/specimens/{k}"' in page  # in the lineage tree
    rows = [r[2:4] for r in audit_rows(seeded, "user_name = 'reg1' AND action <> 'specimen.read'")]
    i = rows.index(("web.request", f"POST /specimens/{BLOOD}/aliquot"))
    assert rows[i + 1 : i + 5] == [("specimen.create", k) for k in kids] + [
        ("specimen.aliquot", BLOOD)
    ]


@pytest.mark.parametrize(
    ("data", "zh", "en"),
    [
        ({"count": "0", "quantity": "1"}, "分装份数须为 1 到 96 之间的整数", "from 1 to 96"),
        ({"count": "two", "quantity": "1"}, "分装份数须为 1 到 96 之间的整数", "from 1 to 96"),
        ({"count": "2", "quantity": "-1"}, "数量须为正数", "quantity must be a positive number"),
        (
            {"count": "5", "quantity": "1"},
            "5 × 1 mL = 5 mL，超过了 BB0000001N 的剩余量 4 mL",
            "5 x 1 mL = 5 mL is more than the 4 mL left of BB0000001N",
        ),
        (
            {
                "count": "2",
                "quantity": "1",
                "freezer": "F01",
                "rack": "R01",
                "box": "B01",
                "positions": "A1 A2",
            },
            "位置 F01/R01/B01/A1 已被 BB0000001N 占用",
            "position F01/R01/B01/A1 is already taken by BB0000001N",
        ),
        (
            {
                "count": "3",
                "quantity": "1",
                "freezer": "F01",
                "rack": "R01",
                "box": "B01",
                "positions": "A2",
            },
            "3 份分装却给了 1 个位置",
            "1 positions for 3 aliquots",
        ),
    ],
)
def test_a_bad_aliquot_is_refused_in_both_languages_and_stores_nothing(
    seeded: object, data: dict[str, str], zh: str, en: str
) -> None:
    client = logged_in(seeded, Role.REGISTRAR)
    before = _specimens(seeded)
    response = _post(client, "aliquot", data)
    assert response.status_code == 422  # type: ignore[attr-defined]
    assert "未保存任何内容" in response.text  # type: ignore[attr-defined]
    assert zh in response.text  # type: ignore[attr-defined]
    client.get("/lang/en")
    assert en in _post(client, "aliquot", data).text  # type: ignore[attr-defined]
    assert _specimens(seeded) == before
    refused = audit_rows(seeded, "action = 'web.refused'")
    assert [r[3] for r in refused] == [f"POST /specimens/{BLOOD}/aliquot"] * 2


def test_a_form_without_its_csrf_token_is_refused(seeded: object) -> None:
    client = logged_in(seeded, Role.REGISTRAR)
    for action, data in [
        ("aliquot", {"count": "2", "quantity": "1"}),
        ("destroy", {"reason": "broken tube"}),
    ]:
        response = client.post(f"/specimens/{BLOOD}/{action}", data=data)
        assert response.status_code == 403
        forged = client.post(f"/specimens/{BLOOD}/{action}", data={**data, "csrftoken": "x"})
        assert forged.status_code == 403
    assert len(_specimens(seeded)) == 1
    assert _specimens(seeded)[0][5] == "available"


def test_derivatives_blood_to_buffy_coat_to_dna_as_a_nested_tree(seeded: object) -> None:
    client = logged_in(seeded, Role.REGISTRAR)
    r = _post(client, "derive", {"specimen_type": "buffy_coat", "quantity": "0.5", "unit": "mL"})
    assert r.status_code == 303  # type: ignore[attr-defined]
    buffy = make_label("BB", 2)
    r = _post(
        client,
        "derive",
        {"specimen_type": "dna", "quantity": "15", "unit": "µg", "parent_used": "0.2"},
        label=buffy,
    )
    assert r.status_code == 303, r.text  # type: ignore[attr-defined]
    dna = make_label("BB", 3)
    page = client.get(f"/specimens/{buffy}").text
    tree = re.sub(r"\s+", " ", page.split('id="lineage">')[1].split("</ul> <h2>")[0])
    # blood > buffy coat (this page, in bold) > DNA, one level deeper each
    assert re.search(
        rf'<li> <a href="/specimens/{BLOOD}">{BLOOD}</a> 全血 .*?<ul><li class="current"'
        rf' aria-current="true"> <strong>{buffy}</strong> 白膜层 · 0.3 / 0.5 mL .*?<ul><li>'
        rf' <a href="/specimens/{dna}">{dna}</a> DNA · 15 / 15 µg',
        tree,
    ), tree
    bad = _post(client, "derive", {"specimen_type": "serum", "quantity": "1"})
    assert bad.status_code == 422  # type: ignore[attr-defined]
    assert "不能从 whole_blood 制备 serum 样本" in bad.text  # type: ignore[attr-defined]


def test_consume_ship_and_destroy_need_their_reason_and_destination(seeded: object) -> None:
    client = logged_in(seeded, Role.REGISTRAR)
    r = _post(client, "destroy", {"reason": "  "})
    assert r.status_code == 422  # type: ignore[attr-defined]
    assert "请填写原因" in r.text  # type: ignore[attr-defined]
    assert _post(client, "ship", {"destination": "", "reason": "study"}).status_code == 422  # type: ignore[attr-defined]
    r = _post(client, "consume", {"quantity": "5", "reason": "assay"})
    assert r.status_code == 409  # type: ignore[attr-defined]
    assert "样本 BB0000001N 仅剩 4 mL，无法消耗 5 mL" in r.text  # type: ignore[attr-defined]
    assert _specimens(seeded)[0][5] == "available"
    assert _post(client, "consume", {"quantity": "1", "reason": "assay"}).status_code == 303  # type: ignore[attr-defined]
    assert "3 / 4 mL" in client.get(PAGE).text
    r = _post(client, "ship", {"destination": "Peking Union lab", "reason": "collaboration"})
    assert r.status_code == 303  # type: ignore[attr-defined]
    assert _specimens(seeded)[0][5:] == ("shipped", None)
    page = client.get(PAGE).text
    assert "已发出 → Peking Union lab" in page
    assert 'id="form-destroy"' not in page  # no action on a shipped specimen
    r = _post(client, "destroy", {"reason": "tube broken"})
    assert r.status_code == 409  # type: ignore[attr-defined]
    history = page.split('id="history"')[1]
    assert "consume" in history
    assert "collaboration" in history


def test_destroy_with_a_reason_is_recorded_and_audited(seeded: object) -> None:
    client = logged_in(seeded, Role.REGISTRAR)
    assert _post(client, "destroy", {"reason": "tube broken"}).status_code == 303  # type: ignore[attr-defined]
    assert _specimens(seeded)[0][5] == "destroyed"
    rows = audit_rows(seeded, "action = 'specimen.destroy'")
    assert [(r[1], r[3]) for r in rows] == [("reg1", BLOOD)]
    assert "tube broken" in str(rows[0][4])
    assert "tube broken" in client.get(PAGE).text


def test_labels_are_served_as_svg_and_pdf(seeded: object, tmp_path: Path) -> None:
    client = logged_in(seeded, Role.REGISTRAR)
    bar = client.get(f"/specimens/{BLOOD}/barcode.svg")
    qr = client.get(f"/specimens/{BLOOD}/qr.svg")
    for r in (bar, qr):
        assert r.status_code == 200
        assert r.headers["content-type"] == "image/svg+xml"
        assert BLOOD in r.text
    one = client.get(f"/specimens/{BLOOD}/label.pdf")
    box = client.get("/labels/box.pdf", params={"freezer": "f01", "rack": "r01", "box": "b01"})
    for r in (one, box):
        assert r.status_code == 200
        assert r.headers["content-type"] == "application/pdf"
        assert r.content.startswith(b"%PDF-")
        assert f"({BLOOD}) Tj".encode() in r.content
    empty = client.get("/labels/box.pdf", params={"freezer": "F01", "rack": "R01", "box": "B9"})
    assert empty.status_code == 404
    assert "此盒中没有存放样本" in empty.text
    assert client.get("/specimens/BB0000001X/qr.svg").status_code == 422
    listing = client.get("/labels").text
    assert "/labels/box.pdf?freezer=F01&amp;rack=R01&amp;box=B01" in listing


@needs_zbar
def test_the_served_svgs_decode_to_the_label(seeded: object, tmp_path: Path) -> None:
    client = logged_in(seeded, Role.REGISTRAR)
    bar = code128_svg_png(client.get(f"/specimens/{BLOOD}/barcode.svg").text, tmp_path / "b.png")
    qr = qr_svg_png(client.get(f"/specimens/{BLOOD}/qr.svg").text, tmp_path / "q.png")
    assert decode(bar) == [f"CODE-128:{BLOOD}"]
    assert decode(qr) == [f"QR-Code:{BLOOD}"]


def test_the_scanner_box_opens_the_specimen(seeded: object) -> None:
    client = logged_in(seeded, Role.REGISTRAR)
    for typed in (BLOOD, " bb0000001n "):
        r = client.get("/scan", params={"label": typed})
        assert r.status_code == 303
        assert r.headers["location"] == PAGE
    assert client.get("/scan", params={"label": ""}).headers["location"] == "/specimens"


def test_a_wrong_check_character_is_said_in_words_in_both_languages(seeded: object) -> None:
    client = logged_in(seeded, Role.REGISTRAR)
    r = client.get("/scan", params={"label": "BB0000001X"})
    assert r.status_code == 422
    assert "标签 BB0000001X 的校验码是“X”，但按前面的字符计算应为“N”" in r.text
    assert "未找到" not in r.text
    assert client.get("/specimens/BB0000001X").status_code == 422
    client.get("/lang/en")
    r = client.get("/scan", params={"label": "BB0000001X"})
    assert (
        "The check character of BB0000001X is 'X', but the characters before it give 'N'"
        in html.unescape(r.text)
    )
    missing = client.get("/scan", params={"label": make_label("BB", 77)})
    assert missing.status_code == 404
    assert f"No specimen has the label {make_label('BB', 77)}" in missing.text
    junk = client.get("/scan", params={"label": '"><img src=x onerror=alert(1)>'})
    assert junk.status_code == 422
    assert "<img src=x" not in junk.text
    assert "is not a specimen label" in junk.text


def test_a_destination_like_a_script_is_shown_escaped(seeded: object) -> None:
    client = logged_in(seeded, Role.REGISTRAR)
    evil = '"><img src=x onerror=alert(1)><script>alert(1)</script>'
    assert _post(client, "ship", {"destination": evil, "reason": evil}).status_code == 303  # type: ignore[attr-defined]
    page = client.get(PAGE).text
    assert "<script>alert(1)" not in page
    assert "<img src=x" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
