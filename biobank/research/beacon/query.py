"""Answering a Beacon request: who is counted, which variants match, what may be said.

:func:`answer` is the one path every entry-type request takes (GET or POST,
anonymous or partner):

1. the requester's budget is charged (:func:`biobank.research.partners.charge_query`);
2. the participants counted are those whose current consent permits the
   requester's purpose (:func:`biobank.registry.consent.permitted_participants_sql`),
   narrowed by the filters;
3. a variant query matches variants by coordinates (0-based, end exclusive),
   gene or type and counts their carriers among those participants; without an
   approved data access request a variant carried by fewer than ``min_count``
   of them, or rarer than ``min_allele_frequency``, is answered as absent
   (``min_allele_frequency = 0`` turns this defence off);
4. the granularity returned is the least of the one asked for and the one the
   requester may have (boolean anonymous, count partner, record approved); a
   count from 1 to ``min_count - 1`` (or a count about so few people) is never
   returned without an approved request: the answer falls back to boolean
   (:func:`biobank.core.disclosure.is_small`);
5. a count answer to a partner without record-level access passes the output
   checks of :func:`biobank.research.output_checks.release_count` (the members
   counted are recorded per partner, under the partner's store user name, with
   the colleagues of its projects): a count that differences earlier ones (by 1
   to ``min_count - 1`` people, pairwise or combined with several) is answered
   at boolean granularity instead; so are the cohort sizes of ``/cohorts``
   (:func:`cohort_sizes`);
6. record-level access follows the approved data access request: the records
   are of its cohort's members (if it has one) and show only its approved
   fields (:mod:`biobank.research.field_access`); an answer about genotypes (a
   variant query, the rare variants) needs ``genotype_call_all.dosage``
   approved, else it is answered as to a partner without the request (count,
   with the checks). An approval recorded with ``biobank partner approve``
   (decided outside this store) names no fields or cohort and is not narrowed;
7. record-level answers are audited (``beacon.record``).
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import polars as pl

from biobank.core import audit
from biobank.core.disclosure import is_small
from biobank.genomes.counts import allele_counts_in
from biobank.genomes.filters import VariantFilter, canonical_contig_sql
from biobank.genomes.reader import sample_table
from biobank.registry.consent import current_consent_sql, permitted_participants_sql
from biobank.research.beacon.config import BeaconConfig
from biobank.research.beacon.records import biosample_record, individual_records, variant_record
from biobank.research.beacon.request import GRANULARITIES, BeaconRequest, VariantQuery
from biobank.research.field_access import GENOTYPES, missing_fields
from biobank.research.partners import Partner, approved_request_for, charge_query, partner_principal

if TYPE_CHECKING:
    import duckdb

    from biobank.clinical.cohorts import Criterion
    from biobank.core.store import Store

__all__ = [
    "BeaconAnswer",
    "Requester",
    "answer",
    "cohort_sizes",
    "participants_sql",
    "resolve_requester",
]


@dataclass(frozen=True)
class Requester:
    """Who asks: a partner centre (or nobody), the purpose, an approved request.

    ``fields`` and ``cohort`` are those of the approved data access request
    (``fields=None``: an approval recorded outside this store, not narrowed).
    """

    key: str
    partner: Partner | None
    purpose: str
    approved_request: str | None = None
    fields: tuple[str, ...] | None = None
    cohort: Criterion | None = None

    @property
    def max_granularity(self) -> str:
        """``boolean`` anonymous, ``count`` partner, ``record`` under an approved request."""
        if self.partner is None:
            return "boolean"
        return "record" if self.approved_request else "count"

    def has_fields(self, needed: list[str]) -> bool:
        """Whether the approved request approves every field of ``needed``."""
        return self.fields is None or not missing_fields(self.fields, needed)

    def record_level(self, request: BeaconRequest) -> bool:
        """Whether the approved request covers ``request`` (genotype answers need genotypes)."""
        if self.partner is None or self.approved_request is None:
            return False
        about_genotypes = request.variant is not None or request.entry_type == "g_variants"
        return not about_genotypes or self.has_fields([GENOTYPES])


def resolve_requester(
    con: duckdb.DuckDBPyConnection, partner: Partner | None, client: str, config: BeaconConfig
) -> Requester:
    """The requester of a request: anonymous (by client address) or the partner."""
    from biobank.research.access_requests import approved_request_for as workflow_approval

    if partner is None:
        return Requester(f"anonymous:{client}", None, config.anonymous_purpose)
    approved = workflow_approval(con, partner.name, partner.purpose)
    if approved is not None:
        return Requester(
            partner.name,
            partner,
            partner.purpose,
            f"access-request-{approved.request_id}",
            approved.fields,
            approved.criterion(),
        )
    return Requester(
        partner.name,
        partner,
        partner.purpose,
        approved_request_for(con, partner.name, partner.purpose),
    )


@dataclass
class BeaconAnswer:
    """What the Beacon may say: granularity, existence, a count, records."""

    granularity: str
    exists: bool
    count: int | None = None
    results: list[dict[str, Any]] = field(default_factory=list)


def participants_sql(request: BeaconRequest, purpose: str) -> tuple[str, list[Any]]:
    """SQL (column ``participant_id``) of the consented participants the filters select."""
    conds, params = [], []
    for f in request.filters:
        if f.kind == "icd10":
            op = "starts_with(code_compact, ?)" if f.operator == "prefix" else "code_compact = ?"
            conds.append(
                f"participant_id IN (SELECT participant_id FROM clinical_condition WHERE {op})"
            )
            params.append(f.value)
        elif f.kind == "sex":
            conds.append("participant_id IN (SELECT participant_id FROM participant WHERE sex = ?)")
            params.append(f.value)
        elif f.kind == "duo":
            conds.append(
                "participant_id IN (SELECT participant_id FROM"
                f" ({current_consent_sql()}) AS cc WHERE cc.primary_code = ?)"
            )
            params.append(f.value)
        elif f.kind == "cohort":
            conds.append(
                "participant_id IN (SELECT participant_id FROM participant_cohort WHERE cohort = ?)"
            )
            params.append(f.value)
        elif f.kind == "age":
            conds.append(
                "participant_id IN (SELECT participant_id FROM participant"
                f" WHERE year(current_date) - birth_year {f.operator} ?)"
            )
            params.append(int(f.value))
    where = " AND ".join(conds) or "TRUE"
    sql = f"SELECT participant_id FROM ({permitted_participants_sql(purpose)}) AS ok WHERE {where}"
    return sql, params


def _canonical_contig(name: str) -> str:
    """``chr1``, ``1`` -> ``1``; ``chrM``, ``MT`` -> ``M`` (as :func:`canonical_contig_sql`).

    >>> _canonical_contig("chrX"), _canonical_contig("MT")
    ('X', 'M')
    """
    bare = name[3:] if name.lower().startswith("chr") else name
    return "M" if bare.upper() in {"M", "MT"} else bare


def _variant_where(vq: VariantQuery, config: BeaconConfig) -> tuple[str, list[Any]]:
    """SQL condition on ``variant v`` for a variant query (0-based, end exclusive)."""
    start0, end0 = "(v.position - 1)", "(v.position - 1 + length(v.ref))"
    conds: list[str] = []
    params: list[Any] = []
    if vq.reference_name is not None:
        conds.append(f"{canonical_contig_sql('v.contig')} = ?")
        params.append(_canonical_contig(vq.reference_name))
    if vq.kind == "sequence":
        conds.append(f"{start0} = ?")
        params.append(vq.start[0])
    elif vq.kind == "range":
        conds.append(f"{start0} < ? AND {end0} > ?")
        params.extend([vq.end[0], vq.start[0]])
    elif vq.kind == "bracket":
        conds.append(f"{start0} BETWEEN ? AND ? AND {end0} BETWEEN ? AND ?")
        params.extend([vq.start[0], vq.start[1], vq.end[0], vq.end[1]])
    if vq.gene_id is not None:
        conds.append("v.gene = ?")
        params.append(vq.gene_id)
    if vq.reference_bases not in (None, "N"):
        conds.append("v.ref = ?")
        params.append(vq.reference_bases)
    if vq.alternate_bases not in (None, "N"):
        conds.append("v.alt = ?")
        params.append(vq.alternate_bases)
    lr, la = "length(v.ref)", "length(v.alt)"
    types = {
        "SNP": f"{lr} = 1 AND {la} = 1",
        "MNP": f"{lr} = {la} AND {lr} > 1",
        "DEL": f"{la} < {lr}",
        "INS": f"{la} > {lr}",
        "INDEL": f"{la} <> {lr}",
    }
    if vq.variant_type is not None:
        conds.append(f"({types[vq.variant_type]})")
    return " AND ".join(conds) or "TRUE", params


def _matching_keys(
    con: duckdb.DuckDBPyConnection, vq: VariantQuery, config: BeaconConfig
) -> list[int]:
    """Store keys of the variants a variant query matches (whoever carries them)."""
    where, params = _variant_where(vq, config)
    rows = con.execute(f"SELECT v.variant_key FROM variant v WHERE {where}", params).fetchall()
    return [int(r[0]) for r in rows]


def _variant_hits(
    con: duckdb.DuckDBPyConnection,
    sample_tbl: str,
    keys: list[int],
    config: BeaconConfig,
    *,
    hide_rare: bool,
) -> pl.DataFrame:
    """Variants of ``keys`` carried by someone in ``sample_tbl``, with counts; rare ones hidden."""
    df = allele_counts_in(con, sample_tbl, VariantFilter(variant_keys=keys))
    df = df.with_columns(
        (
            pl.col("variant_n_het") + pl.col("variant_n_hom_alt") + pl.col("variant_n_haploid_alt")
        ).alias("variant_n_carriers")
    ).filter(pl.col("variant_n_carriers") > 0)
    if hide_rare:
        af = pl.col("variant_alt_allele_frequency").fill_null(0.0)
        df = df.filter(
            (pl.col("variant_n_carriers") >= config.min_count) & (af >= config.min_allele_frequency)
        )
    return df.sort("variant_key")


def _carriers(con: duckdb.DuckDBPyConnection, sample_tbl: str, keys: list[int]) -> list[str]:
    """Participants of ``sample_tbl`` carrying an ALT allele of one of ``keys``."""
    if not keys:
        return []
    rows = con.execute(
        f"SELECT DISTINCT s.participant_id FROM genotype_call_all c JOIN {sample_tbl} s"
        " USING (sample_key) WHERE c.variant_key IN (SELECT unnest(?::INTEGER[]))"
        " AND c.dosage > 0 AND c.flags & 1 = 0 ORDER BY 1",
        [keys],
    ).fetchall()
    return [str(r[0]) for r in rows]


def _granted(request: BeaconRequest, requester: Requester) -> str:
    most = requester.max_granularity
    if most == "record" and not requester.record_level(request):
        most = "count"
    return GRANULARITIES[min(GRANULARITIES.index(request.granularity), GRANULARITIES.index(most))]


def _people(
    con: duckdb.DuckDBPyConnection,
    request: BeaconRequest,
    requester: Requester,
    config: BeaconConfig,
) -> tuple[list[str], pl.DataFrame | None]:
    """The participants a request selects (carriers, for a variant query) and the variant hits.

    The selected participants are materialised once as a temporary table, which
    the genotype sample set then joins (a list of ten thousand ids as a parameter
    costs more than the whole count).
    """
    sql, params = participants_sql(request, requester.purpose)
    record_level = requester.record_level(request)
    if record_level and requester.cohort is not None:
        from biobank.clinical.cohorts import cohort_sql

        in_cohort, cohort_params = cohort_sql(requester.cohort, purpose=requester.purpose)
        sql = (
            f"SELECT participant_id FROM ({sql}) AS f"
            f" WHERE participant_id IN (SELECT participant_id FROM ({in_cohort}) AS c)"
        )
        params = [*params, *cohort_params]
    people = f"_beacon_people_{uuid.uuid4().hex[:12]}"
    con.execute(f"CREATE TEMP TABLE {people} AS {sql}", params)
    try:
        ids = [
            str(r[0])
            for r in con.execute(f"SELECT participant_id FROM {people} ORDER BY 1").fetchall()
        ]
        if request.variant is None:
            return ids, None
        keys = _matching_keys(con, request.variant, config)
        if not keys:  # nothing matches: no need to look at anyone's genotypes
            return (ids if request.entry_type == "g_variants" else []), pl.DataFrame()
        with sample_table(con, f"SELECT participant_id FROM {people}") as tbl:
            hide = not record_level and config.min_allele_frequency > 0
            hits = _variant_hits(con, tbl, keys, config, hide_rare=hide)
            found = hits["variant_key"].to_list() if hits.height else []
            if request.entry_type == "g_variants":
                return ids, hits
            return _carriers(con, tbl, found), hits
    finally:
        con.execute(f"DROP TABLE IF EXISTS {people}")


#: Fields a record shows -> the approved fields it needs (any one of them).
RECORD_FIELDS: dict[str, tuple[str, ...]] = {
    "individual.sex": ("clinical_person.sex", "participant.sex"),
    "individual.diseases": ("clinical_condition.code",),
    "biosample.collectionDate": ("specimen.collected_at",),
}


def _shows(requester: Requester, what: str) -> bool:
    return any(requester.has_fields([f]) for f in RECORD_FIELDS[what])


def _records(
    con: duckdb.DuckDBPyConnection,
    request: BeaconRequest,
    ids: list[str],
    hits: pl.DataFrame | None,
    config: BeaconConfig,
    requester: Requester,
) -> tuple[int, list[dict[str, Any]]]:
    """The number of results and one page of records (of the approved fields)."""
    page = slice(request.skip, request.skip + request.limit)
    if request.entry_type == "g_variants":
        rows = hits.to_dicts() if hits is not None and hits.height else []
        return len(rows), [variant_record(r, config) for r in rows[page]]
    if request.entry_type == "individuals":
        return len(ids), individual_records(
            con,
            ids[page],
            sex=_shows(requester, "individual.sex"),
            diseases=_shows(requester, "individual.diseases"),
        )
    specimens = con.execute(
        "SELECT label, participant_id, specimen_type, collected_at FROM specimen"
        " WHERE participant_id IN (SELECT unnest(?::VARCHAR[])) ORDER BY label",
        [ids],
    ).fetchall()
    dated = _shows(requester, "biosample.collectionDate")
    return len(specimens), [biosample_record(r, collection_date=dated) for r in specimens[page]]


def _released(
    store: Store, requester: Requester, ids: list[str], label: str, config: BeaconConfig
) -> bool:
    """Whether a count about ``ids`` passes the differencing checks for this partner.

    The members are recorded under the partner's store user name (the
    record of :func:`~biobank.research.output_checks.release_count`, shared with
    its federation counts, the colleagues of its projects and the user's own
    workbench counts); a withheld count is audited (``disclosure.withheld``, as
    ``partner:NAME``).
    """
    from biobank.research.output_checks import release_count

    assert requester.partner is not None
    release = release_count(
        store,
        partner_principal(requester.partner),
        ids,
        purpose=requester.purpose,
        label=label,
        min_count=config.min_count,
        record_user=requester.partner.name,
    )
    return release.withheld is None


def _label(request: BeaconRequest) -> str:
    import json

    what: dict[str, Any] = {"filters": [f.term for f in request.filters]}
    if request.variant is not None:
        what["variant"] = request.variant.summary()
    return f"beacon {request.entry_type} {json.dumps(what, sort_keys=True, default=str)}"


def cohort_sizes(store: Store, requester: Requester, config: BeaconConfig) -> dict[str, int]:
    """The sizes of the study cohorts (``/cohorts``) a requester may see, by cohort.

    None for anonymous requesters; for a partner, the consented members of each
    cohort, leaving out small sizes and (without an approved request for
    everyone, i.e. one without a cohort) the sizes the output checks withhold,
    like every other count answer.
    """
    if requester.partner is None:
        return {}
    rows = store.con.execute(
        "SELECT cohort, list(participant_id ORDER BY participant_id) FILTER (WHERE participant_id"
        f" IN ({permitted_participants_sql(requester.purpose)})) FROM participant_cohort"
        " GROUP BY 1 ORDER BY 1"
    ).fetchall()
    sizes: dict[str, int] = {}
    for name, members in rows:
        ids = [str(m) for m in members or []]
        if is_small(len(ids), config.min_count):
            continue
        unchecked = requester.approved_request is not None and requester.cohort is None
        if unchecked or _released(store, requester, ids, f"beacon cohort {name}", config):
            sizes[str(name)] = len(ids)
    return sizes


def answer(
    store: Store, request: BeaconRequest, requester: Requester, config: BeaconConfig
) -> BeaconAnswer:
    """Answer a ``g_variants``, ``individuals`` or ``biosamples`` request (see the module doc).

    Raises
    ------
    QuotaExceeded
        If the requester's budget for today is used up.
    ValidationError
        If the request names another assembly.
    """
    from biobank.core.errors import ValidationError

    if request.variant is not None and request.variant.assembly_id not in (None, config.assembly):
        raise ValidationError(
            f"assemblyId {request.variant.assembly_id!r}: this beacon holds {config.assembly}",
            field="assemblyId",
            value=request.variant.assembly_id,
        )
    granted = _granted(request, requester)
    limit = None
    if requester.approved_request is None:
        limit = config.anonymous_budget if requester.partner is None else config.partner_budget
    with store.transaction() as con:
        charge_query(con, requester.key, limit)
        ids, hits = _people(con, request, requester, config)
        total, records = _records(con, request, ids, hits, config, requester)
        if granted == "record":
            assert requester.partner is not None
            audit.record(
                con,
                partner_principal(requester.partner),
                "beacon.record",
                request.entry_type,
                {
                    "request_id": requester.approved_request,
                    "purpose": requester.purpose,
                    "results": total,
                    "returned": len(records),
                    "on": dt.date.today().isoformat(),
                },
            )
    if granted == "record":
        return BeaconAnswer("record", total > 0, total, records)
    if granted != "count":
        return BeaconAnswer("boolean", total > 0)
    if requester.record_level(request):  # it may see the records: no output checks
        return BeaconAnswer("count", total > 0, total)
    # a count of people, or of variants or tubes of a small group of people, is never shown,
    # nor one that differences the counts already given to this partner
    small = is_small(total, config.min_count) or is_small(len(ids), config.min_count)
    if not small and _released(store, requester, ids, _label(request), config):
        return BeaconAnswer("count", total > 0, total)
    return BeaconAnswer("boolean", total > 0)
