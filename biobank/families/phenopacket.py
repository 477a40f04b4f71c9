"""A family's case as a GA4GH Phenopacket ``Family`` message (schema v2, the ``phenopackets``
package).

:func:`family_phenopacket` builds the message: the proband's phenopacket (sex,
observed and excluded HPO terms, an interpretation listing the top-ranked
candidate variants with their VCF record, gene and allelic state), one
phenopacket per relative, the pedigree (PED semantics: father, mother, sex,
affected status) and the metadata (HPO release, who exported it, when).
Individuals are named by their store pseudonym: this export is for the
center's staff. A project's researchers export under an approved data access
request with per-project pseudonyms instead
(:func:`biobank.research.family_exports.project_phenopacket`); both build the
message with :func:`family_message`. :func:`to_json` and :func:`from_json` write and
read it as protobuf JSON; reading is strict (unknown fields or wrong types are
refused), so a round trip checks the message against the package's schema.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import polars as pl

from biobank.core import audit
from biobank.core.errors import NotFoundError, ValidationError
from biobank.families.evidence import ReadEvidence
from biobank.families.inheritance import DEFAULT_READ_EVIDENCE, CandidateFilter
from biobank.families.ranking import rank_families
from biobank.registry.pedigree import family_members
from biobank.registry.phenotypes import ontology, participant_phenotypes

if TYPE_CHECKING:
    from phenopackets import Family, Phenopacket

    from biobank.core.access import Principal
    from biobank.core.store import Store

__all__ = ["family_message", "family_phenopacket", "from_json", "to_json"]

_ALLELIC_STATE = {
    "0/1": ("GENO:0000135", "heterozygous"),
    "1/1": ("GENO:0000136", "homozygous"),
    "1": ("GENO:0000134", "hemizygous"),
}


def _individual(row: dict[str, Any]) -> Any:
    from phenopackets import Individual, Sex

    sex = {"male": Sex.MALE, "female": Sex.FEMALE}.get(row["sex"], Sex.UNKNOWN_SEX)
    return Individual(id=row["participant_id"], sex=sex)


def _features(pheno: pl.DataFrame, pid: str) -> list[Any]:
    from phenopackets import OntologyClass, PhenotypicFeature

    rows = pheno.filter(pl.col("participant_id") == pid).iter_rows(named=True)
    return [
        PhenotypicFeature(
            type=OntologyClass(id=r["hpo_id"], label=r["hpo_name"]), excluded=not r["observed"]
        )
        for r in rows
    ]


def _interpretation(proband: str, ranked: pl.DataFrame, assembly: str) -> Any:
    from phenopackets import (
        Diagnosis,
        GeneDescriptor,
        GenomicInterpretation,
        Interpretation,
        OntologyClass,
        VariantInterpretation,
        VariationDescriptor,
        VcfRecord,
    )

    genomic = []
    for r in ranked.filter(pl.col("proband_id") == proband).iter_rows(named=True):
        state = _ALLELIC_STATE.get(r["call_proband"])
        descriptor = VariationDescriptor(
            id=f"variant-{r['variant_key']}",
            label=f"{r['variant_gene'] or ''} {r['variant_consequence'] or ''} ({r['mode']}, "
            f"rank {r['rank']}, score {r['score']:.3f})".strip(),
            vcf_record=VcfRecord(
                genome_assembly=assembly,
                chrom=r["variant_contig"],
                pos=int(r["variant_position"]),
                ref=r["variant_ref"],
                alt=r["variant_alt"],
            ),
            allelic_state=OntologyClass(id=state[0], label=state[1]) if state else None,
        )
        if r["variant_gene"]:
            descriptor.gene_context.CopyFrom(
                GeneDescriptor(value_id=r["variant_gene"], symbol=r["variant_gene"])
            )
        genomic.append(
            GenomicInterpretation(
                subject_or_biosample_id=proband,
                interpretation_status=GenomicInterpretation.InterpretationStatus.CANDIDATE,
                variant_interpretation=VariantInterpretation(variation_descriptor=descriptor),
            )
        )
    return Interpretation(
        id=f"{proband}-candidates",
        progress_status=Interpretation.ProgressStatus.IN_PROGRESS,
        diagnosis=Diagnosis(
            disease=OntologyClass(id="MONDO:0000001", label="disease"),
            genomic_interpretations=genomic,
        ),
        summary="candidate variants ranked by biobank.families.ranking",
    )


def _meta(user: str) -> Any:
    from google.protobuf.timestamp_pb2 import Timestamp
    from phenopackets import MetaData, Resource

    created = Timestamp()
    created.FromDatetime(dt.datetime.now(dt.UTC).replace(tzinfo=None))
    version = str(getattr(ontology().metadata, "version", None) or "unknown")
    return MetaData(
        created=created,
        created_by=user,
        phenopacket_schema_version="2.0",
        resources=[
            Resource(
                id="hp",
                name="human phenotype ontology",
                url="http://purl.obolibrary.org/obo/hp.owl",
                version=version,
                namespace_prefix="HP",
                iri_prefix="http://purl.obolibrary.org/obo/HP_",
            ),
            Resource(
                id="geno",
                name="Genotype Ontology",
                url="http://purl.obolibrary.org/obo/geno.owl",
                version="unknown",
                namespace_prefix="GENO",
                iri_prefix="http://purl.obolibrary.org/obo/GENO_",
            ),
        ],
    )


def _pedigree(family_id: str, members: pl.DataFrame) -> Any:
    from phenopackets import Pedigree, Sex

    status = {
        "affected": Pedigree.Person.AffectedStatus.AFFECTED,
        "unaffected": Pedigree.Person.AffectedStatus.UNAFFECTED,
    }
    persons = [
        Pedigree.Person(
            family_id=family_id,
            individual_id=r["participant_id"],
            paternal_id=r["father_id"] or "0",
            maternal_id=r["mother_id"] or "0",
            sex={"male": Sex.MALE, "female": Sex.FEMALE}.get(r["sex"], Sex.UNKNOWN_SEX),
            affected_status=status.get(r["affected"], Pedigree.Person.AffectedStatus.MISSING),
        )
        for r in members.iter_rows(named=True)
    ]
    return Pedigree(persons=persons)


def family_message(
    family_id: str,
    members: pl.DataFrame,
    *,
    phenotypes: pl.DataFrame | None,
    ranked: pl.DataFrame | None,
    created_by: str,
    genome_assembly: str = "unknown",
    external_references: Sequence[tuple[str, str, str]] = (),
) -> Family:
    """Assemble the ``Family`` message from frames already read (and already restricted).

    This is the one place the message is built: :func:`family_phenopacket` calls it
    with store pseudonyms, :mod:`biobank.research.family_exports` with per-project
    pseudonyms (it renames the id columns before calling). Every id written comes
    from the frames' id columns and ``family_id``.

    Parameters
    ----------
    family_id
        Written as the family's id and in every pedigree person.
    members
        ``participant_id, father_id, mother_id, sex, birth_year, affected`` (a parent
        ``None`` is written as unknown, ``"0"``).
    phenotypes
        ``participant_id, hpo_id, hpo_name, observed`` (``None``: no phenotypic features).
    ranked
        Ranked candidates (:func:`biobank.families.ranking.rank_candidates` columns
        ``proband_id, rank, mode, score, call_proband`` and the ``variant_*``
        columns), already cut to the ones to export (``None``: no interpretation).
    created_by
        The metadata's ``created_by``.
    genome_assembly
        Written in each ``VcfRecord``.
    external_references
        ``(id, reference, description)`` triples added to the family's metadata.

    Raises
    ------
    NotFoundError
        If ``members`` has no affected member to be the proband.
    """
    from phenopackets import ExternalReference, Family, Phenopacket

    affected = members.filter(pl.col("affected") == "affected")
    if affected.is_empty():
        raise NotFoundError(f"family {family_id!r} has no affected member to export as proband")
    rows = {r["participant_id"]: r for r in members.iter_rows(named=True)}
    probands = (
        [p for p in ranked["proband_id"].unique(maintain_order=True).to_list() if p in rows]
        if ranked is not None
        else []
    )
    proband_id = (
        probands[0]
        if probands
        else affected.sort("birth_year", descending=True)["participant_id"][0]
    )

    def packet(row: dict[str, Any], *, with_candidates: bool) -> Phenopacket:
        pid = row["participant_id"]
        p = Phenopacket(
            id=f"{family_id}-{pid}",
            subject=_individual(row),
            phenotypic_features=_features(phenotypes, pid) if phenotypes is not None else [],
            meta_data=_meta(created_by),
        )
        if with_candidates and ranked is not None:
            p.interpretations.append(_interpretation(pid, ranked, genome_assembly))
        return p

    meta = _meta(created_by)
    for ref_id, reference, description in external_references:
        meta.external_references.append(
            ExternalReference(id=ref_id, reference=reference, description=description)
        )
    return Family(
        id=family_id,
        proband=packet(rows[proband_id], with_candidates=True),
        relatives=[
            packet(r, with_candidates=r["participant_id"] in probands)
            for pid, r in rows.items()
            if pid != proband_id
        ],
        pedigree=_pedigree(family_id, members),
        meta_data=meta,
    )


def family_phenopacket(
    store: Store,
    principal: Principal,
    family_id: str,
    *,
    purpose: str | None = None,
    candidate_filter: CandidateFilter | None = None,
    read_evidence: ReadEvidence | None = DEFAULT_READ_EVIDENCE,
    top: int = 5,
    genome_assembly: str = "unknown",
) -> Family:
    """Build the GA4GH ``Family`` phenopacket of ``family_id`` (see the module docstring).

    Parameters
    ----------
    store, principal, purpose
        The store, who exports, for which purpose (consent and roles as for
        every research query: members the principal may not see are left out).
    family_id
        The family.
    candidate_filter
        Filters of the candidate search (default :class:`CandidateFilter`).
    read_evidence
        How de novo candidates are checked in the reads (``None``: not checked).
    top
        Candidates per proband in the interpretation (by rank).
    genome_assembly
        Written in each ``VcfRecord``.

    Raises
    ------
    NotFoundError
        If the family has no member the principal may see, or no affected member.
    """
    members = family_members(store, principal, family_id=family_id)
    if members.is_empty():
        raise NotFoundError(f"no family {family_id!r} (or none of its members is visible to you)")
    if members.filter(pl.col("affected") == "affected").is_empty():
        raise NotFoundError(f"family {family_id!r} has no affected member to export as proband")
    ranked = rank_families(
        store,
        principal,
        families=[family_id],
        purpose=purpose,
        candidate_filter=candidate_filter,
        read_evidence=read_evidence,
    )
    ranked = ranked.filter(pl.col("rank") <= top)
    pheno = participant_phenotypes(store, principal, members["participant_id"].to_list())
    message = family_message(
        family_id,
        members,
        phenotypes=pheno,
        ranked=ranked,
        created_by=principal.user,
        genome_assembly=genome_assembly,
    )
    with store.transaction() as con:
        audit.record(
            con,
            principal,
            "phenopacket.export",
            family_id,
            {"members": members.height, "candidates": ranked.height, "purpose": purpose},
        )
    return message


def to_json(message: Family | Phenopacket) -> str:
    """Protobuf JSON of a phenopacket message (field names in camelCase, as the schema)."""
    from google.protobuf import json_format

    return json_format.MessageToJson(message, indent=1, ensure_ascii=False)


def from_json(text: str, *, kind: str = "family") -> Family:
    """Parse a ``Family`` (or ``"phenopacket"``) message strictly: unknown fields, wrong
    types or bad enum values are refused.

    Raises
    ------
    ValidationError
        If the text is not a valid message of the phenopackets v2 schema, or lacks
        an id, metadata or (for a family) a proband with a subject.
    """
    from google.protobuf import json_format
    from phenopackets import Family, Phenopacket

    message: Any = Family() if kind == "family" else Phenopacket()
    try:
        json_format.Parse(text, message, ignore_unknown_fields=False)
    except json_format.ParseError as exc:
        raise ValidationError(f"not a valid phenopackets v2 {kind}: {exc}", field=kind) from exc
    missing: Sequence[str] = [
        name
        for name, ok in (
            ("id", bool(message.id)),
            ("metaData", message.HasField("meta_data")),
            *(
                (("proband.subject", message.proband.HasField("subject")),)
                if kind == "family"
                else ()
            ),
        )
        if not ok
    ]
    if missing:
        raise ValidationError(
            f"the {kind} lacks required field(s): {', '.join(missing)}", field=missing[0]
        )
    return message
