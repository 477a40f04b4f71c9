"""Partitioned-store commands (:mod:`biobank.genomes.partitions`, :mod:`biobank.genomes.regions`):
``store verify``, ``store compact``, ``store partition``, ``store reference``
(:mod:`biobank.genomes.reference`), ``load-region`` and
``load-pgen`` (:mod:`biobank.genomes.arrays`)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from biobank.cli._common import (
    FormatOption,
    OutputFormat,
    acting_principal,
    emit,
    open_store,
    state,
)

if TYPE_CHECKING:
    from biobank.genomes.region_chunks import Region

__all__ = ["regions_of", "register"]

store_app = typer.Typer(
    help="The partitioned genotype store: verify, compact, partition (docs/store.md).",
    no_args_is_help=True,
)

RegionOption = Annotated[
    list[str] | None,
    typer.Option("--region", help="A region chunk CONTIG[:START-END] (repeatable)."),
]
RegionsFileOption = Annotated[
    Path | None, typer.Option("--regions-file", help="A BED file of region chunks.")
]


def regions_of(region: list[str] | None, regions_file: Path | None) -> list[Region] | None:
    """The regions named on the command line (``None``: none named)."""
    from biobank.genomes.region_chunks import Region, read_bed

    out = [Region.parse(r) for r in region or []]
    if regions_file is not None:
        out += read_bed(regions_file)
    return out or None


@store_app.command("verify")
def verify(ctx: typer.Context, fmt: FormatOption = OutputFormat.TABLE) -> None:
    """Check every partition file (present, SHA-256, row count, region); exit 1 on a problem."""
    from biobank.core.access import Permission, require
    from biobank.genomes.partitions import is_partitioned, verify_partitions

    with open_store(ctx, read_only=True) as store:
        require(acting_principal(ctx, store), Permission.LOAD_DATA)
        if not is_partitioned(store.con):
            typer.echo(f"{store.path} is a single-file store: there are no partitions to verify")
            return
        check = verify_partitions(store)
    emit(
        {
            "partitions": check.n_partitions,
            "rows": check.n_rows,
            "bytes": check.n_bytes,
            "problems": len(check.problems),
            "unlisted_files": len(check.unlisted),
        },
        fmt,
    )
    for line in check.problems:
        typer.echo(f"problem: {line}", err=True)
    for rel in check.unlisted:
        typer.echo(f"not in the catalog (removed by 'store compact'): {rel}", err=True)
    if not check.ok:
        raise typer.Exit(code=1)


@store_app.command("compact")
def compact(
    ctx: typer.Context,
    min_rows: Annotated[
        int, typer.Option("--min-rows", help="Merge files with fewer rows than this.")
    ] = 1_000_000,
) -> None:
    """Merge small partition files of each batch and contig (atomic); remove unlisted files."""
    from biobank.genomes.partitions import compact as run

    with open_store(ctx) as store:
        report = run(store, acting_principal(ctx, store), min_rows=min_rows)
    typer.echo(
        f"merged {report.merged} files into {report.written}; "
        f"removed {report.removed_unlisted} files not in the catalog"
    )


@store_app.command("partition")
def partition(ctx: typer.Context) -> None:
    """Move the calls of a single-file store into Parquet partitions (one transaction)."""
    from biobank.genomes.partitions import make_partitioned

    with open_store(ctx) as store:
        n = make_partitioned(store, acting_principal(ctx, store))
    typer.echo(f"the store is partitioned ({n} files written)")


@store_app.command("reference")
def reference(
    ctx: typer.Context,
    fasta: Annotated[
        Path | None,
        typer.Argument(help="The reference FASTA (with its .fai beside it) or the .fai itself."),
    ] = None,
    fmt: FormatOption = OutputFormat.TABLE,
) -> None:
    """Set the center's reference genome that every load is checked against, or show it."""
    from biobank.genomes.reference import reference_contigs, set_reference

    with open_store(ctx, read_only=fasta is None) as store:
        if fasta is not None:
            contigs = set_reference(store, acting_principal(ctx, store), fasta)
            typer.echo(f"reference set: {len(contigs)} contigs from {fasta}")
            return
        current = reference_contigs(store.con)
    if current is None:
        typer.echo("no reference is configured: loads check contigs against the VCF header only")
        return
    emit([{"contig": c, "length": n} for c, n in current.items()], fmt)


def load_region(
    ctx: typer.Context,
    vcf: Annotated[Path, typer.Argument(help="An indexed VCF.gz or BCF.")],
    region: RegionOption = None,
    regions_file: RegionsFileOption = None,
    wait: Annotated[
        float, typer.Option("--wait", help="Seconds to wait for the store's lock.")
    ] = 600.0,
) -> None:
    """Load region chunks of a file as partitions (a workflow job: reads without the store)."""
    from biobank.genomes.regions import load_region as run
    from biobank.genomes.regions import open_store_waiting

    chosen = regions_of(region, regions_file)
    if chosen is None:
        raise typer.BadParameter("give --region or --regions-file")
    path = state(ctx).store
    with open_store_waiting(path, timeout=wait) as store:  # who loads, checked first
        principal = acting_principal(ctx, store)
    report = run(path, vcf, chosen, principal=principal, timeout=wait)
    if report.already_loaded:
        typer.echo(f"{vcf} {', '.join(map(str, chosen))}: already loaded, nothing to do")
        return
    typer.echo(
        f"loaded {vcf} ({len(chosen)} region chunks): batch {report.batch_id}, "
        f"{report.n_records} records, {report.n_calls} stored calls in {report.seconds:.1f} s"
    )


def load_pgen(
    ctx: typer.Context,
    pgen: Annotated[Path, typer.Argument(help="A .pgen (with .pvar and .psam beside it).")],
) -> None:
    """Load a PLINK 2 fileset (e.g. a genotyping-array batch) as one batch, all or nothing."""
    from biobank.genomes.arrays import load_pgen as run

    with open_store(ctx) as store:
        report = run(store, pgen, principal=acting_principal(ctx, store))
    if report.already_loaded:
        typer.echo(f"{pgen} was already loaded (load {report.load_id}): nothing to do")
        return
    typer.echo(
        f"loaded {pgen}: batch {report.batch_id}, {report.n_samples} samples, "
        f"{report.n_variants} variants, {report.n_calls} stored calls in {report.seconds:.1f} s"
    )


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root app."""
    app.add_typer(store_app, name="store")
    app.command("load-region")(load_region)
    app.command("load-pgen")(load_pgen)
