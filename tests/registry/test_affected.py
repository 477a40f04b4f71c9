"""Affected status per phenotype (biobank.registry.affected): set one at a time or from a
PED file's sixth column with ``--phenotype``; bad input refused naming the field, nothing
written; replay reproduces the rows."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from biobank.core.access import Principal, Role, add_user
from biobank.core.errors import AccessDenied, ImportRejected, NotFoundError, ValidationError
from biobank.core.ids import center_key, pseudonym
from biobank.core.store import Store
from biobank.registry import events
from biobank.registry.affected import affected_statuses, check_phenotype, set_affected
from biobank.registry.participants import register_participant
from biobank.registry.pedigree import family_members, import_pedigree
from biobank.testing.people import national_id

EPILEPSY = "HP:0001250"
REG = Principal("reg", Role.REGISTRAR)
#: name -> (sex, birth date)
PEOPLE = {
    "dad": ("male", dt.date(1960, 3, 1)),
    "mum": ("female", dt.date(1962, 5, 2)),
    "son": ("male", dt.date(1990, 7, 3)),
    "girl": ("female", dt.date(1992, 9, 4)),
}


@pytest.fixture
def people(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, dict[str, str]]:
    """A store with four registered participants (no family yet): path, name -> resident ID."""
    monkeypatch.delenv("BIOBANK_CENTER_KEY", raising=False)
    monkeypatch.delenv("BIOBANK_KEY_FILE", raising=False)
    path = tmp_path / "aff.duckdb"
    ids = {}
    with Store(path) as store:
        center_key(store.path, create=True)
        with store.transaction() as con:
            admin = add_user(con, None, "ada", Role.ADMIN)
            add_user(con, admin, "reg", Role.REGISTRAR)
        for i, (name, (sex, birth)) in enumerate(PEOPLE.items()):
            nid = national_id("110105", birth, 10 + i, sex)
            register_participant(
                store, REG, national_id=nid, name="测试", sex=sex, birth_date=birth,
                enrolment_date="2020-01-01", site="BJ01",
            )  # fmt: skip
            ids[name] = nid
    return path, ids


def _ped(folder: Path, lines: list[str]) -> Path:
    path = folder / "family.ped"
    path.write_text("# fam ind father mother sex phenotype\n" + "\n".join(lines) + "\n")
    return path


def _trio(tmp_path: Path, ids: dict[str, str], child_status: str = "2") -> Path:
    return _ped(
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
        second = _ped(
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
