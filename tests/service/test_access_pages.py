"""Data access pages: a researcher applies, an approver decides; the HGR rule over HTTP."""

from __future__ import annotations

import datetime as dt

from service.support import ACCOUNTS, audit_rows, form, logged_in

from biobank.core.access import Role

NEXT_YEAR = (dt.date.today() + dt.timedelta(days=365)).isoformat()


def _apply(client: object, **values: str) -> object:
    data = {
        "project": "t2d-genetics",
        "title": "Genetics of type 2 diabetes",
        "institution": "Regional Gene Data Center",
        "country": "CN",
        "purpose": "DS:E11",
        "fields": "clinical_person.sex",
        "period_end": NEXT_YEAR,
    } | values
    return form(client, "/access/requests", data, page="/access")  # type: ignore[arg-type]


def test_a_researcher_applies_and_an_approver_approves(app: object) -> None:
    researcher = logged_in(app, Role.RESEARCHER)
    page = researcher.get("/access")
    assert page.status_code == 200
    assert "申请数据访问" in page.text  # zh_CN by default
    assert "recontact_identifier.token" not in page.text  # never offered
    assert "clinical_person.sex" in page.text
    assert _apply(researcher).status_code == 303  # type: ignore[attr-defined]
    assert "待审批" in researcher.get("/access").text
    approver = logged_in(app, Role.APPROVER)
    review = approver.get("/access/review")
    assert "t2d-genetics" in review.text
    assert ACCOUNTS[Role.RESEARCHER] in review.text
    done = form(
        approver, "/access/requests/1/approve", {"reason": "DAC minute 3"}, page="/access/review"
    )
    assert done.status_code == 303
    assert "已批准" in researcher.get("/access").text
    actions = [r[2] for r in audit_rows(app, "action LIKE 'access.%'")]
    assert actions == ["access.request", "access.approve"]


def test_a_foreign_party_request_needs_the_hgr_approval_number(app: object) -> None:
    researcher = logged_in(app, Role.RESEARCHER)
    assert _apply(researcher, country="US", institution="Overseas U").status_code == 303  # type: ignore[attr-defined]
    approver = logged_in(app, Role.APPROVER)
    refused = form(approver, "/access/requests/1/approve", {"reason": "ok"}, page="/access/review")
    assert refused.status_code == 422
    assert "未批准" in refused.text
    assert "foreign party" in refused.text
    assert "待审批" in approver.get("/access/review").text
    done = form(
        approver,
        "/access/requests/1/approve",
        {"reason": "ok", "hgr_approval": "国科遗审[2026]17号"},
        page="/access/review",
    )
    assert done.status_code == 303


def test_a_bad_application_is_shown_again_and_writes_nothing(app: object) -> None:
    researcher = logged_in(app, Role.RESEARCHER)
    bad = _apply(researcher, fields="recontact_identifier.token")
    assert bad.status_code == 422  # type: ignore[attr-defined]
    assert "may never be extracted" in bad.text  # type: ignore[attr-defined]
    assert [r for r in audit_rows(app, "action = 'access.request'")] == []
    rejected_by_role = researcher.get("/access/review")
    assert rejected_by_role.status_code == 403


def test_the_applicant_downloads_the_extract_and_the_download_is_audited(
    app: object, tmp_path: object
) -> None:
    import hashlib
    from pathlib import Path

    from biobank.core.access import Principal
    from biobank.research.extracts import build_extract

    researcher = logged_in(app, Role.RESEARCHER)
    _apply(researcher, purpose="GRU")
    approver = logged_in(app, Role.APPROVER)
    form(approver, "/access/requests/1/approve", {"reason": "ok"}, page="/access/review")
    store = app.state.service.store  # type: ignore[attr-defined]
    res = build_extract(
        store, Principal(ACCOUNTS[Role.APPROVER], Role.APPROVER), 1, Path(str(tmp_path))
    )
    page = researcher.get("/access")
    assert "/access/extracts/1" in page.text
    got = researcher.get("/access/extracts/1")
    assert got.status_code == 200
    assert hashlib.sha256(got.content).hexdigest() == res.manifest["files"]["extract"]["sha256"]
    assert [r[3] for r in audit_rows(app, "action = 'access.download'")] == ["access_extract:1"]
    other = logged_in(app, Role.AUDITOR)
    assert other.get("/access/extracts/1").status_code == 403
