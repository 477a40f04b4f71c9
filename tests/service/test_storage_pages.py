"""Storage pages over HTTP: freezer -> rack -> box, the grid, moving one or many specimens."""

from __future__ import annotations

import re

import pytest
from service.support import TestClient, audit_rows, csrf, logged_in, register_wang

from biobank.core.access import Principal, Role
from biobank.core.ids import make_label
from biobank.registry import add_specimen
from biobank.registry.events import current_state

LABELS = [make_label("BB", i) for i in range(1, 5)]


@pytest.fixture
def stored(app: object) -> object:
    """Four specimens in box F01/R01/B01 at A1..A4 (A3 spelled 'a03')."""
    store = app.state.service.store  # type: ignore[attr-defined]
    reg = Principal("reg1", Role.REGISTRAR)
    pid = register_wang(store, reg)
    for i, label in enumerate(LABELS, start=1):
        add_specimen(
            store,
            reg,
            label=label,
            participant_id=pid,
            specimen_type="plasma" if i % 2 else "dna",
            collected_at="2024-01-02T09:00:00",
            quantity=1.0,
            unit="mL" if i % 2 else "µg",
            freezer="F01",
            rack="R01",
            box="B01",
            position="a03" if i == 3 else f"A{i}",
        )
    return app


def _where(app: object, label: str) -> tuple[str, ...]:
    con = app.state.service.store.con  # type: ignore[attr-defined]
    row = con.execute(
        "SELECT freezer, rack, box, position FROM specimen WHERE label = ?", [label]
    ).fetchone()
    return tuple(row)


def _move(client: TestClient, labels: list[str], **target: str) -> object:
    data: dict[str, object] = {
        "csrftoken": csrf(client, "/storage/F01/R01/B01"),
        "label": labels,
        "from_box": "F01/R01/B01",
        "reason": "reorganise",
    } | target
    return client.post("/storage/move", data=data)


def test_navigation_from_freezer_to_box(stored: object) -> None:
    client = logged_in(stored, Role.REGISTRAR)
    home = client.get("/storage")
    assert home.status_code == 200
    assert 'href="/storage/F01"' in home.text
    assert 'href="/storage/F01/R01"' in client.get("/storage/F01").text
    assert 'href="/storage/F01/R01/B01"' in client.get("/storage/f01/r01").text
    assert "存储" in home.text  # zh_CN by default


def test_the_box_grid_shows_taken_and_free_cells(stored: object) -> None:
    client = logged_in(stored, Role.REGISTRAR)
    page = client.get("/storage/F01/R01/B01?lang=en")
    assert page.status_code == 200
    cells = re.findall(r'<td class="(taken|free)" id="cell-(\w+)"', page.text)
    assert len(cells) == 81
    taken = [pos for kind, pos in cells if kind == "taken"]
    assert taken == ["A1", "A2", "A3", "A4"]  # 'a03' is drawn at A3
    assert f'value="{LABELS[0]}"' in page.text
    assert "4 positions taken, 77 free." in page.text
    assert "Plasma" in page.text or "plasma" in page.text
    rows = audit_rows(stored, "action = 'storage.box.read'")
    assert [(r[1], r[3]) for r in rows] == [("reg1", "F01/R01/B01")]


def test_move_one_specimen(stored: object) -> None:
    client = logged_in(stored, Role.REGISTRAR)
    r = _move(client, [LABELS[0]], freezer="F02", rack="R01", box="B07", positions="c05")
    assert r.status_code == 303  # type: ignore[attr-defined]
    assert r.headers["location"] == "/storage/F02/R01/B07?moved=1"  # type: ignore[attr-defined]
    assert _where(stored, LABELS[0]) == ("F02", "R01", "B07", "C5")
    page = client.get(r.headers["location"])  # type: ignore[attr-defined]
    assert 'id="cell-C5"' in page.text
    assert 'id="moved"' in page.text


def test_move_many_into_the_first_free_positions(stored: object) -> None:
    client = logged_in(stored, Role.REGISTRAR)
    r = _move(client, LABELS[:3], freezer="F01", rack="R01", box="B02", positions="")
    assert r.status_code == 303  # type: ignore[attr-defined]
    assert [_where(stored, x)[3] for x in LABELS[:3]] == ["A1", "A2", "A3"]
    moves = audit_rows(stored, "action = 'specimen.move'")
    assert [m[3] for m in moves] == LABELS[:3]
    assert all(m[1] == "reg1" for m in moves)


@pytest.mark.parametrize(
    ("labels", "positions", "status", "shown"),
    [
        ([0, 1], "B1, b01", 409, "target of both"),  # two specimens, one position
        ([0, 1], "B1, A3", 409, "already taken by"),  # A3 holds the third specimen
        ([0, 1], "B1", 422, "2 specimens selected but 1 positions"),
        ([], "B1", 422, "select at least one"),
        ([0], "Q", 422, "position is a well"),
    ],
)
def test_a_refused_move_changes_nothing_and_says_why(
    stored: object, labels: list[int], positions: str, status: int, shown: str
) -> None:
    con = stored.state.service.store.con  # type: ignore[attr-defined]
    before = current_state(con)
    target = {"freezer": "F01", "rack": "R01", "box": "B01", "positions": positions}
    chinese = logged_in(stored, Role.REGISTRAR)
    r = _move(chinese, [LABELS[i] for i in labels], **target)
    assert r.status_code == status  # type: ignore[attr-defined]
    assert "未移动任何样本" in r.text  # type: ignore[attr-defined]
    english = logged_in(stored, Role.REGISTRAR)
    english.get("/lang/en")
    r = _move(english, [LABELS[i] for i in labels], **target)
    assert r.status_code == status  # type: ignore[attr-defined]
    assert "Nothing was moved." in r.text  # type: ignore[attr-defined]
    assert shown in r.text  # type: ignore[attr-defined]
    assert current_state(con) == before
    assert len(audit_rows(stored, "action = 'web.refused'")) == 2


def test_moving_needs_write_access_and_reading_needs_registry_read(stored: object) -> None:
    auditor = logged_in(stored, Role.AUDITOR)
    assert auditor.get("/storage/F01/R01/B01").status_code == 403
    researcher = logged_in(stored, Role.RESEARCHER)
    assert researcher.get("/storage").status_code == 403
    token = csrf(researcher, "/")
    r = researcher.post(
        "/storage/move",
        data={
            "csrftoken": token,
            "label": LABELS[0],
            "freezer": "F9",
            "rack": "R1",
            "box": "B1",
            "positions": "A1",
            "reason": "x",
        },
    )
    assert r.status_code == 403
    assert _where(stored, LABELS[0]) == ("F01", "R01", "B01", "A1")


def test_a_malformed_box_name_in_the_url_is_not_found(stored: object) -> None:
    client = logged_in(stored, Role.REGISTRAR)
    assert client.get("/storage/F01/R01/%3Cscript%3E").status_code == 404
