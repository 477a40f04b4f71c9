"""Demo commands: ``demo-data`` writes a deterministic demo center folder; ``demo`` runs
the main job on it end to end (:mod:`biobank.testing`, :mod:`biobank.pipeline`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from biobank.cli._common import render_table
from biobank.cli.sequencing import ACCURACY_COLUMNS, CALL_LABELS

__all__ = [
    "ACCURACY_COLUMNS",
    "ASSOCIATION_COLUMNS",
    "CALL_LABELS",
    "demo",
    "demo_data",
    "register",
]

#: Columns of the demo's association table, most important first.
ASSOCIATION_COLUMNS = (
    "variant",
    "variant_gene",
    "variant_case_alt_count",
    "variant_control_alt_count",
    "variant_fisher_p_value",
    "variant_beta",
    "variant_p_value",
    "variant_consequence",
)


def demo_data(
    out: Annotated[Path, typer.Argument(help="Output folder (created; must be empty).")],
    preset: Annotated[
        str,
        typer.Option(
            "--preset", help="Size: 'demo' (~1,000 participants, 6 sequenced) or 'tiny' (tests)."
        ),
    ] = "demo",
    seed: Annotated[int, typer.Option("--seed", min=1, help="Random seed.")] = 42,
    force: Annotated[
        bool, typer.Option("--force", help="Replace the demo files in a non-empty OUT.")
    ] = False,
) -> None:
    """Generate a simulated demo center: reference, population VCF, reads, registry, clinical."""
    from rich.console import Console

    from biobank.testing import generate_demo

    console = Console(stderr=True)
    with console.status("starting") as status:

        def on_step(text: str) -> None:
            console.log(text)
            status.update(text)

        manifest = generate_demo(out, seed=seed, preset=preset, force=force, on_step=on_step)
    counts = manifest.counts
    typer.echo(
        f"wrote {out}: {counts['participants']} participants, {counts['variant_sites']} variant "
        f"sites, {counts['sequenced_samples']} sequenced samples ({len(manifest.files)} files; "
        f"see {Path(out) / 'manifest.json'})"
    )


def demo(
    directory: Annotated[Path, typer.Argument(help="Demo folder (generated if missing).")] = Path(
        "demo"
    ),
    preset: Annotated[str, typer.Option(help="Generator preset: demo or tiny.")] = "demo",
    seed: Annotated[int, typer.Option(help="Generator seed.")] = 42,
    cores: Annotated[int, typer.Option("--cores", "-c", help="Cores for the workflow.")] = 2,
) -> None:
    """Run the main job on the demo center: registry -> workflow -> store -> cohort query."""
    from biobank.pipeline import run_demo

    result = run_demo(
        directory, preset=preset, seed=seed, cores=cores, on_step=lambda s: typer.echo(s)
    )
    if result.accuracy is not None:
        typer.echo("\nWorkflow calls against the simulated truth:")
        typer.echo(render_table(result.accuracy, columns=ACCURACY_COLUMNS, labels=CALL_LABELS))
    if result.association is not None:
        typer.echo("\nType 2 diabetes (E11) cases vs controls, strongest associations:")
        typer.echo(render_table(result.association, columns=ASSOCIATION_COLUMNS))
    typer.echo(f"\nstore: {result.store}  (open it with biobank.open(...) in notebooks/)")


def register(app: typer.Typer) -> None:
    """Add the ``demo-data`` and ``demo`` commands to the root app."""
    app.command("demo-data")(demo_data)
    app.command("demo")(demo)
