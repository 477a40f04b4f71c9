"""Survival by genotype: time-to-event data, Kaplan-Meier curves and Cox models (lifelines).

Time runs from an **origin** to death (event) or to the end of the
participant's last observation period (censored):

* ``origin="diagnosis"``: the first diagnosis under the given ICD-10 codes
  (participants without one are left out);
* ``origin="enrolment"``: the registry enrolment date.

Participants without an observation period (no censoring date) or whose
death or censoring date is before the origin are left out, with a log
message. Times are in years (days / 365.25).

Kaplan-Meier estimates come from :class:`lifelines.KaplanMeierFitter` and Cox
proportional hazards models from :class:`lifelines.CoxPHFitter` (Efron ties);
the tests check both against statsmodels' ``SurvfuncRight`` and ``PHReg`` and
against a hand-computed example.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Sequence
from typing import Any

import duckdb
import polars as pl

from biobank.core import icd10
from biobank.core.disclosure import SMALL_COUNT_THRESHOLD, suppress_small_counts
from biobank.core.errors import ValidationError

__all__ = ["DAYS_PER_YEAR", "cox", "kaplan_meier", "logrank", "survival_data"]

logger = logging.getLogger(__name__)

DAYS_PER_YEAR = 365.25


def survival_data(
    con: duckdb.DuckDBPyConnection,
    participants: Sequence[str],
    *,
    origin: str = "diagnosis",
    codes: Sequence[str] = (),
) -> pl.DataFrame:
    """Return time-to-event rows for ``participants``.

    Parameters
    ----------
    con
        A connection to the store.
    participants
        Pseudonyms (already restricted to the permitted ones by the caller).
    origin
        ``"diagnosis"`` (needs ``codes``) or ``"enrolment"``.
    codes
        ICD-10 patterns whose first diagnosis is the origin.

    Returns
    -------
    polars.DataFrame
        ``participant_id``, ``origin_date``, ``end_date``, ``time`` (years, float),
        ``event`` (1 died, 0 censored).

    Raises
    ------
    ValidationError
        If ``origin`` is unknown or ``diagnosis`` is asked for without codes.
    """
    if origin == "diagnosis":
        if not codes:
            raise ValidationError(
                "origin 'diagnosis' needs the ICD-10 codes of the diagnosis (e.g. E11)",
                field="codes",
            )
        parts = [icd10.parse_pattern(c).sql("c.code_compact") for c in codes]
        cond = " OR ".join(s for s, _ in parts)
        params: list[Any] = [x for _, p in parts for x in p]
        origin_sql = (
            "SELECT c.participant_id, min(c.start_date) AS origin_date FROM clinical_condition c"
            f" WHERE ({cond}) GROUP BY c.participant_id"
        )
    elif origin == "enrolment":
        origin_sql = "SELECT participant_id, enrolment_date AS origin_date FROM participant"
        params = []
    else:
        raise ValidationError(
            "origin must be 'diagnosis' or 'enrolment'", field="origin", value=origin
        )
    cur = con.cursor()
    try:
        cur.register("_surv_ids", pl.DataFrame({"participant_id": list(participants)}))
        df = cur.execute(
            f"""
            SELECT o.participant_id, o.origin_date,
                   coalesce(d.death_date, op.end_date) AS end_date,
                   CASE WHEN d.death_date IS NOT NULL THEN 1 ELSE 0 END AS event
            FROM ({origin_sql}) o
            JOIN _surv_ids USING (participant_id)
            LEFT JOIN clinical_death d USING (participant_id)
            LEFT JOIN (SELECT participant_id, max(end_date) AS end_date
                       FROM clinical_observation_period GROUP BY participant_id) op
                 USING (participant_id)
            ORDER BY o.participant_id
            """,
            params,
        ).pl()
    finally:
        cur.close()
    no_end = df.filter(pl.col("end_date").is_null()).height
    df = df.filter(pl.col("end_date").is_not_null())
    df = df.with_columns(
        time=(pl.col("end_date") - pl.col("origin_date")).dt.total_days() / DAYS_PER_YEAR
    )
    negative = df.filter(pl.col("time") < 0).height
    if no_end or negative:
        logger.warning(
            "left out %d participants without an observation period and %d whose end "
            "is before the origin",
            no_end,
            negative,
        )
    return df.filter(pl.col("time") >= 0).with_columns(pl.col("event").cast(pl.Int32))


def _check_columns(df: pl.DataFrame, columns: Sequence[str]) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValidationError(
            f"the survival table lacks column(s) {', '.join(missing)}", field=missing[0]
        )


def kaplan_meier(
    df: pl.DataFrame,
    *,
    group: str | None = None,
    min_count: int = SMALL_COUNT_THRESHOLD,
    duration: str = "time",
    event: str = "event",
) -> pl.DataFrame:
    """Kaplan-Meier survival curves, one per value of ``group`` (lifelines).

    Parameters
    ----------
    df
        Rows with ``duration`` and ``event`` columns (see :func:`survival_data`).
    group
        Column to stratify by (e.g. ``genotype``); ``None`` for one curve.
    min_count
        Small-count threshold: groups with fewer participants are left out, and
        ``at_risk``/``events`` counts between 1 and ``min_count - 1`` are
        suppressed (null).

    Returns
    -------
    polars.DataFrame
        ``group``, ``time``, ``survival``, ``ci_lower``, ``ci_upper`` (95 %,
        exponential Greenwood as lifelines computes it), ``at_risk``, ``events``;
        one row per distinct time (including 0).
    """
    from lifelines import KaplanMeierFitter

    _check_columns(df, [duration, event] + ([group] if group else []))
    frames = []
    groups = [None] if group is None else sorted(df[group].unique().drop_nulls().to_list())
    for value in groups:
        sub = df if group is None else df.filter(pl.col(group) == value)
        if sub.height < min_count:  # a whole group under the threshold is left out
            logger.warning("group %s=%s has %d participants: suppressed", group, value, sub.height)
            continue
        kmf = KaplanMeierFitter()
        kmf.fit(sub[duration].to_numpy(), sub[event].to_numpy(), label="survival")
        table = kmf.event_table
        ci = kmf.confidence_interval_survival_function_
        frames.append(
            pl.DataFrame(
                {
                    "group": [str(value) if value is not None else "all"] * len(table),
                    "time": table.index.to_numpy().astype(float),
                    "survival": kmf.survival_function_["survival"].to_numpy(),
                    "ci_lower": ci.iloc[:, 0].to_numpy(),
                    "ci_upper": ci.iloc[:, 1].to_numpy(),
                    "at_risk": table["at_risk"].to_numpy().astype("int64"),
                    "events": table["observed"].to_numpy().astype("int64"),
                }
            )
        )
    if not frames:
        return pl.DataFrame(
            schema={
                "group": pl.String,
                "time": pl.Float64,
                "survival": pl.Float64,
                "ci_lower": pl.Float64,
                "ci_upper": pl.Float64,
                "at_risk": pl.Int64,
                "events": pl.Int64,
            }
        )
    return suppress_small_counts(pl.concat(frames), ["at_risk", "events"], min_count=min_count)


def cox(
    df: pl.DataFrame,
    *,
    covariates: Sequence[str],
    duration: str = "time",
    event: str = "event",
) -> pl.DataFrame:
    """Fit a Cox proportional hazards model (lifelines, Efron ties).

    Parameters
    ----------
    df
        Rows with ``duration``, ``event`` and the numeric ``covariates``
        (rows with a missing covariate are dropped).
    covariates
        Column names, e.g. ``["dosage", "age", "male"]``.

    Returns
    -------
    polars.DataFrame
        ``covariate``, ``coef`` (log hazard ratio), ``hazard_ratio``, ``se``,
        ``ci_lower``, ``ci_upper`` (95 % for the hazard ratio), ``p``, ``n``, ``events``,
        ``warning`` (lifelines' convergence warnings, e.g. near-separation; null if none:
        estimates with a warning are unreliable).

    Raises
    ------
    ValidationError
        If a column is missing, there are no events, or the model does not converge.
    """
    from lifelines import CoxPHFitter
    from lifelines.exceptions import ConvergenceError

    _check_columns(df, [duration, event, *covariates])
    data = df.select([duration, event, *covariates]).drop_nulls().to_pandas()
    n_events = int(data[event].sum())
    if n_events == 0:
        raise ValidationError("no events (deaths) in the data: a Cox model cannot be fitted")
    cph = CoxPHFitter()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            cph.fit(data, duration_col=duration, event_col=event)
    except ConvergenceError as exc:
        raise ValidationError(
            f"the Cox model did not converge ({exc}); a covariate may separate the events "
            "perfectly or be constant: drop it or use a bigger cohort"
        ) from exc
    notes = sorted({str(w.message).strip().splitlines()[0] for w in caught})
    for note in notes:
        logger.warning("Cox model: %s", note)
    s = cph.summary
    return pl.DataFrame(
        {
            "covariate": [str(i) for i in s.index],
            "coef": s["coef"].to_numpy(),
            "hazard_ratio": s["exp(coef)"].to_numpy(),
            "se": s["se(coef)"].to_numpy(),
            "ci_lower": s["exp(coef) lower 95%"].to_numpy(),
            "ci_upper": s["exp(coef) upper 95%"].to_numpy(),
            "p": s["p"].to_numpy(),
            "n": [len(data)] * len(s),
            "events": [n_events] * len(s),
            "warning": ["; ".join(notes) or None] * len(s),
        },
        schema_overrides={"warning": pl.String},
    )


def logrank(df: pl.DataFrame, *, group: str, duration: str = "time", event: str = "event") -> float:
    """Return the p-value of the (multivariate) log-rank test between the groups (lifelines)."""
    from lifelines.statistics import multivariate_logrank_test

    _check_columns(df, [duration, event, group])
    data = df.select([duration, event, group]).drop_nulls().to_pandas()
    if data[group].nunique() < 2:
        return math.nan
    result = multivariate_logrank_test(data[duration], data[group], data[event])
    return float(result.p_value)
