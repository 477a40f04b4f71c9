"""Data access requests and their decisions (the data access committee).

A researcher applies (:func:`submit_request`) for a **project**: applicant and
institution, the institution's country, whether a foreign party takes part,
the purpose (a DUO-style code matched against consents: ``GRU``, ``HMB``,
``POA``, ``DS:<ICD-10>``), the fields (``table.column`` of the classification
registry, :mod:`biobank.core.classification`), an optional cohort definition
(a criterion of :mod:`biobank.clinical.cohorts`), the period, and the approval
number of the human genetic resources authority when one is required. An
**approver** (role ``approver``; never the applicant) approves with an expiry
or rejects, always with a reason (:func:`approve_request`,
:func:`reject_request`). Everything is audited (``access.request``,
``access.approve``, ``access.reject``; refusals as ``access.refused``).

Rules checked here (and again at extraction, :mod:`biobank.research.extracts`):

* **Fields.** Only classes in :data:`~biobank.core.classification.EXTRACTABLE`
  are approvable: direct identifiers, secrets, store pseudonyms and operational
  columns never are.
* **Human genetic resources.** China's Regulations on the Administration of
  Human Genetic Resources (State Council Decree 717, 2019) and their
  implementing rules (2023) require an approval of the authority (the Ministry
  of Science and Technology, since 2024 the National Health Commission) before
  human genetic resources are used in international cooperation or provided to
  a foreign organisation or person. A request whose institution is outside
  China (``country`` other than ``CN``) is foreign whatever the applicant says;
  a foreign-party request cannot be approved, nor extracted, without the
  authority's approval number.
* **Separation of duties.** The approver is a different user from the applicant.

:func:`approved_request_for` is the lookup the rest of the package uses to
decide whether a user has **record-level** access for a purpose (the research
workbench's listings and SQL, and later the beacon's record-level granularity).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import duckdb
import polars as pl

from biobank.core import audit
from biobank.core.access import Permission, Principal, require
from biobank.core.classification import check_requestable
from biobank.core.errors import AccessDenied, ConflictError, NotFoundError, ValidationError

if TYPE_CHECKING:
    from biobank.clinical.cohorts import Criterion
    from biobank.core.store import Store

__all__ = [
    "AccessRequest",
    "approve_request",
    "approved_request_for",
    "check_hgr",
    "check_in_force",
    "get_request",
    "list_requests",
    "reject_request",
    "submit_request",
]

_COLUMNS = (
    "request_id, project, title, applicant, institution, country, foreign_party, purpose,"
    " fields, cohort, period_start, period_end, hgr_approval, status, submitted_at,"
    " decided_by, decided_at, decision_reason, expires_on"
)
_PROJECT = re.compile(r"^[A-Za-z0-9][\w.-]{0,63}$")


@dataclass(frozen=True)
class AccessRequest:
    """One data access request and its decision (columns of ``access_request``)."""

    request_id: int
    project: str
    title: str
    applicant: str
    institution: str
    country: str
    foreign_party: bool
    purpose: str
    fields: tuple[str, ...]
    cohort: str | None
    period_start: dt.date
    period_end: dt.date
    hgr_approval: str | None
    status: str
    submitted_at: dt.datetime
    decided_by: str | None
    decided_at: dt.datetime | None
    decision_reason: str | None
    expires_on: dt.date | None

    def in_force(self, on: dt.date | None = None) -> bool:
        """Return whether the request is approved and not expired on ``on`` (default today)."""
        day = on or dt.date.today()
        return self.status == "approved" and self.expires_on is not None and day <= self.expires_on

    def criterion(self) -> Criterion | None:
        """Return the cohort definition, or ``None`` (everyone the purpose may use)."""
        from biobank.clinical.cohorts import Criterion

        return Criterion.from_json(self.cohort) if self.cohort else None


def _row_to_request(row: Sequence[Any]) -> AccessRequest:
    values = list(row)
    values[8] = tuple(values[8] or ())
    return AccessRequest(*values)


def get_request(con: duckdb.DuckDBPyConnection, request_id: int) -> AccessRequest:
    """Return one request.

    Raises
    ------
    NotFoundError
        If there is no request with that id.
    """
    row = con.execute(
        f"SELECT {_COLUMNS} FROM access_request WHERE request_id = ?", [request_id]
    ).fetchone()
    if row is None:
        raise NotFoundError(
            f"no data access request {request_id}: list them with 'biobank access list'"
        )
    return _row_to_request(row)


def check_in_force(request: AccessRequest, use: str) -> None:
    """Refuse a request that is not approved or has expired; ``use`` ends the message.

    Raises
    ------
    AccessDenied
        Naming the request, its status (and expiry date) and ``use``.
    """
    if not request.in_force():
        expired = f", expired on {request.expires_on}" if request.status == "approved" else ""
        raise AccessDenied(
            f"request {request.request_id} ({request.project}) is {request.status}{expired}: {use}"
        )


def check_hgr(request: AccessRequest) -> None:
    """Refuse a foreign-party request without the authority's approval number.

    Raises
    ------
    AccessDenied
        If the request involves a foreign party and no approval number is recorded.
    """
    if request.foreign_party and not (request.hgr_approval or "").strip():
        raise AccessDenied(
            f"request {request.request_id} ({request.project}) involves a foreign party"
            f" ({request.institution}, {request.country}): human genetic resources may be"
            " provided only with the approval of the human genetic resources authority;"
            " record its approval number (--hgr-approval)"
        )


def _refuse(store: Store, principal: Principal, action: str, target: str, exc: Exception) -> None:
    if isinstance(exc, AccessDenied):
        exc.mark_audited()  # the command line does not record it again
    audit.record_refusal(
        store.con,
        user=principal.user,
        role=principal.role.value,
        action="access.refused",
        target=target,
        detail={"attempted": action, "reason": str(exc)[:300]},
    )


def _date(value: str | dt.date, field: str) -> dt.date:
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError as exc:
        raise ValidationError("not a date YYYY-MM-DD", field=field, value=value) from exc


def _validated(
    *,
    project: str,
    title: str,
    institution: str,
    country: str,
    purpose: str,
    period_start: str | dt.date,
    period_end: str | dt.date,
    cohort: Criterion | str | None,
) -> dict[str, Any]:
    from biobank.clinical.cohorts import Criterion
    from biobank.registry.consent import parse_purpose

    if not _PROJECT.match(project or ""):
        raise ValidationError(
            "a project name is a letter or digit then up to 63 letters, digits, _ . -",
            field="project",
            value=project,
        )
    for name, value in (("title", title), ("institution", institution)):
        if not (value or "").strip():
            raise ValidationError(f"give the {name}", field=name)
    code = (country or "").strip().upper()
    if not re.fullmatch(r"[A-Z]{2}", code):
        raise ValidationError(
            "country is an ISO 3166-1 two-letter code (CN, US, GB ...)",
            field="country",
            value=country,
        )
    start, end = _date(period_start, "period_start"), _date(period_end, "period_end")
    if end <= start:
        raise ValidationError("period_end must be after period_start", field="period_end")
    if isinstance(cohort, Criterion):
        cohort_json: str | None = cohort.to_json()
    elif cohort:
        cohort_json = Criterion.from_json(cohort).to_json()
    else:
        cohort_json = None
    return {
        "country": code,
        "purpose": str(parse_purpose(purpose)),
        "start": start,
        "end": end,
        "cohort": cohort_json,
    }


def submit_request(
    store: Store,
    principal: Principal,
    *,
    project: str,
    title: str,
    institution: str,
    country: str,
    foreign_party: bool,
    purpose: str,
    fields: Sequence[str],
    period_start: str | dt.date,
    period_end: str | dt.date,
    cohort: Criterion | str | None = None,
    hgr_approval: str | None = None,
) -> AccessRequest:
    """Apply for data access; the request waits for an approver (status ``pending``).

    A request from an institution outside China (``country`` not ``CN``) is
    recorded as foreign-party whatever ``foreign_party`` says.

    Raises
    ------
    AccessDenied
        If the principal may not apply (role without ``access_request``).
    ValidationError
        If a value is malformed, or a field is unknown or never approvable
        (:func:`biobank.core.classification.check_requestable`); nothing is written.
    """
    require(principal, Permission.ACCESS_REQUEST)
    checked = check_requestable(list(fields))
    v = _validated(
        project=project,
        title=title,
        institution=institution,
        country=country,
        purpose=purpose,
        period_start=period_start,
        period_end=period_end,
        cohort=cohort,
    )
    foreign = bool(foreign_party) or v["country"] != "CN"
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    with store.transaction() as con:
        row = con.execute(
            "INSERT INTO access_request (project, title, applicant, institution, country,"
            " foreign_party, purpose, fields, cohort, period_start, period_end, hgr_approval,"
            " status, submitted_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending', ?)"
            " RETURNING request_id",
            [
                project,
                title.strip(),
                principal.user,
                institution.strip(),
                v["country"],
                foreign,
                v["purpose"],
                checked,
                v["cohort"],
                v["start"],
                v["end"],
                (hgr_approval or "").strip() or None,
                now,
            ],
        ).fetchone()
        assert row is not None
        request_id = int(row[0])
        audit.record(
            con,
            principal,
            "access.request",
            f"access_request:{request_id}",
            {
                "project": project,
                "purpose": v["purpose"],
                "fields": checked,
                "foreign_party": foreign,
                "country": v["country"],
            },
        )
    return get_request(store.con, request_id)


def _pending(store: Store, principal: Principal, request_id: int, action: str) -> AccessRequest:
    require(principal, Permission.ACCESS_APPROVE)
    req = get_request(store.con, request_id)
    if req.status != "pending":
        raise ConflictError(
            f"request {request_id} is already {req.status} (by {req.decided_by}); "
            "a decided request is not decided again: the applicant submits a new one"
        )
    if req.applicant == principal.user:
        exc = AccessDenied(
            f"user '{principal.user}' applied for request {request_id} and may not decide it:"
            " another approver must"
        )
        _refuse(store, principal, action, f"access_request:{request_id}", exc)
        raise exc
    return req


def _decide(
    store: Store,
    principal: Principal,
    req: AccessRequest,
    *,
    status: str,
    reason: str,
    expires_on: dt.date | None,
    hgr_approval: str | None,
) -> AccessRequest:
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    with store.transaction() as con:
        con.execute(
            "UPDATE access_request SET status = ?, decided_by = ?, decided_at = ?,"
            " decision_reason = ?, expires_on = ?, hgr_approval = ? WHERE request_id = ?",
            [status, principal.user, now, reason, expires_on, hgr_approval, req.request_id],
        )
        audit.record(
            con,
            principal,
            f"access.{'approve' if status == 'approved' else 'reject'}",
            f"access_request:{req.request_id}",
            {
                "project": req.project,
                "applicant": req.applicant,
                "reason": reason,
                "expires_on": expires_on.isoformat() if expires_on else None,
                "hgr_approval": hgr_approval,
            },
        )
    return get_request(store.con, req.request_id)


def approve_request(
    store: Store,
    principal: Principal,
    request_id: int,
    *,
    reason: str,
    expires_on: str | dt.date | None = None,
    hgr_approval: str | None = None,
) -> AccessRequest:
    """Approve a pending request until ``expires_on`` (default: the end of its period).

    Parameters
    ----------
    store, principal
        The store and the approver.
    request_id
        The request.
    reason
        Why (kept with the decision and in the audit log).
    expires_on
        Last day of the approval (not in the past).
    hgr_approval
        The human genetic resources authority's approval number (required for
        a foreign-party request unless given with the request).

    Raises
    ------
    AccessDenied
        If the principal is not an approver, applied themselves, or the request
        involves a foreign party without an approval number (refusals audited).
    ConflictError
        If the request was already decided.
    ValidationError
        If the reason is empty or the expiry is in the past; or a field of the
        request is no longer approvable.
    """
    req = _pending(store, principal, request_id, "access.approve")
    if not (reason or "").strip():
        raise ValidationError("give the reason for the decision", field="reason")
    expiry = _date(expires_on, "expires_on") if expires_on is not None else req.period_end
    if expiry < dt.date.today():
        raise ValidationError("the expiry is in the past", field="expires_on", value=expiry)
    number = (hgr_approval or "").strip() or req.hgr_approval
    candidate = dataclasses.replace(req, hgr_approval=number)
    try:
        check_hgr(candidate)
        check_requestable(list(req.fields))
    except (AccessDenied, ValidationError) as exc:
        _refuse(store, principal, "access.approve", f"access_request:{request_id}", exc)
        raise
    return _decide(
        store,
        principal,
        req,
        status="approved",
        reason=reason.strip(),
        expires_on=expiry,
        hgr_approval=number,
    )


def reject_request(
    store: Store, principal: Principal, request_id: int, *, reason: str
) -> AccessRequest:
    """Reject a pending request with a reason.

    Raises
    ------
    AccessDenied
        If the principal is not an approver or applied themselves.
    ConflictError
        If the request was already decided.
    ValidationError
        If the reason is empty.
    """
    req = _pending(store, principal, request_id, "access.reject")
    if not (reason or "").strip():
        raise ValidationError("give the reason for the decision", field="reason")
    return _decide(
        store,
        principal,
        req,
        status="rejected",
        reason=reason.strip(),
        expires_on=None,
        hgr_approval=req.hgr_approval,
    )


def list_requests(
    con: duckdb.DuckDBPyConnection, principal: Principal, *, status: str | None = None
) -> pl.DataFrame:
    """Return requests: a researcher sees their own, an approver or admin all.

    Raises
    ------
    AccessDenied
        If the principal may neither apply nor decide.
    """
    if not (principal.can(Permission.ACCESS_APPROVE) or principal.can(Permission.MANAGE_USERS)):
        require(principal, Permission.ACCESS_REQUEST)
        where, params = "applicant = ?", [principal.user]
    else:
        where, params = "TRUE", []
    if status is not None:
        where += " AND status = ?"
        params.append(status)
    return con.execute(
        f"SELECT {_COLUMNS} FROM access_request WHERE {where} ORDER BY request_id", params
    ).pl()


def approved_request_for(
    con: duckdb.DuckDBPyConnection, user: str, purpose: str, *, on: dt.date | None = None
) -> AccessRequest | None:
    """Return the user's newest in-force approved request for ``purpose``, or ``None``.

    This is the test of **record-level** access: a researcher sees rows of
    individual participants for a purpose only under such a request (and a
    foreign-party request only with the authority's approval number).

    Parameters
    ----------
    con
        The store.
    user
        The applicant.
    purpose
        The research purpose (normalised with :func:`parse_purpose` before matching).
    on
        The day (default today).
    """
    from biobank.registry.consent import parse_purpose

    rows = con.execute(
        f"SELECT {_COLUMNS} FROM access_request WHERE applicant = ? AND purpose = ?"
        " AND status = 'approved' ORDER BY request_id DESC",
        [user, str(parse_purpose(purpose))],
    ).fetchall()
    for row in rows:
        req = _row_to_request(row)
        if req.in_force(on) and not (req.foreign_party and not req.hgr_approval):
            return req
    return None
