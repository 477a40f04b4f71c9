"""``biobank demo-data``: write a deterministic demo center folder."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

__all__ = ["demo_data", "register"]


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


def register(app: typer.Typer) -> None:
    """Add the ``demo-data`` command to the root app."""
    app.command("demo-data")(demo_data)
