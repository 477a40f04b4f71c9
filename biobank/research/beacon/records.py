"""Beacon v2 default-model records of the store's variants, participants and specimens.

Only record-level answers (an approved data access request) carry these;
identifiers are pseudonyms and specimen labels, never a direct identifier.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from biobank.research.beacon.config import BeaconConfig

if TYPE_CHECKING:
    import duckdb

__all__ = [
    "SEX_ONTOLOGY",
    "UNKNOWN_SEX",
    "biosample_record",
    "individual_records",
    "variant_record",
    "variant_type",
]

#: participant.sex -> the NCIT term of the Beacon v2 default model.
SEX_ONTOLOGY = {
    "female": {"id": "NCIT:C16576", "label": "female"},
    "male": {"id": "NCIT:C20197", "label": "male"},
}

#: specimen types -> UBERON / OBI terms for ``sampleOriginType``.
_ORIGIN = {
    "whole_blood": ("UBERON:0000178", "blood"),
    "clotted_blood": ("UBERON:0000178", "blood"),
    "plasma": ("UBERON:0001969", "blood plasma"),
    "serum": ("UBERON:0001977", "blood serum"),
    "buffy_coat": ("UBERON:0000178", "blood"),
    "pbmc": ("CL:2000001", "peripheral blood mononuclear cell"),
    "saliva": ("UBERON:0001836", "saliva"),
    "urine": ("UBERON:0001088", "urine"),
    "stool": ("UBERON:0001988", "feces"),
    "dna": ("OBI:0001051", "DNA extract"),
    "rna": ("OBI:0000880", "RNA extract"),
    "cfdna": ("OBI:0001051", "DNA extract"),
}


def variant_type(ref: str, alt: str) -> str:
    """``SNP``, ``MNP``, ``INS``, ``DEL`` from the lengths of the alleles.

    >>> variant_type("A", "G"), variant_type("A", "AT"), variant_type("AT", "A")
    ('SNP', 'INS', 'DEL')
    """
    if len(ref) == len(alt):
        return "SNP" if len(ref) == 1 else "MNP"
    return "INS" if len(alt) > len(ref) else "DEL"


def variant_record(row: dict[str, Any], config: BeaconConfig) -> dict[str, Any]:
    """A ``genomicVariation`` of a row of :func:`biobank.genomes.counts.allele_counts_in`.

    The location is a VRS 1.3 ``SequenceLocation`` with 0-based interbase
    coordinates (``start = position - 1``).
    """
    contig, pos = str(row["variant_contig"]), int(row["variant_position"])
    ref, alt = str(row["variant_ref"]), str(row["variant_alt"])
    record: dict[str, Any] = {
        "variantInternalId": f"{contig}:{pos}:{ref}:{alt}",
        "variation": {
            "variantType": variant_type(ref, alt),
            "referenceBases": ref,
            "alternateBases": alt,
            "location": {
                "type": "SequenceLocation",
                "sequence_id": f"{config.assembly}:{contig}",
                "interval": {
                    "type": "SequenceInterval",
                    "start": {"type": "Number", "value": pos - 1},
                    "end": {"type": "Number", "value": pos - 1 + len(ref)},
                },
            },
        },
        "frequencyInPopulations": [
            {
                "source": config.name,
                "sourceReference": config.beacon_id,
                "frequencies": [
                    {
                        "population": "consented participants",
                        "alleleFrequency": float(row["variant_alt_allele_frequency"] or 0.0),
                    }
                ],
            }
        ],
    }
    if len(ref) == 1 and len(alt) == 1:
        record["identifiers"] = {"genomicHGVSId": f"{contig}:g.{pos}{ref}>{alt}"}
    if row.get("variant_gene"):
        record["molecularAttributes"] = {"geneIds": [str(row["variant_gene"])]}
    return record


#: The term of a sex the approved request does not let the Beacon show (``sex`` is required).
UNKNOWN_SEX = {"id": "NCIT:C17998", "label": "unknown"}


def individual_records(
    con: duckdb.DuckDBPyConnection, ids: list[str], *, sex: bool = True, diseases: bool = True
) -> list[dict[str, Any]]:
    """``individual`` records (pseudonym, sex, ICD-10 diagnoses) of ``ids``, in that order.

    ``sex=False`` shows :data:`UNKNOWN_SEX`, ``diseases=False`` no diagnoses
    (fields the approved request does not approve).
    """
    if not ids:
        return []
    sexes = dict(
        con.execute(
            "SELECT participant_id, sex FROM participant"
            " WHERE participant_id IN (SELECT unnest(?::VARCHAR[]))",
            [ids],
        ).fetchall()
    )
    codes: dict[str, list[str]] = {}
    for pid, code in con.execute(
        "SELECT DISTINCT participant_id, code FROM clinical_condition"
        " WHERE participant_id IN (SELECT unnest(?::VARCHAR[])) ORDER BY 1, 2",
        [ids],
    ).fetchall():
        codes.setdefault(str(pid), []).append(str(code))
    out = []
    for pid in ids:
        rec: dict[str, Any] = {
            "id": pid,
            "sex": SEX_ONTOLOGY[str(sexes[pid])] if sex else UNKNOWN_SEX,
        }
        if diseases and codes.get(pid):
            rec["diseases"] = [
                {"diseaseCode": {"id": f"ICD10:{c}", "label": c}} for c in codes[pid]
            ]
        out.append(rec)
    return out


def biosample_record(row: tuple[Any, ...], *, collection_date: bool = True) -> dict[str, Any]:
    """A ``biosample`` of a specimen row (label, participant, specimen type, collected at).

    ``collection_date=False`` leaves out the date (a field not approved).
    """
    label, pid, kind, collected = row
    origin_id, origin_label = _ORIGIN.get(str(kind), ("OBI:0100051", "specimen"))
    record = {
        "id": str(label),
        "individualId": str(pid),
        "biosampleStatus": {"id": "EFO:0009654", "label": "reference sample"},
        "sampleOriginType": {"id": origin_id, "label": origin_label},
        "collectionDate": collected.date().isoformat(),
        "notes": f"specimen type: {kind}",
    }
    if not collection_date:
        del record["collectionDate"]
    return record
