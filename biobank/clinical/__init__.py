"""Stage 4, clinical data: the OMOP-style clinical load, ICD-10 codes,
cohort definitions and survival analysis.
"""

from __future__ import annotations

from biobank.clinical.cohorts import (
    Age,
    And,
    Criterion,
    Diagnosis,
    Died,
    InStudy,
    Lab,
    Not,
    Or,
    Sex,
    case_control_sql,
    case_diagnoses,
    cohort_sql,
    criterion_from_options,
    get_cohort,
    list_cohorts,
    parse_lab,
    save_cohort,
    universe_sql,
)
from biobank.clinical.load import CLINICAL_FILES, ClinicalLoad, load_clinical
from biobank.clinical.survival import DAYS_PER_YEAR, cox, kaplan_meier, logrank, survival_data

__all__ = [
    "CLINICAL_FILES",
    "DAYS_PER_YEAR",
    "Age",
    "And",
    "ClinicalLoad",
    "Criterion",
    "Diagnosis",
    "Died",
    "InStudy",
    "Lab",
    "Not",
    "Or",
    "Sex",
    "case_control_sql",
    "case_diagnoses",
    "cohort_sql",
    "cox",
    "criterion_from_options",
    "get_cohort",
    "kaplan_meier",
    "list_cohorts",
    "load_clinical",
    "logrank",
    "parse_lab",
    "save_cohort",
    "survival_data",
    "universe_sql",
]
