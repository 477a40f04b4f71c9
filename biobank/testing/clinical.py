"""Simulated clinical histories in an OMOP CDM subset, driven by genotypes.

Disease model (per participant, logistic liabilities; ``g`` = ALT allele count):

* type 2 diabetes (``E11.x``): age, sex, BMI and the planted GCK missense
  variant, odds ratio :data:`T2D_OR` per allele;
* breast cancer (``C50.x``, women only): age and a rare BRCA1 frameshift
  (OR :data:`BRCA1_OR`); patients are recruited around diagnosis (tissue is
  banked at surgery) and followed up; death hazard after diagnosis is
  multiplied by :data:`BRCA2_HR` per allele of the planted BRCA2 variant;
* coronary disease (``I25.x``): age, sex, diabetes, familial hypercholesterolaemia;
* familial hypercholesterolaemia (``E78.0``): heterozygous LDLR stop-gain carriers,
  85 % diagnosed, LDL-C raised by 2.6 mmol/L;
* Wilson disease (``E83.0``): ATP7B splice-donor homozygotes (recessive);
* hypertension (``I10``, ``I10.x00``): age, BMI, diabetes; raises SBP;
* healthy volunteers: cohort ``HV`` (none of the diseases above).

Codes mix plain ICD-10 (``E11.9``) with national clinical edition 2.0
extensions (``E11.900``, ``I25.103``, ``C50.901``). Measurements (HbA1c %,
FPG mmol/L, LDL-C mmol/L, BMI kg/m2, SBP mmHg) depend on disease status.
Every date lies after birth, inside the person's observation period and not
after :data:`~biobank.testing.people.REFERENCE_DATE`.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from biobank.testing.people import REFERENCE_DATE, Person, _days, _years, write_csv

__all__ = [
    "BRCA1_OR",
    "BRCA2_HR",
    "T2D_OR",
    "Clinical",
    "simulate_clinical",
    "write_clinical",
]

logger = logging.getLogger(__name__)

T2D_OR = 3.0
BRCA1_OR = 8.0
BRCA2_HR = 3.0
CODES = {
    "T2D": (("E11.9", 0.4), ("E11.900", 0.35), ("E11.2", 0.15), ("E11.4", 0.1)),
    "CAD": (("I25.1", 0.4), ("I25.103", 0.4), ("I25.9", 0.2)),
    "BC": (("C50.9", 0.4), ("C50.901", 0.4), ("C50.4", 0.2)),
    "FH": (("E78.0", 1.0),),
    "WD": (("E83.0", 1.0),),
    "HTN": (("I10", 0.5), ("I10.x00", 0.5)),
}
#: Diseases that make a cohort (everyone else is a healthy volunteer, ``HV``).
COHORT_DISEASES = ("BC", "CAD", "FH", "HTN", "T2D", "WD")
OTHER_DEATH_CAUSES = ("I63.9", "J18.9", "C34.9", "I21.9", "K74.6")

PERSON_COLUMNS = [
    "person_id",
    "person_source_value",
    "gender_source_value",
    "year_of_birth",
    "month_of_birth",
    "day_of_birth",
]
CONDITION_COLUMNS = [
    "condition_occurrence_id",
    "person_id",
    "condition_source_value",
    "condition_start_date",
    "condition_end_date",
]
MEASUREMENT_COLUMNS = [
    "measurement_id",
    "person_id",
    "measurement_source_value",
    "measurement_date",
    "value_as_number",
    "unit_source_value",
]
OBSERVATION_COLUMNS = [
    "observation_period_id",
    "person_id",
    "observation_period_start_date",
    "observation_period_end_date",
]
DEATH_COLUMNS = ["person_id", "death_date", "cause_source_value"]


@dataclass
class Clinical:
    """The OMOP tables as lists of rows (strings), ready for CSV."""

    person: list[dict[str, str]]
    condition_occurrence: list[dict[str, str]]
    measurement: list[dict[str, str]]
    observation_period: list[dict[str, str]]
    death: list[dict[str, str]]


def _code(rng: np.random.Generator, disease: str) -> str:
    codes, weights = zip(*CODES[disease], strict=True)
    return str(codes[int(rng.choice(len(codes), p=np.array(weights) / sum(weights)))])


def _age(p: Person, on: dt.date) -> float:
    return (on - p.birth_date).days / 365.25


def _disease_flags(
    rng: np.random.Generator,
    age: float,
    bmi0: float,
    male: bool,
    dose: dict[str, Any],
    t2d_or: float,
) -> dict[str, Any]:
    """Draw who has T2D, FH, HTN, WD, CAD and BC (in that order of draws)."""
    lp = -2.3 + 0.04 * (age - 50) + 0.15 * (bmi0 - 23.6) + 0.3 * male + np.log(t2d_or) * dose["GCK"]
    t2d = rng.random() < 1 / (1 + np.exp(-lp))
    fh = dose["LDLR"] > 0 and rng.random() < 0.85
    lp = -1.2 + 0.05 * (age - 55) + 0.1 * (bmi0 - 23.6) + 0.5 * t2d
    htn = rng.random() < 1 / (1 + np.exp(-lp))
    wd = dose["ATP7B"] >= 2
    lp = -3.2 + 0.08 * (age - 55) + 0.9 * male + 0.7 * t2d + 1.8 * (dose["LDLR"] > 0)
    cad = rng.random() < 1 / (1 + np.exp(-lp))
    bc = False
    if not male:
        lp = -1.3 + 0.02 * (age - 50) + np.log(BRCA1_OR) * dose["BRCA1"]
        bc = rng.random() < 1 / (1 + np.exp(-lp))
    return {"T2D": t2d, "CAD": cad, "FH": fh, "WD": wd, "HTN": htn, "BC": bc}


def _follow_up(
    rng: np.random.Generator,
    p: Person,
    age: float,
    flags: dict[str, Any],
    obs_start: dt.date,
    brca2_hr: float,
    brca2: Any,
    diseases: dict[str, dt.date],
) -> tuple[dt.date, str] | None:
    """Date breast cancer (recruited at diagnosis, banked at surgery); return (death, cause)."""
    death: tuple[dt.date, str] | None = None
    if flags["BC"]:  # recruited at diagnosis; survival from diagnosis
        diag = p.enrolment_date - dt.timedelta(days=int(rng.integers(0, 60)))
        diag = max(diag, obs_start)
        diseases["BC"] = diag
        p.surgery_date = diag + dt.timedelta(days=int(rng.integers(3, 30)))
        rate = 0.1 * brca2_hr**brca2
        t = rng.exponential(1 / rate)
        when = _years(p.enrolment_date, t)
        if when < REFERENCE_DATE:
            death = (when, "C50.9")
    if death is None and flags["CAD"] and rng.random() < 0.15:
        when = _days(rng, p.enrolment_date + dt.timedelta(days=90), REFERENCE_DATE)
        death = (when, _code(rng, "CAD")[:3] + ".9")
    if death is None and rng.random() < 0.004 * np.exp(0.08 * (age - 60)):
        when = _days(rng, p.enrolment_date + dt.timedelta(days=90), REFERENCE_DATE)
        death = (when, OTHER_DEATH_CAUSES[int(rng.integers(0, len(OTHER_DEATH_CAUSES)))])
    return death


def _person_rows(
    tables: Clinical,
    p: Person,
    pid: str,
    obs_start: dt.date,
    obs_end: dt.date,
    death: tuple[dt.date, str] | None,
) -> None:
    """Append the person's ``person``, ``observation_period`` and ``death`` rows."""
    tables.person.append(
        {
            "person_id": pid,
            "person_source_value": p.national_id,
            "gender_source_value": "M" if p.sex == "male" else "F",
            "year_of_birth": str(p.birth_date.year),
            "month_of_birth": str(p.birth_date.month),
            "day_of_birth": str(p.birth_date.day),
        }
    )
    tables.observation_period.append(
        {
            "observation_period_id": pid,
            "person_id": pid,
            "observation_period_start_date": obs_start.isoformat(),
            "observation_period_end_date": obs_end.isoformat(),
        }
    )
    if death:
        tables.death.append(
            {"person_id": pid, "death_date": death[0].isoformat(), "cause_source_value": death[1]}
        )


def _visit_values(
    rng: np.random.Generator,
    age_v: float,
    has: set[str],
    bmi0: float,
    htn: Any,
    dose: dict[str, Any],
) -> dict[str, tuple[float, str, int]]:
    """Measurements at one visit: name -> (value, unit, decimals)."""
    return {
        "HbA1c": (
            rng.normal(7.6, 1.1) if "T2D" in has else rng.normal(5.4, 0.35) + 0.15 * dose["GCK"],
            "%",
            1,
        ),
        "FPG": (rng.normal(8.3, 1.8) if "T2D" in has else rng.normal(5.1, 0.5), "mmol/L", 1),
        "LDL-C": (
            rng.normal(2.9, 0.7) + 2.6 * (dose["LDLR"] > 0) - 0.8 * ("CAD" in has),
            "mmol/L",
            2,
        ),
        "BMI": (bmi0 + rng.normal(0, 0.6) + 1.5 * ("T2D" in has), "kg/m2", 1),
        "SBP": (
            110
            + 0.5 * (age_v - 40)
            + 6 * ("T2D" in has)
            + 18 * ("HTN" in has or htn)
            + rng.normal(0, 12),
            "mmHg",
            0,
        ),
    }


def _measure_visits(
    rng: np.random.Generator,
    tables: Clinical,
    p: Person,
    pid: str,
    obs_end: dt.date,
    diseases: dict[str, dt.date],
    bmi0: float,
    htn: Any,
    dose: dict[str, Any],
) -> None:
    """Measurements at enrolment and up to 4 follow-ups within observation."""
    visits = [p.enrolment_date]
    for _ in range(int(rng.integers(0, 5))):
        v = _days(rng, p.enrolment_date + dt.timedelta(days=30), obs_end)
        if v <= obs_end:
            visits.append(v)
    for v in sorted(set(visits)):
        has = {d for d, when in diseases.items() if when <= v}
        values = _visit_values(rng, _age(p, v), has, bmi0, htn, dose)
        for name, (value, unit, digits) in values.items():
            if name in ("HbA1c", "FPG") and rng.random() < 0.2:
                continue  # not every test at every visit
            tables.measurement.append(
                {
                    "measurement_id": str(len(tables.measurement) + 1),
                    "person_id": pid,
                    "measurement_source_value": name,
                    "measurement_date": v.isoformat(),
                    "value_as_number": f"{max(float(value), 0.1):.{digits}f}",
                    "unit_source_value": unit,
                }
            )


def _simulate_person(
    rng: np.random.Generator,
    tables: Clinical,
    p: Person,
    pid: str,
    dose: dict[str, Any],
    *,
    t2d_or: float,
    brca2_hr: float,
) -> None:
    """One participant's diseases, death, observation and measurements."""
    age = _age(p, p.enrolment_date)
    obs_start = max(
        _years(p.birth_date, 18),
        p.enrolment_date - dt.timedelta(days=int(rng.integers(0, 8 * 365))),
    )
    bmi0 = rng.normal(22.8 if p.ancestry == "Tibetan" else 23.6, 3.0)
    diseases: dict[str, dt.date] = {}
    flags = _disease_flags(rng, age, bmi0, p.sex == "male", dose, t2d_or)
    death = _follow_up(rng, p, age, flags, obs_start, brca2_hr, dose["BRCA2"], diseases)
    obs_end = death[0] if death else REFERENCE_DATE
    p.death_date = death[0] if death else None
    lo = max(obs_start, _years(p.birth_date, 30))
    for name in ("T2D", "CAD", "FH", "WD", "HTN"):
        if flags[name]:
            diseases[name] = _days(rng, min(lo, obs_end), obs_end)
    for name, date in sorted(diseases.items(), key=lambda kv: kv[1]):
        tables.condition_occurrence.append(
            {
                "condition_occurrence_id": str(len(tables.condition_occurrence) + 1),
                "person_id": pid,
                "condition_source_value": _code(rng, name),
                "condition_start_date": date.isoformat(),
                "condition_end_date": "",
            }
        )
    p.cohorts = sorted(set(diseases) & set(COHORT_DISEASES)) or ["HV"]
    p.diseases = sorted({CODES[d][0][0][:3] for d in diseases})
    _person_rows(tables, p, pid, obs_start, obs_end, death)
    _measure_visits(rng, tables, p, pid, obs_end, diseases, bmi0, flags["HTN"], dose)


def simulate_clinical(
    rng: np.random.Generator,
    people: Sequence[Person],
    dosages: dict[str, np.ndarray],
    *,
    t2d_or: float = T2D_OR,
    brca2_hr: float = BRCA2_HR,
) -> Clinical:
    """Simulate diseases, measurements, deaths; fill ``cohorts``/``diseases`` of ``people``.

    Parameters
    ----------
    rng
        Random generator.
    people
        Participants (modified in place: cohorts, diseases, death and surgery dates).
    dosages
        ALT allele counts per person of the planted variants, keys ``GCK``,
        ``BRCA1``, ``BRCA2``, ``LDLR``, ``ATP7B``. Missing keys count as 0.
    t2d_or
        Odds ratio of type 2 diabetes per GCK allele.
    brca2_hr
        Hazard ratio of death after breast cancer diagnosis per BRCA2 allele.
    """
    n = len(people)
    zero = np.zeros(n, dtype=np.int64)
    g = {k: dosages.get(k, zero) for k in ("GCK", "BRCA1", "BRCA2", "LDLR", "ATP7B")}
    tables = Clinical([], [], [], [], [])
    for i, p in enumerate(people):
        dose = {k: v[i] for k, v in g.items()}
        _simulate_person(rng, tables, p, str(i + 1), dose, t2d_or=t2d_or, brca2_hr=brca2_hr)
    logger.info(
        "clinical: %d conditions, %d measurements, %d deaths",
        len(tables.condition_occurrence),
        len(tables.measurement),
        len(tables.death),
    )
    return tables


def write_clinical(out_dir: Path, tables: Clinical) -> list[Path]:
    """Write the five OMOP CSV files into ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    spec = {
        "person": PERSON_COLUMNS,
        "condition_occurrence": CONDITION_COLUMNS,
        "measurement": MEASUREMENT_COLUMNS,
        "observation_period": OBSERVATION_COLUMNS,
        "death": DEATH_COLUMNS,
    }
    paths = []
    for name, columns in spec.items():
        path = out_dir / f"{name}.csv"
        write_csv(path, columns, getattr(tables, name))
        paths.append(path)
    return paths
