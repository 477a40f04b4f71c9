"""Partner centres of the national network: bearer tokens, purposes, approvals, budgets.

Other centres ask this one through the Beacon (:mod:`biobank.research.beacon`)
and the federated analysis endpoints (:mod:`biobank.research.federation`).
They authenticate with a bearer token that an admin issues once
(``biobank partner add NAME --purpose HMB``); the store keeps only its sha256
(``partner_centre.token_hash``), so a copy of the store gives no working token.

Who asks decides what the answer may hold (see ``docs/beacon.md``):

=====================  ===========================================================
requester              granularity
=====================  ===========================================================
anonymous              boolean
partner centre         count (small counts suppressed by :mod:`biobank.core.disclosure`)
partner centre with    record, under :func:`approved_request_for`
an approved request
=====================  ===========================================================

:func:`approved_request_for` decides record-level access: an approved request
of the data access workflow (:mod:`biobank.research.access_requests`) whose
applicant is the store user named like the partner, or an approval recorded
with ``biobank partner approve`` (decided outside this store).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from biobank.core import audit
from biobank.core.access import Permission, Principal, Role, require
from biobank.core.errors import ConflictError, NotFoundError, QuotaExceeded, ValidationError
from biobank.registry.consent import parse_purpose

if TYPE_CHECKING:
    import duckdb

    from biobank.core.store import Store

__all__ = [
    "ANONYMOUS",
    "Partner",
    "add_partner",
    "approved_request_for",
    "charge_query",
    "hash_token",
    "list_partners",
    "partner_for_token",
    "partner_principal",
    "record_approved_request",
    "revoke_partner",
]

#: The purpose under which anonymous Beacon questions are answered (consent still applies).
ANONYMOUS = "anonymous"

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def hash_token(token: str) -> str:
    """Return the stored form of a bearer token (sha256 hex).

    >>> len(hash_token("abc"))
    64
    """
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Partner:
    """An authenticated partner centre: its name and the purpose its agreement covers."""

    name: str
    purpose: str


def partner_principal(partner: Partner) -> Principal:
    """The principal a partner's questions are audited and consent-checked as.

    The user name is ``partner:<name>`` (no ``app_user`` row: partners cannot log
    in); the role is researcher, so every read is restricted to the partner's purpose.
    """
    return Principal(user=f"partner:{partner.name}", role=Role.RESEARCHER, purpose=partner.purpose)


def add_partner(store: Store, actor: Principal, name: str, *, purpose: str) -> str:
    """Register a partner centre and return its bearer token (shown once, never stored).

    Raises
    ------
    AccessDenied
        Unless ``actor`` may manage users.
    ValidationError
        For a malformed name or purpose.
    ConflictError
        If the partner exists.
    """
    require(actor, Permission.MANAGE_USERS)
    if not _NAME.match(name or ""):
        raise ValidationError(
            f"partner name {name!r} must be 1-64 letters, digits, '.', '_' or '-'",
            field="partner",
            value=name,
        )
    purpose = str(parse_purpose(purpose))
    token = "bbp_" + secrets.token_urlsafe(32)
    with store.transaction() as con:
        if con.execute("SELECT 1 FROM partner_centre WHERE partner_name = ?", [name]).fetchone():
            raise ConflictError(
                f"partner '{name}' exists: revoke it first to issue a new token"
                f" ('biobank partner revoke {name}')"
            )
        con.execute(
            "INSERT INTO partner_centre VALUES (?, ?, ?, TRUE, ?, ?, NULL)",
            [name, hash_token(token), purpose, _now(), actor.user],
        )
        audit.record(con, actor, "partner.create", name, {"purpose": purpose})
    return token


def revoke_partner(store: Store, actor: Principal, name: str) -> None:
    """Revoke a partner's token at once (its row stays, for the audit trail).

    Raises
    ------
    AccessDenied
        Unless ``actor`` may manage users.
    NotFoundError
        If there is no active partner ``name``.
    """
    require(actor, Permission.MANAGE_USERS)
    with store.transaction() as con:
        row = con.execute(
            "UPDATE partner_centre SET active = FALSE, revoked_at = ?"
            " WHERE partner_name = ? AND active RETURNING 1",
            [_now(), name],
        ).fetchone()
        if row is None:
            raise NotFoundError(f"no active partner '{name}' ('biobank partner list' shows them)")
        audit.record(con, actor, "partner.revoke", name, {})


def list_partners(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    """Every partner with its purpose and state (never the token hash)."""
    cur = con.execute(
        "SELECT partner_name, purpose, active, created_at, created_by, revoked_at"
        " FROM partner_centre ORDER BY partner_name"
    )
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def partner_for_token(con: duckdb.DuckDBPyConnection, token: str) -> Partner | None:
    """Return the active partner whose token this is, else ``None``."""
    row = con.execute(
        "SELECT partner_name, purpose FROM partner_centre WHERE token_hash = ? AND active",
        [hash_token(token)],
    ).fetchone()
    return Partner(str(row[0]), str(row[1])) if row else None


def approved_request_for(
    con: duckdb.DuckDBPyConnection, requester: str, purpose: str, *, on: dt.date | None = None
) -> str | None:
    """Return the id of an approved data access request of ``requester`` for ``purpose``.

    Record-level Beacon answers are given only when this returns an id. It asks,
    in order:

    1. the data access workflow (:func:`biobank.research.access_requests.approved_request_for`):
       an in-force approved request whose applicant is the store user named like
       the partner (an admin adds a researcher ``NAME`` for partner ``NAME``, who
       applies on the centre's behalf); returned as ``access-request-<id>``;
    2. ``beacon_approved_request``: approvals decided outside this store (the
       national data access committee) and recorded with ``biobank partner approve``.

    Parameters
    ----------
    con
        The store.
    requester
        The partner name.
    purpose
        The purpose the request must have been approved for.
    on
        The day it must be valid on (default today, UTC).
    """
    from biobank.research.access_requests import approved_request_for as workflow_approval

    day = on or _now().date()
    approved = workflow_approval(con, requester, purpose, on=day)
    if approved is not None:
        return f"access-request-{approved.request_id}"
    row = con.execute(
        "SELECT request_id FROM beacon_approved_request WHERE requester = ? AND purpose = ?"
        " AND (expires_on IS NULL OR expires_on >= ?) ORDER BY approved_at DESC LIMIT 1",
        [requester, str(parse_purpose(purpose)), day],
    ).fetchone()
    return str(row[0]) if row else None


def record_approved_request(
    store: Store,
    actor: Principal,
    request_id: str,
    *,
    requester: str,
    purpose: str,
    expires_on: dt.date | None = None,
) -> None:
    """Mirror an approval of the data access committee (admins; until issue 16 is merged).

    Raises
    ------
    AccessDenied
        Unless ``actor`` may manage users.
    NotFoundError
        If ``requester`` is no partner.
    ConflictError
        If ``request_id`` is already recorded.
    """
    require(actor, Permission.MANAGE_USERS)
    purpose = str(parse_purpose(purpose))
    with store.transaction() as con:
        if not con.execute(
            "SELECT 1 FROM partner_centre WHERE partner_name = ?", [requester]
        ).fetchone():
            raise NotFoundError(f"no partner '{requester}': add it with 'biobank partner add'")
        if con.execute(
            "SELECT 1 FROM beacon_approved_request WHERE request_id = ?", [request_id]
        ).fetchone():
            raise ConflictError(f"request '{request_id}' is already recorded")
        con.execute(
            "INSERT INTO beacon_approved_request VALUES (?, ?, ?, ?, ?)",
            [request_id, requester, purpose, _now(), expires_on],
        )
        audit.record(
            con, actor, "partner.approval", request_id, {"requester": requester, "purpose": purpose}
        )


def charge_query(con: duckdb.DuckDBPyConnection, requester: str, limit: int | None) -> int:
    """Count one query against ``requester``'s budget for today; return the queries left.

    Call it inside the transaction of the answer. ``limit=None`` means no budget.

    Raises
    ------
    QuotaExceeded
        If the requester already asked ``limit`` questions today (the query is not counted).
    """
    day = _now().date()
    row = con.execute(
        "SELECT n_queries FROM beacon_query_budget WHERE requester = ? AND day = ?",
        [requester, day],
    ).fetchone()
    used = int(row[0]) if row else 0
    if limit is not None and used >= limit:
        raise QuotaExceeded(
            f"the query budget of {limit} questions a day is used up for this requester;"
            " ask again tomorrow (UTC) or ask the centre for a data access request"
        )
    con.execute(
        "INSERT INTO beacon_query_budget VALUES (?, ?, 1) ON CONFLICT (requester, day)"
        " DO UPDATE SET n_queries = beacon_query_budget.n_queries + 1",
        [requester, day],
    )
    return -1 if limit is None else limit - used - 1
