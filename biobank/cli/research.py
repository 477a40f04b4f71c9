"""Research query commands (:mod:`biobank.research`): ``query``.

Research commands act as ``--user`` (a researcher) for ``--purpose`` (env
``BIOBANK_PURPOSE``) through :func:`biobank.open`, so consent, role checks,
auditing and small-count suppression are the library's; each prints a table
(``--format table``: the main columns, formatted; ``tsv|csv|json``: all).
"""

from __future__ import annotations

from typing import Annotated

import typer

from biobank.cli._common import (
    FormatOption,
    OutputFormat,
    ResearchPurposeOption,
    emit,
    open_workbench,
)

__all__ = ["ASSOC_COLUMNS", "FREQ_COLUMNS", "LINEAR_COLUMNS", "register"]

#: Columns of ``query assoc`` that the table shows, most important first (the
#: p-values of the tests run; a test not run has an all-null column, not shown).
ASSOC_COLUMNS = (
    "variant",
    "variant_gene",
    "variant_p_value",
    "variant_lrt_p_value",
    "variant_score_p_value",
    "variant_fisher_p_value",
    "variant_beta",
    "variant_case_alt_count",
    "variant_control_alt_count",
    "variant_firth",
    "variant_id",
    "variant_consequence",
)
#: Columns of ``query linear`` that the table shows.
LINEAR_COLUMNS = (
    "variant",
    "variant_gene",
    "variant_alt_count",
    "variant_n_obs",
    "variant_beta",
    "variant_standard_error",
    "variant_p_value",
    "variant_id",
    "variant_consequence",
)
#: Columns of ``query freq`` that the table shows.
FREQ_COLUMNS = (
    "variant",
    "variant_gene",
    "variant_n_samples",
    "variant_alt_allele_count",
    "variant_alt_allele_frequency",
    "variant_call_rate",
    "variant_hwe_p_value",
    "variant_id",
    "variant_consequence",
)

query_app = typer.Typer(
    help="Research queries over consented participants (researchers).", no_args_is_help=True
)

CohortOption = Annotated[
    str | None, typer.Option("--cohort", help="A saved cohort (default: everyone permitted).")
]
RegionOption = Annotated[
    str | None, typer.Option("--region", help="contig, contig:pos or contig:start-end (1-based).")
]
GeneOption = Annotated[list[str] | None, typer.Option("--gene", help="Gene name (repeatable).")]
VariantOption = Annotated[
    list[str] | None, typer.Option("--variant", help="Variant ID, e.g. rs123 (repeatable).")
]


@query_app.command("carriers")
def query_carriers(
    ctx: typer.Context,
    purpose: ResearchPurposeOption,
    cohort: CohortOption = None,
    region: RegionOption = None,
    gene: GeneOption = None,
    variant: VariantOption = None,
    fmt: FormatOption = OutputFormat.TABLE,
) -> None:
    """Carriers of variants with their age, sex and diagnoses (audited)."""
    with open_workbench(ctx, purpose) as wb:
        df = wb.carriers(cohort, region=region, genes=gene, variant_ids=variant)
    emit(df.with_columns(df["diagnoses"].list.join(";")), fmt)


@query_app.command("freq")
def query_freq(
    ctx: typer.Context,
    purpose: ResearchPurposeOption,
    cohort: CohortOption = None,
    region: RegionOption = None,
    gene: GeneOption = None,
    variant: VariantOption = None,
    fmt: FormatOption = OutputFormat.TABLE,
) -> None:
    """Allele and genotype counts, frequency, call rate and HWE p per variant."""
    with open_workbench(ctx, purpose) as wb:
        df = wb.frequencies(cohort, region=region, genes=gene, variant_ids=variant)
    emit(df, fmt, columns=FREQ_COLUMNS)


@query_app.command("assoc")
def query_assoc(
    ctx: typer.Context,
    purpose: ResearchPurposeOption,
    cases: Annotated[str, typer.Option(help="Saved cohort of cases.")],
    controls: Annotated[
        str | None, typer.Option(help="Saved cohort to draw controls from (default: all).")
    ] = None,
    region: RegionOption = None,
    gene: GeneOption = None,
    variant: VariantOption = None,
    covariate: Annotated[
        list[str] | None, typer.Option("--covariate", help="age and/or male (default both).")
    ] = None,
    pcs: Annotated[int, typer.Option(help="Principal components as covariates.")] = 0,
    burden: Annotated[
        bool, typer.Option("--burden", help="Gene burden test of rare damaging variants.")
    ] = False,
    test: Annotated[
        list[str] | None,
        typer.Option(
            "--test",
            help="fisher, logistic (Wald), lrt (likelihood ratio), score (Rao); repeatable "
            "(default: fisher and logistic).",
        ),
    ] = None,
    fmt: FormatOption = OutputFormat.TABLE,
) -> None:
    """Case/control association (Fisher; logistic regression: Wald, LRT, score) or burden."""
    covs = tuple(covariate) if covariate is not None else ("age", "male")
    with open_workbench(ctx, purpose) as wb:
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
                tests=tuple(test) if test else ("fisher", "logistic"),
            )
    emit(df, fmt, columns=None if burden else ASSOC_COLUMNS)


@query_app.command("linear")
def query_linear(
    ctx: typer.Context,
    purpose: ResearchPurposeOption,
    measurement: Annotated[
        str, typer.Option(help="Clinical measurement as the trait, e.g. HbA1c or LDL-C.")
    ],
    cohort: CohortOption = None,
    rule: Annotated[
        str, typer.Option(help="latest (value of the latest date) or mean (of all values).")
    ] = "latest",
    region: RegionOption = None,
    gene: GeneOption = None,
    variant: VariantOption = None,
    covariate: Annotated[
        list[str] | None, typer.Option("--covariate", help="age and/or male (default both).")
    ] = None,
    pcs: Annotated[int, typer.Option(help="Principal components as covariates.")] = 0,
    fmt: FormatOption = OutputFormat.TABLE,
) -> None:
    """Linear regression of a measurement on ALT dosage per variant (as plink2 --glm)."""
    covs = tuple(covariate) if covariate is not None else ("age", "male")
    with open_workbench(ctx, purpose) as wb:
        df = wb.linear(
            measurement,
            cohort,
            rule=rule,
            region=region,
            genes=gene,
            variant_ids=variant,
            covariates=covs,
            n_pcs=pcs,
        )
    emit(df, fmt, columns=LINEAR_COLUMNS)


@query_app.command("survival")
def query_survival(
    ctx: typer.Context,
    purpose: ResearchPurposeOption,
    cohort: Annotated[str, typer.Option(help="Saved cohort.")],
    variant: Annotated[str, typer.Option(help="Variant ID or contig:pos; groups by dosage.")],
    origin: Annotated[str, typer.Option(help="diagnosis or enrolment.")] = "diagnosis",
    code: Annotated[
        list[str] | None, typer.Option("--code", help="Diagnosis codes of the origin.")
    ] = None,
    km: Annotated[bool, typer.Option("--km", help="Print the Kaplan-Meier table.")] = False,
    fmt: FormatOption = OutputFormat.TABLE,
) -> None:
    """Survival by genotype: Cox model (default) or Kaplan-Meier curves (--km)."""
    with open_workbench(ctx, purpose) as wb:
        result = wb.survival(cohort, variant=variant, origin=origin, codes=code)
    typer.echo(f"log-rank p = {result.logrank_p:.4g}", err=True)
    emit(result.km if km else result.cox, fmt)


@query_app.command("sql")
def query_sql(
    ctx: typer.Context,
    purpose: ResearchPurposeOption,
    sql: Annotated[str, typer.Argument(help="One SELECT over the research tables.")],
    fmt: FormatOption = OutputFormat.TABLE,
) -> None:
    """Run read-only SQL over the research tables of permitted participants (audited)."""
    with open_workbench(ctx, purpose) as wb:
        df = wb.sql(sql)
    emit(df, fmt)


def register(app: typer.Typer) -> None:
    """Add ``query`` to the root command."""
    app.add_typer(query_app, name="query")
