"""Reference panel commands (:mod:`biobank.genomes.panels`): ``panel load`` and ``panel list``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from biobank.cli._common import FormatOption, OutputFormat, acting_principal, emit, open_store

__all__ = ["panel_app", "register"]

panel_app = typer.Typer(
    help="Reference panels (1000 Genomes ...): population frequencies and ancestry PCs.",
    no_args_is_help=True,
)


@panel_app.command("load")
def panel_load(
    ctx: typer.Context,
    vcfs: Annotated[
        list[Path],
        typer.Argument(help="Panel VCF(s), e.g. one per chromosome, with the same samples."),
    ],
    populations: Annotated[
        Path,
        typer.Option(
            "--populations",
            help="Sample -> population table (TSV; columns sample/sample.id/IID and "
            "population/Population, optional superpopulation).",
        ),
    ],
    name: Annotated[str, typer.Option("--name", help="The panel's name, e.g. 1kg.")],
    description: Annotated[
        str | None, typer.Option("--description", help="Source, release, build.")
    ] = None,
    n_components: Annotated[
        int, typer.Option("--components", help="Principal components kept.")
    ] = 10,
    min_frequency: Annotated[
        float, typer.Option("--min-frequency", help="Minimum ALT frequency of the PCA SNPs.")
    ] = 0.05,
    replace: Annotated[
        bool, typer.Option("--replace", help="Replace a panel of the same name.")
    ] = False,
) -> None:
    """Load a reference panel: per-population allele frequencies and a PCA model.

    The panel's samples are not participants: they are not in any participant
    query, consent rule or research table.
    """
    from biobank.genomes.panels import load_panel

    with open_store(ctx) as store:
        principal = acting_principal(ctx, store)
        report = load_panel(
            store,
            vcfs,
            populations=populations,
            name=name,
            principal=principal,
            description=description,
            n_components=n_components,
            min_frequency=min_frequency,
            replace=replace,
        )
    pops = ", ".join(f"{k} {v}" for k, v in report.populations.items())
    typer.echo(
        f"loaded panel {report.name}: {report.n_samples} samples ({pops}), "
        f"{report.n_variants} variants, PCA on {report.n_pca_snps} SNPs "
        f"({report.n_components} components)"
    )


@panel_app.command("list")
def panel_list(ctx: typer.Context, fmt: FormatOption = OutputFormat.TABLE) -> None:
    """List the loaded reference panels."""
    from biobank.genomes.panels import list_panels

    with open_store(ctx, read_only=True) as store:
        df = list_panels(store.con)
    emit(df.drop("loaded_at"), fmt)


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root app."""
    app.add_typer(panel_app, name="panel")
