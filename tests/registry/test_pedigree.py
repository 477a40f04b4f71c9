"""Pedigrees in the registry: PED import, the refusals (with file and line), replay."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from registry_support import PEOPLE, REG, people, write_ped  # noqa: F401 (the people fixture)

from biobank.core.access import Principal, Role
from biobank.core.errors import AccessDenied, ImportRejected, ValidationError
from biobank.core.store import Store
from biobank.registry import events
from biobank.registry.pedigree import PedRow, family_members, import_pedigree, register_family
from biobank.testing.people import national_id


def test_import_pedigree__registers_a_trio_and_replays(
    people: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    path, n = people
    ped = write_ped(
        tmp_path,
        [
            f"F1 {n['dad']} 0 0 1 1",
            f"F1\t{n['mum']}\t0\t0\t2\t1",
            f"F1 {n['son']} {n['dad']} {n['mum']} 1 2",
            f"F1 {n['girl']} {n['dad']} {n['mum']} 0 -9",
        ],
    )
    with Store(path) as store:
        result = import_pedigree(store, REG, ped)
        again = import_pedigree(store, REG, ped)
        members = family_members(store, REG, family_id="F1")
        assert events.replay(store.con) == events.current_state(store.con)
    assert (result.created, result.unchanged) == (4, 0)
    assert (again.created, again.unchanged) == (0, 4)
    assert dict(zip(members["sex"], members["affected"], strict=False))  # joined to participants
    kids = members.filter(members["father_id"].is_not_null())
    assert set(kids["affected"]) == {"affected", "unknown"}
    assert "110105" not in "".join(str(v) for v in members.row(0))  # pseudonyms only


@pytest.mark.parametrize(
    ("lines", "message", "line"),
    [
        (["F {mum} 0 0 2 1", "F {son} {mum} {dad} 1 2", "F {dad} 0 0 1 1"],
         "the father is registered as female", 3),
        (["F {dad} 0 0 1 1", "F {mum} 0 0 2 1", "F {girl} {kid} {mum} 2 2", "F {kid} 0 0 1 1"],
         "a parent must be at least 12 years older", 4),
        (["F {dad} {son} 0 1 1", "F {son} {dad} 0 1 1"], "their own ancestor", 2),
        (["F {dad} 0 0 1 1", "F {dad} 0 0 1 1"], "listed twice", 3),
        (["F {dad} 0 0 1 1", "F {mum} 0 0 2 1", "F {son} {dad} {mum} 1 2", "F {son} {dad} 0 1 2"],
         "listed twice with different parents", 5),
        (["F {son} {dad} {mum} 1 2"], "the father has no line of their own", 2),
        (["F {dad} 0 0 2 1"], "differs from the registered male", 2),
        (["F {dad} 0 0 1 1", "F {dad2} 0 0 1 1"], "not registered", 3),
        (["F {dad} 0 0 1 7"], "phenotype must be", 2),
        (["F {dad} {dad} 0 1 1"], "their own parent", 2),
        (["F 110105196003010012 0 0 1 1"], "field .individual.", 2),
    ],
)  # fmt: skip
def test_import_pedigree__refuses_bad_pedigrees_with_the_line(
    people: tuple[Path, dict[str, str]], tmp_path: Path, lines: list[str], message: str, line: int
) -> None:
    path, n = people
    names = {**n, "dad2": national_id("110105", dt.date(1961, 1, 1), 50, "male")}
    ped = write_ped(tmp_path, [x.format(**names) for x in lines])
    with Store(path) as store:
        before = store.con.execute("SELECT count(*) FROM registry_event").fetchone()
        with pytest.raises(ImportRejected, match=message) as info:
            import_pedigree(store, REG, ped)
        after = store.con.execute("SELECT count(*) FROM registry_event").fetchone()
        rows = store.con.execute("SELECT count(*) FROM family_member").fetchone()
    assert any(p.line == line and p.file == str(ped) for p in info.value.problems)
    assert before == after  # nothing written
    assert rows == (0,)


def test_register_family__conflicts_with_the_stored_pedigree(
    people: tuple[Path, dict[str, str]],
) -> None:
    path, n = people
    trio = [
        PedRow("F1", n["dad"], sex="1"),
        PedRow("F1", n["mum"], sex="2"),
        PedRow("F1", n["son"], n["dad"], n["mum"], phenotype="2"),
    ]
    with Store(path) as store:
        register_family(store, REG, trio)
        # the same son with other parents in another family
        with pytest.raises(ImportRejected, match="registered in family F1 with other parents"):
            register_family(
                store,
                REG,
                [PedRow("F2", n["granddad"], sex="1"), PedRow("F2", n["son"], n["granddad"])],
            )
        # a changed status in the same family
        with pytest.raises(ImportRejected, match="relations are not overwritten"):
            register_family(store, REG, [PedRow("F1", n["son"], n["dad"], n["mum"], phenotype="1")])
        # a new sibling joins the stored family
        added = register_family(store, REG, [PedRow("F1", n["girl"], n["dad"], n["mum"], sex="2")])
        assert added.created == 1
        with pytest.raises(AccessDenied):
            register_family(store, Principal("r", Role.RESEARCHER, purpose="HMB"), trio)


def test_read_ped__refuses_a_short_line(tmp_path: Path) -> None:
    from biobank.registry.pedigree import read_ped

    ped = write_ped(tmp_path, ["F1 110105196003010012 0 0 1"])
    with pytest.raises(ValidationError, match=r"line 2.*6 columns"):
        read_ped(ped)


def test_twins__must_share_parents(people: tuple[Path, dict[str, str]]) -> None:
    path, n = people
    rows = [
        PedRow("F1", n["dad"], sex="1"),
        PedRow("F1", n["mum"], sex="2"),
        PedRow("F1", n["son"], n["dad"], n["mum"], twin_group="T1"),
        PedRow("F1", n["girl"], n["dad"], n["mum"], twin_group="T1"),
    ]
    with (
        Store(path) as store,
        pytest.raises(ImportRejected, match="monozygotic twins share sex and birth year"),
    ):
        register_family(store, REG, rows)
