"""Start-up checks of the sequencing workflow (``workflow/Snakefile``).

The Snakefile calls :func:`check_inputs` before it builds the job graph, so a
bad configuration, sample sheet, FASTQ pair, reference or a missing tool stops
the run before any work starts, with a message that names the file, row and
field and says how to fix it. ``biobank workflow check`` runs the same checks.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import jsonschema

from biobank.core.errors import ConfigError, ImportRejected, Problem
from biobank.core.tools import DEBIAN_PACKAGES
from biobank.sequencing._schema import key_path, load_schema
from biobank.sequencing.launcher import repo_workflow_dir
from biobank.sequencing.regions import reference_contigs
from biobank.sequencing.units import SampleSheet, check_fastq_pair, read_sample_sheet

__all__ = [
    "REQUIRED_TOOLS",
    "check_config",
    "check_inputs",
    "check_reference",
    "check_tools",
]

#: External programs the workflow runs.
REQUIRED_TOOLS = ("bwa", "samtools", "bcftools", "bgzip", "tabix", "fastp", "mosdepth", "plink2")


def check_config(config: Mapping[str, Any], *, schema: str | Path, file: str | Path) -> None:
    """Validate the workflow configuration against its JSON Schema.

    Parameters
    ----------
    config
        The parsed configuration.
    schema
        ``workflow/schemas/config.schema.yaml``.
    file
        The configuration file, for messages.

    Raises
    ------
    ImportRejected
        Listing every invalid key with its key path (e.g. ``filters.min_qual``).
    """
    validator = jsonschema.Draft202012Validator(load_schema(schema))
    problems = [
        Problem(
            f"{err.message}; fix it in {file} (documented there)",
            file=str(file),
            field=key_path(err),
        )
        for err in sorted(validator.iter_errors(dict(config)), key=lambda e: list(e.path))
    ]
    if problems:
        raise ImportRejected(problems, file=file)


def check_reference(config: Mapping[str, Any], *, file: str | Path) -> list[Problem]:
    """Check that the reference exists and has the contigs the config names."""
    ref = config["reference"]
    problems: list[Problem] = []
    try:
        contigs = reference_contigs(ref["fasta"])
    except ConfigError as exc:
        return [Problem(str(exc), file=str(file), field="reference.fasta", value=ref["fasta"])]
    if not Path(ref["gff3"]).is_file():
        problems.append(
            Problem(
                "GFF3 annotation does not exist: fix 'reference.gff3' in the config",
                file=str(file),
                field="reference.gff3",
                value=ref["gff3"],
            )
        )
    shown = ", ".join(list(contigs)[:8]) + (" ..." if len(contigs) > 8 else "")
    named = [(f"reference.{k}", ref[k]) for k in ("chrx", "chry") if ref[k]]
    named += [(f"reference.par.{i}.contig", p["contig"]) for i, p in enumerate(ref["par"])]
    for key, name in named:
        if name not in contigs:
            problems.append(
                Problem(
                    f"contig '{name}' is not in the reference {ref['fasta']} (it has: {shown}): "
                    "set the name the FASTA uses (e.g. X or chrX)"
                    + (', or "" when it has none' if not key.startswith("reference.par") else ""),
                    file=str(file),
                    field=key,
                    value=name,
                )
            )
    return problems


def _mosdepth_works() -> bool:
    """Whether mosdepth runs (Debian's needs ``libhts.so``, see ``scripts/mosdepth.sh``)."""
    script = repo_workflow_dir() / "scripts" / "mosdepth.sh"
    proc = subprocess.run(
        ["bash", str(script), "--version"], capture_output=True, check=False, timeout=60
    )
    return proc.returncode == 0


def check_tools(tools: Sequence[str] = REQUIRED_TOOLS) -> None:
    """Check that every external program the workflow runs is installed.

    Raises
    ------
    ConfigError
        Naming every missing program and the Debian packages to install.
    """
    missing = [t for t in tools if shutil.which(t) is None]
    if not missing and "mosdepth" in tools and not _mosdepth_works():
        raise ConfigError(
            "mosdepth is installed but cannot start (it cannot load libhts.so): "
            "install the Debian package 'libhts-dev' (sudo apt-get install libhts-dev)"
        )
    if missing:
        packages = sorted({DEBIAN_PACKAGES.get(t, t) for t in missing})
        raise ConfigError(
            f"required programs are not installed: {', '.join(missing)}; install the Debian "
            f"packages with: sudo apt-get install {' '.join(packages)}"
        )


def check_inputs(
    config: Mapping[str, Any],
    *,
    config_file: str | Path,
    workflow_dir: str | Path | None = None,
    workdir: str | Path = ".",
    tools: bool = True,
    fastqs: bool = True,
) -> SampleSheet:
    """Run every start-up check and return the validated sample sheet.

    Checks, in order: the configuration against its schema; the sample sheet
    (schema, naming rules, duplicate units); the reference and GFF3 and the
    contigs the configuration names; every FASTQ pair; the external programs.

    Parameters
    ----------
    config
        The parsed configuration.
    config_file
        Its file, for messages.
    workflow_dir
        The ``workflow/`` folder holding ``schemas/`` (default: this checkout's).
    workdir
        The directory Snakemake runs in.
    tools, fastqs
        Whether to check the programs and FASTQ files (a dry run may skip them).

    Raises
    ------
    ImportRejected
        Every problem in the configuration, sample sheet, FASTQs and reference.
    ConfigError
        A missing sample sheet or missing programs.
    """
    wdir = Path(workflow_dir) if workflow_dir is not None else repo_workflow_dir()
    check_config(config, schema=wdir / "schemas" / "config.schema.yaml", file=config_file)
    workdir = Path(workdir)
    sheet = read_sample_sheet(
        workdir / config["samples"],
        schema=wdir / "schemas" / "samples.schema.yaml",
        workdir=workdir,
        metadata=(workdir / config["sample_metadata"]) if config.get("sample_metadata") else None,
    )
    problems = check_reference(config, file=config_file)
    if fastqs:
        for unit in sheet.units:
            problems += check_fastq_pair(unit, sheet=sheet.path, workdir=workdir)
    if problems:
        raise ImportRejected(problems)
    if tools:
        check_tools()
    return sheet
