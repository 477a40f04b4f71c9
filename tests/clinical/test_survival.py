"""Tests for biobank.clinical.survival: by hand and against statsmodels (independent code)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest
from conftest import ClinicalStore
from statsmodels.duration.hazard_regression import PHReg
from statsmodels.duration.survfunc import SurvfuncRight

from biobank.clinical.survival import cox, kaplan_meier, logrank, survival_data
from biobank.core.errors import ValidationError
from biobank.core.store import Store

TINY = pl.DataFrame({"time": [1.0, 2.0, 2.0, 3.0, 4.0, 5.0], "event": [1, 1, 0, 1, 0, 1]})


def test_kaplan_meier__matches_hand_computed_example() -> None:
    km = kaplan_meier(TINY, min_count=1)
    by_time = dict(zip(km["time"].to_list(), km["survival"].to_list(), strict=True))
    # S(t) = prod (1 - d_i / n_i): 5/6, *4/5, *2/3, unchanged at the censoring at 4, then 0
    assert by_time[0.0] == pytest.approx(1.0)
    assert by_time[1.0] == pytest.approx(5 / 6)
    assert by_time[2.0] == pytest.approx(4 / 6)
    assert by_time[3.0] == pytest.approx(4 / 6 * 2 / 3)
    assert by_time[4.0] == pytest.approx(4 / 6 * 2 / 3)
    assert by_time[5.0] == pytest.approx(0.0)
    assert km.filter(pl.col("time") == 2.0)["at_risk"].item() == 5


def _random_cohort(n: int = 80, seed: int = 7) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    dosage = rng.integers(0, 3, n)
    age = rng.normal(60, 8, n).round()
    hazard = 0.1 * np.exp(0.6 * dosage + 0.03 * (age - 60))
    t = rng.exponential(1 / hazard)
    censor = rng.uniform(2, 15, n)
    return pl.DataFrame(
        {
            "time": np.minimum(t, censor).round(1) + 0.1,  # rounding creates ties
            "event": (t <= censor).astype(int),
            "dosage": dosage.astype(float),
            "age": age,
        }
    )


def test_kaplan_meier__agrees_with_statsmodels_survfuncright() -> None:
    df = _random_cohort()
    km = kaplan_meier(df, min_count=1)
    sm = SurvfuncRight(df["time"].to_numpy(), df["event"].to_numpy())
    ours = dict(zip(km["time"].to_list(), km["survival"].to_list(), strict=True))
    for t, s in zip(sm.surv_times, sm.surv_prob, strict=True):
        assert ours[float(t)] == pytest.approx(float(s), abs=1e-10)


def test_cox__agrees_with_statsmodels_phreg_efron() -> None:
    df = _random_cohort()
    ours = cox(df, covariates=["dosage", "age"])
    sm = PHReg(
        df["time"].to_numpy(),
        df.select(["dosage", "age"]).to_numpy(),
        status=df["event"].to_numpy(),
        ties="efron",
    ).fit()
    assert ours["coef"].to_list() == pytest.approx(list(sm.params), abs=1e-5)
    assert ours["se"].to_list() == pytest.approx(list(sm.bse), rel=1e-4)
    assert ours["p"].to_list() == pytest.approx(list(sm.pvalues), rel=1e-3)
    assert ours["hazard_ratio"][0] > 1  # the simulated effect is positive


def test_kaplan_meier__suppresses_small_groups_and_counts() -> None:
    df = _random_cohort().with_columns(
        group=pl.when(pl.int_range(pl.len()) < 3).then(pl.lit("rare")).otherwise(pl.lit("common"))
    )
    km = kaplan_meier(df, group="group", min_count=5)
    assert set(km["group"].unique().to_list()) == {"common"}
    small = km.filter(pl.col("time") > 0)["at_risk"].drop_nulls()
    assert (small >= 5).all()
    assert km["at_risk"].null_count() > 0  # the tail of the curve has fewer than 5 at risk


def test_logrank__detects_a_strong_difference() -> None:
    df = _random_cohort(n=200).with_columns(carrier=(pl.col("dosage") > 0).cast(pl.Int32))
    assert logrank(df, group="carrier") < 0.05


def test_cox__without_events_is_refused() -> None:
    with pytest.raises(ValidationError, match="no events"):
        cox(TINY.with_columns(event=pl.lit(0), x=pl.lit(1.0)), covariates=["x"])


def test_survival_data__from_diagnosis_to_death_or_end_of_observation(
    clinical_store: ClinicalStore,
) -> None:
    ids = [clinical_store.pid(i) for i in range(1, 11)]
    with Store(clinical_store.path, read_only=True) as store:
        df = survival_data(store.con, ids, origin="diagnosis", codes=["E11"])
    rows = {r["participant_id"]: r for r in df.to_dicts()}
    # E11 under the hierarchy: persons 1 (E11.9), 2 (E11.900x001), 5 (E11.2), 9 (E11); not 4 (E10.9)
    assert set(rows) == {clinical_store.pid(i) for i in (1, 2, 5, 9)}
    p1 = rows[clinical_store.pid(1)]
    assert p1["event"] == 1
    assert p1["time"] == pytest.approx((dt.date(2021, 3, 1) - dt.date(2010, 5, 1)).days / 365.25)
    p2 = rows[clinical_store.pid(2)]
    assert p2["event"] == 0
    assert p2["end_date"] == dt.date(2024, 12, 31)


def test_survival_data__from_enrolment_uses_registry_date(clinical_store: ClinicalStore) -> None:
    with Store(clinical_store.path, read_only=True) as store:
        df = survival_data(store.con, [clinical_store.pid(6)], origin="enrolment")
    assert df["origin_date"].item() == dt.date(2008, 9, 9)
    assert df["event"].item() == 1


def test_survival_data__diagnosis_origin_needs_codes(clinical_store: ClinicalStore) -> None:
    with (
        Store(clinical_store.path, read_only=True) as store,
        pytest.raises(ValidationError, match="needs the ICD-10 codes"),
    ):
        survival_data(store.con, [], origin="diagnosis")


def test_cox__separation_is_reported_not_raised() -> None:
    # every carrier dies, no non-carrier does: the hazard ratio is not estimable
    df = pl.DataFrame(
        {
            "time": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0],
            "event": [1, 1, 1, 0, 0, 0, 0, 0],
            "carrier": [1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0],
        }
    )
    out = cox(df, covariates=["carrier"])
    assert out["warning"][0] is not None
    assert "variance" in out["warning"][0]
