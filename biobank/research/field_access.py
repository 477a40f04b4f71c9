"""Field-level record access: what an approved request lets the workbench show.

An approved data access request (:mod:`biobank.research.access_requests`)
gives record-level access for its purpose **and only to its fields**
(``table.column`` of :mod:`biobank.core.classification`). The workbench's
record-level methods use the maps here:

* a method whose result has attribute columns (:meth:`~biobank.research.workbench.Workbench.cohort`,
  ``case_control``, ``carriers``, ``covariates``) drops the columns whose
  fields were not approved (:func:`restrict_columns`);
* a method that cannot work without a field (genotype matrices, PCs and
  dosages need ``genotype_call_all.dosage``; measurement values need
  ``clinical_measurement.name`` and ``.value``; survival needs its dates)
  is refused with an error naming the fields and how to request them
  (:func:`missing_fields`, :func:`refusal`);
* :meth:`~biobank.research.workbench.Workbench.sql` loads each research table
  with its key columns (pseudonyms, public variant keys) and the approved
  columns only (:func:`sql_columns`); a table with no approved column is not
  loaded.

Public reference data (the ``variant`` annotations of class ``public``) needs no
approval. ``genotype_call`` and ``genotype_call_all`` name the same calls: a
field of either approves both. Aggregate methods (counts, frequencies,
association) are not restricted by fields: they pass the output checks
instead, as for a user without record-level access.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import polars as pl

from biobank.core.classification import EXTRACTABLE, ColumnClass, classification

__all__ = [
    "ATTRIBUTE_FIELDS",
    "GENOTYPES",
    "SQL_TABLES",
    "missing_fields",
    "refusal",
    "research_fields",
    "restrict_columns",
    "sql_columns",
]

#: The field of the ALT dosage of genotype calls (genotype matrices, PCs, dosages, carriers).
GENOTYPES = "genotype_call_all.dosage"

#: Columns of the workbench's attribute tables -> the fields they show.
ATTRIBUTE_FIELDS: dict[str, tuple[str, ...]] = {
    "sex": ("clinical_person.sex",),
    "year_of_birth": ("clinical_person.year_of_birth",),
    "age": ("clinical_person.year_of_birth",),
    "male": ("clinical_person.sex",),
    "diagnoses": ("clinical_condition.code",),
    "death_date": ("clinical_death.death_date",),
    "call_dosage": (GENOTYPES,),
    "call_haploid": (GENOTYPES,),
}

#: Tables of :meth:`Workbench.sql` -> the store table their columns come from.
SQL_TABLES: dict[str, str] = {
    "person": "clinical_person",
    "condition": "clinical_condition",
    "measurement": "clinical_measurement",
    "observation_period": "clinical_observation_period",
    "death": "clinical_death",
    "enrolment": "participant",
    "study_cohort": "participant_cohort",
    "genotype_call": "genotype_call_all",
    "variant": "variant",
}

_KEYS = frozenset({ColumnClass.PSEUDONYM, ColumnClass.PUBLIC})


def _same(field: str) -> str:
    table, _, column = field.partition(".")
    return f"genotype_call_all.{column}" if table == "genotype_call" else field


def missing_fields(approved: Iterable[str], needed: Iterable[str]) -> list[str]:
    """Return the fields of ``needed`` that ``approved`` lacks (sorted)."""
    have = {_same(f) for f in approved}
    return sorted({f for f in needed if _same(f) not in have})


def refusal(what: str, missing: Sequence[str], request_id: int, purpose: str) -> str:
    """The message of a record-level method refused for unapproved fields."""
    fields = " ".join(f"--field {f}" for f in missing)
    return (
        f"{what} needs the field(s) {', '.join(missing)}, which data access request"
        f" {request_id} (purpose {purpose}) does not approve: apply for them with"
        f" 'biobank access request PROJECT ... --purpose {purpose} {fields}'"
    )


def restrict_columns(
    df: pl.DataFrame,
    approved: Iterable[str],
    fields: Mapping[str, Sequence[str]] = ATTRIBUTE_FIELDS,
) -> pl.DataFrame:
    """Drop the columns of ``df`` whose fields (``fields``) are not all approved."""
    have = list(approved)
    drop = [c for c in df.columns if c in fields and missing_fields(have, fields[c])]
    return df.drop(drop)


def sql_columns(name: str, columns: Sequence[str], approved: Iterable[str]) -> list[str] | None:
    """Return the columns of research table ``name`` to load, or ``None`` to leave it out.

    Key columns (class ``pseudonym`` or ``public``) are kept when some other
    column is approved; tables outside :data:`SQL_TABLES` are loaded whole.
    """
    table = SQL_TABLES.get(name)
    if table is None:
        return list(columns)
    classes = classification()
    have = {_same(f) for f in approved}
    keep, any_approved = [], False
    for column in columns:
        cls = classes.get((table, column))
        if f"{table}.{column}" in have:
            keep.append(column)
            any_approved = True
        elif cls in _KEYS:
            keep.append(column)
            any_approved = any_approved or (cls is ColumnClass.PUBLIC and table == "variant")
    return keep if any_approved else None


def research_fields() -> list[str]:
    """Return every approvable field of the research tables (what a demo request asks for)."""
    tables = set(SQL_TABLES.values())
    return sorted(
        f"{t}.{c}" for (t, c), cls in classification().items() if t in tables and cls in EXTRACTABLE
    )
