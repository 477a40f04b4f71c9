"""Relatedness: KING kinship from the store against plink2 --make-king-table, pedigree
kinship, and the checks that flag a wrong parent."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from families_support import FamilyStore

from biobank.core.access import Principal, Role
from biobank.core.store import Store
from biobank.core.tools import run_tool
from biobank.families.relatedness import check_relatedness, check_sex, classify, expected_kinship
from biobank.registry.pedigree import PedRow, register_family

REGISTRAR = Principal("registrar", Role.REGISTRAR)


def _plink_king(vcf: Path, samples: list[str], out: Path) -> dict[frozenset[str], dict[str, float]]:
    keep = out.with_suffix(".keep")
    keep.write_text("#IID\n" + "\n".join(samples) + "\n")
    run_tool(
        [
            "plink2", "--vcf", vcf, "--var-filter", "--autosome", "--snps-only", "just-acgt",
            "--max-alleles", "2", "--allow-extra-chr", "--keep", keep, "--make-king-table",
            "--threads", "1", "--out", out,
        ]
    )  # fmt: skip
    rows = {}
    with open(f"{out}.kin0", encoding="utf-8") as fh:
        head = fh.readline().lstrip("#").split()
        for line in fh:
            r = dict(zip(head, line.split(), strict=True))
            rows[frozenset((r["IID1"], r["IID2"]))] = {
                k: float(r[k]) for k in ("NSNP", "HETHET", "IBS0", "KINSHIP")
            }
    return rows


def test_king__equals_plink2_make_king_table(family_store: FamilyStore, tmp_path: Path) -> None:
    with Store(family_store.path) as store:
        ours = check_relatedness(store.con, principal=REGISTRAR, scope="all")
    samples = sorted(set(ours["sample_1"]) | set(ours["sample_2"]))
    n = len(samples)
    assert ours.height == n * (n - 1) // 2
    plink = _plink_king(family_store.study.vcf, samples, tmp_path / "king")
    assert len(plink) == ours.height
    for r in ours.iter_rows(named=True):
        p = plink[frozenset((r["sample_1"], r["sample_2"]))]
        assert r["nsnp"] == p["NSNP"]
        assert r["hethet"] / r["nsnp"] == pytest.approx(p["HETHET"], rel=1e-5)
        assert r["ibs0"] / r["nsnp"] == pytest.approx(p["IBS0"], rel=1e-5, abs=1e-9)
        assert r["kinship"] == pytest.approx(p["KINSHIP"], rel=1e-5, abs=1e-6)
        # the inferred relationship is the same function of plink2's numbers
        assert r["inferred_relationship"] == classify(p["KINSHIP"], p["IBS0"])


def test_check_relatedness__registered_parents_are_first_degree(family_store: FamilyStore) -> None:
    with Store(family_store.path) as store:
        df = check_relatedness(store.con, principal=REGISTRAR)
    po = df.filter(pl.col("expected_relationship") == "parent-offspring")
    assert po.height == 2 * sum(len(k) for _, _, k in family_store.study.families.values())
    assert set(po["status"]) == {"ok"}
    assert set(po["inferred_relationship"]) == {"parent-offspring"}
    spouses = df.filter(pl.col("expected_relationship") == "unrelated")
    assert (spouses["kinship"] < 0.0884).all()


def test_check_relatedness__flags_a_child_who_is_not_theirs(family_store_rw: FamilyStore) -> None:
    """A sample swap / wrong parents: an unrelated participant registered as a child."""
    study = family_store_rw.study
    f, m, kids = study.families["FAM03"]
    in_family = {x for a, b, c in study.families.values() for x in (a, b, *c)}
    nid = study.national_ids
    year = [int(n[6:10]) for n in nid]
    stranger = next(
        i for i in range(len(nid)) if i not in in_family and year[i] >= max(year[f], year[m]) + 15
    )
    rows = [
        PedRow("SWAP", nid[f], sex="1", phenotype="1"),
        PedRow("SWAP", nid[m], sex="2", phenotype="1"),
        PedRow("SWAP", nid[kids[0]], nid[f], nid[m], phenotype="2"),
        PedRow("SWAP", nid[stranger], nid[f], nid[m], phenotype="1"),
    ]
    with Store(family_store_rw.path) as store:
        register_family(store, REGISTRAR, rows)
        df = check_relatedness(store.con, principal=REGISTRAR, families=["SWAP"])
    status = {
        frozenset((r["sample_1"], r["sample_2"])): r["status"] for r in df.iter_rows(named=True)
    }
    s = study.sample_ids
    assert status[frozenset((s[f], s[stranger]))] == "expected_not_related"
    assert status[frozenset((s[m], s[stranger]))] == "expected_not_related"
    assert status[frozenset((s[f], s[kids[0]]))] == "ok"
    assert status[frozenset((s[m], s[kids[0]]))] == "ok"


def test_expected_kinship__classic_pedigree() -> None:
    # grandparents g1 g2 -> a, b (full sibs); a x s -> c; b x t -> d (first cousins);
    # a x u -> e (half-sib of c); c and c2 monozygotic twins.
    rows = [
        ("g1", None, None, None), ("g2", None, None, None), ("s", None, None, None),
        ("t", None, None, None), ("u", None, None, None), ("a", "g1", "g2", None),
        ("b", "g1", "g2", None), ("c", "a", "s", "T"), ("c2", "a", "s", "T"),
        ("d", "b", "t", None), ("e", "a", "u", None),
    ]  # fmt: skip
    df = pl.DataFrame(
        rows, schema=["participant_id", "father_id", "mother_id", "twin_group"], orient="row"
    )
    phi = expected_kinship(df)
    assert phi[("a", "g1")] == 0.25
    assert phi[("a", "b")] == 0.25
    assert phi[("c", "g1")] == 0.125
    assert phi[("b", "c")] == 0.125  # aunt/uncle
    assert phi[("c", "d")] == 0.0625  # first cousins
    assert phi[("c", "e")] == 0.125  # half siblings
    assert phi[("c", "c2")] == 0.5  # monozygotic twins
    assert phi[("s", "t")] == 0.0


def test_check_sex__registered_sex_agrees_with_chrx(family_store: FamilyStore) -> None:
    with Store(family_store.path) as store:
        df = check_sex(store.con, principal=REGISTRAR)
    assert set(df["status"]) == {"ok"}
    assert {"male", "female"} == set(df["inferred_sex"])
