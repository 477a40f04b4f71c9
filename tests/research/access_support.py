"""Helpers of the data access tests: an approver, a second researcher, an approved request."""

from __future__ import annotations

import datetime as dt

from biobank.core.access import Principal, Role, add_user
from biobank.core.store import Store
from biobank.research.access_requests import AccessRequest, approve_request, submit_request

#: a researcher without any approved request (rita of the fixture has some)
REX = Principal("rex", Role.RESEARCHER)
APPROVER = Principal("dac", Role.APPROVER)
ADMIN = Principal("ada", Role.ADMIN)
REGISTRAR = Principal("reg", Role.REGISTRAR)
NEXT_YEAR = dt.date.today() + dt.timedelta(days=365)


def add_access_users(store: Store, *researchers: str) -> None:
    """Add the approver ``dac``, the researcher ``rex`` and the given extra researchers."""
    with store.transaction() as con:
        add_user(con, ADMIN, "dac", Role.APPROVER)
        for name in ("rex", *researchers):
            add_user(con, ADMIN, name, Role.RESEARCHER)


def request(store: Store, applicant: Principal = REX, **overrides: object) -> AccessRequest:
    """Submit a request (DS:E11, clinical fields, in China) with ``overrides``."""
    values: dict[str, object] = {
        "project": "t2d-genetics",
        "title": "Genetics of type 2 diabetes",
        "institution": "Regional Gene Data Center",
        "country": "CN",
        "foreign_party": False,
        "purpose": "DS:E11",
        "fields": [
            "clinical_person.sex",
            "clinical_person.year_of_birth",
            "clinical_condition.code",
            "clinical_measurement.name",
            "clinical_measurement.value",
        ],
        "period_start": dt.date.today(),
        "period_end": NEXT_YEAR,
    } | overrides
    return submit_request(store, applicant, **values)  # type: ignore[arg-type]


def approved(store: Store, applicant: Principal = REX, **overrides: object) -> AccessRequest:
    """Submit and approve a request."""
    req = request(store, applicant, **overrides)
    return approve_request(store, APPROVER, req.request_id, reason="ethics ok, DAC-2026-01")
