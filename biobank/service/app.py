"""The application factory: one store, one writer path, sessions, CSRF, errors, languages.

:func:`create_app` builds a FastAPI application over one store. Each route is
declared once in :data:`biobank.service.routes.ROUTES` with the access it needs
(a :class:`~biobank.core.access.Permission`, or :data:`PUBLIC` /
:data:`AUTHENTICATED`); the guard built from that table runs before the
endpoint, so no route can be added without saying who may call it.

* The store is opened once; every use of it from a request goes through
  :meth:`Service.act` / :meth:`Service.read`, which hold one lock: DuckDB's one
  connection sees one request at a time, and concurrent browsers never
  interleave inside a transaction.
* :meth:`Service.act` writes a ``web.request`` audit entry (user, client
  address, method, path) in the same transaction as the library call, so every
  entry the library records is preceded by the request that caused it; a
  refused request is audited as ``web.refused``.
* Sessions: Starlette's ``SessionMiddleware`` (itsdangerous-signed, HttpOnly,
  SameSite=Lax cookie; idle expiry by its max age) carries a random token whose
  server-side row (:mod:`biobank.service.accounts`) has the absolute expiry and
  can be revoked. CSRF: :mod:`asgi_csrf` checks every non-GET request, also
  those without a cookie (the login form); an upload form's token reaches it
  as a header (:mod:`biobank.service.csrf_upload`).
* Errors: paths under ``/api/`` answer ``{"error": {"status", "title",
  "detail"}}`` (under ``/api/beacon`` the Beacon v2 ``beaconErrorResponse``);
  all others one HTML error page.
* Partner centres (Beacon, federation: routes of access :data:`BEACON` and
  :data:`PARTNER`) authenticate with a bearer token
  (:func:`biobank.research.partners.partner_for_token`), not a session; those
  paths need no CSRF token (they never act on a session cookie).
"""

from __future__ import annotations

import logging
import os
import secrets
import stat
import threading
from collections.abc import AsyncIterator, Callable, Iterator, MutableMapping
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from enum import Enum
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import jinja2
from asgi_csrf import asgi_csrf  # type: ignore[import-untyped]
from babel.support import Translations
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.sessions import SessionMiddleware

from biobank.core import audit
from biobank.core.access import Permission, Principal
from biobank.core.errors import (
    AccessDenied,
    BiobankError,
    ConfigError,
    ConflictError,
    ConsentError,
    NotFoundError,
    ValidationError,
)
from biobank.core.store import Store
from biobank.research.beacon.config import BeaconConfig
from biobank.research.partners import Partner, partner_for_token
from biobank.service import accounts
from biobank.service.csrf_upload import MultipartCsrfToken
from biobank.service.i18n import LOCALES, N_, Gettext, load_translations, make_gettext, pick_locale

__all__ = [
    "AUTHENTICATED",
    "BEACON",
    "PARTNER",
    "PUBLIC",
    "Access",
    "Ctx",
    "HTTPError",
    "Service",
    "check_private",
    "create_app",
    "load_secret",
]

logger = logging.getLogger(__name__)

T = TypeVar("T")

SESSION_COOKIE = "biobank_session"
LANG_COOKIE = "biobank_lang"


class Access(Enum):
    """Access of a route that needs no :class:`~biobank.core.access.Permission`."""

    PUBLIC = "public"
    AUTHENTICATED = "authenticated"
    #: anyone; a partner centre's bearer token, when given, must be valid
    BEACON = "beacon"
    #: a partner centre's bearer token is required
    PARTNER = "partner"


PUBLIC = Access.PUBLIC
AUTHENTICATED = Access.AUTHENTICATED
BEACON = Access.BEACON
PARTNER = Access.PARTNER

#: Paths answered to partner centres (bearer tokens, no session, no CSRF).
PARTNER_PREFIXES = ("/api/beacon", "/api/federation")

#: HTTP status -> title msgid.
TITLES = {
    400: N_("Bad request"),
    401: N_("Please log in"),
    403: N_("Forbidden"),
    404: N_("Not found"),
    405: N_("Method not allowed"),
    409: N_("Conflict"),
    422: N_("Invalid input"),
    429: N_("Too many attempts"),
    500: N_("Internal error"),
}


class HTTPError(Exception):
    """An error answered with ``status`` and a (translated) detail."""

    def __init__(self, status: int, detail: str = "") -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


def check_private(path: Path) -> None:
    """Refuse a store (or its key file) that other users of the machine can read or write.

    Raises
    ------
    ConfigError
        Naming the file, its mode and the ``chmod`` that fixes it.
    """
    for f in (path, Path(str(path) + ".key"), Path(str(path) + ".web-secret")):
        if not f.exists():
            continue
        mode = stat.S_IMODE(f.stat().st_mode)
        if mode & 0o077:
            raise ConfigError(
                f"{f} has mode {mode:04o}: only the service account may read it; "
                f"run 'chmod 600 {f}'"
            )


def load_secret(store_path: str | Path) -> str:
    """Return the signing secret: env ``BIOBANK_SECRET_KEY``, else ``<store>.web-secret``.

    The file is created (mode 0600, 64 hex digits) when missing, so sessions survive a
    restart of the service.
    """
    env = os.environ.get("BIOBANK_SECRET_KEY")
    if env:
        return env
    path = Path(str(store_path) + ".web-secret")
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as fh:
            fh.write(secrets.token_hex(32))
    return path.read_text(encoding="ascii").strip()


@dataclass
class Service:
    """What every request shares: the store, its lock, templates, catalogs, policies."""

    store: Store
    templates: Jinja2Templates
    translations: dict[str, Translations]
    policy: accounts.LoginPolicy
    limiter: accounts.RateLimiter
    beacon: BeaconConfig = field(default_factory=BeaconConfig)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @contextmanager
    def locked(self) -> Iterator[Store]:
        """Hold the store for one request's work."""
        with self.lock:
            yield self.store


@dataclass
class Ctx:
    """One request: who acts, from where, in which language."""

    request: Request
    service: Service
    principal: Principal | None
    locale: str
    gettext: Gettext

    @property
    def client(self) -> str:
        """The client address (behind a proxy: as forwarded, see docs/service.md)."""
        return self.request.client.host if self.request.client else "unknown"

    @property
    def root(self) -> str:
        """The path prefix under a reverse proxy (``--root-path``), or ``""``."""
        return str(self.request.scope.get("root_path", ""))

    @property
    def route_path(self) -> str:
        """The request's path without the prefix: what the route table names."""
        return route_path(self.request)

    @property
    def user(self) -> Principal:
        """The logged-in principal (routes other than PUBLIC always have one)."""
        if self.principal is None:  # pragma: no cover - the guard redirects first
            raise HTTPError(401)
        return self.principal

    def act(self, fn: Callable[[Store], T]) -> T:
        """Run ``fn`` in one transaction preceded by a ``web.request`` audit entry.

        A :class:`~biobank.core.errors.BiobankError` rolls everything back and is
        audited as ``web.refused`` (the error's class, never its message, which
        may hold an identity number), then raised again.
        """
        principal = self.user
        target = f"{self.request.method} {self.route_path}"
        with self.service.locked() as store:
            try:
                with store.transaction() as con:
                    audit.record(con, principal, "web.request", target, {"client": self.client})
                    return fn(store)
            except BiobankError as exc:
                with store.transaction() as con:
                    audit.record(
                        con,
                        principal,
                        "web.refused",
                        target,
                        {"client": self.client, "error": type(exc).__name__},
                    )
                raise

    def render(self, template: str, http_status: int = 200, **values: Any) -> HTMLResponse:
        """Render an HTML page in the request's language."""
        return self.service.templates.TemplateResponse(
            self.request,
            template,
            {"ctx": self, "_": self.gettext, "root": self.root, "LOCALES": LOCALES}
            | {"Permission": Permission}
            | values,
            status_code=http_status,
        )

    def csrf_token(self) -> str:
        """The CSRF token for this page's forms (asgi-csrf)."""
        getter = self.request.scope.get("csrftoken")
        return str(getter()) if getter else ""


def route_path(request: Request) -> str:
    """The path of ``request`` without the reverse proxy's prefix (``root_path``)."""
    root = str(request.scope.get("root_path", ""))
    path = request.url.path
    return path[len(root) :] if root and path.startswith(root) else path


def request_locale(request: Request) -> str:
    """The language of ``request``: ``?lang=``, the language cookie, else zh_CN."""
    return pick_locale(request.query_params.get("lang"), request.cookies.get(LANG_COOKIE))


def make_ctx(request: Request, principal: Principal | None) -> Ctx:
    """Build the request context (language from ``?lang=`` or the cookie)."""
    service: Service = request.app.state.service
    locale = request_locale(request)
    return Ctx(request, service, principal, locale, make_gettext(service.translations[locale]))


def _is_api(path: str) -> bool:
    return path.startswith("/api/")


def _error_response(request: Request, status: int, detail: str) -> Response:
    service: Service = request.app.state.service
    _ = make_gettext(service.translations[request_locale(request)])
    title = _(TITLES.get(status, TITLES[500]))
    if route_path(request).startswith("/api/beacon"):
        from biobank.service.beacon import beacon_error

        return beacon_error(request, status, detail or title)
    if _is_api(route_path(request)):
        return JSONResponse(
            {"error": {"status": status, "title": title, "detail": detail}}, status_code=status
        )
    principal = getattr(request.state, "principal", None)
    return make_ctx(request, principal).render(
        "error.html", http_status=status, title=title, detail=detail
    )


_STATUS: list[tuple[type[BiobankError], int]] = [
    (AccessDenied, 403),
    (ConsentError, 403),
    (NotFoundError, 404),
    (ConflictError, 409),
    (ValidationError, 422),
]


def _install_error_handlers(app: FastAPI) -> None:
    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPError)
        return _error_response(request, exc.status, exc.detail)

    async def starlette_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        return _error_response(request, exc.status_code, "")

    async def validation_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        fields = sorted({str(e["loc"][-1]) for e in exc.errors() if e.get("loc")})
        return _error_response(request, 422, ", ".join(fields))

    async def biobank_error(request: Request, exc: Exception) -> Response:
        status = next((s for cls, s in _STATUS if isinstance(exc, cls)), 500)
        # a validation message may quote the value (an identity number): show the message only
        detail = exc.problem.message if isinstance(exc, ValidationError) else str(exc)
        return _error_response(request, status, detail)

    async def server_error(request: Request, exc: Exception) -> Response:
        logger.exception("internal error on %s %s", request.method, request.url.path)
        return _error_response(request, 500, "")

    app.add_exception_handler(HTTPError, http_error)
    app.add_exception_handler(StarletteHTTPException, starlette_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(BiobankError, biobank_error)
    app.add_exception_handler(Exception, server_error)


def _bearer_partner(request: Request, service: Service, *, required: bool) -> Partner | None:
    """The partner centre of the request's bearer token (``None``: no token, not required)."""
    header = request.headers.get("authorization", "")
    if not header:
        if required:
            raise HTTPError(401, "send the token of your centre: Authorization: Bearer <token>")
        return None
    scheme, _sep, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise HTTPError(401, "the Authorization header must be 'Bearer <token>'")
    with service.locked() as store:
        partner = partner_for_token(store.con, token.strip())
        if partner is None:
            with store.transaction() as con:
                audit.record_refusal(
                    con,
                    user="unknown-partner",
                    role="partner",
                    action="partner.refused",
                    target=f"{request.method} {route_path(request)}",
                    detail={"client": request.client.host if request.client else "unknown"},
                )
    if partner is None:
        raise HTTPError(401, "unknown or revoked partner token")
    return partner


def make_guard(access: Permission | Access) -> Callable[[Request], None]:
    """Return the dependency that enforces ``access`` before a route's endpoint."""

    def guard(request: Request) -> None:
        service: Service = request.app.state.service
        if access in (BEACON, PARTNER):
            request.state.principal = None
            request.state.partner = _bearer_partner(request, service, required=access is PARTNER)
            return
        token = request.session.get("token")
        found = None
        if isinstance(token, str):
            with service.locked() as store:
                found = accounts.session_principal(store, token)
        if found is None:
            request.session.clear()
        principal, must_change = found if found else (None, False)
        request.state.principal = principal
        if access is PUBLIC:
            return
        if principal is None:
            if _is_api(route_path(request)) or request.method != "GET":
                raise HTTPError(401)
            target = quote(route_path(request), safe="/")
            raise _Redirect(f"/login?next={target}")
        if must_change and route_path(request) not in {"/account/password", "/logout"}:
            raise _Redirect("/account/password")
        if isinstance(access, Permission) and not principal.can(access):
            with service.locked() as store, store.transaction() as con:
                audit.record(
                    con,
                    principal,
                    "web.denied",
                    f"{request.method} {route_path(request)}",
                    {"client": request.client.host if request.client else "unknown"},
                )
            raise HTTPError(403)

    return guard


class _Redirect(Exception):
    def __init__(self, location: str) -> None:
        super().__init__(location)
        self.location = location


class _Everywhere:
    """``always_protect`` for asgi-csrf: check the token on every path, with or without cookies."""

    def __contains__(self, path: object) -> bool:
        return True


def _csrf_failed(service_ref: dict[str, Service]) -> Callable[..., Any]:
    async def send_failed(scope: dict[str, Any], send: Callable[..., Any], message_id: Any) -> None:
        root = str(scope.get("root_path", ""))
        path = str(scope.get("path", ""))
        path = path[len(root) :] if root and path.startswith(root) else path
        service = service_ref["service"]
        cookie_header = dict(scope.get("headers") or []).get(b"cookie", b"").decode("latin-1")
        lang = None
        for part in cookie_header.split(";"):
            name, _sep, value = part.strip().partition("=")
            if name == LANG_COOKIE:
                lang = value
        _ = make_gettext(service.translations[pick_locale(None, lang)])
        title = _(TITLES[403])
        detail = _(
            "The form expired or did not come from this site: reload the page and try again."
        )
        if _is_api(path):
            import json

            body = json.dumps(
                {"error": {"status": 403, "title": title, "detail": detail}}, ensure_ascii=False
            ).encode("utf-8")
            ctype = b"application/json"
        else:
            template = service.templates.get_template("error_plain.html")
            body = template.render(title=title, detail=detail, _=_, root=root).encode("utf-8")
            ctype = b"text/html; charset=utf-8"
        await send(
            {"type": "http.response.start", "status": 403, "headers": [[b"content-type", ctype]]}
        )
        await send({"type": "http.response.body", "body": body})

    return send_failed


def create_app(
    store_path: str | Path,
    *,
    secret_key: str | None = None,
    https_only: bool = False,
    idle_timeout: int = 30 * 60,
    policy: accounts.LoginPolicy | None = None,
    limiter: accounts.RateLimiter | None = None,
    check_permissions: bool = True,
    beacon: BeaconConfig | None = None,
) -> FastAPI:
    """Build the staff web application over the store at ``store_path``.

    Parameters
    ----------
    store_path
        An existing store (never created here: ``biobank init`` does that).
    secret_key
        Signs the session and CSRF cookies; default env ``BIOBANK_SECRET_KEY``.
        Keep it stable across restarts, or every session ends.
    https_only
        Mark cookies ``Secure`` (set it behind TLS).
    idle_timeout
        Seconds without a request after which the session cookie expires.
    policy, limiter
        Lockout, session lifetime and per-client rate limit of failed logins.
    check_permissions
        Refuse a store or key file readable by other users (:func:`check_private`).
    beacon
        Settings of the Beacon (:class:`~biobank.research.beacon.config.BeaconConfig`).

    Behind a reverse proxy the server sets the path prefix (``uvicorn
    --root-path``); links and redirects follow ``scope["root_path"]``.

    Raises
    ------
    ConfigError
        Without a secret key, or for a store readable by others.
    StoreError
        If the store does not exist or cannot be opened.
    """
    from biobank.service.routes import ROUTES

    path = Path(store_path)
    if not path.exists():
        raise ConfigError(f"store {path} does not exist: create it with 'biobank init' first")
    secret = secret_key or os.environ.get("BIOBANK_SECRET_KEY")
    if not secret or len(secret) < 32:
        raise ConfigError(
            "the service needs a secret key of at least 32 characters: set BIOBANK_SECRET_KEY "
            "(e.g. from 'python -c \"import secrets; print(secrets.token_hex(32))\"')"
        )
    if check_permissions:
        check_private(path)
    package = resources.files("biobank.service")
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(package / "templates")),
        autoescape=True,  # every template, whatever its file name
        undefined=jinja2.StrictUndefined,
    )
    templates = Jinja2Templates(env=env)
    store = Store(path)
    service = Service(
        store=store,
        templates=templates,
        translations=load_translations(),
        policy=policy or accounts.LoginPolicy(),
        limiter=limiter or accounts.RateLimiter(),
        beacon=beacon or BeaconConfig(),
    )

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        store.close()

    app = FastAPI(
        title="biobank",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        lifespan=lifespan,
    )
    app.state.service = service
    for spec in ROUTES:
        app.add_api_route(
            spec.path,
            spec.endpoint,
            methods=[spec.method],
            name=spec.name,
            dependencies=[_depends(make_guard(spec.access))],
            response_class=HTMLResponse if not _is_api(spec.path) else JSONResponse,
            include_in_schema=False,
        )
    app.mount("/static", StaticFiles(directory=str(package / "static")), name="static")
    _install_error_handlers(app)

    async def redirect(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, _Redirect)
        root = str(request.scope.get("root_path", ""))
        return RedirectResponse(root + exc.location, status_code=303)

    app.add_exception_handler(_Redirect, redirect)
    _add_middleware(app, service, secret, idle_timeout=idle_timeout, https_only=https_only)
    return app


def _add_middleware(
    app: FastAPI, service: Service, secret: str, *, idle_timeout: int, https_only: bool
) -> None:
    """Sessions (signed cookie), CSRF (every path but the partner ones; asgi-csrf) and,
    outside it, the upload forms' token (csrf_upload)."""
    app.add_middleware(
        SessionMiddleware,
        secret_key=secret,
        session_cookie=SESSION_COOKIE,
        max_age=idle_timeout,
        same_site="lax",
        https_only=https_only,
    )
    app.add_middleware(
        asgi_csrf,
        signing_secret=secret,
        always_protect=_Everywhere(),
        cookie_secure=https_only,
        cookie_samesite="Lax",
        send_csrf_failed=_csrf_failed({"service": service}),
        skip_if_scope=_partner_scope,
    )
    # outside asgi-csrf: the token of an upload form to its header (see csrf_upload)
    app.add_middleware(
        MultipartCsrfToken,
        signing_secret=secret,
        refuse=_csrf_failed({"service": service}),
        skip_if_scope=_partner_scope,
    )


def _partner_scope(scope: MutableMapping[str, Any]) -> bool:
    """Whether a request goes to a partner path (bearer tokens: no CSRF check)."""
    root = str(scope.get("root_path", ""))
    path = str(scope.get("path", ""))
    path = path[len(root) :] if root and path.startswith(root) else path
    return path.startswith(PARTNER_PREFIXES)


def _depends(guard: Callable[[Request], None]) -> Any:
    from fastapi import Depends

    return Depends(guard)
