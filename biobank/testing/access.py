"""Approved data access for test and demo stores (:func:`grant_record_access`).

A demo or test researcher who runs record-level analyses (cohort members,
genotype matrices, SQL) needs an approved data access request for the purpose,
as a real one does (:mod:`biobank.research.access_requests`). This helper files
and approves one per purpose through the real library calls (audited), with an
approver account it adds when the store has none.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from biobank.core.access import Principal, Role, add_user, get_principal
from biobank.core.errors import NotFoundError
from biobank.core.store import Store
from biobank.research.access_requests import (
    AccessRequest,
    approve_request,
    approved_request_for,
    submit_request,
)
from biobank.research.field_access import research_fields

__all__ = ["DEMO_APPROVER", "grant_record_access"]

#: The approver account the helper adds.
DEMO_APPROVER = "access-approver"


def _approver(store: Store, name: str) -> Principal:
    try:
        return get_principal(store.con, name)
    except NotFoundError:
        pass
    row = store.con.execute(
        "SELECT user_name FROM app_user WHERE role = 'admin' AND active ORDER BY created_at LIMIT 1"
    ).fetchone()
    if row is None:
        raise NotFoundError("the store has no admin to add an approver")
    with store.transaction() as con:
        return add_user(con, Principal(str(row[0]), Role.ADMIN), name, Role.APPROVER)


def grant_record_access(
    store: Store,
    user: str,
    purposes: Sequence[str],
    *,
    approver: str = DEMO_APPROVER,
    project: str = "demo-project",
    fields: Sequence[str] | None = None,
) -> list[AccessRequest]:
    """File and approve a request of ``user`` for each purpose (skip those already granted).

    The request asks for ``fields`` (default: every approvable field of the
    research tables, :func:`biobank.research.field_access.research_fields`).

    Raises
    ------
    NotFoundError
        If ``user`` does not exist or the store has no admin.
    """
    applicant = get_principal(store.con, user)
    decider = _approver(store, approver)
    today = dt.date.today()
    out = []
    for purpose in purposes:
        have = approved_request_for(store.con, user, purpose)
        if have is not None:
            out.append(have)
            continue
        req = submit_request(
            store,
            applicant,
            project=project,
            title="Demonstration and tests of the research workbench",
            institution="Regional Gene Data Center",
            country="CN",
            foreign_party=False,
            purpose=purpose,
            fields=list(fields) if fields is not None else research_fields(),
            period_start=today,
            period_end=today + dt.timedelta(days=3650),
        )
        out.append(approve_request(store, decider, req.request_id, reason="demo and test access"))
    return out
