"""Pages over HTTP: register, search, consents, accession; CSRF; escaping; audit; errors."""

from __future__ import annotations

import json
import re

import pytest
from service.support import (
    WANG,
    TestClient,
    audit_rows,
    csrf,
    form,
    logged_in,
    register,
)

from biobank.core.access import Principal, Role
from biobank.service.i18n import load_translations, make_gettext
from biobank.service.library_messages import library_message

XSS = ["<script>alert(1)</script>", '"><img src=x onerror=alert(1)>']


def _pid(response: object) -> str:
    location = response.headers["location"]  # type: ignore[attr-defined]
    assert location.startswith("/participants/P-"), location
    return str(location.removeprefix("/participants/"))


# -- CSRF --------------------------------------------------------------------------------------
def test_a_form_without_its_csrf_token_is_refused(app: object) -> None:
    client = logged_in(app, Role.REGISTRAR)
    response = client.post("/participants/search", data={"q": WANG})
    assert response.status_code == 403
    assert "表单已过期" in response.text


def test_a_wrong_csrf_token_is_refused(app: object) -> None:
    client = logged_in(app, Role.REGISTRAR)
    response = client.post("/participants/search", data={"q": WANG, "csrftoken": "forged"})
    assert response.status_code == 403


def test_a_token_of_another_browser_is_refused(app: object) -> None:
    client = logged_in(app, Role.REGISTRAR)
    other = TestClient(app)
    token = csrf(other)
    response = client.post("/participants/search", data={"q": WANG, "csrftoken": token})
    assert response.status_code == 403


def test_the_login_form_is_protected_without_any_cookie(app: object) -> None:
    client = TestClient(app)
    data = {"username": "reg1", "password": "correct horse battery"}
    assert client.post("/login", data=data).status_code == 403


def test_an_api_csrf_failure_has_the_json_error_shape(app: object) -> None:
    client = logged_in(app, Role.REGISTRAR)
    response = client.post("/api/national-id/check", data={"national_id": WANG})
    assert response.status_code == 403
    assert response.json()["error"]["status"] == 403


# -- registering, searching, consents ------------------------------------------------------------
def test_register_then_search_by_resident_id_never_echoes_it(app: object) -> None:
    client = logged_in(app, Role.REGISTRAR)
    pid = _pid(register(client))
    found = form(client, "/participants/search", {"q": WANG}, page="/participants")
    assert found.status_code == 303
    assert found.headers["location"] == f"/participants/{pid}"
    missing = form(
        client, "/participants/search", {"q": "310104197805210255"}, page="/participants"
    )
    assert missing.status_code == 404
    assert "310104197805210255" not in missing.text
    assert "未找到参与者" in missing.text
    page = client.get(f"/participants/{pid}")
    assert WANG not in page.text
    assert "王芳" not in page.text  # the name is for re-contact only


def test_search_by_pseudonym(app: object) -> None:
    client = logged_in(app, Role.REGISTRAR)
    pid = _pid(register(client))
    found = form(client, "/participants/search", {"q": pid.lower()}, page="/participants")
    assert found.headers["location"] == f"/participants/{pid}"


def test_a_mistyped_resident_id_is_explained_in_words(app: object) -> None:
    client = logged_in(app, Role.REGISTRAR)
    response = register(client, national_id=WANG[:-1] + "9")
    assert response.status_code == 422
    assert "校验码为“9”，但按前17位计算应为“8”" in response.text
    check = form(
        client, "/api/national-id/check", {"national_id": WANG[:-1] + "9"}, page="/participants/new"
    )
    assert check.json() == {
        "valid": False,
        "message": "校验码为“9”，但按前17位计算应为“8”：号码可能输错了，请与身份证核对",
    }
    ok = form(client, "/api/national-id/check", {"national_id": WANG}, page="/participants/new")
    assert ok.json()["valid"] is True
    assert ok.json()["birth_date"] == "1965-03-12"


def test_every_library_message_pattern_matches_the_library() -> None:
    from biobank.core.errors import ValidationError
    from biobank.core.ids import validate_national_id

    _ = make_gettext(load_translations()["zh_CN"])
    for bad in ("123", WANG[:6] + "19651332" + WANG[14:], WANG[:-1] + "9"):
        with pytest.raises(ValidationError) as info:
            validate_national_id(bad)
        message = info.value.problem.message
        assert library_message(message, _) != message, message
    from biobank.registry.affected import check_phenotype, set_affected

    with pytest.raises(ValidationError) as info:
        check_phenotype("seizures")
    refused = [info.value.problem.message]
    with pytest.raises(ValidationError) as info:
        set_affected(None, Principal("reg", Role.REGISTRAR), "F1", "P-1", "HP:0001250", "ill")  # type: ignore[arg-type]
    refused.append(info.value.problem.message)
    for message in refused:
        assert library_message(message, _) != message, message


def test_withdraw_a_consent(app: object) -> None:
    client = logged_in(app, Role.REGISTRAR)
    pid = _pid(register(client))
    page = f"/participants/{pid}"
    data = {"version": "v1", "signed_date": "2024-01-02", "duo_codes": "HMB;IRB", "disease": ""}
    assert form(client, f"{page}/consents", data, page=page).status_code == 303
    assert "HMB;IRB" in client.get(page).text
    refused = form(client, f"{page}/withdraw", {"reason": " "}, page=page)
    assert refused.status_code == 422
    done = form(client, f"{page}/withdraw", {"reason": "asked by phone"}, page=page)
    assert done.status_code == 303
    assert "撤回知情同意</summary>" not in client.get(page).text


def test_accession_and_the_specimen_page_with_its_history(app: object) -> None:
    client = logged_in(app, Role.REGISTRAR)
    pid = _pid(register(client))
    data = {
        "label": "BB0000001N",
        "participant_id": pid,
        "specimen_type": "whole_blood",
        "collected_at": "2024-01-02 09:00",
        "quantity": "4",
        "unit": "mL",
        "freezer": "F01",
        "rack": "R01",
        "box": "B01",
        "position": "A1",
    }
    response = form(client, "/specimens", data, page="/specimens/new")
    assert response.status_code == 303, response.text
    assert response.headers["location"] == "/specimens/BB0000001N"
    page = client.get("/specimens/BB0000001N")
    assert "F01/R01/B01/A1" in page.text
    assert "<td>create</td>" in page.text
    assert client.get("/specimens/BB0000001N/barcode.svg").text.lstrip().startswith("<?xml")
    dashboard = client.get("/dashboard").text
    assert "BB0000001N" in dashboard  # today's arrival
    taken = form(client, "/specimens", data | {"label": "BB0000002L"}, page="/specimens/new")
    assert taken.status_code == 422
    assert client.get("/api/specimens/BB0000001N").json()["participant_id"] == pid


# -- escaping ------------------------------------------------------------------------------------
@pytest.mark.parametrize("evil", XSS)
def test_names_and_sites_are_escaped(app: object, evil: str) -> None:
    client = logged_in(app, Role.REGISTRAR)
    rejected = register(client, name=evil, national_id="123")  # echoed back in the form
    assert rejected.status_code == 422
    assert evil not in rejected.text
    assert "&lt;" in rejected.text
    pid = _pid(register(client, name=evil, site=evil))
    for path in (f"/participants/{pid}", "/participants"):
        text = client.get(path).text
        assert evil not in text
        assert "onerror=alert(1)>" not in text
        assert "<script>alert" not in text


def test_audit_filters_are_escaped(app: object) -> None:
    client = logged_in(app, Role.AUDITOR)
    text = client.get("/audit", params={"user": XSS[1]}).text
    assert XSS[1] not in text


# -- audit --------------------------------------------------------------------------------
def test_audit_records_the_acting_user_and_the_client_address(app: object) -> None:
    client = logged_in(app, Role.REGISTRAR)
    pid = _pid(register(client))
    rows = audit_rows(app)
    create = next(i for i, r in enumerate(rows) if r[2] == "participant.create")
    request = rows[create - 1]
    assert request[1:4] == ("reg1", "web.request", "POST /participants")
    assert json.loads(str(request[4])) == {"client": "203.0.113.7"}
    assert rows[create][1] == "reg1"
    assert rows[create][3] == pid


def test_a_refused_write_is_audited_without_the_value(app: object) -> None:
    client = logged_in(app, Role.REGISTRAR)
    register(client, national_id=WANG[:-1] + "9")
    refused = audit_rows(app, "action = 'web.refused'")
    assert len(refused) == 1
    assert json.loads(str(refused[0][4])) == {"client": "203.0.113.7", "error": "ImportRejected"}
    assert not audit_rows(app, f"CAST(detail AS VARCHAR) LIKE '%{WANG[:14]}%'")


def test_auditors_browse_and_verify_the_log(app: object) -> None:
    register(logged_in(app, Role.REGISTRAR))
    client = logged_in(app, Role.AUDITOR)
    page = client.get("/audit", params={"action": "participant."})
    assert "participant.create" in page.text
    assert "web.login" not in page.text
    verified = form(client, "/audit/verify", {}, page="/audit")
    assert "审计链完整" in verified.text


# -- languages and errors -----------------------------------------------------------------
def test_chinese_by_default_english_by_switch(app: object) -> None:
    client = TestClient(app)
    assert "用户名" in client.get("/login").text
    assert "User name" in client.get("/login?lang=en").text
    switched = client.get("/lang/en?next=/login")
    assert switched.status_code == 303
    assert switched.headers["location"] == "/login"
    assert "User name" in client.get("/login").text
    assert client.get("/lang/en?next=https://evil.example/").headers["location"] == "/"


def test_one_json_error_shape_for_the_api(app: object) -> None:
    anonymous = TestClient(app)
    assert anonymous.get("/api/specimens/BB0000001N").json() == {
        "error": {"status": 401, "title": "请登录", "detail": ""}
    }
    client = logged_in(app, Role.REGISTRAR)
    missing = client.get("/api/specimens/BB0000001N?lang=en").json()
    assert missing["error"]["status"] == 404
    assert missing["error"]["title"] == "Not found"
    assert set(missing["error"]) == {"status", "title", "detail"}
    assert logged_in(app, Role.AUDITOR).get("/api/specimens/X").json()["error"]["status"] == 403


def test_one_html_error_page(app: object) -> None:
    client = logged_in(app, Role.REGISTRAR)
    for path, status in (("/nowhere", 404), ("/participants/P-AAAAAAAAAAAA", 404)):
        response = client.get(path)
        assert response.status_code == status
        assert response.headers["content-type"].startswith("text/html")
        assert 'class="error-title"' in response.text


def test_behind_a_proxy_every_link_and_redirect_keeps_the_root_path(store_path: object) -> None:
    import httpx
    from service.support import PASSWORD, SECRET

    from biobank.service import create_app

    app = create_app(store_path, secret_key=SECRET)  # type: ignore[arg-type]
    try:
        client = TestClient(app)
        client._client = httpx.AsyncClient(  # as uvicorn --root-path /biobank passes requests
            transport=httpx.ASGITransport(app=app, root_path="/biobank"),  # type: ignore[arg-type]
            base_url="http://testserver",
        )
        page = client.get("/biobank/dashboard")
        assert page.headers["location"] == "/biobank/login?next=/dashboard"
        form_page = client.get("/biobank/login")
        assert 'action="/biobank/login"' in form_page.text
        token = re.search(r'name="csrftoken" value="([^"]+)"', form_page.text)
        assert token
        data = {"csrftoken": token.group(1), "username": "reg1", "password": PASSWORD}
        done = client.post("/biobank/login", data=data | {"next": "/dashboard"})
        assert done.headers["location"] == "/biobank/dashboard"
        text = client.get("/biobank/dashboard").text
        assert 'href="/biobank/participants"' in text
        assert 'href="/participants' not in text
        assert set(client.get("/biobank/api/specimens/X").json()["error"]) == {
            "status",
            "title",
            "detail",
        }
    finally:
        app.state.service.store.close()
