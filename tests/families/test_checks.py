"""Stored family checks: all pass on the simulated study, a wrong child fails."""

from __future__ import annotations

import polars as pl
import pytest
from families_support import FamilyStore

from biobank.core.access import Principal, Role
from biobank.core.errors import AccessDenied
from biobank.core.store import Store
from biobank.families.checks import member_checks, run_family_checks
from biobank.registry.pedigree import PedRow, register_family

REGISTRAR = Principal("registrar", Role.REGISTRAR)


def test_run_family_checks__pass_then_flag_a_wrong_child(family_store_rw: FamilyStore) -> None:
    study = family_store_rw.study
    n_members = sum(2 + len(k) for _, _, k in study.families.values())
    with Store(family_store_rw.path) as store:
        summary = run_family_checks(store, REGISTRAR)
        rows = store.con.execute("SELECT check_name, status FROM family_check").pl()
        assert summary.failed == 0
        assert rows.filter(pl.col("check_name") == "sex").height == n_members
        assert rows.filter(pl.col("check_name") == "mendel").height == sum(
            len(k) for _, _, k in study.families.values()
        )
        # an unrelated participant registered as the child of FAM03's parents
        f, m, _ = study.families["FAM03"]
        in_family = {x for a, b, c in study.families.values() for x in (a, b, *c)}
        nid = study.national_ids
        year = [int(x[6:10]) for x in nid]
        stranger = next(
            i
            for i in range(len(nid))
            if i not in in_family and year[i] >= max(year[f], year[m]) + 15
        )
        register_family(
            store,
            REGISTRAR,
            [
                PedRow("SWAP", nid[f], sex="1"),
                PedRow("SWAP", nid[m], sex="2"),
                PedRow("SWAP", nid[stranger], nid[f], nid[m]),
            ],
        )
        again = run_family_checks(store, REGISTRAR, families=["SWAP"])
        pid = store.con.execute(
            "SELECT participant_id FROM genotype_sample WHERE sample_id = ?",
            [study.sample_ids[stranger]],
        ).fetchone()
        assert pid is not None
        mine = member_checks(store, REGISTRAR, pid[0])
        with pytest.raises(AccessDenied):
            member_checks(store, Principal("researcher", Role.RESEARCHER, purpose="HMB"), pid[0])
    assert again.failed >= 2
    status = dict(zip(mine["check_name"], mine["status"], strict=True))
    assert status["mendel"] == "fail"
    assert status["relatedness"] == "fail"
    assert status["sex"] == "pass"
    assert mine.filter(pl.col("check_name") == "mendel")["value"][0] > 0.05


def _plant_swap(store: Store, study: object) -> tuple[str, list[str]]:
    """Register an unrelated participant as the child of FAM03's parents (family SWAP).

    Returns the stranger's sample and the samples of the SWAP family.
    """
    from biobank.testing.families import FamilyStudy

    assert isinstance(study, FamilyStudy)
    f, m, _ = study.families["FAM03"]
    in_family = {x for a, b, c in study.families.values() for x in (a, b, *c)}
    nid = study.national_ids
    year = [int(x[6:10]) for x in nid]
    stranger = next(
        i for i in range(len(nid)) if i not in in_family and year[i] >= max(year[f], year[m]) + 15
    )
    register_family(
        store,
        REGISTRAR,
        [
            PedRow("SWAP", nid[f], sex="1"),
            PedRow("SWAP", nid[m], sex="2"),
            PedRow("SWAP", nid[stranger], nid[f], nid[m]),
        ],
    )
    s = study.sample_ids
    return s[stranger], [s[f], s[m], s[stranger]]


def test_run_family_checks__merges_into_sample_qc_and_a_rerun_replaces(
    family_store_rw: FamilyStore,
) -> None:
    with Store(family_store_rw.path) as store:
        run_family_checks(store, REGISTRAR)
        checked = store.con.execute(
            "SELECT DISTINCT sample_id FROM family_check WHERE sample_id IS NOT NULL"
        ).fetchall()
        qc = store.con.execute("SELECT sample_id, family_check, qc_pass FROM sample_qc").pl()
        # every genotyped member has one row; no workflow QC here, so no overall verdict yet
        assert sorted(qc["sample_id"]) == sorted(r[0] for r in checked)
        assert set(qc["family_check"]) == {"pass"}
        assert qc["qc_pass"].null_count() == qc.height
        stranger, swap = _plant_swap(store, family_store_rw.study)
        for _ in range(2):  # a rerun adds nothing
            summary = run_family_checks(store, REGISTRAR)
            after = store.con.execute(
                "SELECT sample_id, family_check, family_check_detail, qc_pass FROM sample_qc"
            ).pl()
            assert after.height == after["sample_id"].n_unique() == qc.height + 1
        failing = store.con.execute(
            "SELECT DISTINCT sample_id FROM family_check WHERE status = 'fail'"
        ).fetchall()
    # the sample QC verdicts follow the stored checks: the swap fails its three samples
    failed = after.filter(pl.col("family_check") == "fail")
    assert sorted(failed["sample_id"]) == sorted(r[0] for r in failing)
    assert set(swap) <= set(failed["sample_id"])
    assert summary.failed_samples == failed.height
    assert failed["qc_pass"].to_list() == [False] * failed.height
    row = after.filter(pl.col("sample_id") == stranger).row(0, named=True)
    assert "SWAP mendel failed" in row["family_check_detail"]
    assert "SWAP relatedness failed" in row["family_check_detail"]
    assert after.filter(pl.col("family_check") == "pass")["qc_pass"].null_count() == (
        after.height - failed.height
    )
