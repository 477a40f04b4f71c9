"""The ``biobank demo`` command: the main job end to end on the demo center."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

__all__ = ["register"]


def demo(
    directory: Annotated[Path, typer.Argument(help="Demo folder (generated if missing).")] = Path(
        "demo"
    ),
    preset: Annotated[str, typer.Option(help="Generator preset: demo or tiny.")] = "demo",
    seed: Annotated[int, typer.Option(help="Generator seed.")] = 42,
    cores: Annotated[int, typer.Option("--cores", "-c", help="Cores for the workflow.")] = 2,
) -> None:
    """Run the main job on the demo center: registry -> workflow -> store -> cohort query."""
    import polars as pl

    from biobank.pipeline import run_demo

    result = run_demo(
        directory, preset=preset, seed=seed, cores=cores, on_step=lambda s: typer.echo(s)
    )
    with pl.Config(tbl_rows=20, tbl_cols=14, fmt_str_lengths=40, tbl_width_chars=160):
        if result.accuracy is not None:
            typer.echo("\nWorkflow calls against the simulated truth:")
            typer.echo(str(result.accuracy))
        if result.association is not None:
            typer.echo("\nType 2 diabetes (E11) cases vs controls, strongest associations:")
            typer.echo(str(result.association))
    typer.echo(f"\nstore: {result.store}  (open it with biobank.open(...) in notebooks/)")


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root app."""
    app.command("demo")(demo)
