"""Tests for the workflow's start-up checks (biobank.sequencing.checks).

They call the checks directly on small hand-made inputs (the ``small`` fixture).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from sequencing.workflow_support import (
    CONFIG_SCHEMA,
    REPO,
    SAMPLES_SCHEMA,
    check,
    edit_sheet,
    fastq,
    read_config,
    write_config,
)

from biobank.core.errors import ConfigError, ImportRejected
from biobank.sequencing.checks import check_config, check_tools
from biobank.sequencing.units import read_sample_sheet


def test_check_inputs__accepts_good_inputs(small: Path) -> None:
    sheet = check(small)
    assert sheet.samples == ["S1", "S2"]
    assert [u.unit for u in sheet.units_of("S1")] == ["L1", "L2"]
    assert sheet.sex == {"S1": None, "S2": None}


def test_check_config__names_the_key_path(small: Path) -> None:
    config = read_config(small)
    config["filters"]["min_qual"] = "high"
    config["scatter"]["chunks"] = 0
    with pytest.raises(ImportRejected, match="2 problems") as info:
        check_config(config, schema=CONFIG_SCHEMA, file="config.yaml")
    fields = {p.field for p in info.value.problems}
    assert fields == {"filters.min_qual", "scatter.chunks"}


def test_check_config__rejects_unknown_key(small: Path) -> None:
    config = read_config(small)
    config["filter"] = {}
    with pytest.raises(ImportRejected, match="'filter' was unexpected"):
        check_config(config, schema=CONFIG_SCHEMA, file="config.yaml")


def test_check_inputs__missing_fastq(small: Path) -> None:
    edit_sheet(small, 3, "fq2", "fastq/nope_R2.fastq.gz")
    with pytest.raises(ImportRejected, match=r"line 3, field 'fq2': FASTQ file .* does not exist"):
        check(small)


def test_check_inputs__mismatched_mates(small: Path) -> None:
    fq = small / "fastq"
    fastq(fq / "S2_L1_R2.fastq.gz", ["S2:L1:0", "S2:L1:9", "x", "y", "z"], mate=2)
    with pytest.raises(
        ImportRejected, match=r"line 4, field 'fq2': read 2 is named 'S2:L1:1' in R1 but 'S2:L1:9'"
    ):
        check(small)


def test_check_inputs__different_read_counts(small: Path) -> None:
    fastq(small / "fastq" / "S2_L1_R2.fastq.gz", [f"S2:L1:{i}" for i in range(3)], mate=2)
    with pytest.raises(ImportRejected, match=r"line 4.*different numbers of reads \(5 vs 3"):
        check(small)


def test_check_inputs__corrupt_fastq(small: Path) -> None:
    (small / "fastq" / "S1_L1_R1.fastq.gz").write_bytes(b"\x1f\x8b\x08garbage")
    with pytest.raises(ImportRejected, match=r"line 2.*cannot be read"):
        check(small)


def test_check_inputs__reference_lacks_configured_contig(small: Path) -> None:
    config = read_config(small)
    config["reference"]["chrx"] = "X"
    write_config(small, config)
    with pytest.raises(
        ImportRejected, match=r"field 'reference.chrx': contig 'X' is not in the reference"
    ):
        check(small)


def test_check_inputs__missing_sample_sheet(small: Path) -> None:
    config = read_config(small)
    config["samples"] = "nope.tsv"
    write_config(small, config)
    with pytest.raises(ConfigError, match=r"sample sheet .*nope\.tsv does not exist"):
        check(small)


def test_check_tools__names_debian_packages(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(ConfigError, match=r"sudo apt-get install .*bcftools.*bwa.*fastp"):
        check_tools()


def test_check_tools__all_installed() -> None:
    check_tools()


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
