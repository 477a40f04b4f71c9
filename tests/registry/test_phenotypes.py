"""HPO phenotypes in the registry: checked terms, TSV import (all or nothing), ICD-10 mapping."""

from __future__ import annotations

from pathlib import Path

import pytest

from biobank.core.access import Principal, Role
from biobank.core.errors import AccessDenied, ImportRejected, ValidationError
from biobank.core.store import Store
from biobank.registry import events
from biobank.registry.phenotypes import (
    add_phenotypes,
    check_hpo_term,
    import_phenotypes,
    map_icd10_phenotypes,
    participant_phenotypes,
)

REG = Principal("reg", Role.REGISTRAR)


def test_check_hpo_term__current_alternative_obsolete_unknown() -> None:
    assert check_hpo_term("hp:0001394").name == "Cirrhosis"
    assert check_hpo_term("HP:0004715").hpo_id == "HP:0000003"  # an alternative id
    with pytest.raises(ValidationError, match="HP:0000057 is obsolete"):
        check_hpo_term("HP:0000057")
    with pytest.raises(ValidationError, match="not a term of the HPO"):
        check_hpo_term("HP:9999999")
    with pytest.raises(ValidationError, match="seven digits"):
        check_hpo_term("Cirrhosis")


def test_add_phenotypes__registers_events_once(clinical_store) -> None:  # type: ignore[no-untyped-def]
    pid = clinical_store.pid(1)
    with Store(clinical_store.path) as store:
        assert add_phenotypes(store, REG, pid, ["HP:0001394", "HP:0010836"]) == 2
        assert add_phenotypes(store, REG, pid, ["HP:0001394"]) == 0
        assert add_phenotypes(store, REG, pid, ["HP:0002240"], observed=False) == 1
        df = participant_phenotypes(store, REG, [pid])
        assert events.replay(store.con) == events.current_state(store.con)
        with pytest.raises(AccessDenied):
            add_phenotypes(
                store, Principal("rita", Role.RESEARCHER, purpose="HMB"), pid, ["HP:0001394"]
            )
    assert set(df["hpo_id"]) == {"HP:0001394", "HP:0010836", "HP:0002240"}
    assert df.filter(df["hpo_id"] == "HP:0002240")["observed"].to_list() == [False]


def test_import_phenotypes__all_or_nothing_with_lines(clinical_store, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    nid = clinical_store.ids[0][0]
    path = tmp_path / "hpo.tsv"
    path.write_text(
        f"national_id\thpo_id\tobserved\n{nid}\tHP:0001394\tyes\n{nid}\tHP:0000057\tyes\n"
        f"{nid}\tHP:0001638\tmaybe\n"
    )
    with Store(clinical_store.path) as store:
        with pytest.raises(ImportRejected, match=r"2 problems found") as info:
            import_phenotypes(store, REG, path)
        n = store.con.execute("SELECT count(*) FROM participant_phenotype").fetchone()
    assert {p.line for p in info.value.problems} == {3, 4}
    assert n == (0,)


def test_map_icd10_phenotypes__maps_listed_diagnoses(clinical_store) -> None:  # type: ignore[no-untyped-def]
    with Store(clinical_store.path) as store:
        created = map_icd10_phenotypes(store, REG)
        rows = store.con.execute(
            "SELECT hpo_id, source FROM participant_phenotype ORDER BY 1"
        ).fetchall()
        again = map_icd10_phenotypes(store, REG)
    assert created == len(rows)
    assert created > 0
    assert again == 0
    assert ("HP:0005978", "icd10:E11.9") in rows  # type 2 diabetes
    assert any(h == "HP:0000822" and s.startswith("icd10:I10") for h, s in rows)  # hypertension
