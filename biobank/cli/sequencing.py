"""Sequencing commands (:mod:`biobank.sequencing`).

``compare-calls``, ``load-sample-qc``, ``workflow check`` and ``workflow run``; and
:func:`registry_sample_sheet`, the sample sheet a sequencing batch starts from,
which :mod:`biobank.cli.registry` mounts as ``registry sample-sheet``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from biobank.cli._common import FormatOption, OutputFormat, acting_principal, emit, open_store

__all__ = ["ACCURACY_COLUMNS", "CALL_LABELS", "register", "registry_sample_sheet"]

#: Columns of the call accuracy table a person reads first (the rest: ``compare-calls -f tsv``).
ACCURACY_COLUMNS = (
    "sample_id",
    "variant_type",
    "tp",
    "fp",
    "fn",
    "precision",
    "recall",
    "f1",
    "gt_concordance",
    "truth_total",
    "query_total",
)
#: Headers of the call accuracy columns.
CALL_LABELS = {
    "sample_id": "sample",
    "variant_type": "type",
    "tp": "TP",
    "fp": "FP",
    "fn": "FN",
    "f1": "F1",
    "truth_total": "truth",
    "query_total": "query",
    "gt_match": "GT match",
    "gt_mismatch": "GT mismatch",
}

workflow_app = typer.Typer(
    help="Run or check the Snakemake sequencing workflow (workflow/Snakefile).",
    no_args_is_help=True,
)


def compare_calls(
    truth: Annotated[Path, typer.Option("--truth", help="Truth VCF (bgzipped or plain).")],
    query: Annotated[Path, typer.Option("--query", help="Query VCF: the calls to evaluate.")],
    reference: Annotated[
        Path, typer.Option("--reference", help="Reference FASTA both were called against.")
    ],
    regions: Annotated[
        Path | None,
        typer.Option("--regions", help="Confident regions (BED); variants outside are ignored."),
    ] = None,
    sample: Annotated[
        str | None,
        typer.Option("--sample", help="Sample to evaluate (needed for multi-sample VCFs)."),
    ] = None,
    all_filters: Annotated[
        bool,
        typer.Option("--all-filters", help="Also count query records that fail a FILTER."),
    ] = False,
    fmt: FormatOption = OutputFormat.TABLE,
) -> None:
    """Precision, recall, F1 and genotype concordance of SNPs and indels against a truth set.

    Both files are normalised with bcftools norm -m -any -f REFERENCE and
    matched by contig, position, REF and ALT (see biobank.sequencing.accuracy).
    The table shows the main columns; -f tsv/csv/json adds GT match counts.
    """
    from biobank.sequencing.accuracy import compare_calls as compare

    rows = compare(
        truth,
        query,
        reference=reference,
        regions=regions,
        sample=sample,
        pass_only=not all_filters,
    )
    emit([r.as_dict() for r in rows], fmt, columns=ACCURACY_COLUMNS, labels=CALL_LABELS)


@workflow_app.command("check")
def check(
    configfile: Annotated[
        Path, typer.Option("--configfile", help="The workflow configuration.")
    ] = Path("config/config.yaml"),
    directory: Annotated[
        Path, typer.Option("--directory", help="Directory the workflow runs in.")
    ] = Path("."),
) -> None:
    """Check the config, sample sheet, FASTQ pairs, reference and tools without running."""
    import yaml

    from biobank.core.errors import ConfigError
    from biobank.sequencing.checks import check_inputs

    path = configfile if configfile.is_absolute() else directory / configfile
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist: give it with --configfile")
    with open(path, encoding="utf-8") as fh:
        config = yaml.safe_load(fh) or {}
    sheet = check_inputs(config, config_file=path, workdir=directory)
    n_units = len(sheet.units)
    typer.echo(
        f"ok: {len(sheet.samples)} samples, {n_units} units, reference "
        f"{config['reference']['fasta']}; all required tools found"
    )


@workflow_app.command("run")
def run(
    cores: Annotated[int, typer.Option("--cores", "-c", help="CPU cores to use.")] = 2,
    configfile: Annotated[
        Path | None, typer.Option("--configfile", help="Workflow configuration.")
    ] = None,
    directory: Annotated[
        Path | None, typer.Option("--directory", help="Directory to run in.")
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", "-n", help="Only show the jobs.")] = False,
) -> None:
    """Run the workflow with Snakemake (results/ in the run directory)."""
    from biobank.sequencing.launcher import run_workflow

    code = run_workflow(
        cores=cores,
        configfile=configfile,
        directory=directory,
        extra=["--dry-run"] if dry_run else [],
    )
    if code != 0:
        raise typer.Exit(code)


def load_sample_qc(
    ctx: typer.Context,
    table: Annotated[Path, typer.Argument(help="results/qc/sample_qc.tsv of a workflow run.")],
) -> None:
    """Load the workflow's per-sample QC table into the store (all or nothing)."""
    from biobank.sequencing.sampleqc import load_sample_qc as load

    with open_store(ctx) as store:
        result = load(store, table, principal=acting_principal(ctx, store))
    if result.already_loaded:
        typer.echo(f"{table}: loaded before (load {result.load_id}), nothing to do")
    else:
        typer.echo(
            f"{table}: {result.n_samples} samples loaded, {result.n_failed} failing QC "
            f"(load {result.load_id})"
        )


def registry_sample_sheet(
    ctx: typer.Context,
    fastq: Annotated[
        str, typer.Option(help="FASTQ folder, or a pattern with {sample_id}, {unit}, {read}.")
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Write the TSV here.")],
    batch: Annotated[
        str | None,
        typer.Option(
            help="Sample ids of the batch: comma-separated, or @FILE with one per line "
            "(default: every registered sample with FASTQs)."
        ),
    ] = None,
    platform: Annotated[
        str, typer.Option(help="Sequencing platform (read group PL).")
    ] = "ILLUMINA",
    with_sex: Annotated[bool, typer.Option(help="Add the registered sex column.")] = False,
) -> None:
    """Export a Snakemake sample sheet (samples.tsv) for a sequencing batch."""
    from biobank.sequencing.sheet import sample_sheet, write_sample_sheet

    ids: list[str] | None = None
    if batch:
        text = Path(batch[1:]).read_text(encoding="utf-8") if batch.startswith("@") else batch
        ids = [s.strip() for s in text.replace(",", "\n").splitlines() if s.strip()]
    with open_store(ctx) as store:
        export = sample_sheet(
            store,
            acting_principal(ctx, store),
            fastq=fastq,
            sample_ids=ids,
            platform=platform,
            with_sex=with_sex,
        )
    write_sample_sheet(export.rows, out)
    typer.echo(f"wrote {len(export.rows)} rows to {out}")
    if export.withdrawn:
        typer.echo(f"left out (consent withdrawn): {', '.join(export.withdrawn)}", err=True)


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root app."""
    app.command("compare-calls")(compare_calls)
    app.command("load-sample-qc")(load_sample_qc)
    app.add_typer(workflow_app, name="workflow")
