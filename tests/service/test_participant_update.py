"""Updating a participant on the web: the changed fields stored, a reason required, audited."""

from __future__ import annotations

import json

from service.support import audit_rows, form, logged_in, register

from biobank.core.access import Role

EMPTY = {"site": "", "enrolment_date": "", "cohorts": "", "name": "", "phone": ""}


def _pid(response: object) -> str:
    location = response.headers["location"]  # type: ignore[attr-defined]
    assert location.startswith("/participants/P-"), location
    return str(location.removeprefix("/participants/"))


def _row(app: object, pid: str) -> tuple[object, ...]:
    con = app.state.service.store.con  # type: ignore[attr-defined]
    row = con.execute(
        "SELECT site, enrolment_date::VARCHAR FROM participant WHERE participant_id = ?", [pid]
    ).fetchone()
    assert row is not None
    return tuple(row)


def test_update_site_and_phone_with_a_reason(app: object) -> None:
    client = logged_in(app, Role.REGISTRAR)
    pid = _pid(register(client))
    page = f"/participants/{pid}"
    assert 'id="update-form"' in client.get(page).text
    data = EMPTY | {"site": "S0002", "phone": "13900139000", "reason": "搬迁"}
    done = form(client, f"{page}/update", data, page=page)
    assert done.status_code == 303, done.text
    assert _row(app, pid) == ("S0002", "2024-01-02")  # the empty enrolment date kept
    ((_, user, _, target, detail),) = audit_rows(app, "action = 'participant.update'")
    assert (user, target) == ("reg1", pid)
    assert json.loads(str(detail)) == {"fields": ["phone", "site"], "reason": "搬迁"}
    shown = form(client, f"{page}/recontact", {"reason": "check"}, page=page)
    assert "13900139000" in shown.text
    assert "王芳" in shown.text  # the empty name kept


def test_a_refused_update_changes_nothing_and_says_why(app: object) -> None:
    client = logged_in(app, Role.REGISTRAR)
    pid = _pid(register(client))
    page = f"/participants/{pid}"
    no_reason = form(client, f"{page}/update", EMPTY | {"site": "S0002", "reason": " "}, page=page)
    assert no_reason.status_code == 422
    assert "请说明修改的理由" in no_reason.text
    bad_date = EMPTY | {"enrolment_date": "2024-13-40", "reason": "typo"}
    assert form(client, f"{page}/update", bad_date, page=page).status_code == 422
    assert _row(app, pid) == ("S0001", "2024-01-02")
    assert audit_rows(app, "action = 'participant.update'") == []
