"""Affected status per phenotype (biobank.registry.affected): set one at a time or from a
PED file's sixth column with ``--phenotype``; bad input refused naming the field, nothing
written; replay reproduces the rows."""

from __future__ import annotations

from pathlib import Path

import pytest
from registry_support import REG, people, write_ped  # noqa: F401 (the people fixture)

from biobank.core.access import Principal, Role
from biobank.core.errors import AccessDenied, ImportRejected, NotFoundError, ValidationError
from biobank.core.ids import center_key, pseudonym
from biobank.core.store import Store
from biobank.registry import events
from biobank.registry.affected import affected_statuses, check_phenotype, set_affected
from biobank.registry.pedigree import family_members, import_pedigree

EPILEPSY = "HP:0001250"


def _trio(tmp_path: Path, ids: dict[str, str], child_status: str = "2") -> Path:
    return write_ped(
        tmp_path,
        [
            f"F1 {ids['dad']} 0 0 1 1",
            f"F1 {ids['mum']} 0 0 2 1",
            f"F1 {ids['son']} {ids['dad']} {ids['mum']} 1 {child_status}",
        ],
    )


def _rows(store: Store) -> list[tuple[object, ...]]:
    return store.con.execute(
        "SELECT family_id, participant_id, phenotype, affected FROM family_member_affected"
        " ORDER BY ALL"
    ).fetchall()


def test_check_phenotype__hpo_and_icd10() -> None:
    assert check_phenotype(EPILEPSY) == (EPILEPSY, "Seizure")
    assert check_phenotype("e119") == ("E11.9", "ICD-10 E11.9")
    with pytest.raises(ValidationError) as err:
        check_phenotype("HP:9999999")
    assert err.value.field == "phenotype"
    with pytest.raises(ValidationError, match="neither an HPO term"):
        check_phenotype("seizures")


def test_set_affected__by_resident_id_or_pseudonym_and_replay(
    people: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    path, ids = people
    with Store(path) as store:
        import_pedigree(store, REG, _trio(tmp_path, ids))
        son = pseudonym(ids["son"], center_key(store.path))
        assert set_affected(store, REG, "F1", ids["son"], EPILEPSY, "unaffected") == "created"
        assert set_affected(store, REG, "F1", son, EPILEPSY, "unaffected") == "unchanged"
        assert set_affected(store, REG, "F1", son, "E11.9", "affected") == "created"
        assert set_affected(store, REG, "F1", ids["dad"], EPILEPSY, "affected") == "created"
        assert set_affected(store, REG, "F1", son, EPILEPSY, "affected") == "updated"
        rows = _rows(store)
        assert (("F1", son, EPILEPSY, "affected")) in rows
        assert len(rows) == 3
        overall = family_members(store, REG, family_id="F1")
        assert overall.filter(overall["participant_id"] == son)["affected"].to_list() == [
            "affected"
        ]
        assert events.replay(store.con) == events.current_state(store.con)
        shown = affected_statuses(store, REG, family_id="F1")
        assert shown.height == 3
        assert set(shown["phenotype_label"]) == {"Seizure", "ICD-10 E11.9"}


def test_set_affected__bad_input_is_refused_and_nothing_written(
    people: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    path, ids = people
    with Store(path) as store:
        import_pedigree(store, REG, _trio(tmp_path, ids))
        before = _rows(store)
        cases = [
            ((ids["son"], "HP:12", "affected"), "phenotype"),
            ((ids["son"], EPILEPSY, "sick"), "status"),
            ((ids["girl"], EPILEPSY, "affected"), "participant"),  # registered, not in F1
        ]
        for (who, term, status), field in cases:
            with pytest.raises(ValidationError) as err:
                set_affected(store, REG, "F1", who, term, status)
            assert err.value.field == field, err.value
        bad_id = ids["son"][:17] + ("0" if ids["son"][17] != "0" else "1")
        with pytest.raises(ValidationError):
            set_affected(store, REG, "F1", bad_id, EPILEPSY, "affected")
        with pytest.raises(NotFoundError):
            set_affected(store, REG, "F9", ids["son"], EPILEPSY, "affected")
        with pytest.raises(AccessDenied):
            set_affected(
                store, Principal("r", Role.RESEARCHER, purpose="HMB"), "F1", ids["son"],
                EPILEPSY, "affected",
            )  # fmt: skip
        assert _rows(store) == before == []


def test_import_ped_with_phenotype__column_6_is_that_phenotypes_status(
    people: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    path, ids = people
    with Store(path) as store:
        import_pedigree(store, REG, _trio(tmp_path, ids, child_status="2"))
        key = center_key(store.path)
        son, dad = pseudonym(ids["son"], key), pseudonym(ids["dad"], key)
        other = tmp_path / "other"
        other.mkdir()
        # the same family, another disease: the son unaffected, the father affected
        second = write_ped(
            other,
            [
                f"F1 {ids['dad']} 0 0 1 2",
                f"F1 {ids['mum']} 0 0 2 1",
                f"F1 {ids['son']} {ids['dad']} {ids['mum']} 1 1",
            ],
        )
        with pytest.raises(ImportRejected):  # without --phenotype it conflicts
            import_pedigree(store, REG, second)
        result = import_pedigree(store, REG, second, phenotype=EPILEPSY)
        assert (result.created, result.unchanged) == (0, 3)
        statuses = {(p, a) for _, p, _, a in _rows(store)}
        assert (son, "unaffected") in statuses
        assert (dad, "affected") in statuses
        assert len(statuses) == 3
        overall = dict(
            family_members(store, REG, family_id="F1")
            .select("participant_id", "affected")
            .iter_rows()
        )
        assert (overall[son], overall[dad]) == ("affected", "unaffected")  # unchanged
        with pytest.raises(ValidationError) as err:
            import_pedigree(store, REG, second, phenotype="HP:0000000x")
        assert err.value.field == "--phenotype"
        assert events.replay(store.con) == events.current_state(store.con)
