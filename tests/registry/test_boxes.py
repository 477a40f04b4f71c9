"""Boxes as grids, storage units, and moving many specimens at once (all or nothing)."""

from __future__ import annotations

import pytest
from registry_support import loaded, loaded_template, snapshot, users

from biobank.core.access import Principal
from biobank.core.errors import AccessDenied, ConflictError, NotFoundError, ValidationError
from biobank.core.store import Store
from biobank.registry.boxes import (
    box_contents,
    box_layout,
    move_specimens,
    plan_moves,
    storage_units,
)

__all__ = ["loaded", "loaded_template", "users"]  # fixtures used by the tests below

Users = dict[str, Principal]


def _where(store: Store, label: str) -> tuple[str, ...]:
    row = store.con.execute(
        "SELECT freezer, rack, box, position FROM specimen WHERE label = ?", [label]
    ).fetchone()
    assert row is not None
    return tuple(row)


def test_box_layout__default_9x9_widened_by_far_wells_and_numbered_boxes() -> None:
    assert box_layout([]).positions()[:3] == ["A1", "A2", "A3"]
    assert len(box_layout(["A1"]).positions()) == 81
    wide = box_layout(["H12", "A1"])
    assert (len(wide.rows), wide.columns) == (9, 12)
    assert wide.positions()[-1] == "I12"
    tall = box_layout(["K3"])
    assert tall.rows[-1] == "K"
    numbered = box_layout(["1", "100"])
    assert numbered.numbered
    assert numbered.columns == 9
    assert numbered.positions()[-1] == "108"  # 12 rows of 9


def test_box_contents__grid_cells_and_audit(loaded: Store, users: Users) -> None:
    box = box_contents(loaded, users["registrar"], "f01", "r1", "b01")
    assert (box["freezer"], box["rack"], box["box"]) == ("F01", "R1", "B01")
    first_row = [(c["position"], (c["specimen"] or {}).get("label")) for c in box["grid"][0][:5]]
    assert first_row == [
        ("A1", "BB0000001N"),
        ("A2", "BB0000003J"),
        ("A3", "BB0000004H"),
        ("A4", "BB0000005F"),
        ("A5", None),
    ]
    assert (box["occupied"], box["free"]) == (4, 77)
    assert box["grid"][0][0]["specimen"]["specimen_type"] == "whole_blood"
    last = loaded.con.execute(
        "SELECT action, target FROM audit_log ORDER BY entry_id DESC LIMIT 1"
    ).fetchone()
    assert last == ("storage.box.read", "F01/R1/B01")


def test_storage_units__freezers_racks_boxes(loaded: Store, users: Users) -> None:
    reg = users["registrar"]
    freezers = storage_units(loaded, reg)
    assert [(f["name"], f["occupied"]) for f in freezers] == [("F01", 4), ("F02", 4)]
    assert [r["name"] for r in storage_units(loaded, reg, freezer="f01")] == ["R1"]
    boxes = storage_units(loaded, reg, freezer="F01", rack="R1")
    assert [(b["name"], b["occupied"]) for b in boxes] == [("B01", 4)]
    with pytest.raises(AccessDenied):
        storage_units(loaded, users["researcher"])


def test_move_specimens__many_at_once_into_first_free_positions(
    loaded: Store, users: Users
) -> None:
    reg = users["registrar"]
    moves = plan_moves(
        loaded, reg, ["BB0000001N", "BB0000003J"], freezer="F02", rack="R1", box="B01"
    )
    assert [m["position"] for m in moves] == ["A5", "A6"]  # A1-A4 are taken
    moved = move_specimens(loaded, reg, moves, reason="consolidate")
    assert [m["label"] for m in moved] == ["BB0000001N", "BB0000003J"]
    assert _where(loaded, "BB0000001N") == ("F02", "R1", "B01", "A5")
    assert _where(loaded, "BB0000003J") == ("F02", "R1", "B01", "A6")
    audited = loaded.con.execute(
        "SELECT target FROM audit_log WHERE action = 'specimen.move' ORDER BY entry_id"
    ).fetchall()
    assert audited == [("BB0000001N",), ("BB0000003J",)]


def test_move_specimens__given_positions_are_normalised(loaded: Store, users: Users) -> None:
    reg = users["registrar"]
    moves = plan_moves(
        loaded,
        reg,
        ["BB0000001N", "BB0000004H"],
        freezer="f09",
        rack="r1",
        box="b1",
        positions=["c01", "c2"],
    )
    move_specimens(loaded, reg, moves, reason="new box")
    assert _where(loaded, "BB0000001N") == ("F09", "R1", "B1", "C1")
    assert _where(loaded, "BB0000004H") == ("F09", "R1", "B1", "C2")


@pytest.mark.parametrize(
    ("moves", "error", "match"),
    [
        (  # two specimens for one position (two spellings of it)
            [("BB0000001N", "A9"), ("BB0000004H", "a09")],
            ConflictError,
            "target of both BB0000001N and BB0000004H",
        ),
        (  # a position taken by a specimen outside the batch; the first move alone is fine
            [("BB0000001N", "B1"), ("BB0000004H", "A2")],
            ConflictError,
            "already taken by BB0000003J",
        ),
        ([("BB0000001N", "A1")], ConflictError, "already at F01/R1/B01/A1"),
        ([("BB0000002L", "B1")], ConflictError, "BB0000002L is consumed"),
        ([("BB0000001N", "B1"), ("BB0000001N", "B2")], ValidationError, "selected twice"),
        ([("BB0000001N", "Z")], ValidationError, "position is a well"),
        ([("BB0000001N", "B1"), ("BB0000011J", "B2")], NotFoundError, "BB0000011J"),
    ],
)
def test_move_specimens__a_bad_batch_moves_nothing(
    loaded: Store,
    users: Users,
    moves: list[tuple[str, str]],
    error: type[Exception],
    match: str,
) -> None:
    from biobank.core.ids import make_label

    assert make_label("BB", 11) == "BB0000011J"  # a well-formed, unregistered label
    before = snapshot(loaded)
    batch = [
        {"label": label, "freezer": "F01", "rack": "R1", "box": "B01", "position": pos}
        for label, pos in moves
    ]
    with pytest.raises(error, match=match):
        move_specimens(loaded, users["registrar"], batch, reason="reorganise")
    assert snapshot(loaded) == before


def test_plan_moves__refuses_a_full_box_and_a_wrong_number_of_positions(
    loaded: Store, users: Users
) -> None:
    reg = users["registrar"]
    with pytest.raises(ValidationError, match="2 specimens selected but 1 positions"):
        plan_moves(
            loaded,
            reg,
            ["BB0000001N", "BB0000004H"],
            freezer="F1",
            rack="R1",
            box="B1",
            positions=["A1"],
        )
    with pytest.raises(ValidationError, match="at least one"):
        plan_moves(loaded, reg, [], freezer="F1", rack="R1", box="B1")
    with pytest.raises(AccessDenied):
        plan_moves(loaded, users["auditor"], ["BB0000001N"], freezer="F1", rack="R1", box="B1")


def test_move_specimens__needs_write_access_and_a_reason(loaded: Store, users: Users) -> None:
    batch = [{"label": "BB0000001N", "freezer": "F1", "rack": "R1", "box": "B1", "position": "A1"}]
    with pytest.raises(AccessDenied):
        move_specimens(loaded, users["researcher"], batch, reason="x")
    with pytest.raises(ValidationError, match="reason"):
        move_specimens(loaded, users["registrar"], batch, reason=" ")
