"""Login, logout, lockout, rate limit, password change and admin resets over HTTP."""

from __future__ import annotations

import json

from service.support import (
    ACCOUNTS,
    PASSWORD,
    TestClient,
    audit_rows,
    form,
    logged_in,
    login,
)

from biobank.core.access import Role

NEW_PASSWORD = "a new long passphrase"


def test_login_sets_a_signed_httponly_samesite_cookie_and_lands_on_next(app: object) -> None:
    client = TestClient(app)
    response = login(client, "reg1")
    assert response.status_code == 303
    assert response.headers["location"] == "/"
    cookie = next(
        c for c in response.headers.get_list("set-cookie") if c.startswith("biobank_session=")
    )
    assert "httponly" in cookie.lower()
    assert "samesite=lax" in cookie.lower()
    assert "max-age=1800" in cookie.lower()
    assert client.get("/").status_code == 200


def test_a_wrong_password_is_refused_with_the_same_message_as_an_unknown_user(
    app: object,
) -> None:
    client = TestClient(app)
    wrong = login(client, "reg1", "not the password")
    unknown = login(client, "nobody", "not the password")
    assert wrong.status_code == unknown.status_code == 401
    assert "用户名或密码错误" in wrong.text
    assert client.get("/", follow_redirects=False).status_code == 303


def test_the_next_parameter_never_leaves_the_site(app: object) -> None:
    client = TestClient(app)
    page = client.get("/login?next=//evil.example/x")
    assert 'name="next" value="/"' in page.text


def test_logout_ends_the_session_on_the_server(app: object) -> None:
    client = logged_in(app, Role.REGISTRAR)
    stolen = dict(client.cookies)
    assert form(client, "/logout", {}, page="/").status_code == 303
    replay = TestClient(app)
    for name, value in stolen.items():
        replay.cookies.set(name, value)
    response = replay.get("/dashboard")
    assert response.status_code == 303
    assert response.headers["location"].startswith("/login")


def test_an_expired_session_sends_back_to_the_login(app: object) -> None:
    client = logged_in(app, Role.REGISTRAR)
    assert client.get("/dashboard").status_code == 200
    con = app.state.service.store.con  # type: ignore[attr-defined]
    con.execute(  # the session's lifetime has passed (the policy's 10 hours)
        "UPDATE web_session SET expires_at = TIMESTAMP '2000-01-01' WHERE user_name = 'reg1'"
    )
    response = client.get("/dashboard")
    assert response.status_code == 303
    assert response.headers["location"].startswith("/login")


def test_the_account_locks_after_repeated_failures_and_it_is_audited(app: object) -> None:
    client = TestClient(app)
    for _ in range(3):  # the fixture's policy: locked after 3
        assert login(client, "reg1", "wrong password").status_code == 401
    assert login(client, "reg1", PASSWORD).status_code == 401  # locked: the right one fails too
    actions = [row[2] for row in audit_rows(app, "target = 'reg1'")]
    assert actions.count("web.login.failed") == 3
    assert "web.login.locked" in actions
    assert actions[-1] == "web.login.refused"
    failed = [json.loads(str(r[4])) for r in audit_rows(app, "action = 'web.login.failed'")]
    assert {d["client"] for d in failed} == {"203.0.113.7"}


def test_an_admin_unlocks_by_reactivating(app: object) -> None:
    client = TestClient(app)
    for _ in range(3):
        login(client, "reg1", "wrong password")
    admin = logged_in(app, Role.ADMIN)
    assert (
        form(admin, "/admin/users/reg1/active", {"active": "1"}, page="/admin/users").status_code
        == 303
    )
    assert login(TestClient(app), "reg1").status_code == 303


def test_failed_logins_from_one_address_are_rate_limited(app: object) -> None:
    client = TestClient(app)
    for i in range(10):  # the fixture's limiter: 10 a minute, spread over unknown names
        login(client, f"nobody{i}", "wrong password")
    response = login(client, "reg1", PASSWORD)
    assert response.status_code == 429
    assert "登录失败次数过多" in response.text


def test_password_change_ends_other_sessions_and_keeps_this_one(app: object) -> None:
    client = logged_in(app, Role.REGISTRAR)
    other = logged_in(app, Role.REGISTRAR)
    data = {"current": PASSWORD, "new": NEW_PASSWORD, "repeat": NEW_PASSWORD}
    response = form(client, "/account/password", data, page="/account/password")
    assert response.status_code == 200
    assert "密码已修改" in response.text
    assert client.get("/dashboard").status_code == 200
    assert other.get("/dashboard").status_code == 303
    assert login(TestClient(app), "reg1", PASSWORD).status_code == 401
    assert login(TestClient(app), "reg1", NEW_PASSWORD).status_code == 303
    assert any(r[2] == "web.password.change" for r in audit_rows(app))


def test_password_change_needs_the_current_password_and_a_long_new_one(app: object) -> None:
    client = logged_in(app, Role.REGISTRAR)
    wrong = {"current": "not it at all", "new": NEW_PASSWORD, "repeat": NEW_PASSWORD}
    assert form(client, "/account/password", wrong, page="/account/password").status_code == 403
    short = {"current": PASSWORD, "new": "short", "repeat": "short"}
    response = form(client, "/account/password", short, page="/account/password")
    assert response.status_code == 422
    assert "密码至少需要 10 个字符" in response.text


def test_admin_creates_a_user_who_must_change_the_password_first(app: object) -> None:
    admin = logged_in(app, Role.ADMIN)
    data = {"username": "reg2", "role": "registrar", "password": "first password 1"}
    assert form(admin, "/admin/users", data, page="/admin/users").status_code == 303
    client = TestClient(app)
    assert login(client, "reg2", "first password 1").status_code == 303
    response = client.get("/dashboard")
    assert response.status_code == 303
    assert response.headers["location"] == "/account/password"
    data = {"current": "first password 1", "new": NEW_PASSWORD, "repeat": NEW_PASSWORD}
    form(client, "/account/password", data, page="/account/password")
    assert client.get("/dashboard").status_code == 200


def test_admin_sets_a_role_and_resets_a_password(app: object) -> None:
    admin = logged_in(app, Role.ADMIN)
    reg = logged_in(app, Role.REGISTRAR)
    page = "/admin/users"
    assert form(admin, "/admin/users/reg1/role", {"role": "auditor"}, page=page).status_code == 303
    assert reg.get("/dashboard").status_code == 403  # the new role applies at once
    assert reg.get("/audit").status_code == 200
    data = {"password": "reset password 9"}
    assert form(admin, "/admin/users/reg1/password", data, page=page).status_code == 303
    assert reg.get("/audit").status_code == 303  # a reset ends the user's sessions
    actions = [r[2] for r in audit_rows(app, "target = 'reg1'")]
    assert "web.account.role" in actions
    assert "web.password.reset" in actions


def test_an_admin_cannot_demote_themself(app: object) -> None:
    admin = logged_in(app, Role.ADMIN)
    response = form(admin, "/admin/users/admin1/role", {"role": "auditor"}, page="/admin/users")
    assert response.status_code == 422
    assert admin.get("/admin/users").status_code == 200


def test_a_deactivated_user_is_logged_out(app: object) -> None:
    reg = logged_in(app, Role.REGISTRAR)
    admin = logged_in(app, Role.ADMIN)
    form(admin, "/admin/users/reg1/active", {"active": "0"}, page="/admin/users")
    assert reg.get("/dashboard").status_code == 303
    assert login(TestClient(app), ACCOUNTS[Role.REGISTRAR]).status_code == 401
