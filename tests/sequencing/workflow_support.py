"""Shared helpers of the sequencing workflow tests (``test_units``, ``test_checks``,
``test_regions``, ``test_workflow``): a tiny run directory and edits to it.

Imported as ``sequencing.workflow_support`` (``tests/`` is on the path); the
``small`` fixture is in ``conftest.py``.
"""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

import yaml

from biobank.sequencing.checks import check_inputs
from biobank.sequencing.units import SampleSheet

REPO = Path(__file__).resolve().parents[2]
WORKFLOW = REPO / "workflow"
SAMPLES_SCHEMA = WORKFLOW / "schemas" / "samples.schema.yaml"
CONFIG_SCHEMA = WORKFLOW / "schemas" / "config.schema.yaml"
HEADER = "sample_id\tunit\tlibrary\tplatform\tflowcell\tlane\tfq1\tfq2"


def fastq(path: Path, names: list[str], *, mate: int) -> Path:
    """Write a gzipped FASTQ with one 50 bp read per name (``@name/mate``)."""
    seq = "ACGTACGTAC" * 5
    with gzip.open(path, "wt") as fh:
        for n in names:
            fh.write(f"@{n}/{mate}\n{seq}\n+\n{'I' * len(seq)}\n")
    return path


def base_config(workdir: Path) -> dict[str, Any]:
    """The shipped config with the sample sheet and reference of ``workdir``."""
    with open(REPO / "config" / "config.yaml", encoding="utf-8") as fh:
        config: dict[str, Any] = yaml.safe_load(fh)
    config["samples"] = "samples.tsv"
    config["sample_metadata"] = ""
    config["reference"]["fasta"] = str(workdir / "ref" / "genome.fa")
    config["reference"]["gff3"] = str(workdir / "ref" / "genes.gff3")
    return config


def make_small(tmp_path: Path) -> Path:
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
        r1 = fastq(fq / f"{sample}_{unit}_R1.fastq.gz", names, mate=1)
        r2 = fastq(fq / f"{sample}_{unit}_R2.fastq.gz", names, mate=2)
        rows.append(f"{sample}\t{unit}\tLIB-{sample}\tILLUMINA\tFC1\t1\t{r1}\t{r2}")
    (tmp_path / "samples.tsv").write_text("\n".join(rows) + "\n")
    write_config(tmp_path, base_config(tmp_path))
    return tmp_path


def write_config(workdir: Path, config: dict[str, Any]) -> Path:
    """Write ``config`` as ``workdir/config.yaml``."""
    path = workdir / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def read_config(workdir: Path) -> dict[str, Any]:
    """The parsed ``workdir/config.yaml``."""
    data: dict[str, Any] = yaml.safe_load((workdir / "config.yaml").read_text())
    return data


def edit_sheet(workdir: Path, line: int, column: str, value: str) -> None:
    """Set ``column`` on 1-based ``line`` of the sample sheet."""
    lines = (workdir / "samples.tsv").read_text().splitlines()
    header = lines[0].split("\t")
    fields = lines[line - 1].split("\t")
    fields[header.index(column)] = value
    lines[line - 1] = "\t".join(fields)
    (workdir / "samples.tsv").write_text("\n".join(lines) + "\n")


def check(workdir: Path) -> SampleSheet:
    """Run the start-up checks on ``workdir`` (without the programs)."""
    return check_inputs(
        read_config(workdir), config_file=workdir / "config.yaml", workdir=workdir, tools=False
    )
