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

In the same transaction the run summarises every family check of the samples it
touched into ``sample_qc`` (:func:`biobank.sequencing.sampleqc_family.merge_family_checks`:
``family_check`` pass/fail/not_tested, its detail and time; a failed check fails the
sample's overall ``qc_pass``). A rerun replaces both, never adding a row.

:func:`member_checks` reads them back for a participant's page (staff only), and
:func:`participant_sample_qc` a participant's samples' QC with their family checks.
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
from biobank.sequencing.sampleqc_family import FamilyQcMerge, merge_family_checks

if TYPE_CHECKING:
    from biobank.core.store import Store

__all__ = [
    "MAX_MENDEL_ERROR_RATE",
    "CheckSummary",
    "member_checks",
    "participant_family_summary",
    "participant_sample_qc",
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
    #: samples whose QC verdict in ``sample_qc`` a failed family check now fails
    failed_samples: int = 0

    def as_dict(self) -> dict[str, int]:
        """Return the summary as a plain dict (for printing)."""
        return {
            "families": self.families,
            "rows": self.rows,
            "failed": self.failed,
            "failed_samples": self.failed_samples,
        }


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

    The summary per sample is merged into ``sample_qc`` in the same transaction
    (see the module docstring).

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
        before = _checked_samples(con, fams)
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
        merged = _merge_into_sample_qc(store, con, before | _checked_samples(con, fams))
        audit.record(
            con, principal, "family.check", "family_check",
            {"families": fams[:50], "rows": len(rows), "failed": failed,
             "sample_qc": merged.samples, "sample_qc_failed": merged.failed},
        )  # fmt: skip
    return CheckSummary(
        families=len(fams), rows=len(rows), failed=failed, failed_samples=merged.failed
    )


def _checked_samples(con: Any, fams: Sequence[str]) -> set[str]:
    """Samples with ``family_check`` rows in these families."""
    return {
        r[0]
        for r in con.execute(
            "SELECT DISTINCT sample_id FROM family_check WHERE sample_id IS NOT NULL"
            " AND family_id IN (SELECT unnest(?::VARCHAR[]))",
            [list(fams)],
        ).fetchall()
    }


def _merge_into_sample_qc(store: Store, con: Any, samples: set[str]) -> FamilyQcMerge:
    """Summarise every family check of ``samples`` (all their families) into ``sample_qc``."""
    cur = con.execute(
        "SELECT sample_id, family_id, check_name, status, detail, checked_at FROM family_check"
        " WHERE sample_id IN (SELECT unnest(?::VARCHAR[]))",
        [sorted(samples)],
    )
    names = [d[0] for d in cur.description]
    stored = [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
    return merge_family_checks(store, stored, samples=sorted(samples))


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


def participant_sample_qc(
    store: Store, principal: Principal, participant_id: str
) -> list[dict[str, Any]]:
    """The QC of a participant's sequencing samples with their family checks (staff only).

    Returns
    -------
    list of dict
        One per sample (registered sequencing samples of the participant and
        samples of their stored family checks), by sample id: ``sample_id``,
        ``qc`` (the ``sample_qc`` row, every column, or ``None`` without one) and
        ``checks`` (``family_id, check_name, status, value, detail, checked_at``).
        Empty when the participant has neither.

    Raises
    ------
    AccessDenied
        Without ``registry_read`` (researchers read no QC table).
    """
    from biobank.sequencing.sampleqc_family import read_sample_qc

    require(principal, Permission.REGISTRY_READ)
    with store.transaction() as con:
        registered = [
            r[0]
            for r in con.execute(
                "SELECT sample_id FROM sequencing_sample WHERE participant_id = ?",
                [participant_id],
            ).fetchall()
        ]
        cur = con.execute(
            "SELECT sample_id, family_id, check_name, status, value, detail, checked_at"
            " FROM family_check WHERE participant_id = ? AND sample_id IS NOT NULL"
            " ORDER BY sample_id, family_id, check_name",
            [participant_id],
        )
        names = [d[0] for d in cur.description]
        checks = [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
        samples = sorted(set(registered) | {c["sample_id"] for c in checks})
        qc = {r["sample_id"]: r for r in read_sample_qc(con, samples)}
        audit.record(
            con, principal, "sample_qc.read", participant_id,
            {"samples": len(samples), "rows": len(qc)},
        )  # fmt: skip
    return [
        {
            "sample_id": s,
            "qc": qc.get(s),
            "checks": [
                {k: v for k, v in c.items() if k != "sample_id"}
                for c in checks
                if c["sample_id"] == s
            ],
        }
        for s in samples
    ]
