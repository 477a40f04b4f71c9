"""The inheritance analyses for one phenotype: who is affected comes from the per-phenotype
status (biobank.registry.affected), falling back to the overall one."""

from __future__ import annotations

from families_support import FamilyStore

from biobank.core.access import Principal, Role
from biobank.core.store import Store
from biobank.families.inheritance import find_candidates
from biobank.families.ranking import rank_families
from biobank.registry.affected import set_affected

REGISTRAR = Principal("registrar", Role.REGISTRAR)
SEIZURE = "HP:0001250"


def test_find_candidates__for_a_phenotype_the_affected_members_change(
    family_store_rw: FamilyStore,
) -> None:
    study = family_store_rw.study
    dn = next(p for p in study.planted if p.mode == "de_novo")
    _, _, kids = study.families[dn.family_id]
    sib = next(k for k in kids if k != dn.child)
    child_sample, sib_sample = study.sample_ids[dn.child], study.sample_ids[sib]
    planted = (dn.family_id, "de_novo", child_sample, dn.pos + 1)
    with Store(family_store_rw.path) as store:
        for who, status in ((dn.child, "unaffected"), (sib, "affected")):
            set_affected(store, REGISTRAR, dn.family_id, study.national_ids[who], SEIZURE, status)
        overall = find_candidates(store.con, principal=REGISTRAR, families=[dn.family_id])
        seizure = find_candidates(
            store.con, principal=REGISTRAR, families=[dn.family_id], phenotype=SEIZURE
        )
        other = find_candidates(
            store.con, principal=REGISTRAR, families=[dn.family_id], phenotype="HP:0001631"
        )
        ranked = rank_families(store, REGISTRAR, families=[dn.family_id], phenotype=SEIZURE)

    def found(df: object) -> set[tuple[str, str, str, int]]:
        return {
            (r["family_id"], r["mode"], r["proband_sample"], r["variant_position"])
            for r in df.iter_rows(named=True)  # type: ignore[attr-defined]
        }

    assert planted in found(overall)
    assert child_sample not in set(seizure["proband_sample"])  # unaffected for seizures
    assert set(seizure["proband_sample"]) <= {sib_sample}
    assert planted not in found(seizure)
    assert found(other) == found(overall)  # no status for that term: the overall one
    assert set(ranked["proband_sample"]) == set(seizure["proband_sample"])
