"""Helpers of the service tests: an httpx client over the app, login, CSRF tokens."""

from __future__ import annotations

import re

import anyio
import httpx

from biobank.core.access import Principal, Role
from biobank.core.store import Store
from biobank.registry import register_participant

SECRET = "s" * 40
PASSWORD = "correct horse battery"
#: role -> user name of the fixture's web accounts.
ACCOUNTS = {
    Role.ADMIN: "admin1",
    Role.REGISTRAR: "reg1",
    Role.RESEARCHER: "res1",
    Role.AUDITOR: "aud1",
    Role.APPROVER: "dac1",
}
WANG = "110105196503120128"
CLIENT_ADDRESS = "203.0.113.7"


class TestClient:
    """A synchronous client over :class:`httpx.ASGITransport` (cookies kept between calls).

    Starlette's own TestClient warns that its httpx support is deprecated, so the
    tests drive the application through httpx directly, from ``CLIENT_ADDRESS``.
    """

    __test__ = False

    def __init__(self, app: object, *, follow_redirects: bool = False) -> None:
        self.app = app
        transport = httpx.ASGITransport(app=app, client=(CLIENT_ADDRESS, 50000))  # type: ignore[arg-type]
        self._client = httpx.AsyncClient(
            transport=transport, base_url="http://testserver", follow_redirects=follow_redirects
        )

    @property
    def cookies(self) -> httpx.Cookies:
        return self._client.cookies

    def request(self, method: str, url: str, **kwargs: object) -> httpx.Response:
        async def go() -> httpx.Response:
            return await self._client.request(method, url, **kwargs)  # type: ignore[arg-type]

        return anyio.run(go)

    def get(self, url: str, **kwargs: object) -> httpx.Response:
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs: object) -> httpx.Response:
        return self.request("POST", url, **kwargs)


def csrf(client: TestClient, path: str = "/login") -> str:
    """The CSRF token of the form on ``path``."""
    page = client.get(path)
    m = re.search(r'name="csrftoken" value="([^"]+)"', page.text)
    assert m, page.text
    return m.group(1)


def login(client: TestClient, user: str, password: str = PASSWORD) -> httpx.Response:
    """Log in through the form; return the response (not followed)."""
    token = csrf(client)
    return client.post(
        "/login",
        data={"csrftoken": token, "username": user, "password": password, "next": "/"},
        follow_redirects=False,
    )


def logged_in(app: object, role: Role) -> TestClient:
    """A client logged in as the fixture's user of ``role``."""
    c = TestClient(app, follow_redirects=False)  # type: ignore[arg-type]
    r = login(c, ACCOUNTS[role])
    assert r.status_code == 303, r.text
    return c


def form(client: TestClient, path: str, data: dict[str, str], *, page: str) -> httpx.Response:
    """POST ``data`` to ``path`` with the CSRF token of the form on ``page``."""
    return client.post(path, data={"csrftoken": csrf(client, page), **data})


def register(client: TestClient, **values: str) -> httpx.Response:
    """Register a participant through the form (Wang's details unless overridden)."""
    data = {
        "national_id": WANG,
        "name": "王芳",
        "sex": "female",
        "birth_date": "1965-03-12",
        "phone": "13800138000",
        "enrolment_date": "2024-01-02",
        "site": "S0001",
        "cohorts": "T2D",
    } | values
    return form(client, "/participants", data, page="/participants/new")


def register_wang(store: Store, registrar: Principal) -> str:
    """Register Wang Fang (resident ID :data:`WANG`, born 1965-03-12); return her pseudonym."""
    return register_participant(
        store,
        registrar,
        national_id=WANG,
        name="王芳",
        sex="female",
        birth_date="1965-03-12",
        enrolment_date="2024-01-02",
        site="S0001",
    )


def audit_rows(app: object, sql_where: str = "TRUE") -> list[tuple[object, ...]]:
    """Audit entries ``(entry_id, user_name, action, target, detail)`` of the app's store."""
    con = app.state.service.store.con  # type: ignore[attr-defined]
    return con.execute(  # type: ignore[no-any-return]
        "SELECT entry_id, user_name, action, target, CAST(detail AS VARCHAR) FROM audit_log"
        f" WHERE {sql_where} ORDER BY entry_id"
    ).fetchall()
