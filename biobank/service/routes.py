"""Every route of the service and the access it needs, in one table.

:func:`biobank.service.app.create_app` adds exactly these routes, each guarded
by its ``access``; ``tests/service/test_permissions.py`` walks this table for
every role and for a logged-out client.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from biobank.core.access import Permission
from biobank.service import views as v
from biobank.service.app import AUTHENTICATED, PUBLIC, Access

__all__ = ["ROUTES", "RouteSpec"]


@dataclass(frozen=True)
class RouteSpec:
    """One route: method, path, endpoint, the access it needs, and its name."""

    method: str
    path: str
    endpoint: Callable[..., Any]
    access: Permission | Access
    name: str


_R = RouteSpec
W, R, A, U = (
    Permission.REGISTRY_WRITE,
    Permission.REGISTRY_READ,
    Permission.AUDIT_READ,
    Permission.MANAGE_USERS,
)

ROUTES: tuple[RouteSpec, ...] = (
    _R("GET", "/login", v.login_form, PUBLIC, "login_form"),
    _R("POST", "/login", v.login, PUBLIC, "login"),
    _R("GET", "/lang/{code}", v.switch_language, PUBLIC, "switch_language"),
    _R("POST", "/logout", v.logout, AUTHENTICATED, "logout"),
    _R("GET", "/", v.home, AUTHENTICATED, "home"),
    _R("GET", "/account/password", v.password_form, AUTHENTICATED, "password_form"),
    _R("POST", "/account/password", v.password_change, AUTHENTICATED, "password_change"),
    _R("GET", "/dashboard", v.dashboard, R, "dashboard"),
    _R("GET", "/participants", v.participants_page, R, "participants"),
    _R("POST", "/participants/search", v.participant_search, R, "participant_search"),
    _R("GET", "/participants/new", v.participant_form, W, "participant_form"),
    _R("POST", "/participants", v.participant_register, W, "participant_register"),
    _R("GET", "/participants/{pid}", v.participant_page, R, "participant"),
    _R("POST", "/participants/{pid}/consents", v.consent_add, W, "consent_add"),
    _R("POST", "/participants/{pid}/withdraw", v.consent_withdraw, W, "consent_withdraw"),
    _R("POST", "/participants/{pid}/phenotypes", v.phenotype_add, W, "phenotype_add"),
    _R("POST", "/participants/{pid}/family", v.family_register, W, "family_register"),
    _R("POST", "/api/national-id/check", v.national_id_check, W, "national_id_check"),
    _R("GET", "/specimens", v.specimens_page, R, "specimens"),
    _R("GET", "/specimens/new", v.specimen_form, W, "specimen_form"),
    _R("POST", "/specimens", v.specimen_accession, W, "specimen_accession"),
    _R("GET", "/specimens/{label}", v.specimen_page, R, "specimen"),
    _R("GET", "/specimens/{label}/barcode.svg", v.specimen_barcode, R, "specimen_barcode"),
    _R("GET", "/api/specimens/{label}", v.specimen_json, R, "specimen_json"),
    _R("GET", "/audit", v.audit_page, A, "audit"),
    _R("POST", "/audit/verify", v.audit_verify, A, "audit_verify"),
    _R("GET", "/admin/users", v.users_page, U, "users"),
    _R("POST", "/admin/users", v.user_create, U, "user_create"),
    _R("POST", "/admin/users/{name}/role", v.user_role, U, "user_role"),
    _R("POST", "/admin/users/{name}/password", v.user_password, U, "user_password"),
    _R("POST", "/admin/users/{name}/active", v.user_active, U, "user_active"),
)
