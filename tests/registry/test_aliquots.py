"""Aliquots and derivatives in one action (all or nothing), label allocation, lineage trees."""

from __future__ import annotations

import pytest
from registry_support import loaded, loaded_template, snapshot, store, users  # noqa: F401

from biobank.core.access import Principal
from biobank.core.errors import (
    AccessDenied,
    ConflictError,
    ImportRejected,
    NotFoundError,
    ValidationError,
)
from biobank.core.ids import is_valid_label, make_label
from biobank.core.store import Store
from biobank.registry import events
from biobank.registry.aliquots import (
    MAX_ALIQUOTS,
    aliquot_specimen,
    label_prefix,
    next_labels,
    specimen_lineage,
)
from biobank.registry.inventory import get_specimen, remaining_quantity

BLOOD = "BB0000001N"  # Wang's 10 mL whole blood in F01/R1/B01/A1; buffy coat -> DNA below it
LAST = "BB00000097"  # the highest serial of the fixture


def test_labels_follow_the_highest_serial_with_their_check_character(loaded: Store) -> None:
    labels = next_labels(loaded.con, "BB", 3)
    assert labels == [make_label("BB", n) for n in (10, 11, 12)]
    assert all(is_valid_label(x) for x in labels)
    assert next_labels(loaded.con, "XY", 1) == [make_label("XY", 1)]
    assert label_prefix(LAST) == "BB"


def test_aliquot_into_n_children_in_one_action(
    loaded: Store,
    users: dict[str, Principal],
) -> None:
    reg = users["registrar"]
    kids = aliquot_specimen(
        loaded,
        reg,
        BLOOD,
        count=4,
        quantity=0.5,
        unit="mL",
        collected_at="2023-04-01T12:00",
        positions=[
            {"freezer": "f09", "rack": "r1", "box": "b1", "position": f"a{i}"} for i in "1234"
        ],
    )
    assert [k.label for k in kids] == [make_label("BB", n) for n in range(10, 14)]
    assert {k.specimen_type for k in kids} == {"whole_blood"}
    assert {k.parent_label for k in kids} == {BLOOD}
    assert [k.position for k in kids] == ["A1", "A2", "A3", "A4"]
    assert {k.freezer for k in kids} == {"F09"}
    parent = get_specimen(loaded, reg, BLOOD)
    # 10 mL - 0.5 (buffy coat) - 4 x 0.5
    assert parent["remaining"] == pytest.approx(7.5)
    assert parent["status"] == "available"
    assert set(parent["children"].split(";")) >= {k.label for k in kids}
    rows = loaded.con.execute(
        "SELECT action, target FROM audit_log WHERE action IN ('specimen.create',"
        " 'specimen.aliquot') AND user_name = 'reg1' ORDER BY entry_id DESC LIMIT 5"
    ).fetchall()
    assert sorted(rows) == sorted(
        [("specimen.aliquot", BLOOD)] + [("specimen.create", k.label) for k in kids]
    )
    # the tables still follow from the events alone
    assert events.replay(loaded.con) == events.current_state(loaded.con)


def test_aliquoting_everything_left_consumes_the_parent(
    loaded: Store,
    users: dict[str, Principal],
) -> None:
    reg = users["registrar"]
    aliquot_specimen(loaded, reg, BLOOD, count=5, quantity=1900, unit="µL")
    parent = get_specimen(loaded, reg, BLOOD)
    assert parent["remaining"] == pytest.approx(0.0)
    assert parent["status"] == "consumed"
    assert parent["freezer"] is None  # its position is free again


@pytest.mark.parametrize(
    ("kwargs", "error", "field"),
    [
        ({"count": 0, "quantity": 1.0}, ValidationError, "count"),
        ({"count": MAX_ALIQUOTS + 1, "quantity": 0.01}, ValidationError, "count"),
        ({"count": 2, "quantity": 0.0}, ValidationError, "quantity"),
        ({"count": 2, "quantity": float("nan")}, ValidationError, "quantity"),
        ({"count": 10, "quantity": 1.0}, ValidationError, "quantity"),  # 10 mL > 9.5 left
        ({"count": 1, "quantity": 1.0, "unit": "furlong"}, ValidationError, "unit"),
        ({"count": 1, "quantity": 1.0, "specimen_type": "serum"}, ValidationError, "specimen_type"),
        ({"count": 1, "quantity": 1.0, "reason": " "}, ValidationError, "reason"),
        ({"count": 2, "quantity": 1.0, "positions": [None]}, ValidationError, "position"),
    ],
)
def test_bad_requests_change_nothing(
    loaded: Store,
    users: dict[str, Principal],
    kwargs: dict[str, object],
    error: type[Exception],
    field: str,
) -> None:
    before = snapshot(loaded)
    with pytest.raises(error) as info:
        aliquot_specimen(loaded, users["registrar"], BLOOD, **kwargs)  # type: ignore[arg-type]
    assert info.value.problem.field == field
    assert snapshot(loaded) == before


def test_the_volume_message_says_what_is_left(
    loaded: Store,
    users: dict[str, Principal],
) -> None:
    with pytest.raises(ValidationError, match=r"10 x 1 mL = 10 mL is more than the 9.5 mL left"):
        aliquot_specimen(loaded, users["registrar"], BLOOD, count=10, quantity=1.0)


def test_one_taken_position_rejects_all_children(
    loaded: Store,
    users: dict[str, Principal],
) -> None:
    before = snapshot(loaded)
    # F01/R1/B01/A2 holds Wang's DNA; written "f01, r1, b01, a02" it is the same place
    spots = [
        {"freezer": "F01", "rack": "R1", "box": "B01", "position": "H1"},
        {"freezer": "f01", "rack": "r1", "box": "b01", "position": "a02"},
    ]
    with pytest.raises(ImportRejected) as info:
        aliquot_specimen(loaded, users["registrar"], BLOOD, count=2, quantity=0.5, positions=spots)
    assert [p.field for p in info.value.problems] == ["position"]
    assert "already taken by BB0000003J" in info.value.problems[0].message
    assert snapshot(loaded) == before


def test_refused_for_a_researcher_an_unknown_or_a_used_parent(
    loaded: Store,
    users: dict[str, Principal],
) -> None:
    with pytest.raises(AccessDenied):
        aliquot_specimen(loaded, users["researcher"], BLOOD, count=1, quantity=0.1)
    with pytest.raises(NotFoundError):
        aliquot_specimen(loaded, users["registrar"], make_label("BB", 999), count=1, quantity=0.1)
    with pytest.raises(ValidationError):  # wrong check character
        aliquot_specimen(loaded, users["registrar"], "BB0000001X", count=1, quantity=0.1)
    with pytest.raises(ConflictError, match="consumed"):  # the buffy coat is used up
        aliquot_specimen(loaded, users["registrar"], "BB0000002L", count=1, quantity=0.1)


def test_derivatives_blood_to_buffy_coat_to_dna_and_the_lineage_tree(
    loaded: Store,
    users: dict[str, Principal],
) -> None:
    reg = users["registrar"]
    (buffy,) = aliquot_specimen(
        loaded, reg, BLOOD, count=1, quantity=0.5, specimen_type="buffy_coat", reason="derived"
    )
    (dna,) = aliquot_specimen(
        loaded,
        reg,
        buffy.label,
        count=1,
        quantity=12.0,
        unit="µg",
        specimen_type="dna",
        parent_used=0.2,
        reason="extracted",
    )
    with loaded.transaction() as con:
        left = remaining_quantity(con, get_specimen(loaded, reg, buffy.label))
    assert left == pytest.approx(0.3)  # 0.2 mL used by the extraction (µg do not count as mL)
    tree = specimen_lineage(loaded, reg, buffy.label)
    assert tree.label == BLOOD
    assert not tree.current
    assert [c.label for c in tree.children] == [buffy.label]  # siblings are left out
    me = tree.children[0]
    assert me.current
    assert me.specimen_type == "buffy_coat"
    assert [(c.label, c.specimen_type, c.unit) for c in me.children] == [(dna.label, "dna", "µg")]
    whole = specimen_lineage(loaded, reg, BLOOD)
    assert sorted(c.label for c in whole.children) == ["BB0000002L", buffy.label]
    deep = {c.label: c for c in whole.children}["BB0000002L"]
    assert [c.label for c in deep.children] == ["BB0000003J"]
    # what each node says is left is what the inventory says
    nodes, todo = [], [whole]
    while todo:
        n = todo.pop()
        nodes.append(n)
        todo.extend(n.children)
    assert len(nodes) == 5
    with loaded.transaction() as con:
        for n in nodes:
            row = con.execute("SELECT * FROM specimen WHERE label = ?", [n.label])
            spec = dict(zip([d[0] for d in row.description], row.fetchone(), strict=True))  # type: ignore[arg-type]
            assert n.remaining == pytest.approx(remaining_quantity(con, spec)), n.label


def test_a_derivative_the_vocabulary_does_not_allow_is_refused(
    loaded: Store,
    users: dict[str, Principal],
) -> None:
    with pytest.raises(ValidationError, match="derivatives of whole_blood: buffy_coat, cfdna"):
        aliquot_specimen(
            loaded, users["registrar"], BLOOD, count=1, quantity=1, specimen_type="serum"
        )


def test_parent_used_beyond_what_is_left_rolls_back_the_children(
    loaded: Store,
    users: dict[str, Principal],
) -> None:
    before = snapshot(loaded)
    with pytest.raises(ConflictError, match="left"):
        aliquot_specimen(
            loaded,
            users["registrar"],
            BLOOD,
            count=1,
            quantity=10,
            unit="µg",
            specimen_type="dna",
            parent_used=50.0,
        )
    assert snapshot(loaded) == before
