"""The centre's side of a federated question: aggregates only, checked and audited.

A coordinator (:mod:`biobank.research.federation.coordinator`) sends each
centre the same question; the centre answers from its own store with
aggregates of the participants whose consent permits the asking partner's
purpose, after its disclosure check (:func:`disclosure_refusal`), and audits
every question (``federation.question``, also when refused).

Questions (JSON objects, ``docs/federation.md``):

``count``
    ``{"filters": [...]}``: how many participants the Beacon filters select
    (withheld when small, or when it differs by fewer than the threshold from a
    count already released to the same partner: differencing).
``frequencies``
    ``{"filters": [...], "cohorts": [...], "region": "chr1:1-5000"}``: per variant
    of the region (1-based, inclusive) and cohort, the ALT allele count and the
    number of called alleles.
``logistic``
    ``{"outcome": "E11", "covariates": ["sex", "age", "variant:chr1:1234:A:G"],
    "filters": [...], "reference_year": 2026, "beta": [...] | null}``: the
    gradient X'(y - p), the information X'WX and the log-likelihood of a
    logistic model at ``beta`` (intercept first), the sufficient statistics of
    one Newton step (the way DataSHIELD's ``ds.glm`` works): no row leaves the centre.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import numpy as np

from biobank.core import audit, icd10
from biobank.core.disclosure import is_small
from biobank.core.errors import AccessDenied, ValidationError
from biobank.genomes.counts import allele_counts_in
from biobank.genomes.filters import VariantFilter
from biobank.genomes.reader import sample_table
from biobank.research.beacon.query import participants_sql
from biobank.research.beacon.request import BeaconRequest, parse_filter
from biobank.research.partners import Partner, partner_principal

if TYPE_CHECKING:
    import duckdb

    from biobank.core.store import Store

__all__ = [
    "QUESTIONS",
    "answer_question",
    "design_matrix",
    "disclosure_refusal",
    "logistic_statistics",
]

QUESTIONS = ("count", "frequencies", "logistic")
_VARIANT = re.compile(
    r"^variant:(?P<contig>[^:]+):(?P<pos>\d+):(?P<ref>[ACGTN]+):(?P<alt>[ACGTN]+)$"
)
_MAX_COHORTS = 50
_MAX_VARIANTS = 5000


def _filters(question: dict[str, Any]) -> BeaconRequest:
    items = question.get("filters", [])
    if not isinstance(items, list):
        raise ValidationError("filters must be a list of Beacon filter terms", field="filters")
    return BeaconRequest(entry_type="individuals", filters=tuple(parse_filter(f) for f in items))


def disclosure_refusal(kind: str, stats: dict[str, Any], min_count: int) -> str | None:
    """Why this centre must not send ``stats`` of a model (``None``: it may).

    Counts go through the data access workflow's output checks
    (:func:`biobank.research.output_checks.release_count`: small counts and
    differencing); allele counts through the small-count rule of
    :mod:`biobank.core.disclosure`, cell by cell. A logistic model
    needs at least ``min_count`` cases and controls and at least ``3 p``
    participants for ``p`` parameters (DataSHIELD's ``nfilter.glm`` idea: a
    nearly saturated model would disclose rows).
    """
    if kind == "logistic":
        n, cases, p = stats["n"], stats["n_cases"], stats["n_parameters"]
        if min(cases, n - cases) < min_count:  # none at all is no model either
            return f"fewer than {min_count} cases or controls at this centre"
        if n < max(min_count, 3 * p):
            return f"{n} participants are too few for a model of {p} parameters"
    return None


def design_matrix(
    con: duckdb.DuckDBPyConnection, question: dict[str, Any], purpose: str
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Columns, design matrix X (intercept first) and outcome y of a logistic question.

    Rows: the consented participants the filters select, without a missing
    covariate (a variant covariate needs a called genotype). ``age`` is
    ``reference_year - birth_year``; ``sex`` is 1 for male; ``variant:...`` the
    ALT dosage (0, 1, 2). ``y`` is 1 for a participant with a diagnosis under
    the ``outcome`` ICD-10 pattern (hierarchy and ranges as in
    :mod:`biobank.core.icd10`).

    Raises
    ------
    ValidationError
        For an unknown covariate, a malformed outcome or reference year.
    """
    pattern = icd10.parse_pattern(str(question.get("outcome", "")), field="outcome")
    covariates = question.get("covariates", [])
    year = question.get("reference_year")
    if not isinstance(covariates, list) or not all(isinstance(c, str) for c in covariates):
        raise ValidationError("covariates must be a list of names", field="covariates")
    if not isinstance(year, int) or isinstance(year, bool):
        raise ValidationError("reference_year must be a year, e.g. 2026", field="reference_year")
    sql, params = participants_sql(_filters(question), purpose)
    cond, cparams = pattern.sql("code_compact")
    rows = con.execute(
        "SELECT p.participant_id, CASE WHEN p.sex = 'male' THEN 1.0 ELSE 0.0 END,"
        " CAST(? - p.birth_year AS DOUBLE),"
        f" CASE WHEN p.participant_id IN (SELECT participant_id FROM clinical_condition"
        f" WHERE {cond}) THEN 1.0 ELSE 0.0 END"
        f" FROM participant p WHERE p.participant_id IN ({sql}) ORDER BY 1",
        [year, *cparams, *params],
    ).fetchall()
    ids = [str(r[0]) for r in rows]
    base = {
        "sex": np.array([float(r[1]) for r in rows], dtype=float),
        "age": np.array([float(r[2]) for r in rows], dtype=float),
    }
    y = np.array([float(r[3]) for r in rows], dtype=float)
    keep = np.ones(len(ids), dtype=bool)
    columns = ["intercept"]
    cols = [np.ones(len(ids))]
    for name in covariates:
        if name in base:
            cols.append(base[name])
        elif (m := _VARIANT.match(name)) is not None:
            dosage = _dosages(con, ids, m["contig"], int(m["pos"]), m["ref"], m["alt"])
            keep &= ~np.isnan(dosage)
            cols.append(np.nan_to_num(dosage))
        else:
            raise ValidationError(
                f"covariate {name!r} is not sex, age or variant:<contig>:<pos>:<ref>:<alt>",
                field="covariates",
                value=name,
            )
        columns.append(name)
    x = np.column_stack(cols) if ids else np.zeros((0, len(cols)))
    return columns, x[keep], y[keep]


def _dosages(
    con: duckdb.DuckDBPyConnection, ids: list[str], contig: str, pos: int, ref: str, alt: str
) -> np.ndarray:
    """ALT dosage per participant of ``ids`` (NaN: not genotyped, not covered or no-call)."""
    row = con.execute(
        "SELECT variant_key FROM variant WHERE contig = ? AND position = ? AND ref = ? AND alt = ?",
        [contig, pos, ref, alt],
    ).fetchone()
    out = np.full(len(ids), np.nan)
    if row is None:
        raise ValidationError(
            f"variant {contig}:{pos}:{ref}:{alt} is not in this centre's store",
            field="covariates",
        )
    key = int(row[0])
    with sample_table(con, ids) as tbl:
        got = con.execute(
            "SELECT s.participant_id, coalesce(c.dosage, 0), coalesce(c.flags & 1, 0)"
            f" FROM {tbl} s JOIN batch_variant b ON b.batch_id = s.batch_id AND b.variant_key = ?"
            " LEFT JOIN (SELECT * FROM genotype_call_all WHERE variant_key = ?) c"
            " ON c.sample_key = s.sample_key",
            [key, key],
        ).fetchall()
    where = {pid: i for i, pid in enumerate(ids)}
    for pid, dosage, missing in got:
        if not missing:
            out[where[str(pid)]] = float(dosage)
    return out


def logistic_statistics(x: np.ndarray, y: np.ndarray, beta: np.ndarray) -> dict[str, Any]:
    """Gradient, information matrix and log-likelihood of a logistic model at ``beta``."""
    eta = x @ beta
    p = 1.0 / (1.0 + np.exp(-eta))
    w = p * (1.0 - p)
    loglik = float(np.sum(y * eta - np.logaddexp(0.0, eta)))
    return {
        "gradient": (x.T @ (y - p)).tolist(),
        "information": (x.T @ (x * w[:, None])).tolist(),
        "loglik": loglik,
    }


def _count(store: Store, partner: Partner, q: dict[str, Any], m: int) -> dict[str, Any]:
    """The count, through the output checks of the data access workflow.

    :func:`biobank.research.output_checks.release_count`: the small-count rule
    and the differencing check against every cohort already released to this
    partner (a new count whose members differ from a released one by fewer than
    ``m`` people is withheld). The record is the partner's store user name's,
    shared with its Beacon counts (:mod:`biobank.research.beacon.query`).
    """
    purpose = partner.purpose
    import json

    from biobank.research.output_checks import release_count

    sql, params = participants_sql(_filters(q), purpose)
    ids = [str(r[0]) for r in store.con.execute(sql, params).fetchall()]
    label = "federation count " + json.dumps(q.get("filters", []), sort_keys=True)
    released = release_count(
        store,
        partner_principal(partner),
        ids,
        purpose=purpose,
        label=label,
        min_count=m,
        record_user=partner.name,
    )
    return {
        "n": released.n,
        "suppressed": released.n is None and bool(ids),
        "reason": released.withheld,
    }


def _frequencies(
    con: duckdb.DuckDBPyConnection, q: dict[str, Any], purpose: str, m: int
) -> dict[str, Any]:
    region = q.get("region")
    cohorts = q.get("cohorts") or []
    if not isinstance(region, str) or not isinstance(cohorts, list) or len(cohorts) > _MAX_COHORTS:
        raise ValidationError(
            f"frequencies need a region (chr1:1-5000) and at most {_MAX_COHORTS} cohorts",
            field="region",
        )
    base_sql, base_params = participants_sql(_filters(q), purpose)
    out: dict[str, Any] = {}
    for cohort in [None, *cohorts]:
        sql, params = base_sql, list(base_params)
        if cohort is not None:
            sql += (
                " AND participant_id IN"
                " (SELECT participant_id FROM participant_cohort WHERE cohort = ?)"
            )
            params.append(str(cohort))
        ids = [str(r[0]) for r in con.execute(sql, params).fetchall()]
        with sample_table(con, ids) as tbl:
            df = allele_counts_in(con, tbl, VariantFilter(region=region))
        if df.height > _MAX_VARIANTS:
            raise ValidationError(
                f"the region holds more than {_MAX_VARIANTS} variants", field="region"
            )
        rows = []
        for r in df.iter_rows(named=True):
            ac, an = int(r["variant_alt_allele_count"]), int(r["variant_allele_total"])
            small = is_small(ac, m) or is_small(an - ac, m) or is_small(len(ids), m)
            rows.append(
                {
                    "variant": ":".join(
                        str(r[c])
                        for c in (
                            "variant_contig",
                            "variant_position",
                            "variant_ref",
                            "variant_alt",
                        )
                    ),
                    "alt_allele_count": None if small else ac,
                    "allele_total": None if small else an,
                    "suppressed": small,
                }
            )
        out["all" if cohort is None else str(cohort)] = rows
    return {"cohorts": out}


def _logistic(
    con: duckdb.DuckDBPyConnection, q: dict[str, Any], purpose: str, m: int
) -> dict[str, Any]:
    columns, x, y = design_matrix(con, q, purpose)
    stats = {"n": len(y), "n_cases": int(y.sum()), "n_parameters": len(columns)}
    reason = disclosure_refusal("logistic", stats, m)
    if reason:
        raise AccessDenied(f"disclosure: {reason}")
    beta_in = q.get("beta")
    beta = np.zeros(len(columns)) if beta_in is None else np.asarray(beta_in, dtype=float)
    if beta.shape != (len(columns),) or not np.all(np.isfinite(beta)):
        raise ValidationError(f"beta must be {len(columns)} finite numbers", field="beta")
    return {"columns": columns, **stats, **logistic_statistics(x, y, beta)}


def answer_question(
    store: Store, partner: Partner, kind: str, question: dict[str, Any], *, min_count: int
) -> dict[str, Any]:
    """Answer one federated question for ``partner`` and audit it (also a refusal).

    Raises
    ------
    ValidationError
        For an unknown kind or a malformed question.
    AccessDenied
        When the disclosure check refuses (audited as ``federation.refused``).
    """
    if kind not in QUESTIONS:
        raise ValidationError(
            f"question {kind!r} is not one of {', '.join(QUESTIONS)}", field="kind"
        )
    if not isinstance(question, dict):
        raise ValidationError("a question is a JSON object", field="body")
    principal = partner_principal(partner)
    shown = {k: v for k, v in question.items() if k != "beta"}
    try:
        with store.transaction() as con:
            if kind == "count":
                result = _count(store, partner, question, min_count)
            else:
                handler = _frequencies if kind == "frequencies" else _logistic
                result = handler(con, question, partner.purpose, min_count)
            audit.record(
                con,
                principal,
                "federation.question",
                kind,
                {"question": shown, "purpose": partner.purpose},
            )
    except AccessDenied as exc:
        with store.transaction() as con:
            audit.record(
                con, principal, "federation.refused", kind, {"question": shown, "reason": str(exc)}
            )
        raise
    return result
