"""Family commands (:mod:`biobank.registry.pedigree`, :mod:`biobank.families`): ``biobank family``.

Registry staff import pedigrees (PED files with resident identity numbers) and HPO
terms, and run the pedigree checks; analyses (``mendel``, ``relatedness``,
``candidates``, ``phenopacket``) act as the mapped user, with ``--purpose`` for
researchers. Every command prints a table (``--format table|tsv|csv|json``).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from biobank.cli._common import (
    FormatOption,
    OutputFormat,
    PurposeOption,
    acting_principal,
    emit,
    open_store,
)

if TYPE_CHECKING:
    from biobank.families.evidence import ReadEvidence

__all__ = ["register"]

family_app = typer.Typer(
    help="Families: pedigrees, HPO phenotypes, checks against the genomes, candidates.",
    no_args_is_help=True,
)

FamilyOption = Annotated[
    list[str] | None, typer.Option("--family", help="Family id (repeatable; default: all).")
]


@family_app.command("import-ped")
def import_ped_cmd(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(help="PED file (people named by resident ID).")],
    phenotype: Annotated[
        str | None,
        typer.Option(
            "--phenotype",
            help="HPO term or ICD-10 code: column 6 is the affected status for it.",
        ),
    ] = None,
    fmt: FormatOption = OutputFormat.TABLE,
) -> None:
    """Register the families of a PED file, all or nothing."""
    from biobank.registry.pedigree import import_pedigree

    with open_store(ctx) as store:
        result = import_pedigree(store, acting_principal(ctx, store), path, phenotype=phenotype)
    emit(result.as_dict(), fmt)


@family_app.command("set-affected")
def set_affected_cmd(
    ctx: typer.Context,
    family: Annotated[str, typer.Argument(help="Family id.")],
    participant: Annotated[str, typer.Argument(help="Member: pseudonym or resident ID.")],
    phenotype: Annotated[str, typer.Argument(help="HPO term (HP:0001250) or ICD-10 code.")],
    status: Annotated[str, typer.Argument(help="affected, unaffected or unknown.")],
) -> None:
    """Register a member's affected status for one phenotype."""
    from biobank.registry.affected import set_affected

    with open_store(ctx) as store:
        done = set_affected(
            store, acting_principal(ctx, store), family, participant, phenotype, status
        )
    typer.echo(f"{family}: {phenotype} {status} ({done})")


@family_app.command("affected")
def affected_cmd(
    ctx: typer.Context,
    family: Annotated[str | None, typer.Argument(help="Family id (default: all).")] = None,
    purpose: PurposeOption = None,
    fmt: FormatOption = OutputFormat.TABLE,
) -> None:
    """List the per-phenotype affected statuses of family members."""
    from biobank.registry.affected import affected_statuses

    with open_store(ctx) as store:
        df = affected_statuses(
            store, acting_principal(ctx, store, purpose=purpose), family_id=family
        )
    emit(df, fmt)


@family_app.command("members")
def members_cmd(
    ctx: typer.Context,
    family: FamilyOption = None,
    purpose: PurposeOption = None,
    fmt: FormatOption = OutputFormat.TABLE,
) -> None:
    """List family members (pseudonyms, parents, sex, affected status)."""
    from biobank.registry.pedigree import family_members

    with open_store(ctx) as store:
        df = family_members(store, acting_principal(ctx, store, purpose=purpose), families=family)
    emit(df, fmt)


@family_app.command("import-hpo")
def import_hpo_cmd(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(help="TSV: national_id, hpo_id[, observed].")],
    fmt: FormatOption = OutputFormat.TABLE,
) -> None:
    """Register HPO phenotypes from a TSV file, all or nothing."""
    from biobank.registry.phenotypes import import_phenotypes

    with open_store(ctx) as store:
        created = import_phenotypes(store, acting_principal(ctx, store), path)
    emit({"source": str(path), "created": created}, fmt)


@family_app.command("add-hpo")
def add_hpo_cmd(
    ctx: typer.Context,
    participant: Annotated[str, typer.Argument(help="Participant pseudonym (P-...).")],
    terms: Annotated[list[str], typer.Argument(help="HPO terms, e.g. HP:0001394.")],
    excluded: Annotated[
        bool, typer.Option("--excluded", help="The phenotypes are absent.")
    ] = False,
    fmt: FormatOption = OutputFormat.TABLE,
) -> None:
    """Register HPO terms of one participant."""
    from biobank.registry.phenotypes import add_phenotypes

    with open_store(ctx) as store:
        created = add_phenotypes(
            store, acting_principal(ctx, store), participant, terms, observed=not excluded
        )
    emit({"participant_id": participant, "created": created}, fmt)


@family_app.command("map-icd10")
def map_icd10_cmd(ctx: typer.Context, fmt: FormatOption = OutputFormat.TABLE) -> None:
    """Add HPO terms for clinical diagnoses with a curated ICD-10 mapping."""
    from biobank.registry.phenotypes import map_icd10_phenotypes

    with open_store(ctx) as store:
        created = map_icd10_phenotypes(store, acting_principal(ctx, store))
    emit({"created": created}, fmt)


@family_app.command("check")
def check_cmd(
    ctx: typer.Context, family: FamilyOption = None, fmt: FormatOption = OutputFormat.TABLE
) -> None:
    """Check pedigrees against the genomes (Mendel, relatedness, sex); store the results.

    The results go to ``family_check`` and, summarised per sample, to the sample QC
    table (``sample_qc.family_check``; a failed check fails the sample's ``qc_pass``).
    """
    from biobank.families.checks import run_family_checks

    with open_store(ctx) as store:
        summary = run_family_checks(store, acting_principal(ctx, store), families=family)
    emit(summary.as_dict(), fmt)


@family_app.command("mendel")
def mendel_cmd(
    ctx: typer.Context,
    family: FamilyOption = None,
    purpose: PurposeOption = None,
    per_variant: Annotated[bool, typer.Option("--per-variant", help="Errors per variant.")] = False,
    fmt: FormatOption = OutputFormat.TABLE,
) -> None:
    """Mendelian error counts per trio (or per variant)."""
    from biobank.families.mendel import mendel_errors

    with open_store(ctx) as store:
        report = mendel_errors(
            store.con, principal=acting_principal(ctx, store, purpose=purpose), families=family
        )
    emit(report.variants if per_variant else report.trios, fmt)


@family_app.command("relatedness")
def relatedness_cmd(
    ctx: typer.Context,
    family: FamilyOption = None,
    purpose: PurposeOption = None,
    all_pairs: Annotated[
        bool, typer.Option("--all-pairs", help="Every pair of members, across families.")
    ] = False,
    fmt: FormatOption = OutputFormat.TABLE,
) -> None:
    """KING kinship of member pairs against the registered relationships."""
    from biobank.families.relatedness import check_relatedness

    with open_store(ctx) as store:
        df = check_relatedness(
            store.con,
            principal=acting_principal(ctx, store, purpose=purpose),
            families=family,
            scope="all" if all_pairs else "within",
        )
    emit(df.drop("participant_1", "participant_2"), fmt)


NoReadsOption = Annotated[
    bool,
    typer.Option(
        "--no-read-evidence",
        help="Do not read the trio's AD/DP/GQ from the loaded VCF for de novo calls.",
    ),
]
SourcePathOption = Annotated[
    list[str] | None,
    typer.Option(
        "--source-path",
        help="OLD=NEW: read a source VCF loaded from OLD/... at NEW/... (repeatable).",
    ),
]


def read_evidence_of(
    no_read_evidence: bool,
    source_path: list[str] | None,
    *,
    keep_failing: bool = False,
    min_allele_balance: float | None = None,
    max_parent_alt_reads: int | None = None,
) -> ReadEvidence | None:
    """The :class:`~biobank.families.evidence.ReadEvidence` the options ask for."""
    from dataclasses import replace

    from biobank.families.evidence import ReadEvidence, ReadFilter

    if no_read_evidence:
        return None
    relocate = {}
    for item in source_path or []:
        old, sep, new = item.partition("=")
        if not sep or not old or not new:
            raise typer.BadParameter(f"{item!r}: give OLD=NEW", param_hint="--source-path")
        relocate[old] = new
    rf = ReadFilter()
    if min_allele_balance is not None:
        rf = replace(rf, min_child_allele_balance=min_allele_balance)
    if max_parent_alt_reads is not None:
        rf = replace(rf, max_parent_alt_reads=max_parent_alt_reads)
    return ReadEvidence(read_filter=rf, relocate=relocate, keep_failing=keep_failing)


@family_app.command("candidates")
def candidates_cmd(
    ctx: typer.Context,
    family: FamilyOption = None,
    purpose: PurposeOption = None,
    mode: Annotated[
        list[str] | None,
        typer.Option("--mode", help="de_novo, recessive, compound_het, x_linked, dominant."),
    ] = None,
    max_control_frequency: Annotated[float, typer.Option(help="In the controls.")] = 0.01,
    min_depth: Annotated[int, typer.Option(help="DP of the calls used.")] = 10,
    min_quality: Annotated[int, typer.Option(help="GQ of the calls used.")] = 20,
    no_read_evidence: NoReadsOption = False,
    source_path: SourcePathOption = None,
    keep_read_failures: Annotated[
        bool,
        typer.Option(help="Keep de novo calls that fail the read filter (read_evidence=fail)."),
    ] = False,
    min_allele_balance: Annotated[
        float, typer.Option(help="De novo: the child's ALT reads / all reads at least.")
    ] = 0.2,
    max_parent_alt_reads: Annotated[
        int, typer.Option(help="De novo: ALT reads of each parent at most.")
    ] = 1,
    phenotype: Annotated[
        str | None,
        typer.Option(help="HPO term or ICD-10 code: who is affected, for that phenotype."),
    ] = None,
    fmt: FormatOption = OutputFormat.TABLE,
) -> None:
    """Candidate variants of affected members, ranked by HPO similarity to the gene."""
    from biobank.families.inheritance import CandidateFilter
    from biobank.families.ranking import rank_families

    cf = CandidateFilter(
        max_control_frequency=max_control_frequency, min_depth=min_depth, min_quality=min_quality
    )
    evidence = read_evidence_of(
        no_read_evidence,
        source_path,
        keep_failing=keep_read_failures,
        min_allele_balance=min_allele_balance,
        max_parent_alt_reads=max_parent_alt_reads,
    )
    with open_store(ctx) as store:
        principal = acting_principal(ctx, store, purpose=purpose)
        if mode:
            from biobank.families.inheritance import find_candidates
            from biobank.families.ranking import rank_candidates
            from biobank.registry.phenotypes import participant_phenotypes

            with store.transaction() as con:
                cands = find_candidates(
                    con,
                    principal=principal,
                    families=family,
                    modes=mode,
                    candidate_filter=cf,
                    read_evidence=evidence,
                    phenotype=phenotype,
                )
            pheno = participant_phenotypes(store, principal, cands["proband_id"].unique().to_list())
            df = rank_candidates(cands, pheno)
        else:
            df = rank_families(
                store,
                principal,
                families=family,
                candidate_filter=cf,
                read_evidence=evidence,
                phenotype=phenotype,
            )
    emit(
        df,
        fmt,
        columns=[
            "family_id", "proband_sample", "rank", "mode", "variant_contig", "variant_position",
            "variant_ref", "variant_alt", "variant_gene", "variant_consequence",
            "control_frequency", "call_proband", "call_father", "call_mother",
            "child_allele_balance", "read_evidence", "score",
        ],
    )  # fmt: skip


@family_app.command("phenopacket")
def phenopacket_cmd(
    ctx: typer.Context,
    family: Annotated[str, typer.Argument(help="Family id.")],
    output: Annotated[
        Path | None, typer.Option("--out", "--output", "-o", help="JSON file.")
    ] = None,
    request: Annotated[
        int | None,
        typer.Option(
            "--request",
            help="Approved data access request: export for its project, with its pseudonyms.",
        ),
    ] = None,
    purpose: PurposeOption = None,
    top: Annotated[int, typer.Option(help="Candidates per proband.")] = 5,
    no_read_evidence: NoReadsOption = False,
    source_path: SourcePathOption = None,
    phenotypes: Annotated[
        bool, typer.Option("--phenotypes/--no-phenotypes", help="Carry the HPO terms.")
    ] = True,
    variants: Annotated[
        bool, typer.Option("--variants/--no-variants", help="Carry the candidate variants.")
    ] = True,
) -> None:
    """Export a family as a GA4GH Phenopacket (Family message, JSON).

    With --request the applicant exports under an approved data access request:
    every id is the project's pseudonym, only members the request covers are in
    it (see biobank.research.family_exports). Without it, staff export with the
    store's pseudonyms.
    """
    from biobank.families.phenopacket import family_phenopacket, to_json

    if request is None:
        if not (phenotypes and variants):
            raise typer.BadParameter("--no-phenotypes and --no-variants need --request")
        evidence = read_evidence_of(no_read_evidence, source_path)
        with open_store(ctx) as store:
            message = family_phenopacket(
                store,
                acting_principal(ctx, store, purpose=purpose),
                family,
                purpose=purpose,
                top=top,
                read_evidence=evidence,
            )
    else:
        from biobank.research.family_exports import (
            project_phenopacket,
            write_project_phenopacket,
        )

        if purpose is not None:
            raise typer.BadParameter("--purpose comes from the request: leave it out")
        with open_store(ctx) as store:
            principal = acting_principal(ctx, store)
            if output is not None:
                packet = write_project_phenopacket(
                    store,
                    principal,
                    family,
                    request,
                    output,
                    phenotypes=phenotypes,
                    variants=variants,
                    top=top,
                )
                typer.echo(
                    f"wrote {output} (family {packet.family_pseudonym}, {packet.members}"
                    f" members, {packet.left_out} left out, {packet.candidates} candidates)"
                )
                return
            message = project_phenopacket(
                store, principal, family, request, phenotypes=phenotypes, variants=variants, top=top
            ).message
    text = to_json(message)
    if output is None:
        typer.echo(text)
    else:
        output.write_text(text + "\n", encoding="utf-8")
        typer.echo(f"wrote {output}")


def register(app: typer.Typer) -> None:
    """Add ``family`` to the root command."""
    app.add_typer(family_app, name="family")
