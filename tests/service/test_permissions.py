"""The permission matrix over HTTP: every route x every role x logged out.

The routes come from the one table (:data:`biobank.service.routes.ROUTES`); a
route the table does not declare fails :func:`test_the_app_serves_only_declared_routes`.
"""

from __future__ import annotations

import datetime as dt

import pytest
from service.support import ACCOUNTS, TestClient, csrf, logged_in, register_wang

from biobank.core.access import PERMISSIONS, Permission, Role
from biobank.registry import add_consent, add_specimen
from biobank.service.app import AUTHENTICATED, BEACON, PARTNER, PUBLIC
from biobank.service.routes import ROUTES, RouteSpec

LABEL = "BB0000001N"
SITE = "SITE-9X"  # shown only on participant pages: a marker of data


@pytest.fixture
def seeded(app: object) -> tuple[object, str]:
    """The app with one participant (consent, one specimen); returns (app, pseudonym)."""
    from biobank.core.access import Principal

    store = app.state.service.store  # type: ignore[attr-defined]
    reg = Principal("reg1", Role.REGISTRAR)
    pid = register_wang(store, reg)
    add_consent(store, reg, pid, version="v1", signed_date=dt.date(2024, 1, 2), duo_codes="GRU")
    add_specimen(
        store,
        reg,
        label=LABEL,
        participant_id=pid,
        specimen_type="whole_blood",
        collected_at="2024-01-02T09:00:00",
        quantity=4.0,
        unit="mL",
    )
    return app, pid


def _url(spec: RouteSpec, pid: str) -> str:
    return (
        spec.path.replace("{pid}", pid)
        .replace("{label}", LABEL)
        .replace("{name}", "aud1")
        .replace("{code}", "en")
        .replace("{request_id}", "1")
        .replace("{extract_id}", "1")
    )


def _assert_no_data(spec: RouteSpec, text: str, pid: str) -> None:
    """Nothing of the participant in ``text`` but what the URL itself holds."""
    assert SITE not in text, spec.name
    if "{pid}" not in spec.path:
        assert pid not in text, spec.name
    if "{label}" not in spec.path:
        assert LABEL not in text, spec.name


def _call(client: TestClient, spec: RouteSpec, pid: str) -> object:
    url = _url(spec, pid)
    if spec.method == "GET":
        return client.get(url)
    return client.post(url, data={"csrftoken": csrf(client)})


def test_the_app_serves_only_declared_routes(app: object) -> None:
    served = {
        (method, route.path)
        for route in app.routes  # type: ignore[attr-defined]
        for method in getattr(route, "methods", None) or ()
        if method != "HEAD" and route.path != "/static"
    }
    assert served == {(s.method, s.path) for s in ROUTES}


def test_only_login_and_the_language_switch_are_public() -> None:
    assert {s.name for s in ROUTES if s.access is PUBLIC} == {
        "login_form",
        "login",
        "switch_language",
    }


@pytest.mark.parametrize(
    "spec", [s for s in ROUTES if s.access not in (PUBLIC, BEACON)], ids=lambda s: s.name
)
def test_logged_out_gets_a_login_redirect_or_401_never_data(
    seeded: tuple[object, str], spec: RouteSpec
) -> None:
    app, pid = seeded
    response = _call(TestClient(app), spec, pid)
    if spec.method == "GET" and not spec.path.startswith("/api/"):
        assert response.status_code == 303  # type: ignore[attr-defined]
        assert response.headers["location"].startswith("/login?next=")  # type: ignore[attr-defined]
    else:
        assert response.status_code == 401  # type: ignore[attr-defined]
    _assert_no_data(spec, response.text, pid)  # type: ignore[attr-defined]


@pytest.mark.parametrize("role", list(Role), ids=lambda r: r.value)
def test_every_route_for_every_role(seeded: tuple[object, str], role: Role) -> None:
    app, pid = seeded
    client = logged_in(app, role)
    for spec in ROUTES:
        if spec.name in {"logout", "login", "user_role", "user_active", "user_password"}:
            continue  # would end this client's session or change the fixture's accounts
        response = _call(client, spec, pid)
        status = response.status_code  # type: ignore[attr-defined]
        allowed = spec.access in (PUBLIC, AUTHENTICATED, BEACON) or spec.access in PERMISSIONS[role]
        if spec.access is PARTNER:  # a staff session is no partner token
            assert status == 401, (role, spec.name, status)
            _assert_no_data(spec, response.text, pid)  # type: ignore[attr-defined]
        elif allowed:
            assert status not in (401, 403), (role, spec.name, status)
            assert status < 500, (role, spec.name, response.text)  # type: ignore[attr-defined]
        else:
            assert status == 403, (role, spec.name, status)
            _assert_no_data(spec, response.text, pid)  # type: ignore[attr-defined]


@pytest.mark.parametrize("spec", [s for s in ROUTES if s.access is BEACON], ids=lambda s: s.name)
def test_beacon_routes_answer_anyone_without_data(
    seeded: tuple[object, str], spec: RouteSpec
) -> None:
    """Anonymous Beacon questions get an answer (a boolean at most), never a login or data."""
    app, pid = seeded
    url = _url(spec, pid)
    client = TestClient(app)
    if spec.method == "GET":
        response = client.get(url)
    else:
        response = client.post(url, json={"meta": {"apiVersion": "v2.0.0"}})
    assert response.status_code == 200, (spec.name, response.text)
    assert spec.path.startswith("/api/beacon")
    body = response.json()
    meta = body if spec.name == "beacon_service_info" else body["meta"]  # GA4GH service-info
    assert meta.get("beaconId", meta.get("id"))
    assert meta.get("returnedGranularity", "boolean") in {"boolean", "record"}
    _assert_no_data(spec, response.text, pid)


@pytest.mark.parametrize("name", ["user_role", "user_active", "user_password"])
def test_account_changes_need_manage_users(seeded: tuple[object, str], name: str) -> None:
    app, pid = seeded
    spec = next(s for s in ROUTES if s.name == name)
    assert spec.access is Permission.MANAGE_USERS
    for role in (Role.REGISTRAR, Role.RESEARCHER, Role.AUDITOR):
        assert _call(logged_in(app, role), spec, pid).status_code == 403  # type: ignore[attr-defined]


def test_a_refused_route_is_audited(seeded: tuple[object, str]) -> None:
    from service.support import audit_rows

    app, _pid = seeded
    logged_in(app, Role.RESEARCHER).get("/dashboard")
    rows = audit_rows(app, "action = 'web.denied'")
    assert [(r[1], r[3]) for r in rows] == [("res1", "GET /dashboard")]
    assert '"client": "203.0.113.7"' in str(rows[0][4])
    assert ACCOUNTS[Role.RESEARCHER] == "res1"
