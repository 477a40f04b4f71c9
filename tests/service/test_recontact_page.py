"""Re-contact identifiers on the participant page: permitted roles only, with a reason, audited."""

from __future__ import annotations

import json

from service.support import WANG, audit_rows, csrf, form, logged_in, register

from biobank.core.access import Role


def _pid(response: object) -> str:
    location = response.headers["location"]  # type: ignore[attr-defined]
    assert location.startswith("/participants/P-"), location
    return str(location.removeprefix("/participants/"))


def test_a_registrar_sees_the_identifiers_only_with_a_reason_and_it_is_audited(app: object) -> None:
    client = logged_in(app, Role.REGISTRAR)
    pid = _pid(register(client))
    page = f"/participants/{pid}"
    plain = client.get(page).text
    assert 'id="recontact-form"' in plain
    assert WANG not in plain
    assert "13800138000" not in plain

    refused = form(client, f"{page}/recontact", {"reason": "  "}, page=page)
    assert refused.status_code == 422
    assert "请说明再联系的理由" in refused.text
    assert WANG not in refused.text
    assert audit_rows(app, "action = 'recontact.read'") == []

    shown = form(client, f"{page}/recontact", {"reason": "随访：复查血糖"}, page=page)
    assert shown.status_code == 200, shown.text
    assert shown.headers["cache-control"] == "no-store"
    for value in ("王芳", WANG, "13800138000", "本次查看已连同理由记入审计日志"):
        assert value in shown.text
    ((_, user, action, target, detail),) = audit_rows(app, "action = 'recontact.read'")
    assert (user, action, target) == ("reg1", "recontact.read", pid)
    assert json.loads(str(detail))["reason"] == "随访：复查血糖"
    # shown once, for that request: the page read again holds none of it
    assert WANG not in client.get(page).text


def test_other_roles_get_neither_the_form_nor_the_identifiers(app: object) -> None:
    pid = _pid(register(logged_in(app, Role.REGISTRAR)))
    page = f"/participants/{pid}"
    admin = logged_in(app, Role.ADMIN)
    assert 'id="recontact-form"' in admin.get(page).text
    auditor = logged_in(app, Role.AUDITOR)
    refused = auditor.post(f"{page}/recontact", data={"csrftoken": csrf(auditor), "reason": "x"})
    assert refused.status_code == 403
    assert WANG not in refused.text
    assert "王芳" not in refused.text
    assert audit_rows(app, "action = 'recontact.read'") == []
    # the refusal is the permission's (audited as such), not the CSRF check's
    denied = audit_rows(app, "action = 'web.denied'")
    assert [(r[1], r[3]) for r in denied] == [("aud1", f"POST {page}/recontact")]


def test_identifiers_are_shown_escaped(app: object) -> None:
    client = logged_in(app, Role.REGISTRAR)
    pid = _pid(register(client, name='"><img src=x onerror=alert(1)>'))
    page = f"/participants/{pid}"
    shown = form(client, f"{page}/recontact", {"reason": "check"}, page=page)
    assert shown.status_code == 200
    assert "<img src=x" not in shown.text
    assert "&#34;&gt;&lt;img src=x onerror=alert(1)&gt;" in shown.text
