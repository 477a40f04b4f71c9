"""Family members with their genotyped samples, as the analyses need them.

:func:`family_samples` materialises the genotyped members of the chosen
families as a sample table (:func:`biobank.genomes.reader.sample_table`),
restricted by consent for a research purpose exactly as every genotype
query is, and returns the members with the column each one has in the dense
genotype blocks (:func:`biobank.genomes.reader.dense_blocks`). A member
without consent for the purpose, or without a genotyped sample, has no
column; a trio needs all three.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import duckdb
import numpy as np
import polars as pl

from biobank.core.access import Permission, Principal, Role
from biobank.core.errors import AccessDenied, ConsentError
from biobank.genomes.encoding import FLAG_HAPLOID, FLAG_MISSING, FLAG_OTHER_ALT
from biobank.genomes.reader import sample_table
from biobank.registry.affected import affected_sql

__all__ = [
    "FamilySamples",
    "check_read",
    "decode",
    "family_samples",
    "is_x",
    "trios",
]


def check_read(principal: Principal, purpose: str | None) -> str | None:
    """Check that ``principal`` may read genotypes of family members; return the purpose.

    Raises
    ------
    AccessDenied
        For a role that reads neither research data nor loads data.
    ConsentError
        For a researcher without a purpose.
    """
    if not (principal.can(Permission.RESEARCH_READ) or principal.can(Permission.LOAD_DATA)):
        raise AccessDenied(
            f"user '{principal.user}' with role '{principal.role}' may not read family "
            "genotypes: a researcher, registrar or admin role is needed"
        )
    purpose = purpose or principal.purpose
    if principal.role is Role.RESEARCHER and purpose is None:
        raise ConsentError(
            "a research read of family genotypes needs a purpose (e.g. 'HMB' or 'DS:E83') "
            "so that only consented members are used"
        )
    return purpose


@dataclass
class FamilySamples:
    """Genotyped members of the chosen families.

    Attributes
    ----------
    table
        The sample table (for :func:`~biobank.genomes.reader.dense_blocks`).
    members
        ``family_id, participant_id, father_id, mother_id, sex, birth_year, affected,
        sample_id, col``: every member of the families (``col`` and ``sample_id``
        null when not genotyped or not consented).
    n_samples
        Columns of the dense blocks.
    """

    table: str
    members: pl.DataFrame
    n_samples: int


def _members_sql(
    families: Sequence[str] | None, phenotype: str | None = None
) -> tuple[str, list[object]]:
    status, params = affected_sql(phenotype)
    where = "WHERE f.family_id IN (SELECT unnest(?::VARCHAR[]))" if families else ""
    sql = (
        "SELECT f.family_id, f.participant_id, f.father_id, f.mother_id, p.sex, p.birth_year,"
        f" {status} AS affected FROM family_member f JOIN participant p USING (participant_id)"
        f" {where} ORDER BY f.family_id, p.birth_year, f.participant_id"
    )
    return sql, [*params, *([list(families)] if families else [])]


@contextmanager
def family_samples(
    con: duckdb.DuckDBPyConnection,
    *,
    families: Sequence[str] | None = None,
    purpose: str | None = None,
    phenotype: str | None = None,
) -> Iterator[FamilySamples]:
    """Yield the genotyped members of ``families`` (all families when ``None``).

    Call :func:`check_read` first; ``purpose`` restricts to consented members.
    ``phenotype`` (an HPO term or ICD-10 code): ``affected`` is each member's
    status for it (:mod:`biobank.registry.affected`), else the overall status.
    """
    sql, params = _members_sql(families, phenotype)
    members = con.execute(sql, params).pl()
    ids = members["participant_id"].unique().to_list()
    with sample_table(con, ids, purpose=purpose) as tbl:
        samples = con.execute(
            f"SELECT participant_id, sample_id, CAST(row_number() OVER (ORDER BY sample_key) - 1"
            f" AS INTEGER) AS col FROM {tbl}"
        ).pl()
        out = members.join(samples, on="participant_id", how="left")
        yield FamilySamples(table=tbl, members=out, n_samples=samples.height)


def trios(members: pl.DataFrame) -> pl.DataFrame:
    """Child-father-mother trios whose three members have a column.

    Returns
    -------
    polars.DataFrame
        ``family_id, child_id, father_id, mother_id, child_sex, child_affected,
        child_sample, father_sample, mother_sample, c_col, f_col, m_col``.
    """
    g = members.filter(pl.col("col").is_not_null())
    people = g.select("family_id", "participant_id", "sample_id", "col")
    kids = g.filter(pl.col("father_id").is_not_null() & pl.col("mother_id").is_not_null())
    out = (
        kids.select(
            "family_id",
            pl.col("participant_id").alias("child_id"),
            "father_id",
            "mother_id",
            pl.col("sex").alias("child_sex"),
            pl.col("affected").alias("child_affected"),
            pl.col("sample_id").alias("child_sample"),
            pl.col("col").alias("c_col"),
        )
        .join(
            people.rename(
                {"participant_id": "father_id", "sample_id": "father_sample", "col": "f_col"}
            ),
            on=["family_id", "father_id"],
        )
        .join(
            people.rename(
                {"participant_id": "mother_id", "sample_id": "mother_sample", "col": "m_col"}
            ),
            on=["family_id", "mother_id"],
        )
    )
    return out.sort("family_id", "child_sample")


def decode(dosage: np.ndarray, flags: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(dosage as int8, missing, haploid)`` of dense calls; another ALT reads as missing."""
    missing = (flags & (FLAG_MISSING | FLAG_OTHER_ALT)) > 0
    haploid = (flags & FLAG_HAPLOID) > 0
    return dosage.astype(np.int8), missing, haploid


def is_x(contig: str) -> bool:
    """True for the X chromosome (``chrX`` or ``X``)."""
    return contig.removeprefix("chr") == "X"
