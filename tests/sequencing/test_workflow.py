"""Tests for the Snakemake sequencing workflow and its start-up checks (biobank.sequencing).

Fast tests call the checks directly on small hand-made inputs; the workflow
itself runs as a subprocess (``snakemake``), for lint, format, dry runs, bad
input, the end-to-end run on the tiny demo (slow) and on GIAB reads (shared).
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from biobank.core.errors import ConfigError, ImportRejected, ValidationError
from biobank.sequencing.workflow import (
    check_config,
    check_inputs,
    check_tools,
    plan_region_chunks,
    read_sample_sheet,
    write_ploidy_file,
    write_region_chunks,
)

REPO = Path(__file__).resolve().parents[2]
WORKFLOW = REPO / "workflow"
SNAKEFILE = WORKFLOW / "Snakefile"
BIN = Path(sys.executable).parent
SHARED = REPO.parent / "shared" / "data"
GIAB = SHARED / "giab-tiny"
SAMPLES_SCHEMA = WORKFLOW / "schemas" / "samples.schema.yaml"
CONFIG_SCHEMA = WORKFLOW / "schemas" / "config.schema.yaml"
HEADER = "sample_id\tunit\tlibrary\tplatform\tflowcell\tlane\tfq1\tfq2"


# --------------------------------------------------------------------------- helpers


def _fastq(path: Path, names: list[str], *, mate: int) -> Path:
    seq = "ACGTACGTAC" * 5
    with gzip.open(path, "wt") as fh:
        for n in names:
            fh.write(f"@{n}/{mate}\n{seq}\n+\n{'I' * len(seq)}\n")
    return path


def _base_config(workdir: Path) -> dict[str, Any]:
    with open(REPO / "config" / "config.yaml", encoding="utf-8") as fh:
        config: dict[str, Any] = yaml.safe_load(fh)
    config["samples"] = "samples.tsv"
    config["sample_metadata"] = ""
    config["reference"]["fasta"] = str(workdir / "ref" / "genome.fa")
    config["reference"]["gff3"] = str(workdir / "ref" / "genes.gff3")
    return config


@pytest.fixture
def small(tmp_path: Path) -> Path:
    """A run directory with a tiny reference, two samples (three units) and a config."""
    ref = tmp_path / "ref"
    ref.mkdir()
    (ref / "genome.fa").write_text(
        ">chr1\n" + "ACGT" * 100 + "N" * 150 + "ACGT" * 50 + "\n>chrX\n" + "ACGT" * 50
        + "\n>chrY\n" + "ACGT" * 20 + "\n"
    )  # fmt: skip
    (ref / "genes.gff3").write_text("##gff-version 3\n")
    fq = tmp_path / "fastq"
    fq.mkdir()
    rows = [HEADER]
    for sample, unit in (("S1", "L1"), ("S1", "L2"), ("S2", "L1")):
        names = [f"{sample}:{unit}:{i}" for i in range(5)]
        r1 = _fastq(fq / f"{sample}_{unit}_R1.fastq.gz", names, mate=1)
        r2 = _fastq(fq / f"{sample}_{unit}_R2.fastq.gz", names, mate=2)
        rows.append(f"{sample}\t{unit}\tLIB-{sample}\tILLUMINA\tFC1\t1\t{r1}\t{r2}")
    (tmp_path / "samples.tsv").write_text("\n".join(rows) + "\n")
    _write_config(tmp_path, _base_config(tmp_path))
    return tmp_path


def _write_config(workdir: Path, config: dict[str, Any]) -> Path:
    path = workdir / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def _config(workdir: Path) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((workdir / "config.yaml").read_text())
    return data


def _edit_sheet(workdir: Path, line: int, column: str, value: str) -> None:
    """Set ``column`` on 1-based ``line`` of the sample sheet."""
    lines = (workdir / "samples.tsv").read_text().splitlines()
    header = lines[0].split("\t")
    fields = lines[line - 1].split("\t")
    fields[header.index(column)] = value
    lines[line - 1] = "\t".join(fields)
    (workdir / "samples.tsv").write_text("\n".join(lines) + "\n")


def _check(workdir: Path) -> Any:
    return check_inputs(
        _config(workdir), config_file=workdir / "config.yaml", workdir=workdir, tools=False
    )


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


# --------------------------------------------------------------------------- start-up checks


def test_check_inputs__accepts_good_inputs(small: Path) -> None:
    sheet = _check(small)
    assert sheet.samples == ["S1", "S2"]
    assert [u.unit for u in sheet.units_of("S1")] == ["L1", "L2"]
    assert sheet.sex == {"S1": None, "S2": None}


def test_check_config__names_the_key_path(small: Path) -> None:
    config = _config(small)
    config["filters"]["min_qual"] = "high"
    config["scatter"]["chunks"] = 0
    with pytest.raises(ImportRejected, match="2 problems") as info:
        check_config(config, schema=CONFIG_SCHEMA, file="config.yaml")
    fields = {p.field for p in info.value.problems}
    assert fields == {"filters.min_qual", "scatter.chunks"}


def test_check_config__rejects_unknown_key(small: Path) -> None:
    config = _config(small)
    config["filter"] = {}
    with pytest.raises(ImportRejected, match="'filter' was unexpected"):
        check_config(config, schema=CONFIG_SCHEMA, file="config.yaml")


@pytest.mark.parametrize(
    ("line", "column", "value", "message"),
    [
        (2, "sample_id", "S 1", r"line 2, field 'sample_id'.*does not match"),
        (2, "sample_id", "S.1", r"line 2, field 'sample_id'"),
        (3, "unit", "L1", r"line 3, field 'unit': duplicate unit 'L1' of sample 'S1'"),
        (4, "platform", "illumina", r"line 4, field 'platform'.*is not one of"),
        (4, "library", "LIB-S1", r"line 4, field 'library': library 'LIB-S1' already belongs"),
    ],
)
def test_read_sample_sheet__rejects_bad_rows(
    small: Path, line: int, column: str, value: str, message: str
) -> None:
    _edit_sheet(small, line, column, value)
    with pytest.raises(ImportRejected, match=message):
        read_sample_sheet(small / "samples.tsv", schema=SAMPLES_SCHEMA, workdir=small)


def test_read_sample_sheet__missing_column(small: Path) -> None:
    text = (small / "samples.tsv").read_text().replace("\tlane", "\tlanes")
    (small / "samples.tsv").write_text(text)
    with pytest.raises(ImportRejected, match="line 1, field 'lane': required column 'lane'"):
        read_sample_sheet(small / "samples.tsv", schema=SAMPLES_SCHEMA, workdir=small)


def test_read_sample_sheet__sex_column_and_metadata(small: Path) -> None:
    text = (small / "samples.tsv").read_text().splitlines()
    text = [text[0] + "\tsex", text[1] + "\tmale", text[2] + "\tmale", text[3] + "\t"]
    (small / "samples.tsv").write_text("\n".join(text) + "\n")
    sheet = read_sample_sheet(small / "samples.tsv", schema=SAMPLES_SCHEMA, workdir=small)
    assert sheet.sex == {"S1": "male", "S2": None}
    meta = small / "meta.tsv"
    meta.write_text("sample_id\tancestry\tsex\nS2\tHan\tfemale\nS9\tHan\tmale\n")
    sheet = read_sample_sheet(
        small / "samples.tsv", schema=SAMPLES_SCHEMA, workdir=small, metadata=meta
    )
    assert sheet.sex == {"S1": "male", "S2": "female"}


def test_check_inputs__missing_fastq(small: Path) -> None:
    _edit_sheet(small, 3, "fq2", "fastq/nope_R2.fastq.gz")
    with pytest.raises(ImportRejected, match=r"line 3, field 'fq2': FASTQ file .* does not exist"):
        _check(small)


def test_check_inputs__mismatched_mates(small: Path) -> None:
    fq = small / "fastq"
    _fastq(fq / "S2_L1_R2.fastq.gz", ["S2:L1:0", "S2:L1:9", "x", "y", "z"], mate=2)
    with pytest.raises(
        ImportRejected, match=r"line 4, field 'fq2': read 2 is named 'S2:L1:1' in R1 but 'S2:L1:9'"
    ):
        _check(small)


def test_check_inputs__different_read_counts(small: Path) -> None:
    _fastq(small / "fastq" / "S2_L1_R2.fastq.gz", [f"S2:L1:{i}" for i in range(3)], mate=2)
    with pytest.raises(ImportRejected, match=r"line 4.*different numbers of reads \(5 vs 3"):
        _check(small)


def test_check_inputs__corrupt_fastq(small: Path) -> None:
    (small / "fastq" / "S1_L1_R1.fastq.gz").write_bytes(b"\x1f\x8b\x08garbage")
    with pytest.raises(ImportRejected, match=r"line 2.*cannot be read"):
        _check(small)


def test_check_inputs__reference_lacks_configured_contig(small: Path) -> None:
    config = _config(small)
    config["reference"]["chrx"] = "X"
    _write_config(small, config)
    with pytest.raises(
        ImportRejected, match=r"field 'reference.chrx': contig 'X' is not in the reference"
    ):
        _check(small)


def test_check_inputs__missing_sample_sheet(small: Path) -> None:
    config = _config(small)
    config["samples"] = "nope.tsv"
    _write_config(small, config)
    with pytest.raises(ConfigError, match=r"sample sheet .*nope\.tsv does not exist"):
        _check(small)


def test_check_tools__names_debian_packages(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(ConfigError, match=r"sudo apt-get install .*bcftools.*bwa.*fastp"):
        check_tools()


def test_check_tools__all_installed() -> None:
    check_tools()


# --------------------------------------------------------------------------- scatter and ploidy


@settings(max_examples=60, deadline=None)
@given(
    lengths=st.lists(st.integers(1, 500), min_size=1, max_size=4),
    gaps=st.lists(st.tuples(st.integers(0, 499), st.integers(1, 120)), max_size=4),
    n=st.integers(1, 12),
)
def test_plan_region_chunks__covers_every_base_once(
    lengths: list[int], gaps: list[tuple[int, int]], n: int
) -> None:
    contigs = {f"c{i}": length for i, length in enumerate(lengths)}
    gap_map = {"c0": [(s, min(s + w, lengths[0])) for s, w in gaps if s < lengths[0]]}
    non_gap = {
        (c, p)
        for c, length in contigs.items()
        for p in range(length)
        if not any(s <= p < e for s, e in gap_map.get(c, []))
    }
    if len(non_gap) < n:
        with pytest.raises(ConfigError, match="fewer than the"):
            plan_region_chunks(contigs, gap_map, n)
        return
    chunks = plan_region_chunks(contigs, gap_map, n)
    assert len(chunks) == n
    assert all(chunks), "no chunk is empty"
    covered = [(c, p) for chunk in chunks for c, s, e in chunk for p in range(s, e)]
    assert len(covered) == len(set(covered))
    assert set(covered) == non_gap
    order = list(contigs)
    flat = [(order.index(c), s) for chunk in chunks for c, s, _ in chunk]
    assert flat == sorted(flat), "chunks are in genome order"
    sizes = [sum(e - s for _, s, e in chunk) for chunk in chunks]
    assert max(sizes) - min(sizes) <= 2


def test_write_region_chunks__avoids_n_gaps(small: Path) -> None:
    out = [small / f"{i}.bed" for i in range(3)]
    write_region_chunks(small / "ref" / "genome.fa", out, min_gap=100)
    intervals = [line.split("\t") for p in out for line in p.read_text().splitlines()]
    chr1 = [(int(s), int(e)) for c, s, e in intervals if c == "chr1"]
    # chr1 is 400 ACGT bases, 150 N (0-based 400-550), 200 ACGT bases.
    assert all(e <= 400 or s >= 550 for s, e in chr1)
    assert sum(e - s for s, e in chr1) == 600


def test_write_ploidy_file__pseudoautosomal_regions(tmp_path: Path) -> None:
    path = tmp_path / "ploidy.txt"
    write_ploidy_file(
        path,
        contigs={"chr1": 100, "chrX": 1000, "chrY": 500},
        chrx="chrX",
        chry="chrY",
        par=[
            {"contig": "chrX", "start": 1, "end": 100},
            {"contig": "chrX", "start": 900, "end": 1000},
        ],
    )
    lines = path.read_text().splitlines()
    assert lines[:3] == ["chrX\t101\t899\tM\t1", "chrY\t1\t500\tM\t1", "chrY\t1\t500\tF\t0"]
    assert "*\t*\t*\tU\t2" in lines


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
    _edit_sheet(small, 3, "unit", "L1")
    proc = _snakemake(small, "--cores", "1")
    assert proc.returncode != 0
    assert "line 3, field 'unit': duplicate unit 'L1' of sample 'S1'" in proc.stderr + proc.stdout
    assert not (small / "results").exists()
    assert not (small / "resources").exists()


@pytest.mark.workflow
def test_snakemake__load_rule_only_when_enabled(small: Path) -> None:
    config = _config(small)
    config["load"] = {"enabled": True, "store": "store.duckdb"}
    _write_config(small, config)
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
    config = _base_config(run)
    config["samples"] = str(demo / "samples.tsv")
    config["sample_metadata"] = str(demo / "truth" / "ancestry.tsv")
    config["reference"]["fasta"] = str(demo / "reference" / "genome.fa")
    config["reference"]["gff3"] = str(demo / "reference" / "genes.gff3")
    _write_config(run, config)
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
    config = _base_config(tmp_path)
    config["reference"].update(fasta=str(GIAB / "q.fa"), gff3="genes.gff3", chrx="", chry="")
    config["scatter"]["chunks"] = 2
    # These reads were binned with N runs: keep reads with up to 50 N (fastp drops > 5).
    config["trimming"]["max_n_bases"] = 50
    # CRAM output here (the demo run above writes BAM), so both formats are called from.
    config["alignment"]["cram"] = True
    _write_config(tmp_path, config)
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


# --------------------------------------------------------------------------- shipped config and CLI


def test_shipped_config_and_sample_sheet_are_valid() -> None:
    with open(REPO / "config" / "config.yaml", encoding="utf-8") as fh:
        config = yaml.safe_load(fh)
    check_config(config, schema=CONFIG_SCHEMA, file="config/config.yaml")
    assert config["reference"]["fasta"] == "demo/reference/genome.fa"
    assert config["reference"]["gff3"] == "demo/reference/genes.gff3"
    assert config["load"]["enabled"] is False
    sheet = read_sample_sheet(REPO / config["samples"], schema=SAMPLES_SCHEMA, workdir=REPO)
    assert all(u.fq1.startswith("demo/fastq/") for u in sheet.units)
    assert all(u.fq2.startswith("demo/fastq/") for u in sheet.units)


def test_cli_workflow_check__ok_and_error(small: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from biobank.cli import main

    args = ["workflow", "check", "--configfile", "config.yaml", "--directory", str(small)]
    assert main(args) == 0
    assert "ok: 2 samples, 3 units" in capsys.readouterr().out
    _edit_sheet(small, 2, "sample_id", "bad id")
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


def test_read_sample_sheet__bom_and_encoding(small: Path) -> None:
    sheet = small / "samples.tsv"
    sheet.write_bytes(b"\xef\xbb\xbf" + sheet.read_bytes())
    assert read_sample_sheet(sheet, schema=SAMPLES_SCHEMA, workdir=small).samples == ["S1", "S2"]
    sheet.write_bytes(sheet.read_bytes().replace(b"S2\tL1", "样本\tL1".encode("gb18030")))
    with pytest.raises(ValidationError, match="not UTF-8 text"):
        read_sample_sheet(sheet, schema=SAMPLES_SCHEMA, workdir=small)
