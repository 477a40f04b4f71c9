"""Data classification: the one registry of what class every column of the store is.

Every column of every table and view of the store (``biobank/core/schema/*.sql``)
has one class in ``biobank/core/classification.csv`` (``table,column,class``).
``tests/core/test_classification.py`` builds a fresh store and fails when a
column of its ``information_schema`` has no class (or the file names a column
that no longer exists), so a new migration cannot add an unclassified column.

=====================  ==========================================================  ===========
class                  meaning                                                     extracts
=====================  ==========================================================  ===========
``direct_identifier``  identifies or reaches a person without the center key        never
                       (the encrypted identity and phone of re-contact)
``secret``             credentials and signatures (password hashes, session ids)    never
``pseudonym``          a key that links rows to a person inside the center          replaced
                       (participant id, sample id, specimen label)
``quasi_identifier``   identifies a person in combination (sex, birth year, site,   approvable
                       enrolment date)
``sensitive_clinical`` diagnoses, measurements, deaths, study membership            approvable
``genetic``            genotypes, depths, per-sample genetic QC                      approvable
``public``             reference data and variant annotations                        approvable
``operational``        how the center runs the store (users, audit, loads, stock)    never
=====================  ==========================================================  ===========

"Replaced": an extract never carries a store pseudonym; its person key is a
per-project pseudonym (:mod:`biobank.research.extracts`). "Never": a request for
such a field is refused when it is made and when it is decided
(:func:`check_requestable`). :func:`data_dictionary` is the table behind
``biobank data-dictionary`` and ``docs/data-dictionary.md``.
"""

from __future__ import annotations

import csv
import re
from enum import StrEnum
from functools import cache
from importlib import resources

import duckdb
import polars as pl

from biobank.core.errors import ValidationError

__all__ = [
    "EXTRACTABLE",
    "ColumnClass",
    "check_requestable",
    "classification",
    "column_class",
    "data_dictionary",
    "data_dictionary_markdown",
    "schema_columns",
    "schema_comments",
    "unclassified_columns",
]


class ColumnClass(StrEnum):
    """The classes of the registry (see the module docstring)."""

    DIRECT_IDENTIFIER = "direct_identifier"
    SECRET = "secret"
    PSEUDONYM = "pseudonym"
    QUASI_IDENTIFIER = "quasi_identifier"
    SENSITIVE_CLINICAL = "sensitive_clinical"
    GENETIC = "genetic"
    PUBLIC = "public"
    OPERATIONAL = "operational"


#: Classes a data access request may ask for (fields of other classes are refused).
EXTRACTABLE: frozenset[ColumnClass] = frozenset(
    {
        ColumnClass.QUASI_IDENTIFIER,
        ColumnClass.SENSITIVE_CLINICAL,
        ColumnClass.GENETIC,
        ColumnClass.PUBLIC,
    }
)

_FILE = "classification.csv"


@cache
def classification() -> dict[tuple[str, str], ColumnClass]:
    """Return ``{(table, column): class}`` from the registry file.

    Raises
    ------
    ValidationError
        If a row of the file has an unknown class or is a duplicate (names the line).
    """
    text = resources.files("biobank.core").joinpath(_FILE).read_text(encoding="utf-8")
    out: dict[tuple[str, str], ColumnClass] = {}
    for line, row in enumerate(csv.DictReader(text.splitlines()), start=2):
        key = (row["table"], row["column"])
        try:
            cls = ColumnClass(row["class"])
        except ValueError as exc:
            raise ValidationError(
                f"class '{row['class']}' is not one of {', '.join(c.value for c in ColumnClass)}",
                file=_FILE,
                line=line,
                field="class",
                value=row["class"],
            ) from exc
        if key in out:
            raise ValidationError(
                f"{key[0]}.{key[1]} is classified twice", file=_FILE, line=line, field="column"
            )
        out[key] = cls
    return out


def column_class(table: str, column: str) -> ColumnClass:
    """Return the class of ``table.column``.

    Raises
    ------
    ValidationError
        If the column is not in the registry.
    """
    cls = classification().get((table, column))
    if cls is None:
        raise ValidationError(
            f"{table}.{column} is not a classified column of the store: see"
            " 'biobank data-dictionary'",
            field="fields",
            value=f"{table}.{column}",
        )
    return cls


def check_requestable(fields: list[str] | tuple[str, ...]) -> list[str]:
    """Return the sorted, de-duplicated ``table.column`` fields, refusing unextractable ones.

    Raises
    ------
    ValidationError
        If a field is not ``table.column``, is unknown, or its class is not in
        :data:`EXTRACTABLE` (direct identifiers, secrets, pseudonyms and
        operational columns are never approvable).
    """
    out: set[str] = set()
    refused: list[str] = []
    for field in fields:
        table, _, column = field.strip().partition(".")
        if not table or not column:
            raise ValidationError(
                "a field is TABLE.COLUMN, e.g. clinical_person.sex", field="fields", value=field
            )
        cls = column_class(table, column)
        if cls not in EXTRACTABLE:
            refused.append(f"{table}.{column} ({cls.value})")
        out.add(f"{table}.{column}")
    if refused:
        raise ValidationError(
            f"these fields may never be extracted: {', '.join(refused)}; request only "
            f"{', '.join(sorted(c.value for c in EXTRACTABLE))} fields (the person key is"
            " added as a per-project pseudonym)",
            field="fields",
        )
    if not out:
        raise ValidationError("request at least one field", field="fields")
    return sorted(out)


def schema_columns(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """Return ``table, column, type, kind`` of every table and view of the store."""
    return con.execute(
        """
        SELECT c.table_name AS "table", c.column_name AS "column", c.data_type AS type,
               t.table_type AS kind
        FROM information_schema.columns c
        JOIN information_schema.tables t USING (table_catalog, table_schema, table_name)
        WHERE c.table_catalog = current_database() AND c.table_schema = 'main'
        ORDER BY c.table_name, c.ordinal_position
        """
    ).pl()


def unclassified_columns(con: duckdb.DuckDBPyConnection) -> tuple[list[str], list[str]]:
    """Return ``(unclassified, stale)``: store columns without a class, classes without a column."""
    cols = {(t, c) for t, c in schema_columns(con).select("table", "column").iter_rows()}
    known = set(classification())
    return (
        sorted(f"{t}.{c}" for t, c in cols - known),
        sorted(f"{t}.{c}" for t, c in known - cols),
    )


_CREATE = re.compile(r"CREATE\s+(?:TABLE|VIEW)\s+(?:IF NOT EXISTS\s+)?(\w+)", re.I)
_ALTER = re.compile(r"ALTER\s+TABLE\s+(\w+)\s+ADD\s+(?:COLUMN\s+)?(\w+)[^-]*--\s*(.+)$", re.I)
_COLUMN = re.compile(r"^\s+(\w+)\s+[A-Z][A-Z0-9_\[\]() ,]*.*?--\s*(.+)$")


@cache
def schema_comments() -> dict[tuple[str, str], str]:
    """Return ``{(table, column): comment}`` from the ``-- comments`` of the schema files."""
    out: dict[tuple[str, str], str] = {}
    for entry in sorted(resources.files("biobank.core.schema").iterdir(), key=lambda e: e.name):
        if not entry.name.endswith(".sql"):
            continue
        table: str | None = None
        for line in entry.read_text(encoding="utf-8").splitlines():
            if m := _CREATE.search(line):
                table = m[1]
            elif m := _ALTER.search(line):
                out.setdefault((m[1], m[2]), m[3].strip())
            elif table and (m := _COLUMN.match(line)):
                out.setdefault((table, m[1]), m[2].strip())
            if line.startswith(");"):
                table = None
    return out


def data_dictionary(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """Return the data dictionary: ``table, column, type, class, description``.

    One row per column of the store behind ``con`` (a store at the current
    schema), with its class from the registry (null if unclassified) and the
    comment of its schema file.
    """
    cols = schema_columns(con)
    classes = classification()
    comments = schema_comments()
    keys = list(cols.select("table", "column").iter_rows())
    return cols.select("table", "column", "type").with_columns(
        pl.Series("class", [(classes.get(k) or "").__str__() or None for k in keys]),
        pl.Series("description", [comments.get(k, "") for k in keys]),
    )


def data_dictionary_markdown(df: pl.DataFrame) -> str:
    """Render :func:`data_dictionary` as Markdown: one section per table."""
    lines = [
        "# Data dictionary",
        "",
        "Generated by `biobank data-dictionary --format md` from",
        "`biobank/core/classification.csv` and the comments of `biobank/core/schema/*.sql`",
        "(do not edit by hand). Classes: see `biobank.core.classification`.",
        "",
    ]
    for (table,), part in df.group_by("table", maintain_order=True):
        lines += [f"## {table}", "", "| column | type | class | description |", "|---|---|---|---|"]
        for row in part.iter_rows(named=True):
            desc = str(row["description"] or "").replace("|", "\\|")
            lines.append(f"| {row['column']} | {row['type']} | {row['class'] or ''} | {desc} |")
        lines.append("")
    return "\n".join(lines)
