"""De novo read evidence (biobank.families.evidence): the trio's AD/DP/GQ read from the loaded
VCF agree with bcftools, the read-level decoys fail for their reason and the planted de novo
passes; the calls are compared with bcftools +trio-dnm2 --with-pAD; a missing, changed or
unindexed source file is refused with its name and the store is left as it was."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import polars as pl
import pytest
from families_support import FamilyStore

from biobank.core.access import Principal, Role
from biobank.core.errors import ValidationError
from biobank.core.store import Store
from biobank.core.tools import run_tool
from biobank.families.evidence import ReadEvidence, ReadFilter
from biobank.families.inheritance import find_candidates

REGISTRAR = Principal("registrar", Role.REGISTRAR)
KEEP = ReadEvidence(keep_failing=True)
#: the decoys whose flaw only the reads show
READ_DECOYS = {"allele_balance", "parent_alt_reads", "parent_quality"}


def _de_novo(store: Store, evidence: ReadEvidence | None = KEEP) -> pl.DataFrame:
    return find_candidates(
        store.con, principal=REGISTRAR, modes=["de_novo"], read_evidence=evidence
    )


def _bcftools_reads(
    vcf: Path, contig: str, pos: int, samples: list[str]
) -> list[tuple[int, int, int]]:
    """(ALT reads, DP, GQ) per sample at a biallelic site, as bcftools reads them."""
    text = run_tool(
        ["bcftools", "query", "-r", f"{contig}:{pos}", "-s", ",".join(samples),
         "-f", "[%AD\t%DP\t%GQ\n]", vcf],
    )  # fmt: skip
    out = []
    for line in text.splitlines():
        ad, dp, gq = line.split("\t")
        out.append((int(ad.split(",")[1]), int(dp), int(gq)))
    return out


def test_read_evidence__values_are_bcftools_and_decoys_fail_for_their_reason(
    family_store: FamilyStore,
) -> None:
    study = family_store.study
    with Store(family_store.path) as store:
        df = _de_novo(store)
        parents = {
            (r[0], r[1]): (r[2], r[3])
            for r in store.con.execute(
                "SELECT m.family_id, c.sample_id, f.sample_id, mo.sample_id FROM family_member m"
                " JOIN genotype_sample c USING (participant_id)"
                " JOIN genotype_sample f ON f.participant_id = m.father_id"
                " JOIN genotype_sample mo ON mo.participant_id = m.mother_id"
            ).fetchall()
        }
    assert df.height > 0
    for r in df.iter_rows(named=True):
        father, mother = parents[(r["family_id"], r["proband_sample"])]
        child_r, father_r, mother_r = _bcftools_reads(
            study.vcf,
            r["variant_contig"],
            r["variant_position"],
            [r["proband_sample"], father, mother],
        )
        assert r["child_alt_reads"] == child_r[0]
        assert (r["father_alt_reads"], r["father_depth"], r["father_GQ"]) == father_r
        assert (r["mother_alt_reads"], r["mother_depth"], r["mother_GQ"]) == mother_r
        assert r["read_evidence"] in {"pass", "fail"}
    by_pos = {r["variant_position"]: r for r in df.iter_rows(named=True)}
    for d in study.decoys:
        if d.fails in READ_DECOYS:
            row = by_pos[d.pos + 1]
            assert row["read_evidence"] == "fail", row
            word = {"allele_balance": "allele balance", "parent_alt_reads": "ALT reads",
                    "parent_quality": "GQ"}[d.fails]  # fmt: skip
            assert word in row["read_evidence_detail"]
    (planted,) = [p for p in study.planted if p.mode == "de_novo"]
    assert by_pos[planted.pos + 1]["read_evidence"] == "pass"


def test_read_evidence__default_drops_failing_rows_and_can_be_skipped(
    family_store: FamilyStore,
) -> None:
    study = family_store.study
    with Store(family_store.path) as store:
        default = find_candidates(store.con, principal=REGISTRAR, modes=["de_novo"])
        skipped = _de_novo(store, None)
        loose = _de_novo(store, ReadEvidence(read_filter=ReadFilter(
            min_child_alt_reads=0, min_child_allele_balance=0.0, min_parent_depth=0,
            min_parent_quality=0, max_parent_alt_reads=99)))  # fmt: skip
    planted = {p.pos + 1 for p in study.planted if p.mode == "de_novo"}
    read_decoys = {d.pos + 1 for d in study.decoys if d.fails in READ_DECOYS}
    assert set(default["variant_position"]) == planted
    assert set(skipped["variant_position"]) == planted | read_decoys
    assert set(skipped["read_evidence"]) == {"not_checked"}
    assert skipped["child_alt_reads"].null_count() == skipped.height
    assert set(loose["variant_position"]) == planted | read_decoys
    assert set(loose["read_evidence"]) == {"pass"}


def _trio_dnm2_pad(vcf: Path, store: Store, out: Path) -> set[tuple[str, int]]:
    """trio-dnm2 with the parents' AD (``--with-pAD``): calls with probability > 0.5."""
    rows = store.con.execute(
        "SELECT m.family_id, c.sample_id, f.sample_id, mo.sample_id, p.sex FROM family_member m"
        " JOIN participant p USING (participant_id)"
        " JOIN genotype_sample c USING (participant_id)"
        " JOIN genotype_sample f ON f.participant_id = m.father_id"
        " JOIN genotype_sample mo ON mo.participant_id = m.mother_id"
    ).fetchall()
    ped = out / "trios.ped"
    ped.write_text(
        "".join(f"{a}\t{b}\t{c}\t{d}\t{1 if e == 'male' else 2}\n" for a, b, c, d, e in rows)
    )
    fai = (vcf.parent / "reference" / "genome.fa.fai").read_text().splitlines()
    x_length = next(int(x.split("\t")[1]) for x in fai if x.startswith("chrX\t"))
    bcf = out / "dnm.bcf"
    run_tool(
        ["bcftools", "+trio-dnm2", "-P", ped, "--with-pAD", "--dnm-tag", "DNM:prob",
         "-X", f"chrX:1-{x_length}", vcf, "-Ob", "-o", bcf]
    )  # fmt: skip
    text = run_tool(["bcftools", "query", "-i", "FMT/DNM>0.5", "-f", "[%POS\t%SAMPLE\n]", bcf])
    return {(s, int(p)) for p, s in (line.split("\t") for line in text.splitlines())}


def test_de_novo__with_read_evidence_against_bcftools_trio_dnm2_with_pad(
    family_store: FamilyStore, tmp_path: Path
) -> None:
    """Every call that passes our default filters is a trio-dnm2 call (probability > 0.5 with
    the parents' AD). trio-dnm2 also calls the decoys whose flaw is a low GQ (the child's, or
    a hom-ref parent's with no ALT read): it does not use GQ. Both reject the low allele
    balance and the mosaic parent."""
    study = family_store.study
    with Store(family_store.path) as store:
        ours = find_candidates(store.con, principal=REGISTRAR, modes=["de_novo"])
        theirs = _trio_dnm2_pad(study.vcf, store, tmp_path)
    mine = {(r["proband_sample"], r["variant_position"]) for r in ours.iter_rows(named=True)}
    assert mine
    assert mine <= theirs
    decoy = {(study.sample_ids[d.child], d.pos + 1): d.fails for d in study.decoys}
    extra = {c for c in theirs - mine if c[0] in {s for s, _ in mine}}
    assert {decoy.get(c) for c in extra} == {"quality", "parent_quality"}, extra
    for call, fails in decoy.items():
        if fails in {"allele_balance", "parent_alt_reads"}:
            assert call not in theirs


@pytest.fixture
def moved(family_store_rw: FamilyStore, tmp_path: Path) -> tuple[FamilyStore, Path]:
    """A writable store and a copy of its source VCF (with index) in another folder."""
    vcf = family_store_rw.study.vcf
    new = tmp_path / "moved"
    new.mkdir()
    for f in (vcf, Path(f"{vcf}.tbi")):
        shutil.copy2(f, new / f.name)
    return family_store_rw, new


def _state(store: Store, under: Path | None = None) -> list[tuple[object, ...]]:
    rows = store.con.execute("SELECT * FROM genotype_source_check ORDER BY path").fetchall()
    return [r for r in rows if under is None or str(r[0]).startswith(str(under.resolve()))]


def test_source_file__moved_is_refused_until_relocated(moved: tuple[FamilyStore, Path]) -> None:
    fs, new = moved
    old = fs.study.vcf.parent
    with Store(fs.path) as store:
        hidden = old.with_name(old.name + "-away")
        old.rename(hidden)
        try:
            before = _state(store)
            with pytest.raises(ValidationError, match="--source-path") as err:
                _de_novo(store)
            assert err.value.file == str(fs.study.vcf)
            assert _state(store) == before
            df = _de_novo(store, ReadEvidence(relocate={str(old): str(new)}, keep_failing=True))
        finally:
            hidden.rename(old)
    assert set(df["read_evidence"]) == {"pass", "fail"}


def test_source_file__changed_or_unindexed_is_refused_and_checked_once(
    moved: tuple[FamilyStore, Path],
) -> None:
    fs, new = moved
    relocate = {str(fs.study.vcf.parent): str(new)}
    copy = new / fs.study.vcf.name
    with Store(fs.path) as store:
        _de_novo(store, ReadEvidence(relocate=relocate))
        (first,) = _state(store, new)
        _de_novo(store, ReadEvidence(relocate=relocate))
        assert _state(store, new) == [first]  # unchanged file: not hashed again
        os.utime(copy, ns=(first[2] + 10**9, first[2] + 10**9))
        _de_novo(store, ReadEvidence(relocate=relocate))
        (again,) = _state(store, new)
        assert again[2] != first[2]  # hashed again after the touch, and still the same file
        with open(copy, "ab") as fh:
            fh.write(b"\0")
        with pytest.raises(ValidationError, match="SHA-256 differs") as err:
            _de_novo(store, ReadEvidence(relocate=relocate))
        assert err.value.file == str(copy)
        assert _state(store, new) == [again]
        shutil.copy2(fs.study.vcf, copy)
        Path(f"{copy}.tbi").unlink()
        with pytest.raises(ValidationError, match="bcftools index"):
            _de_novo(store, ReadEvidence(relocate=relocate))
