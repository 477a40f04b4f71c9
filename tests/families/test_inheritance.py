"""Inheritance analyses on the simulated family study: every planted variant is found with
the default filters and nothing else is; de novo calls are compared with bcftools +trio-dnm2."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from families_support import FamilyStore

from biobank.core.access import Principal, Role
from biobank.core.errors import ValidationError
from biobank.core.store import Store
from biobank.core.tools import run_tool
from biobank.families.inheritance import CandidateFilter, find_candidates
from biobank.registry.consent import withdraw_consent

REGISTRAR = Principal("registrar", Role.REGISTRAR)
#: no consequence, frequency, depth or quality filter: genotypes only
NO_FILTERS = CandidateFilter(
    consequences=None, max_control_frequency=1.0, min_depth=0, min_quality=0, pass_only=False
)


def _found(df: pl.DataFrame) -> set[tuple[str, str, str, int]]:
    return {
        (r["family_id"], r["mode"], r["proband_sample"], r["variant_position"])
        for r in df.iter_rows(named=True)
    }


def test_find_candidates__default_filters_find_exactly_the_planted(
    family_store: FamilyStore,
) -> None:
    study = family_store.study
    with Store(family_store.path) as store:
        df = find_candidates(store.con, principal=REGISTRAR)
    planted = {(p.family_id, p.mode, study.sample_ids[p.child], p.pos + 1) for p in study.planted}
    assert _found(df) == planted
    het = df.filter(pl.col("mode") == "compound_het")
    assert set(het["partner_variant_key"]) == set(het["variant_key"])  # phased pair
    assert (df["control_frequency"] <= 0.01).all()
    assert set(df["variant_gene"]) == {p.gene for p in study.planted}
    row = df.filter(pl.col("mode") == "de_novo").row(0, named=True)
    assert (row["call_proband"], row["call_father"], row["call_mother"]) == ("0/1", "0/0", "0/0")
    assert row["proband_DP"] >= 10
    assert row["proband_GQ"] >= 20
    xl = df.filter(pl.col("mode") == "x_linked").row(0, named=True)
    assert (xl["call_proband"], xl["call_father"], xl["call_mother"]) == ("1", "0", "0/1")


def test_find_candidates__decoys_fail_only_the_depth_and_quality_filters(
    family_store: FamilyStore,
) -> None:
    """Without the reads (``read_evidence=None``) the store's depth and quality filters
    remove exactly the decoys planted to fail them; the others fail in the reads
    (tests/families/test_evidence.py)."""
    study = family_store.study
    relaxed = CandidateFilter(min_depth=0, min_quality=0)
    with Store(family_store.path) as store:
        df = find_candidates(
            store.con,
            principal=REGISTRAR,
            modes=["de_novo"],
            candidate_filter=relaxed,
            read_evidence=None,
        )
        only_gq = find_candidates(
            store.con,
            principal=REGISTRAR,
            modes=["de_novo"],
            candidate_filter=CandidateFilter(min_quality=0),
            read_evidence=None,
        )
    decoys = {
        (d.family_id, "de_novo", study.sample_ids[d.child], d.pos + 1): d.fails
        for d in study.decoys
    }
    planted = {
        (p.family_id, p.mode, study.sample_ids[p.child], p.pos + 1)
        for p in study.planted
        if p.mode == "de_novo"
    }
    assert _found(df) == planted | set(decoys)
    assert set(df["read_evidence"]) == {"not_checked"}
    assert _found(only_gq) == planted | {k for k, why in decoys.items() if why != "depth"}
    assert {d.fails for d in study.decoys} == {
        "depth", "quality", "allele_balance", "parent_alt_reads", "parent_quality"
    }  # fmt: skip


def _trio_dnm2(vcf: Path, ped: Path, out: Path) -> set[tuple[str, int]]:
    fai = (vcf.parent / "reference" / "genome.fa.fai").read_text().splitlines()
    x_length = next(int(x.split("\t")[1]) for x in fai if x.startswith("chrX\t"))
    bcf = out / "dnm.bcf"
    run_tool(
        ["bcftools", "+trio-dnm2", "-P", ped, "-X", f"chrX:1-{x_length}", "--use-NAIVE", vcf,
         "-Ob", "-o", bcf]
    )  # fmt: skip
    text = out / "dnm.tsv"
    run_tool(
        ["bcftools", "query", "-i", "FMT/DNM=1", "-f", "[%CHROM\t%POS\t%SAMPLE\t%DNM\n]", bcf],
        stdout=text,
    )
    calls = set()
    for line in text.read_text().splitlines():
        _, pos, sample, dnm = line.split("\t")
        if dnm == "1":
            calls.add((sample, int(pos)))
    return calls


def _trio_gts(
    vcf: Path, trios: pl.DataFrame, out: Path
) -> dict[tuple[str, int], tuple[str, str, str]]:
    samples = sorted(
        set(trios["child_sample"]) | set(trios["father_sample"]) | set(trios["mother_sample"])
    )
    text = out / "gts.tsv"
    run_tool(
        ["bcftools", "query", "-s", ",".join(samples), "-f", "%POS[\t%GT]\n", vcf], stdout=text
    )
    col = {s: i for i, s in enumerate(samples)}
    gts: dict[tuple[str, int], tuple[str, str, str]] = {}
    for line in text.read_text().splitlines():
        pos, *g = line.split("\t")
        for t in trios.iter_rows(named=True):
            gts[(t["child_sample"], int(pos))] = (
                g[col[t["child_sample"]]],
                g[col[t["father_sample"]]],
                g[col[t["mother_sample"]]],
            )
    return gts


def test_de_novo__against_bcftools_trio_dnm2_naive(
    family_store: FamilyStore, tmp_path: Path
) -> None:
    """Unfiltered de novo calls are the naive trio-dnm2 calls of an ALT allele absent from
    both hom-ref parents; trio-dnm2 also flags other Mendelian errors (a child lacking a
    parental allele, a 1/1 child of a carrier), which are not de novo ALT alleles."""
    from biobank.families.members import family_samples, trios

    with Store(family_store.path) as store:
        ours = find_candidates(
            store.con,
            principal=REGISTRAR,
            modes=["de_novo"],
            candidate_filter=NO_FILTERS,
            read_evidence=None,
        )
        with family_samples(store.con) as fs:
            tr = trios(fs.members)
    ped = tmp_path / "trios.ped"
    ped.write_text(
        "".join(
            f"{r['family_id']}\t{r['child_sample']}\t{r['father_sample']}\t{r['mother_sample']}\t"
            f"{1 if r['child_sex'] == 'male' else 2}\n"
            for r in tr.iter_rows(named=True)
        )
    )
    naive = _trio_dnm2(family_store.study.vcf, ped, tmp_path)
    # one position per record in this VCF, so (sample, position) identifies a call
    mine = {(r["proband_sample"], r["variant_position"]) for r in ours.iter_rows(named=True)}
    affected = set(tr.filter(pl.col("child_affected") == "affected")["child_sample"])
    naive_affected = {c for c in naive if c[0] in affected}
    assert mine <= naive_affected
    gts = _trio_gts(family_store.study.vcf, tr, tmp_path)
    for call in naive_affected - mine:
        child, father, mother = gts[call]
        new_alt = child in ("0/1", "1") and father in ("0/0", "0") and mother == "0/0"
        assert not new_alt, (call, gts[call])
    assert len(mine) >= 6  # the planted one, five decoys and genotyping noise


def test_find_candidates__honours_consent(family_store_rw: FamilyStore) -> None:
    """A researcher sees only families whose members consented to the purpose; a proband
    who withdraws disappears from the research results at once (staff still see them)."""
    researcher = Principal("researcher", Role.RESEARCHER, purpose="HMB")
    with Store(family_store_rw.path) as store:
        staff_before = find_candidates(store.con, principal=REGISTRAR)
        before = find_candidates(store.con, principal=researcher)
        assert 0 < before.height <= staff_before.height
        first = before.row(0, named=True)
        withdraw_consent(store, REGISTRAR, first["proband_id"], reason="test: the proband withdrew")
        after = find_candidates(store.con, principal=researcher)
        staff = find_candidates(store.con, principal=REGISTRAR)
    assert first["proband_id"] not in set(after["proband_id"])
    assert after.height < before.height
    assert first["proband_id"] in set(staff["proband_id"])


def test_find_candidates__rejects_unknown_mode(family_store: FamilyStore) -> None:
    with (
        Store(family_store.path) as store,
        pytest.raises(ValidationError, match="unknown mode 'mitochondrial'"),
    ):
        find_candidates(store.con, principal=REGISTRAR, modes=["mitochondrial"])
