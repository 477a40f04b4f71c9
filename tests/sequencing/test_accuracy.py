"""Tests for biobank.sequencing.accuracy: call-set comparison on hand-made VCFs with known answers.

The expected counts are worked out by hand below and cross-checked with an
independent computation (``bcftools isec`` on the normalised files).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from biobank.cli import main
from biobank.core.errors import ExternalToolError, NotFoundError, ValidationError
from biobank.sequencing.accuracy import compare_calls

# A 80 bp reference. Positions below are 1-based.
# pos 29 is G followed by the run TTTTT at 30-34, so deleting one T is
# written left-aligned as 29 GT>G or right-shifted as 33 TT>T.
_SEQ = list("ACGT" * 20)
_SEQ[9] = "A"  # 10
_SEQ[19] = "C"  # 20
_SEQ[28] = "G"  # 29
_SEQ[29:34] = list("TTTTT")  # 30-34
_SEQ[34] = "C"  # 35
_SEQ[39] = "G"  # 40
_SEQ[44] = "C"  # 45
_SEQ[49] = "A"  # 50
_SEQ[54] = "T"  # 55
_SEQ[57] = "G"  # 58
_SEQ[61] = "C"  # 62
_SEQ[62] = "G"  # 63
REF_SEQ = "".join(_SEQ)

HEADER = """##fileformat=VCFv4.2
##contig=<ID=c1,length=80>
##FILTER=<ID=PASS,Description="All filters passed">
##FILTER=<ID=LowQual,Description="low quality">
##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">
#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\t{samples}
"""

TRUTH = [
    ("c1", 10, "A", "G", "PASS", "0/1"),
    ("c1", 20, "C", "T", "PASS", "1/1"),
    ("c1", 29, "GT", "G", "PASS", "0/1"),  # left-aligned deletion
    ("c1", 40, "G", "A", "PASS", "0/1"),  # missed by the query: FN
    ("c1", 50, "A", "C,G", "PASS", "1/2"),  # multi-allelic: 2 SNPs after splitting
]
QUERY = [
    ("c1", 10, "A", "G", "PASS", "0/1"),  # TP, genotype agrees
    ("c1", 20, "C", "T", "PASS", "0/1"),  # TP, genotype differs (truth 1/1)
    ("c1", 33, "TT", "T", "PASS", "0/1"),  # same deletion, right-shifted: TP after norm
    ("c1", 45, "C", "T", "PASS", "1/1"),  # FP
    ("c1", 50, "A", "G,C", "PASS", "2/1"),  # alleles in another order: 2 TP
    ("c1", 55, "T", "C", "LowQual", "0/1"),  # fails a filter: ignored unless --all-filters
    ("c1", 58, "G", "A", "PASS", "0/0"),  # hom-ref: not a call
    ("c1", 62, "C", "CA", "PASS", "0/1"),  # FP insertion
]


def _write_vcf(
    path: Path, rows: list[tuple[str, int, str, str, str, str]], samples: list[str]
) -> Path:
    lines = [HEADER.format(samples="\t".join(samples)).rstrip("\n")]
    for chrom, pos, ref, alt, flt, gt in rows:
        assert REF_SEQ[pos - 1 : pos - 1 + len(ref)] == ref, (pos, ref)
        gts = "\t".join([gt] * len(samples))
        lines.append(f"{chrom}\t{pos}\t.\t{ref}\t{alt}\t50\t{flt}\t.\tGT\t{gts}")
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def callsets(tmp_path: Path) -> dict[str, Path]:
    ref = tmp_path / "ref.fa"
    ref.write_text(f">c1\n{REF_SEQ}\n")
    subprocess.run(["samtools", "faidx", str(ref)], check=True)
    truth = _write_vcf(tmp_path / "truth.vcf", TRUTH, ["TRUTH1"])
    query = _write_vcf(tmp_path / "query.vcf", QUERY, ["Q1"])
    subprocess.run(["bgzip", "-f", str(query)], check=True)
    return {"ref": ref, "truth": truth, "query": tmp_path / "query.vcf.gz", "dir": tmp_path}


def _by_type(rows: list) -> dict[str, dict]:
    return {r.variant_type: r.as_dict() for r in rows}


def test_compare_calls__known_answer(callsets: dict[str, Path]) -> None:
    rows = _by_type(compare_calls(callsets["truth"], callsets["query"], reference=callsets["ref"]))
    snp, indel = rows["SNP"], rows["INDEL"]
    # SNPs: truth 10, 20, 40, 50>C, 50>G; query (PASS) 10, 20, 45, 50>G, 50>C.
    assert (snp["truth_total"], snp["query_total"]) == (5, 5)
    assert (snp["tp"], snp["fp"], snp["fn"]) == (4, 1, 1)
    assert snp["precision"] == pytest.approx(0.8)
    assert snp["recall"] == pytest.approx(0.8)
    assert snp["f1"] == pytest.approx(0.8)
    # 20 is hom in the truth and het in the query.
    assert (snp["gt_match"], snp["gt_mismatch"]) == (3, 1)
    assert snp["gt_concordance"] == pytest.approx(0.75)
    # Indels: the deletion matches after left-alignment; the insertion is an FP.
    assert (indel["tp"], indel["fp"], indel["fn"]) == (1, 1, 0)
    assert indel["precision"] == pytest.approx(0.5)
    assert indel["recall"] == pytest.approx(1.0)
    assert indel["f1"] == pytest.approx(2 / 3)
    assert "OTHER" not in rows


def test_compare_calls__all_filters_counts_failing_records(callsets: dict[str, Path]) -> None:
    rows = _by_type(
        compare_calls(
            callsets["truth"], callsets["query"], reference=callsets["ref"], pass_only=False
        )
    )
    assert (rows["SNP"]["tp"], rows["SNP"]["fp"]) == (4, 2)
    assert rows["SNP"]["precision"] == pytest.approx(4 / 6)


def test_compare_calls__regions_restrict_both_sets(callsets: dict[str, Path]) -> None:
    bed = callsets["dir"] / "confident.bed"
    # 0-based half-open: keeps positions 1-35 and 46-80, drops 36-45 (the FN and an FP).
    bed.write_text("c1\t0\t35\nc1\t45\t80\n")
    rows = _by_type(
        compare_calls(callsets["truth"], callsets["query"], reference=callsets["ref"], regions=bed)
    )
    assert (rows["SNP"]["tp"], rows["SNP"]["fp"], rows["SNP"]["fn"]) == (4, 0, 0)
    assert rows["SNP"]["precision"] == pytest.approx(1.0)


def test_compare_calls__agrees_with_bcftools_isec(callsets: dict[str, Path]) -> None:
    """Independent check: bcftools isec on the normalised PASS calls gives the same TP/FP/FN."""
    d = callsets["dir"]
    normed = {}
    for name in ("truth", "query"):
        out = d / f"{name}.norm.vcf.gz"
        subprocess.run(
            f"bcftools norm -m -any -f {callsets['ref']} {callsets[name]} "
            f"| bcftools view -f PASS,. -i 'GT=\"alt\"' -Oz -o {out} && bcftools index {out}",
            shell=True,
            check=True,
        )
        normed[name] = out
    counts = {}
    for label, vtype in (("SNP", "snps"), ("INDEL", "indels")):
        isec = subprocess.run(
            [
                "bcftools",
                "isec",
                "-c",
                "none",
                "-n",
                "+1",
                "-i",
                f'TYPE="{vtype[:-1]}"',
                "-i",
                f'TYPE="{vtype[:-1]}"',
                str(normed["truth"]),
                str(normed["query"]),
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        masks = [line.split("\t")[4] for line in isec.splitlines()]
        counts[label] = (masks.count("11"), masks.count("01"), masks.count("10"))
    assert counts == {"SNP": (4, 1, 1), "INDEL": (1, 1, 0)}
    rows = _by_type(compare_calls(callsets["truth"], callsets["query"], reference=callsets["ref"]))
    for label in ("SNP", "INDEL"):
        r = rows[label]
        assert (r["tp"], r["fp"], r["fn"]) == counts[label]


def test_compare_calls__multisample_query_needs_sample(callsets: dict[str, Path]) -> None:
    multi = _write_vcf(callsets["dir"] / "multi.vcf", QUERY, ["A", "B"])
    with pytest.raises(ValidationError, match="has 2 samples: choose one with --sample"):
        compare_calls(callsets["truth"], multi, reference=callsets["ref"])
    rows = _by_type(compare_calls(callsets["truth"], multi, reference=callsets["ref"], sample="B"))
    assert rows["SNP"]["tp"] == 4


def test_compare_calls__rejects_unknown_sample(callsets: dict[str, Path]) -> None:
    with pytest.raises(ValidationError, match="sample 'NOPE' is not in"):
        compare_calls(
            callsets["truth"], callsets["query"], reference=callsets["ref"], sample="NOPE"
        )


def test_compare_calls__ref_mismatch_is_a_tool_error(callsets: dict[str, Path]) -> None:
    bad = _write_vcf(callsets["dir"] / "bad.vcf", [("c1", 10, "A", "G", "PASS", "0/1")], ["Q1"])
    bad.write_text(bad.read_text().replace("c1\t10\t.\tA\tG", "c1\t10\t.\tT\tG"))
    with pytest.raises(ExternalToolError, match="bcftools failed"):
        compare_calls(callsets["truth"], bad, reference=callsets["ref"])


def test_compare_calls__missing_file(callsets: dict[str, Path]) -> None:
    with pytest.raises(NotFoundError, match=r"query VCF .*missing\.vcf\.gz does not exist"):
        compare_calls(
            callsets["truth"], callsets["dir"] / "missing.vcf.gz", reference=callsets["ref"]
        )


def test_cli_compare_calls__json(
    callsets: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "compare-calls",
            "--truth", str(callsets["truth"]),
            "--query", str(callsets["query"]),
            "--reference", str(callsets["ref"]),
            "--format", "json",
        ]
    )  # fmt: skip
    assert code == 0
    rows = {r["variant_type"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["SNP"]["precision"] == pytest.approx(0.8)
    assert rows["INDEL"]["fp"] == 1


def test_cli_compare_calls__error_is_one_line(
    callsets: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "compare-calls",
            "--truth", str(callsets["truth"]),
            "--query", str(callsets["dir"] / "nope.vcf"),
            "--reference", str(callsets["ref"]),
        ]
    )  # fmt: skip
    assert code == 1
    assert "error: query VCF" in capsys.readouterr().err
