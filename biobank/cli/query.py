"""Clinical data and research query commands: ``load-clinical``, ``cohort``, ``query``.

Research commands act as ``--user`` (a researcher) for ``--purpose`` (env
``BIOBANK_PURPOSE``) through :func:`biobank.open`, so consent, role checks,
auditing and small-count suppression are the library's; each prints a table
(``--format table|csv|json``).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from biobank.cli._common import OutputFormat, acting_principal, emit, open_store, state

if TYPE_CHECKING:
    from biobank.clinical.cohorts import Criterion
    from biobank.research.workbench import Workbench

__all__ = ["register"]

cohort_app = typer.Typer(help="Define, list and show saved cohorts.", no_args_is_help=True)
query_app = typer.Typer(
    help="Research queries over consented participants (researchers).", no_args_is_help=True
)

FormatOpt = Annotated[OutputFormat, typer.Option("--format", "-f", help="Output format.")]
PurposeOpt = Annotated[
    str,
    typer.Option(
        "--purpose",
        envvar="BIOBANK_PURPOSE",
        help="Research purpose matched against consents: GRU, HMB, POA or DS:<ICD-10>.",
    ),
]
CohortOpt = Annotated[
    str | None, typer.Option("--cohort", help="A saved cohort (default: everyone permitted).")
]
RegionOpt = Annotated[
    str | None, typer.Option("--region", help="contig, contig:pos or contig:start-end (1-based).")
]
GeneOpt = Annotated[list[str] | None, typer.Option("--gene", help="Gene name (repeatable).")]
VariantOpt = Annotated[
    list[str] | None, typer.Option("--variant", help="Variant ID, e.g. rs123 (repeatable).")
]


def _open(ctx: typer.Context, purpose: str) -> Workbench:
    import biobank

    s = state(ctx)
    assert s.user is not None
    return biobank.open(s.store, user=s.user, purpose=purpose)


def load_clinical_cmd(
    ctx: typer.Context,
    directory: Annotated[
        Path, typer.Argument(help="Folder with person.csv, condition_occurrence.csv, ...")
    ],
    fmt: FormatOpt = OutputFormat.TABLE,
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
    purpose: PurposeOpt,
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
    fmt: FormatOpt = OutputFormat.TABLE,
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
    with _open(ctx, purpose) as wb:
        wb.define_cohort(name, crit, description=description, replace=replace)
        size = wb.count(name)
    emit(
        {"name": name, "participants": size, "definition": crit.to_json()},
        fmt,
    )


@cohort_app.command("list")
def cohort_list(
    ctx: typer.Context, purpose: PurposeOpt, fmt: FormatOpt = OutputFormat.TABLE
) -> None:
    """List the saved cohort definitions."""
    with _open(ctx, purpose) as wb:
        emit(wb.cohorts(), fmt)


@cohort_app.command("show")
def cohort_show(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The saved cohort.")],
    purpose: PurposeOpt,
    members: Annotated[
        bool, typer.Option("--members", help="List the members (audited) instead of counts.")
    ] = False,
    fmt: FormatOpt = OutputFormat.TABLE,
) -> None:
    """Show a cohort: counts by sex and age band (small counts suppressed), or its members."""
    with _open(ctx, purpose) as wb:
        if members:
            df = wb.cohort(name)
            emit(df.with_columns(df["diagnoses"].list.join(";")), fmt)
        else:
            typer.echo(f"{name}: {wb.cohort_definition(name).to_json()}", err=True)
            emit(wb.summary(name), fmt)


@query_app.command("carriers")
def query_carriers(
    ctx: typer.Context,
    purpose: PurposeOpt,
    cohort: CohortOpt = None,
    region: RegionOpt = None,
    gene: GeneOpt = None,
    variant: VariantOpt = None,
    fmt: FormatOpt = OutputFormat.TABLE,
) -> None:
    """Carriers of variants with their age, sex and diagnoses (audited)."""
    with _open(ctx, purpose) as wb:
        df = wb.carriers(cohort, region=region, genes=gene, variant_ids=variant)
    emit(df.with_columns(df["diagnoses"].list.join(";")), fmt)


@query_app.command("freq")
def query_freq(
    ctx: typer.Context,
    purpose: PurposeOpt,
    cohort: CohortOpt = None,
    region: RegionOpt = None,
    gene: GeneOpt = None,
    variant: VariantOpt = None,
    fmt: FormatOpt = OutputFormat.TABLE,
) -> None:
    """Allele and genotype counts, frequency, call rate and HWE p per variant."""
    with _open(ctx, purpose) as wb:
        emit(wb.frequencies(cohort, region=region, genes=gene, variant_ids=variant), fmt)


@query_app.command("assoc")
def query_assoc(
    ctx: typer.Context,
    purpose: PurposeOpt,
    cases: Annotated[str, typer.Option(help="Saved cohort of cases.")],
    controls: Annotated[
        str | None, typer.Option(help="Saved cohort to draw controls from (default: all).")
    ] = None,
    region: RegionOpt = None,
    gene: GeneOpt = None,
    variant: VariantOpt = None,
    covariate: Annotated[
        list[str] | None, typer.Option("--covariate", help="age and/or male (default both).")
    ] = None,
    pcs: Annotated[int, typer.Option(help="Principal components as covariates.")] = 0,
    burden: Annotated[
        bool, typer.Option("--burden", help="Gene burden test of rare damaging variants.")
    ] = False,
    fmt: FormatOpt = OutputFormat.TABLE,
) -> None:
    """Case/control association (Fisher and logistic regression) or gene burden."""
    covs = tuple(covariate) if covariate is not None else ("age", "male")
    with _open(ctx, purpose) as wb:
        if burden:
            df = wb.burden(cases, controls, genes=gene, covariates=covs)
        else:
            df = wb.association(
                cases,
                controls,
                region=region,
                genes=gene,
                variant_ids=variant,
                covariates=covs,
                n_pcs=pcs,
            )
    emit(df, fmt)


@query_app.command("survival")
def query_survival(
    ctx: typer.Context,
    purpose: PurposeOpt,
    cohort: Annotated[str, typer.Option(help="Saved cohort.")],
    variant: Annotated[str, typer.Option(help="Variant ID or contig:pos; groups by dosage.")],
    origin: Annotated[str, typer.Option(help="diagnosis or enrolment.")] = "diagnosis",
    code: Annotated[
        list[str] | None, typer.Option("--code", help="Diagnosis codes of the origin.")
    ] = None,
    km: Annotated[bool, typer.Option("--km", help="Print the Kaplan-Meier table.")] = False,
    fmt: FormatOpt = OutputFormat.TABLE,
) -> None:
    """Survival by genotype: Cox model (default) or Kaplan-Meier curves (--km)."""
    with _open(ctx, purpose) as wb:
        result = wb.survival(cohort, variant=variant, origin=origin, codes=code)
    typer.echo(f"log-rank p = {result.logrank_p:.4g}", err=True)
    emit(result.km if km else result.cox, fmt)


@query_app.command("sql")
def query_sql(
    ctx: typer.Context,
    purpose: PurposeOpt,
    sql: Annotated[str, typer.Argument(help="One SELECT over the research tables.")],
    fmt: FormatOpt = OutputFormat.TABLE,
) -> None:
    """Run read-only SQL over the research tables of permitted participants (audited)."""
    with _open(ctx, purpose) as wb:
        df = wb.sql(sql)
    emit(df, fmt)


def register(app: typer.Typer) -> None:
    """Add ``load-clinical``, ``cohort`` and ``query`` to the root command."""
    app.command("load-clinical")(load_clinical_cmd)
    app.add_typer(cohort_app, name="cohort")
    app.add_typer(query_app, name="query")
