"""Genome commands (:mod:`biobank.genomes`): ``load-vcf`` and ``verify`` (and those of
:mod:`biobank.cli.store`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from biobank.cli._common import FormatOption, OutputFormat, acting_principal, emit, open_store
from biobank.cli.store import RegionOption, RegionsFileOption, regions_of
from biobank.cli.store import register as register_store

__all__ = ["register"]


def _split(value: str | None) -> list[str]:
    return [v.strip() for v in (value or "").split(",") if v.strip()]


def load_vcf(
    ctx: typer.Context,
    vcf: Annotated[
        Path, typer.Argument(help="VCF or BCF (bgzipped or plain); sample names = sequencing ids.")
    ],
    info: Annotated[
        str | None,
        typer.Option("--info", help="INFO fields to keep per variant, comma-separated (AF,DP)."),
    ] = None,
    call_fields: Annotated[
        str | None,
        typer.Option("--call-fields", help="FORMAT fields to keep per stored call: DP,GQ."),
    ] = None,
    chunk: Annotated[
        int | None, typer.Option("--chunk", help="VCF records per chunk (default: automatic).")
    ] = None,
    threads: Annotated[int, typer.Option("--threads", help="Decompression threads.")] = 1,
    pack: Annotated[
        bool,
        typer.Option(
            "--pack/--no-pack",
            help="Store variants with many plain calls as bit planes (docs/store.md).",
        ),
    ] = True,
    progress: Annotated[
        bool, typer.Option("--progress/--no-progress", help="Show a progress bar.")
    ] = True,
    workers: Annotated[
        int,
        typer.Option("--workers", help="Processes reading region chunks at once (partitioned)."),
    ] = 1,
    partitioned: Annotated[
        bool,
        typer.Option(
            "--partitioned/--single-file",
            help="Write Parquet partitions (always so once the store is partitioned).",
        ),
    ] = False,
    region: RegionOption = None,
    regions_file: RegionsFileOption = None,
) -> None:
    """Load genotypes from a VCF as one batch (all or nothing; the same file again is a no-op)."""
    from biobank.genomes.load import load_vcf as load

    chosen = regions_of(region, regions_file)
    with open_store(ctx) as store:
        principal = acting_principal(ctx, store)
        if chosen is not None:
            from biobank.genomes.regions import load_regions

            report = load_regions(
                store,
                vcf,
                principal=principal,
                regions=chosen,
                workers=workers,
                info_fields=_split(info),
                call_fields=_split(call_fields),
                pack=pack,
            )
        else:
            report = load(
                store,
                vcf,
                principal=principal,
                info_fields=_split(info),
                call_fields=_split(call_fields),
                chunk_records=chunk,
                progress=progress,
                threads=threads,
                pack=pack,
                workers=workers,
                partitioned=partitioned,
            )
    if report.already_loaded:
        typer.echo(f"{vcf} was already loaded (load {report.load_id}): nothing to do")
        return
    rate = report.n_variants / report.seconds if report.seconds else 0.0
    typer.echo(
        f"loaded {vcf}: batch {report.batch_id}, {report.n_samples} samples, "
        f"{report.n_records} records, {report.n_variants} variants "
        f"({report.n_new_variants} new, {report.n_packed} packed), {report.n_calls} stored calls "
        f"in {report.seconds:.1f} s ({rate:,.0f} variants/s)"
    )


def verify(
    ctx: typer.Context,
    vcf: Annotated[Path, typer.Argument(help="A VCF that was loaded into the store.")],
    fmt: FormatOption = OutputFormat.TABLE,
) -> None:
    """Re-read a loaded VCF with bcftools and compare every genotype; exit 1 on any mismatch."""
    from biobank.core.access import Permission, require
    from biobank.genomes.verify import verify_vcf

    with open_store(ctx, read_only=True) as store:
        principal = acting_principal(ctx, store)
        require(principal, Permission.LOAD_DATA)
        report = verify_vcf(store, vcf)
    emit(
        {
            "source": report.source,
            "batch_id": report.batch_id,
            "records": report.n_records,
            "variants": report.n_variants,
            "genotypes": report.n_genotypes,
            "mismatches": report.n_mismatches,
        },
        fmt,
    )
    for line in report.mismatches:
        typer.echo(f"mismatch: {line}", err=True)
    if not report.ok:
        raise typer.Exit(code=1)


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root app."""
    app.command("load-vcf")(load_vcf)
    app.command("verify")(verify)
    register_store(app)
