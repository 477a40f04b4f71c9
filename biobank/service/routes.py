"""Every route of the service and the access it needs, in one table.

:func:`biobank.service.app.create_app` adds exactly these routes, each guarded
by its ``access``; ``tests/service/test_permissions.py`` walks this table for
every role and for a logged-out client. Beacon routes (access ``BEACON``) are
open to anyone, a partner centre's bearer token raising the granularity;
federation routes (``PARTNER``) need a partner token (see ``docs/beacon.md``,
``docs/federation.md``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from biobank.core.access import Permission
from biobank.service import access_views as av
from biobank.service import beacon, federation
from biobank.service import import_views as imp
from biobank.service import specimen_views as sv
from biobank.service import storage_views as sto
from biobank.service import views as v
from biobank.service.app import AUTHENTICATED, BEACON, PARTNER, PUBLIC, Access

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
AR, AA = Permission.ACCESS_REQUEST, Permission.ACCESS_APPROVE
RC = Permission.RECONTACT_READ

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
    _R("POST", "/participants/{pid}/update", v.participant_update, W, "participant_update"),
    _R("POST", "/participants/{pid}/recontact", v.participant_recontact, RC, "recontact"),
    _R("POST", "/participants/{pid}/phenotypes", v.phenotype_add, W, "phenotype_add"),
    _R("POST", "/participants/{pid}/family", v.family_register, W, "family_register"),
    _R("POST", "/participants/{pid}/affected", v.affected_set, W, "affected_set"),
    _R("POST", "/api/national-id/check", v.national_id_check, W, "national_id_check"),
    _R("GET", "/specimens", v.specimens_page, R, "specimens"),
    _R("GET", "/specimens/new", v.specimen_form, W, "specimen_form"),
    _R("POST", "/specimens", v.specimen_accession, W, "specimen_accession"),
    _R("GET", "/specimens/{label}", sv.specimen_page, R, "specimen"),
    _R("GET", "/specimens/{label}/barcode.svg", v.specimen_barcode, R, "specimen_barcode"),
    _R("GET", "/specimens/{label}/qr.svg", sv.specimen_qr, R, "specimen_qr"),
    _R("GET", "/specimens/{label}/label.pdf", sv.specimen_label, R, "specimen_label"),
    _R("POST", "/specimens/{label}/aliquot", sv.specimen_aliquot, W, "specimen_aliquot"),
    _R("POST", "/specimens/{label}/derive", sv.specimen_derive, W, "specimen_derive"),
    _R("POST", "/specimens/{label}/consume", sv.specimen_consume, W, "specimen_consume"),
    _R("POST", "/specimens/{label}/ship", sv.specimen_ship, W, "specimen_ship"),
    _R("POST", "/specimens/{label}/destroy", sv.specimen_destroy, W, "specimen_destroy"),
    _R("GET", "/scan", sv.scan, R, "scan"),
    _R("GET", "/labels", sv.labels_page, R, "labels"),
    _R("GET", "/labels/box.pdf", sv.box_labels, R, "box_labels"),
    _R("GET", "/api/specimens/{label}", v.specimen_json, R, "specimen_json"),
    _R("GET", "/audit", v.audit_page, A, "audit"),
    _R("POST", "/audit/verify", v.audit_verify, A, "audit_verify"),
    _R("GET", "/admin/users", v.users_page, U, "users"),
    _R("POST", "/admin/users", v.user_create, U, "user_create"),
    _R("POST", "/admin/users/{name}/role", v.user_role, U, "user_role"),
    _R("POST", "/admin/users/{name}/password", v.user_password, U, "user_password"),
    _R("POST", "/admin/users/{name}/active", v.user_active, U, "user_active"),
    # storage: freezer -> rack -> box, moving specimens (biobank/service/storage_views.py)
    _R("GET", "/storage", sto.storage_home, R, "storage"),
    _R("POST", "/storage/move", sto.storage_move, W, "storage_move"),
    _R("GET", "/storage/{freezer}", sto.storage_freezer, R, "storage_freezer"),
    _R("GET", "/storage/{freezer}/{rack}", sto.storage_rack, R, "storage_rack"),
    _R("GET", "/storage/{freezer}/{rack}/{box}", sto.storage_box, R, "storage_box"),
    # bulk CSV import: upload, preview, commit (biobank/service/import_views.py)
    _R("GET", "/import", imp.import_form, W, "import_form"),
    _R("POST", "/import", imp.import_upload_view, W, "import_upload"),
    _R("GET", "/import/{token}", imp.import_preview, W, "import_preview"),
    _R("POST", "/import/{token}/commit", imp.import_commit, W, "import_commit"),
    _R("POST", "/import/{token}/discard", imp.import_discard, W, "import_discard"),
    *(_R(m, p, e, BEACON, n) for m, p, e, n in beacon.endpoints()),
    *(_R(m, p, e, PARTNER, n) for m, p, e, n in federation.endpoints()),
    _R("GET", "/access", av.access_page, AR, "access"),
    _R("POST", "/access/requests", av.access_submit, AR, "access_submit"),
    _R("GET", "/access/extracts/{extract_id}", av.extract_download, AR, "extract_download"),
    _R("GET", "/access/review", av.review_page, AA, "access_review"),
    _R("POST", "/access/requests/{request_id}/approve", av.access_approve, AA, "access_approve"),
    _R("POST", "/access/requests/{request_id}/reject", av.access_reject, AA, "access_reject"),
)
