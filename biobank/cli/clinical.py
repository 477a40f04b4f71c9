"""Clinical commands (:mod:`biobank.clinical`): ``load-clinical`` and ``cohort``.

``cohort`` acts as ``--user`` (a researcher) for ``--purpose`` (env
``BIOBANK_PURPOSE``) through :func:`biobank.open`, like the research queries
(:mod:`biobank.cli.research`); each command prints a table
(``--format table|csv|json``).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from biobank.cli._common import (
    FormatOption,
    OutputFormat,
    ResearchPurposeOption,
    acting_principal,
    emit,
    open_store,
    open_workbench,
)

if TYPE_CHECKING:
    from biobank.clinical.cohorts import Criterion

__all__ = ["register"]

cohort_app = typer.Typer(help="Define, list and show saved cohorts.", no_args_is_help=True)


def load_clinical_cmd(
    ctx: typer.Context,
    directory: Annotated[
        Path, typer.Argument(help="Folder with person.csv, condition_occurrence.csv, ...")
    ],
    fmt: FormatOption = OutputFormat.TABLE,
) -> None:
    """Load OMOP-style clinical CSVs for registered participants, all or nothing."""
    from dataclasses import asdict

    from biobank.clinical.load import load_clinical

    with open_store(ctx) as store:
        result = load_clinical(store, directory, principal=acting_principal(ctx, store))
    emit(asdict(result), fmt)


@cohort_app.command("define")
def cohort_define(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Name of the cohort.")],
    purpose: ResearchPurposeOption,
    diagnosis: Annotated[
        list[str] | None,
        typer.Option("--diagnosis", help="ICD-10 code or range, e.g. E11 or I20-I25 (any of)."),
    ] = None,
    exclude_diagnosis: Annotated[
        list[str] | None, typer.Option("--exclude-diagnosis", help="Exclude these codes.")
    ] = None,
    diagnosed_after: Annotated[str | None, typer.Option(help="YYYY-MM-DD")] = None,
    diagnosed_before: Annotated[str | None, typer.Option(help="YYYY-MM-DD")] = None,
    sex: Annotated[str | None, typer.Option(help="female or male")] = None,
    min_age: Annotated[int | None, typer.Option(help="Minimum age at --age-at.")] = None,
    max_age: Annotated[int | None, typer.Option(help="Maximum age at --age-at.")] = None,
    age_at: Annotated[str | None, typer.Option(help="Date for ages (default today).")] = None,
    lab: Annotated[
        list[str] | None, typer.Option("--lab", help="Threshold like 'HbA1c>=6.5' (repeatable).")
    ] = None,
    latest: Annotated[
        bool, typer.Option("--latest", help="Lab thresholds apply to the latest value.")
    ] = False,
    died: Annotated[
        bool | None, typer.Option("--died/--alive", help="Only deceased / living.")
    ] = None,
    study: Annotated[
        list[str] | None, typer.Option("--study", help="Registry study cohort, e.g. T2D.")
    ] = None,
    definition: Annotated[
        str | None,
        typer.Option("--json", help="A full JSON definition (text or @file) instead of options."),
    ] = None,
    description: Annotated[str, typer.Option(help="What the cohort is.")] = "",
    replace: Annotated[bool, typer.Option(help="Replace a cohort of that name.")] = False,
    fmt: FormatOption = OutputFormat.TABLE,
) -> None:
    """Save a cohort definition (options are combined with AND) and print its size."""
    from biobank.clinical.cohorts import Criterion, criterion_from_options
    from biobank.core.errors import ValidationError

    crit: Criterion | None
    if definition is not None:
        text = Path(definition[1:]).read_text() if definition.startswith("@") else definition
        crit = Criterion.from_json(text)
    else:
        crit = criterion_from_options(
            diagnoses=diagnosis or (),
            exclude_diagnoses=exclude_diagnosis or (),
            diagnosed_after=diagnosed_after,
            diagnosed_before=diagnosed_before,
            sex=sex,
            min_age=min_age,
            max_age=max_age,
            age_at=age_at,
            labs=lab or (),
            lab_which="latest" if latest else "any",
            died=died,
            studies=study or (),
        )
    if crit is None:
        raise ValidationError("give at least one criterion option or --json", field="criteria")
    with open_workbench(ctx, purpose) as wb:
        wb.define_cohort(name, crit, description=description, replace=replace)
        release = wb.count_release(name)
    emit(
        {
            "name": name,
            "participants": release.n,
            "withheld": release.withheld,
            "definition": crit.to_json(),
        },
        fmt,
    )


@cohort_app.command("list")
def cohort_list(
    ctx: typer.Context, purpose: ResearchPurposeOption, fmt: FormatOption = OutputFormat.TABLE
) -> None:
    """List the saved cohort definitions."""
    with open_workbench(ctx, purpose) as wb:
        emit(wb.cohorts(), fmt)


@cohort_app.command("show")
def cohort_show(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The saved cohort.")],
    purpose: ResearchPurposeOption,
    members: Annotated[
        bool, typer.Option("--members", help="List the members (audited) instead of counts.")
    ] = False,
    fmt: FormatOption = OutputFormat.TABLE,
) -> None:
    """Show a cohort: counts by sex and age band (small counts suppressed), or its members."""
    with open_workbench(ctx, purpose) as wb:
        if members:
            df = wb.cohort(name)
            emit(df.with_columns(df["diagnoses"].list.join(";")), fmt)
        else:
            typer.echo(f"{name}: {wb.cohort_definition(name).to_json()}", err=True)
            emit(wb.summary(name), fmt)


def register(app: typer.Typer) -> None:
    """Add ``load-clinical`` and ``cohort`` to the root command."""
    app.command("load-clinical")(load_clinical_cmd)
    app.add_typer(cohort_app, name="cohort")
