"""Pedigree checks against the genomes, stored per member in ``family_check``.

:func:`run_family_checks` computes, for the chosen families, and replaces their rows:

``mendel``
    per child of a genotyped trio: Mendelian error rate
    (:func:`biobank.families.mendel.mendel_errors`); ``fail`` above
    :data:`MAX_MENDEL_ERROR_RATE` (a wrong parent or a sample swap gives tens
    of percent, genotyping errors a few per thousand);
``relatedness``
    per member: ``fail`` when a registered relative is not related in the
    genotypes, or a member unrelated by the pedigree is a close relative
    (:func:`biobank.families.relatedness.check_relatedness`); a different degree
    of a related pair (e.g. full siblings looking like half siblings) is noted in
    ``detail`` but passes;
``sex``
    registered sex against the chrX calls (:func:`~biobank.families.relatedness.check_sex`).

:func:`member_checks` reads them back for a participant's page (staff only).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import polars as pl

from biobank.core import audit
from biobank.core.access import Permission, Principal, require
from biobank.families.mendel import mendel_errors
from biobank.families.relatedness import check_relatedness, check_sex
from biobank.registry import events

if TYPE_CHECKING:
    from biobank.core.store import Store

__all__ = [
    "MAX_MENDEL_ERROR_RATE",
    "CheckSummary",
    "member_checks",
    "participant_family_summary",
    "run_family_checks",
]

MAX_MENDEL_ERROR_RATE = 0.01
_FAILING = {"expected_not_related", "unexpected_relative"}


@dataclass
class CheckSummary:
    """What :func:`run_family_checks` wrote."""

    families: int
    rows: int
    failed: int

    def as_dict(self) -> dict[str, int]:
        """Return the summary as a plain dict (for printing)."""
        return {"families": self.families, "rows": self.rows, "failed": self.failed}


def _mendel_rows(report: pl.DataFrame, ids: dict[str, str]) -> list[dict[str, Any]]:
    rows = []
    for r in report.iter_rows(named=True):
        rate = r["error_rate"]
        bad = rate is not None and rate > MAX_MENDEL_ERROR_RATE
        rows.append(
            {
                "family_id": r["family_id"],
                "participant_id": ids[r["child_sample"]],
                "sample_id": r["child_sample"],
                "check_name": "mendel",
                "status": "fail" if bad else "pass",
                "value": rate,
                "detail": f"{r['n_errors']} Mendelian errors in {r['n_errors'] + r['n_consistent']}"
                f" informative sites with {r['father_sample']} and {r['mother_sample']}",
            }
        )
    return rows


def _relatedness_rows(pairs: pl.DataFrame) -> list[dict[str, Any]]:
    by_member: dict[tuple[str, str, str], list[dict[str, object]]] = {}
    for r in pairs.iter_rows(named=True):
        for me, other in (("1", "2"), ("2", "1")):
            key = (r["family_1"], r[f"participant_{me}"], r[f"sample_{me}"])
            by_member.setdefault(key, []).append({**r, "other": r[f"sample_{other}"]})
    rows = []
    for (fam, pid, sid), items in by_member.items():
        bad = [i for i in items if i["status"] in _FAILING]
        odd = [i for i in items if i["status"] == "other_degree"]
        notes = [
            f"{i['other']}: registered {i['expected_relationship']}, genotypes "
            f"{i['inferred_relationship']} (kinship {float(str(i['kinship'])):.3f})"
            for i in bad + odd
        ]
        rows.append(
            {
                "family_id": fam,
                "participant_id": pid,
                "sample_id": sid,
                "check_name": "relatedness",
                "status": "fail" if bad else "pass",
                "value": float(len(bad)),
                "detail": "; ".join(notes) or f"{len(items)} pairs as registered",
            }
        )
    return rows


def run_family_checks(
    store: Store, principal: Principal, *, families: Sequence[str] | None = None
) -> CheckSummary:
    """Check the families' pedigrees against the genomes; replace their ``family_check`` rows.

    Raises
    ------
    AccessDenied
        Without ``load_data`` (staff run the checks; researchers see no QC table).
    """
    require(principal, Permission.LOAD_DATA)
    with store.transaction() as con:
        mendel = mendel_errors(con, principal=principal, families=families).trios
        pairs = check_relatedness(con, principal=principal, families=families)
        sex = check_sex(con, principal=principal, families=families)
        ids = dict(con.execute("SELECT sample_id, participant_id FROM genotype_sample").fetchall())
        rows = _mendel_rows(mendel, ids) + _relatedness_rows(pairs)
        rows += [
            {
                "family_id": r["family_id"],
                "participant_id": r["participant_id"],
                "sample_id": r["sample_id"],
                "check_name": "sex",
                "status": "not_tested"
                if r["status"] == "not_tested"
                else ("pass" if r["status"] == "ok" else "fail"),
                "value": None,
                "detail": f"registered {r['registered_sex']}, chrX calls suggest "
                f"{r['inferred_sex'] or 'nothing'} ({r['x_haploid']} of {r['x_calls']} haploid)",
            }
            for r in sex.iter_rows(named=True)
        ]
        fams = sorted({str(r["family_id"]) for r in rows} | set(families or []))
        con.execute(
            "DELETE FROM family_check WHERE family_id IN (SELECT unnest(?::VARCHAR[]))", [fams]
        )
        if rows:
            df = pl.DataFrame(rows, infer_schema_length=None).with_columns(
                pl.lit(events.now()).alias("checked_at")
            )
            con.register("_family_check_rows", df)
            try:
                con.execute(
                    "INSERT INTO family_check SELECT family_id, participant_id, sample_id,"
                    " check_name, status, value, detail, checked_at FROM _family_check_rows"
                )
            finally:
                con.unregister("_family_check_rows")
        failed = sum(1 for r in rows if r["status"] == "fail")
        audit.record(
            con, principal, "family.check", "family_check",
            {"families": fams[:50], "rows": len(rows), "failed": failed},
        )  # fmt: skip
    return CheckSummary(families=len(fams), rows=len(rows), failed=failed)


def member_checks(store: Store, principal: Principal, participant_id: str) -> pl.DataFrame:
    """The stored family checks of one participant (staff only, audited).

    Returns
    -------
    polars.DataFrame
        ``family_id, sample_id, check_name, status, value, detail, checked_at``.
    """
    require(principal, Permission.REGISTRY_READ)
    with store.transaction() as con:
        df = con.execute(
            "SELECT family_id, sample_id, check_name, status, value, detail, checked_at"
            " FROM family_check WHERE participant_id = ? ORDER BY family_id, check_name",
            [participant_id],
        ).pl()
        audit.record(con, principal, "family.check.read", participant_id, {"rows": df.height})
    return df


def participant_family_summary(
    store: Store, principal: Principal, participant_id: str
) -> dict[str, list[dict[str, Any]]]:
    """A participant's families, HPO terms and stored checks, for their page (staff only).

    Returns
    -------
    dict
        ``families`` (family_id, father_id, mother_id, affected), ``phenotypes``
        (hpo_id, hpo_name, observed, source), ``affected`` (the status per
        phenotype: family_id, phenotype, phenotype_label, affected, source) and
        ``checks`` (see :func:`member_checks`).
    """
    from biobank.registry.affected import affected_statuses
    from biobank.registry.phenotypes import participant_phenotypes

    require(principal, Permission.REGISTRY_READ)
    with store.transaction() as con:
        fams = con.execute(
            "SELECT family_id, father_id, mother_id, affected FROM family_member"
            " WHERE participant_id = ? ORDER BY family_id",
            [participant_id],
        ).pl()
    pheno = participant_phenotypes(store, principal, [participant_id])
    checks = member_checks(store, principal, participant_id)
    per_phenotype = affected_statuses(store, principal, participant_id=participant_id)
    return {
        "families": fams.to_dicts(),
        "affected": per_phenotype.select(
            "family_id", "phenotype", "phenotype_label", "affected", "source"
        ).to_dicts(),
        "phenotypes": pheno.select("hpo_id", "hpo_name", "observed", "source").to_dicts(),
        "checks": checks.to_dicts(),
    }
