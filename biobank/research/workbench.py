"""The researcher's facade: ``biobank.open(path, user=..., purpose=...)``.

A :class:`Workbench` answers research questions over the participants whose
current consent permits the stated purpose, and only for users with the
``researcher`` role (admins, registrars and auditors get
:class:`~biobank.core.errors.AccessDenied`: the people who can see identities do
not also browse research data under the same login). Every answer is a
:class:`polars.DataFrame`.

* Consent is re-checked on every call (cohorts are stored as definitions and
  re-evaluated), so a withdrawal takes effect at the next query.
* Every read of individual-level rows is recorded in the audit log
  (:func:`biobank.core.audit.record`) with the query's parameters and row count.
* Aggregate counts below the small-count threshold (``min_count``, default 5)
  are suppressed (null) in aggregate output; see :func:`suppress_small_counts`.
* :meth:`Workbench.sql` runs read-only SQL in a sandbox holding only the
  research tables, restricted to the permitted participants.
* **Record-level access.** Methods whose result has one row per participant
  (:meth:`~Workbench.participant_ids`, :meth:`~Workbench.cohort`,
  :meth:`~Workbench.sql`, :meth:`~Workbench.case_control`, genotype matrices,
  covariates, PCs, survival data ...) need an approved data access request in
  force for the purpose (:mod:`biobank.research.access_requests`), and show
  only the fields it approves (:mod:`biobank.research.field_access`: other
  attribute columns are dropped, methods needing other fields are refused
  naming them, SQL tables hold the approved columns). Without one,
  a researcher gets aggregates only, and those pass the output checks of
  :mod:`biobank.research.output_checks` (small counts, dominance, and the
  per-user differencing record): :meth:`~Workbench.count`,
  :meth:`~Workbench.summary`, frequencies and association results.

Examples
--------
>>> import biobank                                                 # doctest: +SKIP
>>> wb = biobank.open("demo.duckdb", user="rita", purpose="DS:E11")  # doctest: +SKIP
>>> from biobank.clinical.cohorts import Diagnosis, Lab                      # doctest: +SKIP
>>> wb.case_control(Diagnosis("E11") & Lab("HbA1c", ">=", 6.5))     # doctest: +SKIP

This module is longer than 800 lines on purpose: :class:`Workbench` is the
researcher's one facade, and each of its methods is a short adapter that checks
the purpose, restricts to consented participants, audits and suppresses small
counts before calling a lower stage; splitting the class would scatter the one
place where those rules meet.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import polars as pl

from biobank.clinical import cohorts
from biobank.clinical.cohorts import Criterion
from biobank.core import audit
from biobank.core.access import Permission, Principal, Role, get_principal, require
from biobank.core.disclosure import (
    SMALL_COUNT_THRESHOLD,
    suppress_small_counts,
    suppressed_count,
)
from biobank.core.errors import AccessDenied, DisclosureRefused, StoreError, ValidationError
from biobank.core.store import Store
from biobank.research.output_checks import CountRelease
from biobank.research.sandbox import SandboxLimits

if TYPE_CHECKING:
    from biobank.genomes.filters import VariantFilter
    from biobank.genomes.reader import GenotypeMatrix

__all__ = [
    "DEFAULT_MIN_COUNT",
    "RESEARCH_TABLES",
    "SurvivalResult",
    "Workbench",
    "open_workbench",
    "suppress_small_counts",
]

logger = logging.getLogger(__name__)


def _renamed_filter(
    variant_filter: VariantFilter | None, filter: VariantFilter | None
) -> VariantFilter | None:
    """``variant_filter``, or the deprecated ``filter=`` (its old name) with a warning."""
    if filter is None:
        return variant_filter
    warnings.warn(
        "filter= is deprecated: pass variant_filter= instead (filter= is removed in the "
        "next release)",
        DeprecationWarning,
        stacklevel=3,
    )
    if variant_filter is not None:
        raise ValidationError(
            "give variant_filter= only (filter= is its deprecated old name), not both",
            field="variant_filter",
        )
    return filter


#: Aggregate counts from 1 to ``DEFAULT_MIN_COUNT - 1`` are suppressed in research output
#: (the center's rule, :data:`biobank.core.disclosure.SMALL_COUNT_THRESHOLD`).
DEFAULT_MIN_COUNT = SMALL_COUNT_THRESHOLD

#: Tables visible to :meth:`Workbench.sql`: name -> SQL over the store, where
#: ``{permitted}`` is the query of the permitted participant ids.
RESEARCH_TABLES: dict[str, str] = {
    "person": "SELECT participant_id, sex, year_of_birth FROM clinical_person"
    " WHERE participant_id IN ({permitted})",
    "condition": "SELECT participant_id, code, code_compact, start_date, end_date"
    " FROM clinical_condition WHERE participant_id IN ({permitted})",
    "measurement": "SELECT participant_id, name, measured_on, value, unit"
    " FROM clinical_measurement WHERE participant_id IN ({permitted})",
    "observation_period": "SELECT participant_id, start_date, end_date"
    " FROM clinical_observation_period WHERE participant_id IN ({permitted})",
    "death": "SELECT participant_id, death_date, cause_code FROM clinical_death"
    " WHERE participant_id IN ({permitted})",
    "enrolment": "SELECT participant_id, enrolment_date, site FROM participant"
    " WHERE participant_id IN ({permitted})",
    "study_cohort": "SELECT participant_id, cohort FROM participant_cohort"
    " WHERE participant_id IN ({permitted})",
    "variant": "SELECT * FROM variant",
    "batch_variant": "SELECT * FROM batch_variant",
    "genotype_sample": "SELECT sample_key, sample_id, participant_id, batch_id"
    " FROM genotype_sample WHERE participant_id IN ({permitted})",
    "genotype_call": "SELECT c.* FROM genotype_call_all c WHERE c.sample_key IN"
    " (SELECT sample_key FROM genotype_sample WHERE participant_id IN ({permitted}))",
    "cohort_definition": "SELECT name, description, CAST(definition AS VARCHAR) AS definition,"
    " created_by, created_at FROM cohort_definition",
}

CohortLike = Criterion | str | None


@dataclass(frozen=True)
class SurvivalResult:
    """What :meth:`Workbench.survival` returns.

    Attributes
    ----------
    data
        One row per participant: ``participant_id``, ``time`` (years), ``event``,
        ``genotype`` (or the grouping), the covariates.
    km
        Kaplan-Meier curves per group (:func:`biobank.clinical.survival.kaplan_meier`).
    cox
        Cox model coefficients (:func:`biobank.clinical.survival.cox`).
    logrank_p
        Log-rank test p-value between the groups.
    """

    data: pl.DataFrame
    km: pl.DataFrame
    cox: pl.DataFrame
    logrank_p: float


class Workbench:
    """Research queries for one user and purpose over one store.

    Use :func:`biobank.open` to create one.

    Parameters
    ----------
    store
        The open store.
    principal
        The researcher (role ``researcher``) with the purpose set.
    min_count
        Small-count threshold for aggregates.

    Raises
    ------
    AccessDenied
        If the principal is not a researcher.
    ValidationError
        If the purpose is missing or malformed.
    """

    def __init__(
        self,
        store: Store,
        principal: Principal,
        *,
        min_count: int = DEFAULT_MIN_COUNT,
        sql_limits: SandboxLimits | None = None,
    ) -> None:
        from biobank.registry.consent import parse_purpose

        require(principal, Permission.RESEARCH_READ)
        if not principal.purpose:
            raise ValidationError(
                "a research purpose is needed (GRU, HMB, POA or DS:<ICD-10>)", field="purpose"
            )
        self.purpose = str(parse_purpose(principal.purpose))
        self.store = store
        self.principal = principal
        self.min_count = min_count
        #: limits of :meth:`sql` (default: :meth:`SandboxLimits.from_env`)
        self.sql_limits = SandboxLimits.from_env() if sql_limits is None else sql_limits
        from biobank.research.access_requests import approved_request_for

        #: the approved request giving record-level access for this purpose, or ``None``
        self.record_access = approved_request_for(store.con, principal.user, self.purpose)
        self._depth = 0

    # -- lifecycle -----------------------------------------------------------
    def close(self) -> None:
        """Close the store."""
        self.store.close()

    def __enter__(self) -> Workbench:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"Workbench(store={str(self.store.path)!r}, user={self.principal.user!r},"
            f" purpose={self.purpose!r})"
        )

    # -- helpers -------------------------------------------------------------
    def _audit(self, action: str, target: str, detail: dict[str, Any]) -> None:
        with self.store.transaction() as con:
            audit.record(con, self.principal, action, target, {"purpose": self.purpose, **detail})

    @contextmanager
    def _inside(self) -> Iterator[None]:
        """Call record-level methods as inputs of an aggregate (their rows are not shown)."""
        self._depth += 1
        try:
            yield
        finally:
            self._depth -= 1

    def _require_record_level(self, what: str) -> None:
        """Refuse (and audit) a per-participant result without an approved request."""
        if self.record_access is not None or self._depth:
            return
        message = (
            f"{what} lists individual participants: it needs an approved data access request"
            f" in force for purpose {self.purpose} ('biobank access request'); without one,"
            " use aggregate results (count, summary, frequencies, association)"
        )
        audit.record_refusal(
            self.store.con,
            user=self.principal.user,
            role=self.principal.role.value,
            action="access.refused",
            target=what,
            detail={"purpose": self.purpose, "reason": "no record-level access"},
        )
        raise AccessDenied(message).mark_audited()

    def _require_genotypes(self, what: str) -> None:
        from biobank.research.field_access import GENOTYPES

        self._require_fields(what, [GENOTYPES])

    def _shown(self, df: pl.DataFrame) -> pl.DataFrame:
        """Drop the attribute columns of a record-level result whose fields are not approved."""
        if self.record_access is None or self._depth:
            return df
        from biobank.research.field_access import restrict_columns

        return restrict_columns(df, self.record_access.fields)

    def _require_fields(self, what: str, fields: Sequence[str]) -> None:
        """Refuse (and audit) a record-level method needing fields the request does not approve."""
        if self.record_access is None or self._depth:
            return
        from biobank.research.field_access import missing_fields, refusal

        missing = missing_fields(self.record_access.fields, fields)
        if not missing:
            return
        req = self.record_access
        audit.record_refusal(
            self.store.con,
            user=self.principal.user,
            role=self.principal.role.value,
            action="access.refused",
            target=what,
            detail={
                "purpose": self.purpose,
                "reason": "fields not approved",
                "fields": missing,
                "request": req.request_id,
            },
        )
        raise AccessDenied(refusal(what, missing, req.request_id, self.purpose)).mark_audited()

    def _release_ids(self, ids: Sequence[str], cohort: CohortLike, *, prefix: str = "") -> None:
        """Record an aggregate over ``ids`` as released; refuse it if it differences a release.

        Without record-level access, an aggregate result (frequencies,
        association counts, a regression) over a cohort whose members differ
        from a cohort already released to this user by 1 .. ``min_count - 1``
        people would give them away (:func:`~biobank.research.output_checks.release_count`).
        """
        if self.record_access is not None or not ids:
            return
        from biobank.research.output_checks import release_count

        label = cohort if isinstance(cohort, str) else json.dumps(self._describe(cohort))
        release = release_count(
            self.store,
            self.principal,
            ids,
            purpose=self.purpose,
            label=prefix + str(label),
            min_count=self.min_count,
        )
        if release.withheld is not None and "differencing" in release.withheld:
            # audited as disclosure.withheld by release_count
            raise DisclosureRefused(f"this result is withheld: {release.withheld}").mark_audited()

    def _criterion(self, cohort: CohortLike) -> Criterion | None:
        if isinstance(cohort, str):
            return cohorts.get_cohort(self.store.con, cohort)
        return cohort

    @staticmethod
    def _describe(cohort: CohortLike) -> Any:
        if cohort is None:
            return "all"
        return cohort if isinstance(cohort, str) else cohort.to_dict()

    def _query(self, sql: str, params: Sequence[Any] = ()) -> pl.DataFrame:
        cur = self.store.cursor()
        try:
            return cur.execute(sql, list(params)).pl()
        except duckdb.Error as exc:
            raise StoreError(f"research query failed: {exc}") from exc
        finally:
            cur.close()

    def permitted_sql(self) -> str:
        """Return the SQL of the participant ids this purpose may use (consent)."""
        from biobank.registry.consent import permitted_participants_sql

        return permitted_participants_sql(self.purpose)

    def _ids(self, cohort: CohortLike = None) -> list[str]:
        sql, params = cohorts.cohort_sql(self._criterion(cohort), purpose=self.purpose)
        return self._query(sql, params)["participant_id"].to_list()

    def participant_ids(self, cohort: CohortLike = None) -> list[str]:
        """Return the sorted pseudonyms in a cohort (a criterion, a saved name, or everyone).

        Audited (``research.ids``).
        """
        self._require_record_level("participant_ids")
        ids = self._ids(cohort)
        self._audit("research.ids", str(self._describe(cohort))[:200], {"rows": len(ids)})
        return ids

    def _attributes(self, ids: Sequence[str], *, at: dt.date | None = None) -> pl.DataFrame:
        year = (at or dt.date.today()).year
        cur = self.store.cursor()
        try:
            cur.register(
                "_wb_ids",
                pl.DataFrame({"participant_id": list(ids)}, schema={"participant_id": pl.String}),
            )
            return cur.execute(
                """
                SELECT p.participant_id, p.sex, p.year_of_birth, ? - p.year_of_birth AS age,
                       coalesce((SELECT list(DISTINCT c.code ORDER BY c.code)
                                 FROM clinical_condition c
                                 WHERE c.participant_id = p.participant_id), []::VARCHAR[])
                         AS diagnoses,
                       d.death_date
                FROM clinical_person p JOIN _wb_ids USING (participant_id)
                LEFT JOIN clinical_death d USING (participant_id)
                ORDER BY p.participant_id
                """,
                [year],
            ).pl()
        finally:
            cur.close()

    # -- cohorts -------------------------------------------------------------
    def define_cohort(
        self, name: str, criterion: Criterion, *, description: str = "", replace: bool = False
    ) -> None:
        """Save a named cohort definition (re-evaluated on every use)."""
        cohorts.save_cohort(
            self.store, self.principal, name, criterion, description=description, replace=replace
        )

    def cohorts(self) -> pl.DataFrame:
        """Return the saved cohort definitions."""
        return cohorts.list_cohorts(self.store.con)

    def cohort_definition(self, name: str) -> Criterion:
        """Return a saved cohort's criterion."""
        return cohorts.get_cohort(self.store.con, name)

    def cohort(self, cohort: CohortLike = None, *, at: dt.date | None = None) -> pl.DataFrame:
        """Return the members of a cohort with their clinical attributes (audited).

        Returns
        -------
        polars.DataFrame
            ``participant_id``, ``sex``, ``year_of_birth``, ``age`` (at ``at``,
            default today), ``diagnoses`` (list of ICD-10 codes), ``death_date``.
        """
        self._require_record_level("cohort")
        ids = self._ids(cohort)
        df = self._shown(self._attributes(ids, at=at))
        self._audit("research.cohort", str(self._describe(cohort))[:200], {"rows": df.height})
        return df

    def count_release(self, cohort: CohortLike = None) -> CountRelease:
        """Return the size of a cohort as released to this user, or why it is withheld.

        With record-level access only the small-count rule applies; without it
        the size also passes the differencing check of
        :func:`biobank.research.output_checks.release_count` (and is recorded).
        """
        ids = self._ids(cohort)
        if self.record_access is not None:
            n = suppressed_count(len(ids), self.min_count)
            return CountRelease(
                n, None if n is not None else f"fewer than {self.min_count} participants"
            )
        from biobank.research.output_checks import release_count

        label = cohort if isinstance(cohort, str) else json.dumps(self._describe(cohort))
        return release_count(
            self.store,
            self.principal,
            ids,
            purpose=self.purpose,
            label=str(label),
            min_count=self.min_count,
        )

    def count(self, cohort: CohortLike = None) -> int | None:
        """Return the size of a cohort, or ``None`` if withheld (see :meth:`count_release`)."""
        return self.count_release(cohort).n

    def case_control(
        self, cases: CohortLike, controls: CohortLike = None, *, at: dt.date | None = None
    ) -> pl.DataFrame:
        """Return cases and controls with their attributes (audited).

        Controls match ``controls`` (default: every permitted participant), are not
        cases, and have no diagnosis under the case definition's codes.

        Returns
        -------
        polars.DataFrame
            ``participant_id``, ``is_case`` and the columns of :meth:`cohort`.
        """
        self._require_record_level("case_control")
        case_c = self._criterion(cases)
        if case_c is None:
            raise ValidationError("a case definition is needed", field="cases")
        sql, params = cohorts.case_control_sql(
            case_c, self._criterion(controls), purpose=self.purpose
        )
        labels = self._query(sql, params)
        df = self._shown(
            labels.join(
                self._attributes(labels["participant_id"].to_list(), at=at),
                on="participant_id",
                how="left",
            )
        )
        self._audit(
            "research.case_control",
            str(self._describe(cases))[:200],
            {
                "controls": self._describe(controls),
                "cases": int(df["is_case"].sum()),
                "rows": df.height,
            },
        )
        return df

    def summary(self, cohort: CohortLike = None) -> pl.DataFrame:
        """Return counts by sex and 10-year age band (small counts suppressed).

        Returns
        -------
        polars.DataFrame
            ``sex``, ``age_band`` (e.g. ``60-69``), ``participants``.
        """
        ids = self._ids(cohort)
        df = self._attributes(ids).with_columns(
            age_band=((pl.col("age") // 10) * 10).cast(pl.Int64).cast(pl.String)
            + "-"
            + ((pl.col("age") // 10) * 10 + 9).cast(pl.Int64).cast(pl.String)
        )
        out = df.group_by("sex", "age_band").agg(participants=pl.len()).sort("sex", "age_band")
        if self.record_access is not None:
            return suppress_small_counts(out, ["participants"], min_count=self.min_count)
        release = self.count_release(cohort)
        if release.withheld is not None and "differencing" in release.withheld:
            raise DisclosureRefused(
                f"the summary of this cohort is withheld: {release.withheld}"
            ).mark_audited()  # audited as disclosure.withheld by release_count
        if not ids:
            return out
        from biobank.research.output_checks import check_table

        checked = check_table(df, "sex", "age_band", min_count=self.min_count).table
        withheld = checked.filter(pl.col("withheld") != "").select("sex", "age_band")
        flagged = withheld.with_columns(_withheld=pl.lit(True))
        return (
            out.join(flagged, on=["sex", "age_band"], how="left")
            .with_columns(
                participants=pl.when(pl.col("_withheld")).then(None).otherwise("participants")
            )
            .drop("_withheld")
        )

    # -- genotypes (biobank.genomes.reader, biobank.stats) -------------------------------
    @staticmethod
    def _filter(
        variant_filter: VariantFilter | None,
        *,
        region: str | None = None,
        genes: Sequence[str] | str | None = None,
        variant_ids: Sequence[str] | str | None = None,
    ) -> VariantFilter:
        from biobank.genomes.filters import VariantFilter

        if variant_filter is not None and (region or genes or variant_ids):
            raise ValidationError(
                "give either variant_filter= or region/genes/variant_ids, not both",
                field="variant_filter",
            )
        if variant_filter is not None:
            return variant_filter
        return VariantFilter(
            region=region,
            genes=[genes] if isinstance(genes, str) else genes,
            variant_ids=[variant_ids] if isinstance(variant_ids, str) else variant_ids,
        )

    def carriers(
        self,
        cohort: CohortLike = None,
        *,
        variant_filter: VariantFilter | None = None,
        region: str | None = None,
        genes: Sequence[str] | str | None = None,
        variant_ids: Sequence[str] | str | None = None,
        filter: VariantFilter | None = None,  # deprecated: variant_filter's old name
    ) -> pl.DataFrame:
        """Carriers of the selected variants in a cohort, with their clinical attributes.

        Returns
        -------
        polars.DataFrame
            The columns of :func:`biobank.genomes.reader.carriers` (``participant_id``,
            ``sample_id``, ``variant_*``, ``call_dosage`` ...) plus ``sex``,
            ``year_of_birth``, ``age``, ``diagnoses``, ``death_date``. Audited
            (``genotype.read``).
        """
        self._require_record_level("carriers")
        from biobank.research.field_access import GENOTYPES

        self._require_fields("carriers", [GENOTYPES])
        from biobank.genomes import reader as genotypes

        ids = self._ids(cohort)
        df = genotypes.carriers(
            self.store.con,
            ids,
            principal=self.principal,
            variant_filter=self._filter(
                _renamed_filter(variant_filter, filter),
                region=region,
                genes=genes,
                variant_ids=variant_ids,
            ),
            purpose=self.purpose,
        )
        attrs = self._attributes(df["participant_id"].unique().to_list())
        return self._shown(df.join(attrs, on="participant_id", how="left"))

    def frequencies(
        self,
        cohort: CohortLike = None,
        *,
        variant_filter: VariantFilter | None = None,
        region: str | None = None,
        genes: Sequence[str] | str | None = None,
        variant_ids: Sequence[str] | str | None = None,
        hwe: bool = True,
        filter: VariantFilter | None = None,  # deprecated: variant_filter's old name
    ) -> pl.DataFrame:
        """Genotype and allele counts, frequency, call rate and HWE p per variant in a cohort.

        Counts below the small-count threshold are suppressed
        (:func:`biobank.stats.frequencies.allele_frequencies` with ``min_count``).
        """
        from biobank import stats

        ids = self._ids(cohort)
        self._release_ids(ids, cohort)
        return stats.allele_frequencies(
            self.store.con,
            ids,
            variant_filter=self._filter(
                _renamed_filter(variant_filter, filter),
                region=region,
                genes=genes,
                variant_ids=variant_ids,
            ),
            purpose=self.purpose,
            hwe=hwe,
            min_count=self.min_count,
        )

    def _covariates(
        self,
        ids: Sequence[str],
        *,
        n_pcs: int = 0,
        at: dt.date | None = None,
        pca_filter: VariantFilter | None = None,
    ) -> pl.DataFrame:
        """Numeric covariates ``participant_id, age, male, pc1 .. pcN`` of ``ids``."""
        attrs = self._attributes(ids, at=at).select(
            "participant_id",
            pl.col("age").cast(pl.Float64),
            (pl.col("sex") == "male").cast(pl.Float64).alias("male"),
        )
        if n_pcs > 0:
            from biobank.genomes import reader as genotypes

            pcs, _ = genotypes.pca(
                self.store.con,
                list(ids),
                principal=self.principal,
                purpose=self.purpose,
                variant_filter=pca_filter,
                n_components=n_pcs,
            )
            attrs = attrs.join(
                pcs.select("participant_id", *[f"pc{i}" for i in range(1, n_pcs + 1)]),
                on="participant_id",
                how="inner",
            )
        return attrs

    def covariates(
        self,
        cohort: CohortLike = None,
        *,
        n_pcs: int = 0,
        at: dt.date | None = None,
    ) -> pl.DataFrame:
        """Return numeric covariates of a cohort: ``participant_id, age, male, pc1 .. pcN``.

        Ages at ``at`` (default today); PCs from :func:`biobank.genomes.reader.pca` over
        the cohort. Audited (``research.covariates``).
        """
        self._require_record_level("covariates")
        if n_pcs > 0:
            from biobank.research.field_access import GENOTYPES

            self._require_fields("covariates with principal components", [GENOTYPES])
        df = self._shown(self._covariates(self._ids(cohort), n_pcs=n_pcs, at=at))
        self._audit("research.covariates", str(self._describe(cohort))[:200], {"rows": df.height})
        return df

    def _cases_controls(
        self, cases: CohortLike, controls: CohortLike
    ) -> tuple[list[str], list[str]]:
        case_c = self._criterion(cases)
        if case_c is None:
            raise ValidationError("a case definition is needed", field="cases")
        sql, params = cohorts.case_control_sql(
            case_c, self._criterion(controls), purpose=self.purpose
        )
        labels = self._query(sql, params)
        case_ids = labels.filter(pl.col("is_case"))["participant_id"].to_list()
        ctrl_ids = labels.filter(~pl.col("is_case"))["participant_id"].to_list()
        self._release_ids(case_ids, cases)
        self._release_ids(ctrl_ids, controls, prefix="controls of ")
        return case_ids, ctrl_ids

    def association(
        self,
        cases: CohortLike,
        controls: CohortLike = None,
        *,
        variant_filter: VariantFilter | None = None,
        region: str | None = None,
        genes: Sequence[str] | str | None = None,
        variant_ids: Sequence[str] | str | None = None,
        covariates: Sequence[str] = ("age", "male"),
        n_pcs: int = 0,
        xchr_model: int = 2,
        tests: Sequence[str] = ("fisher", "logistic"),
        filter: VariantFilter | None = None,  # deprecated: variant_filter's old name
    ) -> pl.DataFrame:
        """Case/control association per variant: Fisher's exact test and logistic regression.

        Cases and controls as in :meth:`case_control`; covariates among ``age``,
        ``male`` and the first ``n_pcs`` principal components (``pc1`` ...), see
        :meth:`covariates`. Runs :func:`biobank.stats.assoc.association` with small
        counts suppressed; ``xchr_model`` codes males' chrX calls 0/2 (2, as
        plink2) or 0/1 (1) in the regression; ``tests`` among ``fisher``,
        ``logistic`` (Wald), ``lrt`` (likelihood ratio) and ``score`` (Rao).
        """
        from biobank import stats

        case_ids, ctrl_ids = self._cases_controls(cases, controls)
        wanted = [*covariates, *[f"pc{i}" for i in range(1, n_pcs + 1)]]
        cov = self._covariate_table(case_ids + ctrl_ids, wanted, n_pcs=n_pcs)
        result = stats.association(
            self.store.con,
            case_ids,
            ctrl_ids,
            covariates=cov,
            variant_filter=self._filter(
                _renamed_filter(variant_filter, filter),
                region=region,
                genes=genes,
                variant_ids=variant_ids,
            ),
            purpose=self.purpose,
            min_count=self.min_count,
            xchr_model=xchr_model,
            tests=tests,
        )
        self._audit(
            "research.association",
            str(self._describe(cases))[:200],
            {"cases": len(case_ids), "controls": len(ctrl_ids), "covariates": wanted},
        )
        return result

    def _covariate_table(
        self, ids: Sequence[str], wanted: Sequence[str], *, n_pcs: int
    ) -> pl.DataFrame | None:
        """``participant_id`` and the ``wanted`` columns of :meth:`covariates` (None if none)."""
        if not wanted:
            return None
        table = self._covariates(ids, n_pcs=n_pcs)
        unknown = [c for c in wanted if c not in table.columns]
        if unknown:
            raise ValidationError(
                f"unknown covariate(s) {', '.join(unknown)}: use age, male, pc1..pcN",
                field="covariates",
            )
        return table.select("participant_id", *wanted)

    def measurement_values(
        self, measurement: str, cohort: CohortLike = None, *, rule: str = "latest"
    ) -> pl.DataFrame:
        """One value of a clinical measurement per participant of a cohort (a trait).

        Parameters
        ----------
        measurement
            The measurement's name as in the clinical tables (``HbA1c``,
            ``LDL-C`` ...; case-insensitive, as :class:`~biobank.clinical.cohorts.Lab`).
        cohort
            Whose values (default: everyone permitted).
        rule
            ``"latest"``: the value of the latest date (the mean of that
            date's values when there are several), as ``Lab(..., which="latest")``;
            ``"mean"``: the mean of all the participant's values.

        Returns
        -------
        polars.DataFrame
            ``participant_id`` and a column named ``measurement``; participants
            without a value are absent.

        Raises
        ------
        ValidationError
            If ``rule`` is unknown, no permitted participant has the measurement
            (the message lists those that exist), or its values come in more than
            one unit.
        """
        self._require_record_level("measurement_values")
        self._require_fields(
            "measurement_values", ["clinical_measurement.name", "clinical_measurement.value"]
        )
        if rule not in ("latest", "mean"):
            raise ValidationError(
                f"rule must be 'latest' or 'mean', not {rule!r}", field="rule", value=rule
            )
        cur = self.store.cursor()
        try:
            cur.register(
                "_wb_ids",
                pl.DataFrame(
                    {"participant_id": self._ids(cohort)}, schema={"participant_id": pl.String}
                ),
            )
            rows = cur.execute(
                "SELECT m.participant_id, m.measured_on, m.value, m.unit"
                " FROM clinical_measurement m JOIN _wb_ids USING (participant_id)"
                " WHERE lower(m.name) = lower(?)",
                [measurement],
            ).pl()
            if rows.is_empty():
                names = cur.execute(
                    "SELECT DISTINCT m.name FROM clinical_measurement m"
                    " JOIN _wb_ids USING (participant_id) ORDER BY 1"
                ).fetchall()
                raise ValidationError(
                    f"no permitted participant has a measurement {measurement!r}: measurements "
                    f"are {', '.join(n for (n,) in names) or 'none'}",
                    field="measurement",
                    value=measurement,
                )
        finally:
            cur.close()
        units = rows["unit"].drop_nulls().unique().sort().to_list()
        if len(units) > 1:
            raise ValidationError(
                f"{measurement} is recorded in several units ({', '.join(units)}): "
                "convert them to one first",
                field="measurement",
                value=measurement,
            )
        if rule == "latest":
            rows = rows.filter(
                pl.col("measured_on") == pl.col("measured_on").max().over("participant_id")
            )
        return (
            rows.group_by("participant_id")
            .agg(pl.col("value").mean().alias(measurement))
            .sort("participant_id")
        )

    def linear(
        self,
        measurement: str,
        cohort: CohortLike = None,
        *,
        rule: str = "latest",
        variant_filter: VariantFilter | None = None,
        region: str | None = None,
        genes: Sequence[str] | str | None = None,
        variant_ids: Sequence[str] | str | None = None,
        covariates: Sequence[str] = ("age", "male"),
        n_pcs: int = 0,
        xchr_model: int = 2,
    ) -> pl.DataFrame:
        """Linear regression of a clinical measurement on ALT dosage per variant.

        The trait is :meth:`measurement_values` (``rule`` ``"latest"`` or
        ``"mean"``) of the cohort's participants; covariates as in
        :meth:`association`. Runs :func:`biobank.stats.linear.linear_association`
        (as ``plink2 --glm`` on a quantitative phenotype) with small counts
        suppressed. Audited (``research.linear``).

        Returns
        -------
        polars.DataFrame
            Variant columns, ``variant_alt_count, variant_ref_count,
            variant_beta`` (measurement units per ALT allele),
            ``variant_standard_error, variant_t, variant_p_value, variant_n_obs,
            variant_suppressed``.
        """
        from biobank import stats

        with self._inside():  # an input of the aggregate, not shown
            trait = self.measurement_values(measurement, cohort, rule=rule)
        ids = trait["participant_id"].to_list()
        self._release_ids(ids, cohort, prefix=f"{measurement} of ")
        wanted = [*covariates, *[f"pc{i}" for i in range(1, n_pcs + 1)]]
        result = stats.linear_association(
            self.store.con,
            ids,
            trait,
            covariates=self._covariate_table(ids, wanted, n_pcs=n_pcs),
            variant_filter=self._filter(
                variant_filter, region=region, genes=genes, variant_ids=variant_ids
            ),
            purpose=self.purpose,
            min_count=self.min_count,
            xchr_model=xchr_model,
        )
        self._audit(
            "research.linear",
            str(self._describe(cohort))[:200],
            {"measurement": measurement, "rule": rule, "rows": len(ids), "covariates": wanted},
        )
        return result

    def burden(
        self,
        cases: CohortLike,
        controls: CohortLike = None,
        *,
        genes: Sequence[str] | None = None,
        max_frequency: float = 0.01,
        covariates: Sequence[str] = ("age", "male"),
    ) -> pl.DataFrame:
        """Gene burden test of rare damaging variants (:func:`biobank.stats.assoc.burden`)."""
        from biobank import stats

        case_ids, ctrl_ids = self._cases_controls(cases, controls)
        cov = (
            self._covariates(case_ids + ctrl_ids).select("participant_id", *covariates)
            if covariates
            else None
        )
        result = stats.burden(
            self.store.con,
            case_ids,
            ctrl_ids,
            covariates=cov,
            genes=genes,
            max_frequency=max_frequency,
            purpose=self.purpose,
            min_count=self.min_count,
        )
        self._audit(
            "research.burden",
            str(self._describe(cases))[:200],
            {"cases": len(case_ids), "controls": len(ctrl_ids), "genes": list(genes or [])},
        )
        return result

    def pca(
        self, cohort: CohortLike = None, *, n_components: int = 10, **options: Any
    ) -> tuple[pl.DataFrame, Any]:
        """Principal components of a cohort (:func:`biobank.genomes.reader.pca`; audited).

        Returns
        -------
        tuple
            ``participant_id, sample_id, pc1 .. pcK`` and the explained variance ratios.
        """
        self._require_record_level("pca")
        self._require_genotypes("pca")
        from biobank.genomes import reader as genotypes

        if "filter" in options:  # deprecated: variant_filter's old name
            options["variant_filter"] = _renamed_filter(
                options.pop("variant_filter", None), options.pop("filter")
            )
        return genotypes.pca(
            self.store.con,
            self._ids(cohort),
            principal=self.principal,
            purpose=self.purpose,
            n_components=n_components,
            **options,
        )

    def genotype_matrix(
        self,
        cohort: CohortLike = None,
        *,
        variant_filter: VariantFilter | None = None,
        region: str | None = None,
        genes: Sequence[str] | str | None = None,
        variant_ids: Sequence[str] | str | None = None,
        filter: VariantFilter | None = None,  # deprecated: variant_filter's old name
    ) -> GenotypeMatrix:
        """Genotypes of a cohort over a region as ``allel.GenotypeArray`` (audited)."""
        self._require_record_level("genotype_matrix")
        self._require_genotypes("genotype_matrix")
        from biobank.genomes import reader as genotypes

        return genotypes.genotype_matrix(
            self.store.con,
            self._ids(cohort),
            principal=self.principal,
            variant_filter=self._filter(
                _renamed_filter(variant_filter, filter),
                region=region,
                genes=genes,
                variant_ids=variant_ids,
            ),
            purpose=self.purpose,
        )

    def dosages(
        self,
        cohort: CohortLike = None,
        *,
        variant: str,
    ) -> pl.DataFrame:
        """ALT allele dosage of one variant per participant (``participant_id, genotype``).

        Parameters
        ----------
        variant
            A variant ID (``rs...``) or a position ``contig:pos`` (1-based).

        Raises
        ------
        ValidationError
            If ``variant`` selects no variant or more than one.
        """
        self._require_record_level("dosages")
        self._require_genotypes("dosages")
        if ":" in variant:
            flt = self._filter(None, region=variant)
        else:
            flt = self._filter(None, variant_ids=[variant])
        m = self.genotype_matrix(cohort, variant_filter=flt)
        if m.genotypes.shape[0] != 1:
            raise ValidationError(
                f"{variant!r} selects {m.genotypes.shape[0]} variants: give one variant "
                "(an ID, or contig:position of a biallelic site)",
                field="variant",
                value=variant,
            )
        n_alt = m.genotypes.to_n_alt(fill=-1)[0]
        return pl.DataFrame(
            {
                "participant_id": m.samples["participant_id"].to_list(),
                "genotype": [int(x) if x >= 0 else None for x in n_alt],
            },
            schema={"participant_id": pl.String, "genotype": pl.Int64},
        ).drop_nulls()

    # -- survival ------------------------------------------------------------
    def survival(
        self,
        cohort: CohortLike,
        *,
        variant: str | None = None,
        groups: pl.DataFrame | None = None,
        group: str = "genotype",
        origin: str = "diagnosis",
        codes: Sequence[str] | None = None,
        covariates: Sequence[str] = ("age", "male"),
    ) -> SurvivalResult:
        """Survival of a cohort by a per-participant grouping (e.g. genotype dosage).

        Parameters
        ----------
        cohort
            The cohort (criterion or saved name).
        variant
            Group by the ALT dosage (0, 1, 2) of this variant (see :meth:`dosages`).
        groups
            Instead of ``variant``: ``participant_id`` and the ``group`` column
            (numeric); participants without a row are left out.
        group
            The grouping column; it is the first Cox covariate.
        origin
            ``"diagnosis"`` or ``"enrolment"`` (:func:`~biobank.clinical.survival.survival_data`).
        codes
            ICD-10 patterns of the diagnosis origin; default: the cohort's diagnosis codes.
        covariates
            Extra Cox covariates among ``age`` (at origin) and ``male`` (0/1).

        Returns
        -------
        SurvivalResult
        """
        self._require_record_level("survival")
        from biobank.clinical import survival
        from biobank.research.field_access import ATTRIBUTE_FIELDS, GENOTYPES

        origin_field = (
            "clinical_condition.start_date"
            if origin == "diagnosis"
            else "participant.enrolment_date"
        )
        needed = [origin_field, "clinical_death.death_date", "clinical_person.year_of_birth"]
        needed += [f for c in covariates for f in ATTRIBUTE_FIELDS.get(c, ())]
        self._require_fields("survival", needed + ([GENOTYPES] if variant is not None else []))

        crit = self._criterion(cohort)
        if (variant is None) == (groups is None):
            raise ValidationError("give either variant= or groups=", field="variant")
        if variant is not None:
            groups = self.dosages(crit, variant=variant)
        assert groups is not None
        if origin == "diagnosis" and not codes:
            codes = cohorts.case_diagnoses(crit) if crit is not None else ()
        ids = self._ids(crit)
        data = survival.survival_data(self.store.con, ids, origin=origin, codes=codes or ())
        attrs = self._attributes(data["participant_id"].to_list())
        data = (
            data.join(groups.select("participant_id", group), on="participant_id", how="inner")
            .join(attrs.select("participant_id", "sex", "year_of_birth"), on="participant_id")
            .with_columns(
                age=pl.col("origin_date").dt.year() - pl.col("year_of_birth"),
                male=(pl.col("sex") == "male").cast(pl.Int32),
            )
        )
        km = survival.kaplan_meier(data, group=group, min_count=self.min_count)
        model = survival.cox(data, covariates=[group, *covariates])
        p = survival.logrank(data, group=group)
        self._audit(
            "research.survival",
            str(self._describe(cohort))[:200],
            {"origin": origin, "codes": list(codes or ()), "rows": data.height},
        )
        return SurvivalResult(data=self._shown(data), km=km, cox=model, logrank_p=p)

    # -- raw SQL -------------------------------------------------------------
    def sql(self, query: str) -> pl.DataFrame:
        """Run one read-only ``SELECT``/``WITH`` query over the research tables (audited).

        The query runs in the sandbox of :mod:`biobank.research.sandbox`: a
        separate in-memory DuckDB database holding only the tables of
        :data:`RESEARCH_TABLES` that it reads, each already restricted to the
        participants this purpose may use, with file access, extensions and
        configuration changes disabled, under the limits of
        :attr:`sql_limits` (time, memory, threads, rows). The identity,
        consent, specimen, registry-event, user and audit tables do not exist
        in it. Refused and stopped queries are audited too.

        Raises
        ------
        ValidationError
            If the text is not exactly one SELECT/WITH statement, or names a
            table that is not a research table.
        SandboxStopped
            If the time, memory or row limit stopped it.
        StoreError
            If DuckDB rejects the query (syntax, unknown column).
        """
        self._require_record_level("sql")
        from biobank.research.sandbox import run_sandboxed

        permitted = self.permitted_sql()
        approved = self.record_access.fields if self.record_access is not None else None

        def load(name: str) -> Any:
            table = self._query(RESEARCH_TABLES[name].format(permitted=permitted))
            if approved is None:
                return table.to_arrow()
            from biobank.research.field_access import SQL_TABLES, research_fields, sql_columns

            keep = sql_columns(name, table.columns, approved)
            if keep is None:
                wanted = [f for f in research_fields() if f.startswith(f"{SQL_TABLES[name]}.")]
                self._require_fields(f"sql (table {name})", wanted)
            keep = keep or table.columns
            dropped.update({c: f"{SQL_TABLES[name]}.{c}" for c in table.columns if c not in keep})
            return table.select(keep).to_arrow()

        dropped: dict[str, str] = {}

        try:
            df, names = run_sandboxed(
                query, allowed=set(RESEARCH_TABLES), load_table=load, limits=self.sql_limits
            )
        except (ValidationError, StoreError) as exc:
            outcome = "refused" if isinstance(exc, ValidationError) else "stopped"
            self._audit("research.sql", query[:500], {outcome: str(exc)[:300]})
            text = str(exc) if isinstance(exc, StoreError) else ""
            named = [f for c, f in dropped.items() if f'"{c}"' in text.split("Candidate")[0]]
            if named and self.record_access is not None:
                from biobank.research.field_access import refusal

                raise AccessDenied(
                    refusal("this query", named, self.record_access.request_id, self.purpose)
                ).mark_audited() from exc
            raise
        self._audit("research.sql", query[:500], {"rows": df.height, "tables": sorted(names)})
        return df

    # -- reference panels (biobank.genomes.panels) ----------------------------
    def panel_ancestry(
        self,
        cohort: CohortLike = None,
        *,
        panel: str,
        level: str = "superpopulation",
        n_pcs: int | None = None,
        k: int = 10,
        min_confidence: float = 0.6,
    ) -> pl.DataFrame:
        """Project a cohort onto a reference panel's PCs and infer each participant's ancestry.

        :func:`biobank.genomes.panels.project_onto_panel` then
        :func:`~biobank.genomes.panels.infer_ancestry` (k nearest panel samples
        vote; the rule and the "unassigned" thresholds are documented there).
        Audited (``genotype.read``, target ``panel_projection``).

        Returns
        -------
        polars.DataFrame
            ``participant_id, PC1..PCk, ancestry`` (null = unassigned),
            ``confidence`` (share of the neighbours' votes), ``distance`` (to the
            centroid of the group in PC space).
        """
        self._require_record_level("panel_ancestry")
        self._require_genotypes("panel_ancestry")
        from biobank.genomes import ancestry as panels

        projected, _ = panels.project_onto_panel(
            self.store.con,
            self._ids(cohort),
            panel=panel,
            principal=self.principal,
            purpose=self.purpose,
        )
        out = panels.infer_ancestry(
            self.store.con,
            projected,
            panel=panel,
            level=level,
            n_pcs=n_pcs,
            k=k,
            min_confidence=min_confidence,
        )
        pcs = [c for c in out.columns if c.startswith("PC")]
        return out.select("participant_id", *pcs, "ancestry", "confidence", "distance")


def open_workbench(
    path: str | Path,
    *,
    user: str,
    purpose: str,
    min_count: int = DEFAULT_MIN_COUNT,
    sql_limits: SandboxLimits | None = None,
) -> Workbench:
    """Open a store for research as ``user`` with ``purpose``.

    Parameters
    ----------
    path
        The store file (it must exist).
    user
        An active user of the store with the ``researcher`` role.
    purpose
        ``GRU``, ``HMB``, ``POA`` or ``DS:<ICD-10>``, matched against consents.
    min_count
        Small-count threshold for aggregate output.
    sql_limits
        Limits of :meth:`Workbench.sql` (default: :meth:`SandboxLimits.from_env`).

    Raises
    ------
    StoreError
        If the store does not exist or cannot be opened.
    NotFoundError
        If the user does not exist.
    AccessDenied
        If the user is not a researcher.
    ValidationError
        If the purpose is malformed.
    """
    store = Store(path, create=False)
    try:
        principal = get_principal(store.con, user, purpose=purpose)
        if principal.role is not Role.RESEARCHER:
            raise AccessDenied(
                f"user '{user}' has role '{principal.role}': research queries need the "
                "'researcher' role (an admin can add a researcher account)"
            )
        return Workbench(store, principal, min_count=min_count, sql_limits=sql_limits)
    except BaseException:
        store.close()
        raise
