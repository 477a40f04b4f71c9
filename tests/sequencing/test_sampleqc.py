"""Tests for biobank.sequencing.sampleqc: per-sample QC against bcftools stats and plink2."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from biobank.core.errors import ValidationError
from biobank.sequencing.sampleqc import (
    GenotypeCounts,
    SexCall,
    count_genotypes,
    infer_sex,
    king_table,
    read_mosdepth_summary,
    sample_qc_table,
    write_sample_qc,
)

SAMPLES = ["A", "B", "C", "D"]
CONTIGS = {"chr1": 100_000, "chr2": 100_000, "chrX": 50_000}


def _random_vcf(path: Path, *, seed: int = 7, n: int = 300, duplicate: bool = False) -> Path:
    """A seeded multi-sample VCF: SNPs and indels, PASS and failing sites, missing calls.

    With ``duplicate``, sample B is a copy of sample A (kinship 0.5).
    """
    rng = np.random.default_rng(seed)
    bases = "ACGT"
    lines = [
        "##fileformat=VCFv4.2",
        *[f"##contig=<ID={c},length={n_}>" for c, n_ in CONTIGS.items()],
        '##FILTER=<ID=PASS,Description="All filters passed">',
        '##FILTER=<ID=LowQual,Description="low quality">',
        '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">',
        "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\t" + "\t".join(SAMPLES),
    ]
    positions = {
        c: sorted(rng.choice(np.arange(10, 40_000), size=n // 3, replace=False)) for c in CONTIGS
    }
    for chrom, pos_list in positions.items():
        for pos in pos_list:
            ref = bases[rng.integers(4)]
            snp_alt = str(rng.choice([b for b in bases if b != ref]))
            alt = ref + "A" if rng.random() < 0.1 else snp_alt  # 10% insertions
            flt = "LowQual" if rng.random() < 0.1 else "PASS"
            gts = []
            for _ in SAMPLES:
                r = rng.random()
                gts.append(
                    "./." if r < 0.05 else rng.choice(["0/0", "0/1", "1/1"], p=[0.5, 0.3, 0.2])
                )
            if duplicate:
                gts[1] = gts[0]
            lines.append(f"{chrom}\t{pos}\t.\t{ref}\t{alt}\t50\t{flt}\t.\tGT\t" + "\t".join(gts))
    path.write_text("\n".join(lines) + "\n")
    gz = path.with_suffix(".vcf.gz")
    subprocess.run(["bcftools", "view", "-Oz", "-o", str(gz), str(path)], check=True)
    subprocess.run(["bcftools", "index", "-t", str(gz)], check=True)
    return gz


def _bcftools_psc(vcf: Path) -> dict[str, dict[str, int]]:
    """Per-sample counts from bcftools stats over PASS autosomal SNPs."""
    # (bcftools 1.16 stats drops every record when -f and -i are combined,
    # so the sites are selected with bcftools view first.)
    out = subprocess.run(
        f"bcftools view -f PASS -v snps -t ^chrX {vcf} | bcftools stats -s -",
        shell=True,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    psc = {}
    for line in out.splitlines():
        if line.startswith("PSC\t"):
            f = line.split("\t")
            psc[f[2]] = {
                "hom_ref": int(f[3]),
                "hom_alt": int(f[4]),
                "het": int(f[5]),
                "ts": int(f[6]),
                "tv": int(f[7]),
                "missing": int(f[13]),
            }
    sn = [
        line for line in out.splitlines() if line.startswith("SN\t") and "number of SNPs:" in line
    ]
    psc["_n_snps"] = {"n": int(sn[0].split("\t")[-1])}
    return psc


def test_count_genotypes__agrees_with_bcftools_stats(tmp_path: Path) -> None:
    vcf = _random_vcf(tmp_path / "c.vcf")
    counts = count_genotypes(vcf, exclude_contigs=["chrX"], chunk_length=37)
    psc = _bcftools_psc(vcf)
    assert psc["_n_snps"]["n"] > 100
    for s in SAMPLES:
        c = counts[s]
        b = psc[s]
        assert c.n_sites == psc["_n_snps"]["n"]
        assert (c.n_hom_ref, c.n_het, c.n_hom_alt) == (b["hom_ref"], b["het"], b["hom_alt"])
        assert c.n_called == c.n_sites - b["missing"]
        assert (c.n_transitions, c.n_transversions) == (b["ts"], b["tv"])


def test_king_table__duplicate_sample_has_kinship_half(tmp_path: Path) -> None:
    vcf = _random_vcf(tmp_path / "dup.vcf", duplicate=True, n=900)
    rows = {tuple(sorted((a, b))): k for a, b, k in king_table(vcf, tmp_path / "king")}
    assert len(rows) == 6
    assert rows[("A", "B")] == pytest.approx(0.5, abs=0.01)
    assert rows[("A", "C")] < 0.2


def test_king_table__one_sample_gives_no_pairs(tmp_path: Path) -> None:
    vcf = _random_vcf(tmp_path / "c.vcf")
    one = tmp_path / "one.vcf.gz"
    subprocess.run(["bcftools", "view", "-s", "A", "-Oz", "-o", str(one), str(vcf)], check=True)
    assert king_table(one, tmp_path / "king1") == []


def _summary(tmp_path: Path, depths: dict[str, float]) -> Path:
    p = tmp_path / "s.mosdepth.summary.txt"
    rows = ["chrom\tlength\tbases\tmean\tmin\tmax"]
    rows += [f"{c}\t1000\t{int(d * 1000)}\t{d}\t0\t50" for c, d in depths.items()]
    rows += ["total\t4000\t0\t0\t0\t0", "chr1_region\t1000\t0\t0\t0\t0"]
    p.write_text("\n".join(rows) + "\n")
    return p


@pytest.mark.parametrize(
    ("depths", "chry", "expected"),
    [
        ({"chr1": 20, "chr2": 20, "chrX": 10, "chrY": 9}, "chrY", "male"),
        ({"chr1": 20, "chr2": 20, "chrX": 20, "chrY": 0.2}, "chrY", "female"),
        ({"chr1": 20, "chr2": 20, "chrX": 10, "chrY": 0.1}, "chrY", None),  # X0: unclear
        ({"chr1": 20, "chr2": 20, "chrX": 20, "chrY": 10}, "chrY", None),  # XXY: unclear
        ({"chr1": 20, "chr2": 20, "chrX": 10}, "", "male"),  # no Y in the reference
        ({"chr1": 0, "chr2": 0, "chrX": 0, "chrY": 0}, "chrY", None),  # no coverage
    ],
)
def test_infer_sex__from_depth_ratios(
    tmp_path: Path, depths: dict[str, float], chry: str, expected: str | None
) -> None:
    summary = read_mosdepth_summary(_summary(tmp_path, depths))
    assert "total" not in summary
    assert "chr1_region" not in summary
    call = infer_sex(summary, chrx="chrX", chry=chry, x_ratio_male=0.75, y_ratio_male=0.1)
    assert call.inferred == expected


def test_read_mosdepth_summary__rejects_other_files(tmp_path: Path) -> None:
    p = tmp_path / "x.txt"
    p.write_text("a\tb\n")
    with pytest.raises(ValidationError, match="not a mosdepth summary"):
        read_mosdepth_summary(p)


THRESHOLDS = {
    "min_call_rate": 0.95,
    "max_het_sd": 2.0,
    "min_tstv": 1.5,
    "max_tstv": None,
    "max_kinship": 0.177,
}


def _counts(called: int, het: int, ts: int = 20, tv: int = 10) -> GenotypeCounts:
    return GenotypeCounts(
        n_sites=100, n_called=called, n_hom_ref=called - het - 10, n_het=het, n_hom_alt=10,
        n_transitions=ts, n_transversions=tv,
    )  # fmt: skip


def test_sample_qc_table__flags_each_failure(tmp_path: Path) -> None:
    counts = {
        "S1": _counts(100, 30),
        "S2": _counts(90, 30),  # call rate 0.90
        "S3": _counts(100, 30, ts=10, tv=10),  # Ti/Tv 1.0
        "S4": _counts(100, 31),
        "S5": _counts(100, 29),
        "S6": _counts(100, 30),
        "S7": _counts(100, 90),  # heterozygosity outlier
    }
    sex = {s: SexCall(20.0, 1.0, 0.0, "female") for s in counts}
    registered: dict[str, str | None] = {s: "female" for s in counts}
    registered["S4"] = "male"
    registered["S5"] = None
    kinship = [("S1", "S6", 0.49), ("S1", "S2", 0.01)]
    rows = {
        r["sample_id"]: r
        for r in sample_qc_table(
            counts, sex_calls=sex, registered_sex=registered, kinship=kinship, thresholds=THRESHOLDS
        )
    }
    assert rows["S2"]["flags"] == "low_call_rate"
    assert rows["S2"]["call_rate"] == 0.9
    assert rows["S3"]["flags"] == "tstv_out_of_range"
    assert rows["S3"]["tstv"] == 1.0
    assert rows["S4"]["flags"] == "sex_mismatch"
    assert rows["S4"]["sex_check"] == "mismatch"
    assert rows["S5"]["flags"] == ""
    assert rows["S5"]["sex_check"] == "unknown"
    assert rows["S7"]["flags"] == "het_outlier"
    assert rows["S1"]["flags"] == "related"
    assert rows["S1"]["related_to"] == "S6"
    assert rows["S6"]["related_to"] == "S1"
    assert rows["S6"]["max_kinship"] == 0.49
    assert [s for s, r in rows.items() if r["qc_pass"]] == ["S5"]


def test_sample_qc_table__het_check_needs_five_samples() -> None:
    counts = {"S1": _counts(100, 30), "S2": _counts(100, 90)}
    sex = {s: SexCall(20.0, 1.0, 0.0, "female") for s in counts}
    rows = sample_qc_table(
        counts, sex_calls=sex, registered_sex={}, kinship=[], thresholds=THRESHOLDS
    )
    assert all(r["flags"] == "" for r in rows)


def test_write_sample_qc__tsv_and_multiqc(tmp_path: Path) -> None:
    counts = {"S1": _counts(100, 30)}
    sex = {"S1": SexCall(20.0, 1.0, None, None)}
    rows = sample_qc_table(
        counts, sex_calls=sex, registered_sex={}, kinship=[], thresholds=THRESHOLDS
    )
    write_sample_qc(rows, tmp_path / "qc.tsv", multiqc=tmp_path / "qc_mqc.tsv")
    lines = (tmp_path / "qc.tsv").read_text().splitlines()
    assert lines[0].split("\t")[:3] == ["sample_id", "n_sites", "n_called"]
    fields = dict(zip(lines[0].split("\t"), lines[1].split("\t"), strict=True))
    assert fields["registered_sex"] == ""
    assert fields["qc_pass"] == "true"
    assert '""' not in lines[1]
    mqc = (tmp_path / "qc_mqc.tsv").read_text()
    assert mqc.startswith("# id: 'biobank_sample_qc'")
    assert "# plot_type: 'table'" in mqc
