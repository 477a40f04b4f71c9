"""A family's case for a project: the GA4GH Phenopacket under an approved data access request.

:func:`project_phenopacket` builds the ``Family`` message of
:mod:`biobank.families.phenopacket` (proband and relatives with sex and HPO
terms, the pedigree, the proband's ranked candidate variants) for the applicant
of an approved request (:mod:`biobank.research.access_requests`), with **every
id a per-project pseudonym** (:mod:`biobank.research.extracts`): participants
(proband, relatives, the pedigree's father and mother) as ``X<request>-...``,
the family as ``XF<request>-...``. Two projects cannot link their packets, nor
either to the store's pseudonyms; the center maps back with
:func:`biobank.research.extracts.map_back`. :func:`write_project_phenopacket`
writes it as protobuf JSON (complete or not at all).

The export is refused (``AccessDenied`` unless said otherwise; each refusal is
audited as ``access.refused``) when:

* the principal is not the request's applicant;
* the request is not approved, or has expired;
* it involves a foreign party without the human genetic resources authority's
  approval number (:func:`~biobank.research.access_requests.check_hgr`);
* it does not approve the fields the packet carries (:data:`PACKET_FIELDS`:
  the pedigree always, phenotypes and variants unless left out);
* the family does not exist (``NotFoundError``), or the request covers none of
  its affected members (``ConsentError``).

**Consent.** The packet holds only the members the request covers
(:func:`~biobank.research.extracts.request_participants`: current consent, not
withdrawn, permits the request's purpose; in the request's cohort when it has
one). A member left out is absent from the relatives and the pedigree, and a
parent left out reads as unknown (``"0"``). Candidates are found with the
request's purpose (:func:`biobank.families.ranking.rank_families`: members
without consent for it are not read); candidates of a proband outside the
cohort are dropped.

**Audit.** Every export is recorded as ``access.family_export`` on the request
(family, family pseudonym, members exported and left out, candidates, and the
file's sha256 when written), besides the reads it makes (pedigree, phenotypes,
genotypes).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from biobank.core import audit
from biobank.core.access import Permission, Principal, require
from biobank.core.classification import check_requestable
from biobank.core.errors import AccessDenied, ConsentError, NotFoundError, ValidationError
from biobank.core.store import file_checksum
from biobank.families.inheritance import CandidateFilter
from biobank.families.phenopacket import family_message, to_json
from biobank.families.ranking import rank_families
from biobank.registry.pedigree import family_members
from biobank.registry.phenotypes import participant_phenotypes
from biobank.research.access_requests import AccessRequest, check_hgr, check_in_force, get_request
from biobank.research.extracts import (
    project_family_pseudonyms,
    project_pseudonyms,
    request_participants,
)
from biobank.research.field_access import GENOTYPES, missing_fields, refusal

if TYPE_CHECKING:
    from phenopackets import Family

    from biobank.core.store import Store

__all__ = [
    "PACKET_FIELDS",
    "ProjectPhenopacket",
    "project_phenopacket",
    "write_project_phenopacket",
]

#: The parts of the packet -> the fields a request must approve to carry them.
PACKET_FIELDS: dict[str, tuple[str, ...]] = {
    "pedigree": ("family_member.affected", "participant.sex"),
    "phenotypes": (
        "participant_phenotype.hpo_id",
        "participant_phenotype.hpo_name",
        "participant_phenotype.observed",
    ),
    "variants": (GENOTYPES,),
}

#: Columns of the ranked candidates the message uses (no sample id, no member genotypes).
_CANDIDATE_COLUMNS = (
    "proband_id",
    "rank",
    "mode",
    "score",
    "call_proband",
    "variant_key",
    "variant_contig",
    "variant_position",
    "variant_ref",
    "variant_alt",
    "variant_gene",
    "variant_consequence",
)


@dataclass(frozen=True)
class ProjectPhenopacket:
    """A family's packet for a project, and what it holds.

    Attributes
    ----------
    message
        The ``Family`` message (every id a project pseudonym).
    request_id, project
        The request it was exported under.
    family_pseudonym
        The family's id in the message.
    members, left_out
        Members in the packet; members the request does not cover.
    candidates
        Candidate variants in the interpretations.
    """

    message: Family
    request_id: int
    project: str
    family_pseudonym: str
    members: int
    left_out: int
    candidates: int


def _refused(store: Store, principal: Principal, request_id: int, exc: Exception) -> None:
    """Audit a refused export (once: the command line does not record it again)."""
    if isinstance(exc, AccessDenied):
        exc.mark_audited()
    audit.record_refusal(
        store.con,
        user=principal.user,
        role=principal.role.value,
        action="access.refused",
        target=f"access_request:{request_id}",
        detail={"attempted": "access.family_export", "reason": str(exc)[:300]},
    )


def _parts(*, phenotypes: bool, variants: bool) -> list[str]:
    return (
        ["pedigree"] + (["phenotypes"] if phenotypes else []) + (["variants"] if variants else [])
    )


def _check_request(principal: Principal, req: AccessRequest, parts: Sequence[str]) -> None:
    if req.applicant != principal.user:
        raise AccessDenied(
            f"data access request {req.request_id} ({req.project}) is {req.applicant}'s:"
            f" user '{principal.user}' may not export under it"
        )
    check_in_force(req, "a family is exported only under an approved request in force")
    check_hgr(req)
    check_requestable(list(req.fields))
    needed = [f for part in parts for f in PACKET_FIELDS[part]]
    missing = missing_fields(req.fields, needed)
    if missing:
        raise AccessDenied(
            refusal("a family phenopacket", missing, req.request_id, req.purpose)
            + "; or leave the part out (--no-phenotypes, --no-variants)"
        )


def _covered(store: Store, req: AccessRequest, family_id: str) -> tuple[list[str], list[str]]:
    """Return the family's members the request covers, and those it does not."""
    everyone = [
        str(r[0])
        for r in store.con.execute(
            "SELECT participant_id FROM family_member WHERE family_id = ? ORDER BY 1",
            [family_id],
        ).fetchall()
    ]
    if not everyone:
        raise NotFoundError(f"no family {family_id!r}: list them with 'biobank family members'")
    allowed = set(request_participants(store, req))
    return [p for p in everyone if p in allowed], [p for p in everyone if p not in allowed]


def _renamed(df: pl.DataFrame, ids: dict[str, str], columns: Sequence[str]) -> pl.DataFrame:
    """Replace store pseudonyms by project ones (``None`` for a person outside ``ids``)."""
    return df.with_columns(
        pl.col(c).replace_strict(ids, default=None, return_dtype=pl.String) for c in columns
    )


def _read(
    store: Store,
    reader: Principal,
    req: AccessRequest,
    family_id: str,
    *,
    covered: list[str],
    parts: Sequence[str],
    top: int,
    candidate_filter: CandidateFilter | None,
) -> tuple[pl.DataFrame, pl.DataFrame | None, pl.DataFrame | None]:
    """Read members, phenotypes and candidates of the covered members, renamed for the project."""
    ids = dict(zip(covered, project_pseudonyms(store, req.request_id, covered), strict=True))
    members = family_members(store, reader, family_id=family_id)
    members = members.filter(pl.col("participant_id").is_in(covered))
    if members.filter(pl.col("affected") == "affected").is_empty():
        raise ConsentError(
            f"request {req.request_id} ({req.project}, purpose {req.purpose}) covers none of"
            f" the affected members of family {family_id!r}: their consent does not permit"
            " the purpose, was withdrawn, or they are outside the request's cohort"
        )
    members = _renamed(members, ids, ("participant_id", "father_id", "mother_id"))
    pheno = None
    if "phenotypes" in parts:
        pheno = participant_phenotypes(store, reader, covered)
        pheno = _renamed(
            pheno.filter(pl.col("participant_id").is_in(covered)), ids, ["participant_id"]
        )
    ranked = None
    if "variants" in parts:
        ranked = rank_families(
            store,
            reader,
            families=[family_id],
            purpose=req.purpose,
            candidate_filter=candidate_filter,
        )
        ranked = ranked.filter(
            (pl.col("rank") <= top) & pl.col("proband_id").is_in(covered)
        ).select(_CANDIDATE_COLUMNS)
        ranked = _renamed(ranked, ids, ["proband_id"])
    return members, pheno, ranked


def _build(
    store: Store,
    principal: Principal,
    family_id: str,
    request_id: int,
    *,
    phenotypes: bool,
    variants: bool,
    top: int,
    candidate_filter: CandidateFilter | None,
    genome_assembly: str,
) -> ProjectPhenopacket:
    require(principal, Permission.ACCESS_REQUEST)
    parts = _parts(phenotypes=phenotypes, variants=variants)
    try:
        req = get_request(store.con, request_id)
        _check_request(principal, req, parts)
        covered, left_out = _covered(store, req, family_id)
        reader = dataclasses.replace(principal, purpose=req.purpose)
        members, pheno, ranked = _read(
            store,
            reader,
            req,
            family_id,
            covered=covered,
            parts=parts,
            top=top,
            candidate_filter=candidate_filter,
        )
    except (AccessDenied, ConsentError, NotFoundError, ValidationError) as exc:
        _refused(store, principal, request_id, exc)
        raise
    (family_pseudonym,) = project_family_pseudonyms(store, request_id, [family_id])
    message = family_message(
        family_pseudonym,
        members,
        phenotypes=pheno,
        ranked=ranked,
        created_by=principal.user,
        genome_assembly=genome_assembly,
        external_references=[
            (
                f"biobank-access-request:{req.request_id}",
                req.project,
                f"exported under data access request {req.request_id} ({req.project},"
                f" purpose {req.purpose}), approved by {req.decided_by}, in force until"
                f" {req.expires_on}; ids are pseudonyms of this project only",
            )
        ],
    )
    return ProjectPhenopacket(
        message=message,
        request_id=request_id,
        project=req.project,
        family_pseudonym=family_pseudonym,
        members=members.height,
        left_out=len(left_out),
        candidates=ranked.height if ranked is not None else 0,
    )


def _audit(
    store: Store,
    principal: Principal,
    family_id: str,
    packet: ProjectPhenopacket,
    file: dict[str, Any] | None,
) -> None:
    with store.transaction() as con:
        audit.record(
            con,
            principal,
            "access.family_export",
            f"access_request:{packet.request_id}",
            {
                "family": family_id,
                "family_pseudonym": packet.family_pseudonym,
                "members": packet.members,
                "left_out": packet.left_out,
                "candidates": packet.candidates,
                "file": file,
            },
        )


def project_phenopacket(
    store: Store,
    principal: Principal,
    family_id: str,
    request_id: int,
    *,
    phenotypes: bool = True,
    variants: bool = True,
    top: int = 5,
    candidate_filter: CandidateFilter | None = None,
    genome_assembly: str = "unknown",
) -> ProjectPhenopacket:
    """Build the ``Family`` phenopacket of ``family_id`` for the project of ``request_id``.

    Parameters
    ----------
    store
        The store.
    principal
        The request's applicant (a researcher); reads are made for the request's purpose.
    family_id
        The family (its store id; the packet carries its project pseudonym).
    request_id
        The approved data access request.
    phenotypes, variants
        Whether the packet carries the HPO terms and the candidate variants (each
        needs its fields approved, :data:`PACKET_FIELDS`).
    top
        Candidates per proband (by rank).
    candidate_filter
        Filters of the candidate search (default
        :class:`~biobank.families.inheritance.CandidateFilter`).
    genome_assembly
        Written in each ``VcfRecord``.

    Returns
    -------
    ProjectPhenopacket
        The message and what it holds (audited ``access.family_export``).

    Raises
    ------
    AccessDenied
        If the principal may not apply for data or is not the applicant; if the
        request is not approved, has expired, involves a foreign party without
        an approval number, or does not approve a field of the packet.
    NotFoundError
        If there is no such request or family.
    ConsentError
        If the request covers no affected member of the family.
    ValidationError
        If a field of the request is no longer approvable.
    """
    packet = _build(
        store,
        principal,
        family_id,
        request_id,
        phenotypes=phenotypes,
        variants=variants,
        top=top,
        candidate_filter=candidate_filter,
        genome_assembly=genome_assembly,
    )
    _audit(store, principal, family_id, packet, None)
    return packet


def write_project_phenopacket(
    store: Store,
    principal: Principal,
    family_id: str,
    request_id: int,
    path: str | Path,
    *,
    phenotypes: bool = True,
    variants: bool = True,
    top: int = 5,
    candidate_filter: CandidateFilter | None = None,
    genome_assembly: str = "unknown",
) -> ProjectPhenopacket:
    """Write the project's phenopacket of a family to ``path`` (protobuf JSON).

    The file is written next to ``path`` and renamed when complete; the audit
    entry records its name and sha256. Parameters and errors as
    :func:`project_phenopacket`.

    Raises
    ------
    ValidationError
        If ``path`` exists (nothing is overwritten).
    """
    target = Path(path)
    if target.exists():
        raise ValidationError(
            f"{target} exists: choose another file name", field="out", value=str(target)
        )
    packet = _build(
        store,
        principal,
        family_id,
        request_id,
        phenotypes=phenotypes,
        variants=variants,
        top=top,
        candidate_filter=candidate_filter,
        genome_assembly=genome_assembly,
    )
    tmp = target.with_name(target.name + ".partial")
    try:
        tmp.write_text(to_json(packet.message) + "\n", encoding="utf-8")
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    file = {"name": target.name, "sha256": file_checksum(target), "bytes": target.stat().st_size}
    _audit(store, principal, family_id, packet, file)
    return packet
