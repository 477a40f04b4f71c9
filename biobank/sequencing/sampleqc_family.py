"""Family checks in the sample QC table, and the overall QC verdict of a sample.

``sample_qc`` (schema ``040_sample_qc.sql``, rebuilt by ``174_sample_qc_family.sql``)
holds two kinds of results per sequencing sample:

* the workflow's QC (:func:`biobank.sequencing.sampleqc.load_sample_qc`): call rate,
  heterozygosity, Ti/Tv, sex, kinship, ``flags`` and the workflow's verdict
  ``workflow_qc_pass`` (``load_id`` and ``workflow_qc_pass`` are NULL for a sample
  the workflow has not assessed);
* the summary of its pedigree checks against the genomes
  (:func:`merge_family_checks`, called by :func:`biobank.families.checks.run_family_checks`):

  ======================  ===========================================================
  ``family_check``        ``fail`` when any of the sample's checks failed, else
                          ``pass`` when any passed, else ``not_tested``; NULL when
                          the sample was never checked
  ``family_check_detail`` the failed checks (family, check, reason), or the checks
                          that passed and were not tested
  ``family_checked_at``   the latest check of the sample (UTC)
  ======================  ===========================================================

``qc_pass`` is the overall verdict, kept by :func:`refresh_verdict` (the one owner of
the rule, :data:`VERDICT_SQL`): ``FALSE`` when the family check failed, otherwise the
workflow's verdict, which is NULL (not assessed) without workflow QC.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import duckdb

    from biobank.core.store import Store

__all__ = [
    "FAMILY_CHECK_STATUSES",
    "VERDICT_SQL",
    "FamilyQc",
    "FamilyQcMerge",
    "merge_family_checks",
    "read_sample_qc",
    "refresh_verdict",
    "summarise_family_checks",
]

#: The statuses of one family check and of a sample's summary.
FAMILY_CHECK_STATUSES = ("pass", "fail", "not_tested")

#: The overall verdict of a ``sample_qc`` row from its parts.
VERDICT_SQL = "CASE WHEN family_check = 'fail' THEN FALSE ELSE workflow_qc_pass END"


@dataclass(frozen=True)
class FamilyQc:
    """The summary of one sample's family checks (the ``family_*`` columns)."""

    sample_id: str
    status: str
    detail: str
    checked_at: dt.datetime


@dataclass(frozen=True)
class FamilyQcMerge:
    """What :func:`merge_family_checks` did.

    Attributes
    ----------
    samples
        Samples whose family summary was written.
    failed
        Of these, samples whose family check failed.
    cleared
        Samples that have no family check left (summary removed; a row without
        workflow QC deleted).
    """

    samples: int
    failed: int
    cleared: int


def summarise_family_checks(rows: Iterable[Mapping[str, Any]]) -> dict[str, FamilyQc]:
    """Summarise stored family check rows per sample.

    Parameters
    ----------
    rows
        Mappings with ``sample_id, family_id, check_name, status, detail, checked_at``
        (the ``family_check`` columns); rows without a sample are left out.

    Returns
    -------
    dict[str, FamilyQc]
        By sample id: ``fail`` if any check failed, else ``pass`` if any passed, else
        ``not_tested``; the detail names the failed checks with their reasons first.

    Raises
    ------
    ValueError
        If a status is not one of :data:`FAMILY_CHECK_STATUSES`.
    """
    by_sample: dict[str, list[Mapping[str, Any]]] = {}
    for r in rows:
        if r["status"] not in FAMILY_CHECK_STATUSES:
            raise ValueError(
                f"family check status {r['status']!r} is not one of pass, fail, not_tested"
            )
        if r["sample_id"]:
            by_sample.setdefault(str(r["sample_id"]), []).append(r)
    out: dict[str, FamilyQc] = {}
    for sample, items in sorted(by_sample.items()):
        items = sorted(items, key=lambda r: (str(r["family_id"]), str(r["check_name"])))
        of = {s: [i for i in items if i["status"] == s] for s in FAMILY_CHECK_STATUSES}
        status = "fail" if of["fail"] else ("pass" if of["pass"] else "not_tested")
        parts = [f"{i['family_id']} {i['check_name']} failed: {i['detail']}" for i in of["fail"]]
        for s, label in (("pass", "passed"), ("not_tested", "not tested")):
            if of[s]:
                names = ", ".join(f"{i['family_id']} {i['check_name']}" for i in of[s])
                parts.append(f"{label}: {names}")
        out[sample] = FamilyQc(
            sample_id=sample,
            status=status,
            detail="; ".join(parts),
            checked_at=max(i["checked_at"] for i in items),
        )
    return out


def refresh_verdict(con: duckdb.DuckDBPyConnection, sample_ids: Sequence[str]) -> None:
    """Recompute ``qc_pass`` of these samples' rows by :data:`VERDICT_SQL`."""
    con.execute(
        f"UPDATE sample_qc SET qc_pass = {VERDICT_SQL}"
        " WHERE sample_id IN (SELECT unnest(?::VARCHAR[]))",
        [list(sample_ids)],
    )


def merge_family_checks(
    store: Store, rows: Iterable[Mapping[str, Any]], *, samples: Sequence[str]
) -> FamilyQcMerge:
    """Write the family check summary of ``samples`` into ``sample_qc``, in one transaction.

    A rerun replaces the summary (one row per sample, never a second one); a sample
    without workflow QC gets a row of its own. Inside an open transaction of
    ``store`` (as :func:`biobank.families.checks.run_family_checks` calls it) the
    merge joins it, so the family checks and the sample QC table change together.

    Parameters
    ----------
    store
        The :class:`~biobank.core.store.Store`.
    rows
        Every stored family check row of ``samples`` (all their families), as for
        :func:`summarise_family_checks`.
    samples
        The samples to refresh: those with no row in ``rows`` lose their summary.

    Returns
    -------
    FamilyQcMerge
    """
    summary = summarise_family_checks(rows)
    cleared = sorted(set(samples) - set(summary))
    with store.transaction() as con:
        if summary:
            con.executemany(
                "INSERT INTO sample_qc (sample_id, family_check, family_check_detail,"
                " family_checked_at) VALUES (?, ?, ?, ?) ON CONFLICT (sample_id) DO UPDATE SET"
                " family_check = excluded.family_check,"
                " family_check_detail = excluded.family_check_detail,"
                " family_checked_at = excluded.family_checked_at",
                [[q.sample_id, q.status, q.detail, q.checked_at] for q in summary.values()],
            )
        if cleared:
            con.execute(
                "DELETE FROM sample_qc WHERE load_id IS NULL"
                " AND sample_id IN (SELECT unnest(?::VARCHAR[]))",
                [cleared],
            )
            con.execute(
                "UPDATE sample_qc SET family_check = NULL, family_check_detail = NULL,"
                " family_checked_at = NULL WHERE sample_id IN (SELECT unnest(?::VARCHAR[]))",
                [cleared],
            )
        refresh_verdict(con, [*summary, *cleared])
    failed = sum(1 for q in summary.values() if q.status == "fail")
    return FamilyQcMerge(samples=len(summary), failed=failed, cleared=len(cleared))


def read_sample_qc(
    con: duckdb.DuckDBPyConnection, sample_ids: Sequence[str]
) -> list[dict[str, Any]]:
    """The ``sample_qc`` rows of these samples (every column), by sample id.

    Callers check the reader's permission (the rows are staff QC, not research data).
    """
    cur = con.execute(
        "SELECT * FROM sample_qc WHERE sample_id IN (SELECT unnest(?::VARCHAR[]))"
        " ORDER BY sample_id",
        [list(sample_ids)],
    )
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
