"""Mendelian errors from the store against ``bcftools +mendelian`` on the same VCF and trios."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from families_support import FamilyStore

from biobank.core.access import Principal, Role
from biobank.core.errors import AccessDenied, ConsentError
from biobank.core.store import Store
from biobank.core.tools import run_tool
from biobank.families.mendel import consistent, mendel_errors

REGISTRAR = Principal("registrar", Role.REGISTRAR)


def _bcftools(
    vcf: Path, trios: list[tuple[str, str, str]], tmp: Path, length: int
) -> tuple[dict[str, tuple[int, int, int]], dict[tuple[str, int], int]]:
    """Per-trio (ok, bad, skipped) by child and per-site MERR from bcftools +mendelian."""
    trio_file = tmp / "trios.txt"
    trio_file.write_text("".join(f"{m},{f},{c}\n" for c, f, m in trios))
    rules = tmp / "rules.txt"  # chrX: sons haploid from the mother, daughters M/F
    rules.write_text(f"chrX:1-{length} M/M + F > M\nchrX:1-{length} M/M + F > M/F\n")
    counts = tmp / "counts.txt"
    run_tool(["bcftools", "+mendelian", vcf, "-T", trio_file, "-R", rules, "-m", "c", "-o", counts])
    per_trio = {}
    for line in counts.read_text().splitlines():
        if line.startswith("#"):
            continue
        ok, bad, skipped, names = line.split("\t")
        per_trio[names.split(",")[2]] = (int(ok), int(bad), int(skipped))
    annotated = tmp / "merr.vcf"
    run_tool(
        ["bcftools", "+mendelian", vcf, "-T", trio_file, "-R", rules, "-m", "a", "-o", annotated]
    )
    out = tmp / "merr.tsv"
    run_tool(["bcftools", "query", "-f", "%CHROM\t%POS\t%MERR\n", annotated], stdout=out)
    per_site = {}
    for line in out.read_text().splitlines():
        chrom, pos, merr = line.split("\t")
        if int(merr):
            per_site[(chrom, int(pos))] = int(merr)
    return per_trio, per_site


def test_mendel_errors__equal_bcftools_mendelian(family_store: FamilyStore, tmp_path: Path) -> None:
    with Store(family_store.path) as store:
        report = mendel_errors(store.con, principal=REGISTRAR)
    study = family_store.study
    n_kids = sum(len(k) for _, _, k in study.families.values())
    assert report.trios.height == n_kids
    trios = list(
        zip(
            report.trios["child_sample"],
            report.trios["father_sample"],
            report.trios["mother_sample"],
            strict=True,
        )
    )
    fai = (study.out / "reference" / "genome.fa.fai").read_text().splitlines()
    length = next(int(x.split("\t")[1]) for x in fai if x.startswith("chrX\t"))
    per_trio, per_site = _bcftools(study.vcf, trios, tmp_path, length)
    ours = {
        r["child_sample"]: (r["n_consistent"], r["n_errors"], r["n_skipped"])
        for r in report.trios.iter_rows(named=True)
    }
    assert ours == per_trio
    assert sum(b for _, b, _ in ours.values()) > 20  # the noise makes errors to count
    sites = {
        (r["variant_contig"], r["variant_position"]): r["n_trios_error"]
        for r in report.variants.iter_rows(named=True)
    }
    assert sites == per_site


def test_consistent__rules() -> None:
    z = np.zeros(1, dtype=bool)
    t = np.ones(1, dtype=bool)

    def ok(
        c: int, f: int, m: int, *, fm: bool = False, hap_f: bool = False, hap_c: bool = False
    ) -> bool:
        arr = np.array([c]), np.array([f]), np.array([m])
        return bool(
            consistent(
                arr[0],
                (arr[1], t if fm else z, t if hap_f else z),
                (arr[2], z, z),
                child_haploid=t if hap_c else z,
            )[0]
        )

    assert ok(1, 0, 1)
    assert ok(2, 1, 1)
    assert ok(0, 1, 1)
    assert not ok(1, 0, 0)
    assert not ok(2, 0, 1)
    assert not ok(0, 2, 0)
    assert ok(2, 0, 1, fm=True)  # a missing father contradicts nothing
    assert ok(1, 0, 1, hap_c=True)  # sons: X from the mother
    assert not ok(1, 1, 0, hap_c=True)
    assert ok(1, 1, 0, hap_f=True)  # daughters: the father's only X
    assert not ok(2, 0, 2, hap_f=True)


def test_mendel_errors__researcher_needs_purpose(family_store: FamilyStore) -> None:
    with Store(family_store.path, read_only=False) as store:
        with pytest.raises(ConsentError, match="purpose"):
            mendel_errors(store.con, principal=Principal("researcher", Role.RESEARCHER))
        with pytest.raises(AccessDenied, match="may not read family"):
            mendel_errors(store.con, principal=Principal("aud", Role.AUDITOR))
