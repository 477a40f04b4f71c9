"""Tests for the Snakemake sequencing workflow itself (``workflow/Snakefile``).

The workflow runs as a subprocess (``snakemake``), for lint, format, dry runs,
bad input, the end-to-end run on the demo (slow) and on GIAB reads (shared);
the ``biobank workflow`` commands run on the ``small`` fixture. The start-up
checks, sample sheet and regions have their own test modules.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sequencing.workflow_support import (
    HEADER,
    REPO,
    WORKFLOW,
    base_config,
    edit_sheet,
    read_config,
    write_config,
)

SNAKEFILE = WORKFLOW / "Snakefile"
BIN = Path(sys.executable).parent
SHARED = REPO.parent / "shared" / "data"
GIAB = SHARED / "giab-tiny"


# --------------------------------------------------------------------------- helpers


def _snakemake(workdir: Path, *args: str, timeout: int = 900) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    return subprocess.run(
        [
            str(BIN / "snakemake"),
            "--snakefile", str(SNAKEFILE),
            "--directory", str(workdir),
            "--configfile", str(workdir / "config.yaml"),
            *args,
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        check=False,
    )  # fmt: skip


# --------------------------------------------------------------------------- Snakemake itself


def test_snakefmt__workflow_is_formatted() -> None:
    proc = subprocess.run(
        [str(BIN / "snakefmt"), "--check", str(WORKFLOW)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr


@pytest.mark.workflow
def test_snakemake_lint__clean(small: Path) -> None:
    proc = _snakemake(small, "--lint")
    assert proc.returncode == 0, proc.stderr + proc.stdout
    assert "Lints for" not in proc.stdout + proc.stderr


@pytest.mark.workflow
def test_snakemake_dry_run__slurm_profile(small: Path) -> None:
    proc = _snakemake(small, "-n", "--profile", str(WORKFLOW / "profiles" / "slurm"))
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "slurm_partition=your_partition" in out
    counts = dict(
        line.split()[:2] for line in out.splitlines() if line.split()[:1] and line.split()[0] in
        {"call_bcftools", "align_bwa", "joint_merge", "markdup_samtools"}
    )  # fmt: skip
    # 2 samples x 4 chunks; 3 units; 4 chunks; 2 samples.
    assert counts == {
        "call_bcftools": "8",
        "align_bwa": "3",
        "joint_merge": "4",
        "markdup_samtools": "2",
    }


@pytest.mark.workflow
def test_snakemake__bad_sample_sheet_fails_before_any_work(small: Path) -> None:
    edit_sheet(small, 3, "unit", "L1")
    proc = _snakemake(small, "--cores", "1")
    assert proc.returncode != 0
    assert "line 3, field 'unit': duplicate unit 'L1' of sample 'S1'" in proc.stderr + proc.stdout
    assert not (small / "results").exists()
    assert not (small / "resources").exists()


@pytest.mark.workflow
def test_snakemake__load_rule_only_when_enabled(small: Path) -> None:
    config = read_config(small)
    config["load"] = {"enabled": True, "store": "store.duckdb"}
    write_config(small, config)
    proc = _snakemake(small, "-n", "-p")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "load-vcf results/vcf/cohort.vcf.gz" in out
    assert "--store store.duckdb" in out


# --------------------------------------------------------------------------- end to end


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo (default preset: 6 samples at 20x, 2.5 Mb) run through the workflow (2 cores).

    The default preset rather than the tiny one, so that the accuracy target
    (SNP precision and recall >= 0.99 per sample at the demo's coverage) is
    asserted on the demo itself, about 2,000 truth SNPs a sample.
    """
    from biobank.testing import generate_demo

    root = tmp_path_factory.mktemp("wf_demo")
    demo = root / "demo"
    generate_demo(demo, preset="demo")
    run = root / "run"
    run.mkdir()
    config = base_config(run)
    config["samples"] = str(demo / "samples.tsv")
    config["sample_metadata"] = str(demo / "truth" / "ancestry.tsv")
    config["reference"]["fasta"] = str(demo / "reference" / "genome.fa")
    config["reference"]["gff3"] = str(demo / "reference" / "genes.gff3")
    write_config(run, config)
    proc = _snakemake(run, "--cores", "2")
    assert proc.returncode == 0, proc.stderr[-5000:]
    return run


def _demo_sheet(run: Path) -> tuple[list[str], dict[str, list[str]], dict[str, str]]:
    """Sample ids, units per sample and registered sexes of the generated demo."""
    demo = run.parent / "demo"
    units: dict[str, list[str]] = {}
    for line in (demo / "samples.tsv").read_text().splitlines()[1:]:
        sample, unit = line.split("\t")[:2]
        units.setdefault(sample, []).append(unit)
    sexes = {}
    for line in (demo / "truth" / "ancestry.tsv").read_text().splitlines()[1:]:
        fields = line.split("\t")
        sexes[fields[0]] = fields[2]
    return list(units), units, {s: sexes[s] for s in units}


def _compare(run: Path, truth: Path, sample: str) -> dict[str, dict[str, Any]]:
    proc = subprocess.run(
        [
            str(BIN / "biobank"), "compare-calls",
            "--truth", str(truth),
            "--query", str(run / "results" / "vcf" / "cohort.vcf.gz"),
            "--reference", str(run / "resources" / "reference" / "genome.fa"),
            "--sample", sample,
            "--format", "json",
        ],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return {r["variant_type"]: r for r in json.loads(proc.stdout)}


@pytest.mark.slow
@pytest.mark.workflow
def test_workflow_demo__final_outputs(demo_run: Path) -> None:
    results = demo_run / "results"
    for rel in (
        "vcf/cohort.vcf.gz",
        "vcf/cohort.vcf.gz.tbi",
        "qc/sample_qc.tsv",
        "qc/multiqc_report.html",
    ):
        assert (results / rel).stat().st_size > 0, rel
    samples, units, _ = _demo_sheet(demo_run)
    header = subprocess.run(
        ["bcftools", "view", "-h", str(results / "vcf" / "cohort.vcf.gz")],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert header.splitlines()[-1].split("\t")[9:] == samples
    for tag in ("ID=BCSQ", "ID=LowQual", "ID=FT"):
        assert tag in header
    # Consequences are annotated against the GFF3 genes.
    bcsq = subprocess.run(
        ["bcftools", "query", "-i", "INFO/BCSQ!=\".\"", "-f", "%BCSQ\\n",
         str(results / "vcf" / "cohort.vcf.gz")],
        capture_output=True, text=True, check=True,
    ).stdout.splitlines()  # fmt: skip
    assert len(bcsq) > 5
    # Read groups: every unit of a sample is in its merged BAM.
    for sample in samples:
        rg = subprocess.run(
            ["samtools", "view", "-H", str(results / "align" / f"{sample}.bam")],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        assert [f"ID:{sample}.{u}" in rg for u in units[sample]] == [True] * len(units[sample])
    assert max(len(u) for u in units.values()) > 1, "the tiny demo has a sample with two units"
    report = (results / "qc" / "multiqc_report.html").read_text(errors="replace")
    for section in ("fastp", "Samtools", "mosdepth", "Bcftools", "Sample QC"):
        assert section in report, section


@pytest.mark.slow
@pytest.mark.workflow
def test_workflow_demo__accuracy_against_truth(demo_run: Path) -> None:
    demo = demo_run.parent / "demo"
    samples, _, _ = _demo_sheet(demo_run)
    for sample in samples:
        snp = _compare(demo_run, demo / "truth" / f"{sample}.vcf.gz", sample)["SNP"]
        # The target at the demo's coverage (measured: precision 1.000,
        # recall 0.990-0.996; benchmarks/workflow_overhead.py, docs/workflow.md).
        assert snp["truth_total"] > 1000
        assert snp["precision"] >= 0.99, snp
        assert snp["recall"] >= 0.99, snp
        assert snp["gt_concordance"] >= 0.99, snp


@pytest.mark.slow
@pytest.mark.workflow
def test_workflow_demo__sample_qc(demo_run: Path) -> None:
    lines = (demo_run / "results" / "qc" / "sample_qc.tsv").read_text().splitlines()
    rows = [dict(zip(lines[0].split("\t"), line.split("\t"), strict=True)) for line in lines[1:]]
    _, _, sexes = _demo_sheet(demo_run)
    by_id = {r["sample_id"]: r for r in rows}
    assert set(by_id) == set(sexes)
    assert set(sexes.values()) == {"male", "female"}, "the tiny demo has both sexes"
    # The demo's registered sexes (truth/ancestry.tsv) agree with the X/Y coverage.
    for sample, sex in sexes.items():
        assert by_id[sample]["registered_sex"] == sex
        assert by_id[sample]["inferred_sex"] == sex
        assert by_id[sample]["sex_check"] == "match"
        assert float(by_id[sample]["call_rate"]) > 0.95
    # Males are called haploid on chrX, females diploid.
    for sample, sex in sexes.items():
        gts = subprocess.run(
            ["bcftools", "query", "-r", "chrX", "-s", sample, "-i", 'GT="alt"', "-f", "[%GT]\\n",
             str(demo_run / "results" / "vcf" / "cohort.vcf.gz")],
            capture_output=True, text=True, check=True,
        ).stdout.split()  # fmt: skip
        assert gts
        assert (set(gts) == {"1"}) is (sex == "male"), (sample, sex, set(gts))


@pytest.mark.slow
@pytest.mark.workflow
def test_workflow_demo__resumes_without_redoing_work(demo_run: Path) -> None:
    results = demo_run / "results"
    samples, _, _ = _demo_sheet(demo_run)
    early = [results / "align" / f"{samples[0]}.bam", results / "calls" / f"{samples[-1]}.g.vcf.gz"]
    before = {p: p.stat().st_mtime_ns for p in early}
    (results / "qc" / "sample_qc.tsv").unlink()
    # Make the late sample-QC job fail: a file where its output folder must be.
    relatedness = results / "qc" / "relatedness"
    shutil.rmtree(relatedness)
    relatedness.write_text("in the way\n")
    failed = _snakemake(demo_run, "--cores", "2")
    assert failed.returncode != 0
    assert "sample_qc" in failed.stderr + failed.stdout
    assert not (results / "qc" / "sample_qc.tsv").exists()
    relatedness.unlink()
    proc = _snakemake(demo_run, "--cores", "2")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (results / "qc" / "sample_qc.tsv").stat().st_size > 0
    assert {p: p.stat().st_mtime_ns for p in early} == before
    ran = proc.stderr + proc.stdout
    assert "rule sample_qc" in ran or "localrule sample_qc" in ran
    assert "align_bwa" not in ran
    assert "call_bcftools" not in ran


@pytest.mark.slow
@pytest.mark.workflow
@pytest.mark.shared
@pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/data is absent")
def test_workflow_giab_tiny__finds_all_truth_snps(tmp_path: Path) -> None:
    (tmp_path / "genes.gff3").write_text(
        "##gff-version 3\n"
        "q\tdemo\tgene\t100\t5200\t.\t+\t.\tID=gene:G1;Name=GENE1;biotype=protein_coding\n"
        "q\tdemo\tmRNA\t100\t5200\t.\t+\t.\tID=transcript:T1;Parent=gene:G1;biotype=protein_coding\n"
        "q\tdemo\texon\t100\t1200\t.\t+\t.\tParent=transcript:T1\n"
        "q\tdemo\tCDS\t150\t1200\t.\t+\t0\tParent=transcript:T1\n"
    )
    (tmp_path / "samples.tsv").write_text(
        HEADER + f"\nNA12878\tu1\tlib1\tILLUMINA\tFC1\t1\t{GIAB / 'reads_R1.fastq.gz'}"
        f"\t{GIAB / 'reads_R2.fastq.gz'}\n"
    )
    config = base_config(tmp_path)
    config["reference"].update(fasta=str(GIAB / "q.fa"), gff3="genes.gff3", chrx="", chry="")
    config["scatter"]["chunks"] = 2
    # These reads were binned with N runs: keep reads with up to 50 N (fastp drops > 5).
    config["trimming"]["max_n_bases"] = 50
    # CRAM output here (the demo run above writes BAM), so both formats are called from.
    config["alignment"]["cram"] = True
    write_config(tmp_path, config)
    proc = _snakemake(tmp_path, "--cores", "2")
    assert proc.returncode == 0, proc.stderr[-5000:]
    cram = tmp_path / "results" / "align" / "NA12878.cram"
    assert cram.read_bytes()[:4] == b"CRAM"
    assert (tmp_path / "results" / "align" / "NA12878.cram.crai").stat().st_size > 0
    assert not (tmp_path / "results" / "align" / "NA12878.bam").exists()
    snp = _compare(tmp_path, GIAB / "NA12878.chr22.tiny.giab.vcf", "NA12878")["SNP"]
    assert snp["truth_total"] == 14
    assert snp["tp"] == 14
    assert snp["gt_match"] == 14


# --------------------------------------------------------------------------- CLI


def test_cli_workflow_check__ok_and_error(small: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from biobank.cli import main

    args = ["workflow", "check", "--configfile", "config.yaml", "--directory", str(small)]
    assert main(args) == 0
    assert "ok: 2 samples, 3 units" in capsys.readouterr().out
    edit_sheet(small, 2, "sample_id", "bad id")
    assert main(args) == 1
    assert "line 2, field 'sample_id'" in capsys.readouterr().err


@pytest.mark.workflow
def test_cli_workflow_run__dry_run(small: Path, capfd: pytest.CaptureFixture[str]) -> None:
    from biobank.cli import main

    code = main(
        ["workflow", "run", "--dry-run", "--directory", str(small),
         "--configfile", str(small / "config.yaml")]
    )  # fmt: skip
    assert code == 0
    out = capfd.readouterr()
    assert "This was a dry-run" in out.out + out.err
    assert not (small / "results").exists()


@pytest.mark.workflow
def test_snakemake_dry_run__partitioned_load_one_job_per_chunk_on_slurm(small: Path) -> None:
    config = read_config(small)
    config["load"] = {"enabled": True, "store": "store.duckdb", "partitioned": True}
    write_config(small, config)
    proc = _snakemake(small, "-n", "-p", "--profile", str(WORKFLOW / "profiles" / "slurm"))
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    counts = dict(
        line.split()[:2] for line in out.splitlines()
        if line.split()[:1] and line.split()[0] in {"load_region", "cohort_bcf", "load_store"}
    )  # fmt: skip
    assert counts == {"load_region": "4", "cohort_bcf": "1", "load_store": "1"}  # 4 chunks
    assert "load-region results/vcf/cohort.bcf --regions-file" in out
    assert "resources/reference/chunks/0003.bed" in out
