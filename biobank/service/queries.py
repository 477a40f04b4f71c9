"""Read-only views the pages show and the registry has no function for yet.

Each function checks the permission with :func:`~biobank.core.access.require`
and writes no rule of its own: counts for the dashboard, a participant's
consent history, a specimen's events, and pages of the audit log. They run
inside :meth:`biobank.service.app.Ctx.act`, which audits the request.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import duckdb

from biobank.core.access import Permission, Principal, require
from biobank.core.store import Store

__all__ = ["AUDIT_PAGE", "audit_entries", "consent_history", "dashboard", "specimen_events"]

AUDIT_PAGE = 100


def _rows(cur: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def dashboard(
    store: Store, principal: Principal, *, today: dt.date | None = None
) -> dict[str, Any]:
    """Today's arrivals, specimens by type and status, and occupied positions per freezer.

    "Today" is the UTC date of accession (``specimen.created_at``).
    """
    require(principal, Permission.REGISTRY_READ)
    day = today or dt.datetime.now(dt.UTC).date()
    con = store.con
    arrivals = _rows(
        con.execute(
            "SELECT label, participant_id, specimen_type, quantity, unit, created_at"
            " FROM specimen WHERE CAST(created_at AS DATE) = ? ORDER BY created_at DESC LIMIT 200",
            [day],
        )
    )
    by_type = _rows(
        con.execute(
            "SELECT specimen_type, status, count(*) AS n FROM specimen"
            " GROUP BY ALL ORDER BY specimen_type, status"
        )
    )
    freezers = _rows(
        con.execute(
            "SELECT freezer, count(DISTINCT rack) AS racks,"
            " count(DISTINCT (rack, box)) AS boxes, count(*) AS occupied FROM specimen"
            " WHERE freezer IS NOT NULL AND status = 'available' GROUP BY freezer ORDER BY freezer"
        )
    )
    return {"day": day, "arrivals": arrivals, "by_type": by_type, "freezers": freezers}


def consent_history(
    store: Store, principal: Principal, participant_id: str
) -> list[dict[str, Any]]:
    """Every consent version of a participant, newest first."""
    require(principal, Permission.REGISTRY_READ)
    return _rows(
        store.con.execute(
            "SELECT consent_version, signed_date, primary_code, disease, modifiers,"
            " withdrawn_date FROM consent WHERE participant_id = ?"
            " ORDER BY signed_date DESC, consent_seq DESC",
            [participant_id],
        )
    )


def specimen_events(store: Store, principal: Principal, label: str) -> list[dict[str, Any]]:
    """The registry events of one specimen, oldest first."""
    require(principal, Permission.REGISTRY_READ)
    return _rows(
        store.con.execute(
            "SELECT occurred_at, user_name, action, reason FROM registry_event"
            " WHERE entity = 'specimen' AND entity_key = ? ORDER BY event_id",
            [label],
        )
    )


def audit_entries(
    store: Store,
    principal: Principal,
    *,
    user: str = "",
    action: str = "",
    target: str = "",
    before: int | None = None,
) -> list[dict[str, Any]]:
    """One page of the audit log, newest first, filtered by user, action prefix, target."""
    require(principal, Permission.AUDIT_READ)
    where, params = ["TRUE"], []
    if user:
        where.append("user_name = ?")
        params.append(user)
    if action:
        where.append("starts_with(action, ?)")
        params.append(action)
    if target:
        where.append("contains(target, ?)")
        params.append(target)
    if before is not None:
        where.append("entry_id < ?")
        params.append(str(before))
    return _rows(
        store.con.execute(
            "SELECT entry_id, logged_at, user_name, role, action, target,"
            f" CAST(detail AS VARCHAR) AS detail FROM audit_log WHERE {' AND '.join(where)}"
            f" ORDER BY entry_id DESC LIMIT {AUDIT_PAGE}",
            params,
        )
    )
