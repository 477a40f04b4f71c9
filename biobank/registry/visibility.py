"""Which participants a principal may see: shared by participant and specimen look-ups.

It sits below :mod:`biobank.registry.participants` and
:mod:`biobank.registry.inventory` so that both can import it (neither imports
the other).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import duckdb

from biobank.core import audit
from biobank.core.access import Permission, Principal, require
from biobank.core.errors import ConsentError
from biobank.registry.consent import permitted_participants_sql

if TYPE_CHECKING:
    from biobank.core.store import Store

__all__ = ["audited_rows", "participant_visibility_sql"]


def participant_visibility_sql(principal: Principal) -> str:
    """Return SQL (one column ``participant_id``) of the participants ``principal`` may see.

    Registry staff see everyone; researchers only those whose current consent
    permits their purpose.

    Raises
    ------
    AccessDenied
        For a role with neither ``registry_read`` nor ``research_read``.
    ConsentError
        For a researcher without a purpose.
    """
    if principal.can(Permission.REGISTRY_READ):
        return "SELECT participant_id FROM participant"
    require(principal, Permission.RESEARCH_READ)
    if not principal.purpose:
        raise ConsentError(
            "researchers read registry data for a stated purpose: give one "
            "(e.g. --purpose HMB or DS:E11) so consents can be checked"
        )
    return permitted_participants_sql(principal.purpose)


def _query_rows(
    con: duckdb.DuckDBPyConnection, sql: str, params: list[Any], *, limit: int | None = None
) -> list[dict[str, Any]]:
    """Run a listing query (``LIMIT`` appended when given) and return its rows as dicts."""
    if limit is not None:
        sql += f" LIMIT {int(limit)}"
    cur = con.execute(sql, params)
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def audited_rows(
    store: Store,
    principal: Principal,
    sql: str,
    params: list[Any],
    *,
    limit: int | None,
    action: str,
    target: str,
    filters: dict[str, Any],
) -> list[dict[str, Any]]:
    """Run a listing query and audit it (``action`` on ``target``: the filters and row count).

    Returns
    -------
    list of dict
        The rows, at most ``limit`` if given.
    """
    with store.transaction() as con:
        rows = _query_rows(con, sql, params, limit=limit)
        audit.record(con, principal, action, target, {**filters, "rows": len(rows)})
    return rows
