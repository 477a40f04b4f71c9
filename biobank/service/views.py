"""Endpoints of the pages: each parses a form, calls one library function, renders.

Permissions are not checked here: the route table (:mod:`biobank.service.routes`)
guards every route, and the library functions check again.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any

from fastapi import Form, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response

from biobank.core import audit
from biobank.core.access import Role
from biobank.core.errors import AccessDenied, ImportRejected, NotFoundError, ValidationError
from biobank.core.ids import national_id_birth_date, national_id_sex, validate_national_id
from biobank.registry import (
    add_consent,
    add_specimen,
    find_participant,
    get_participant,
    get_specimen,
    label_barcode_svg,
    list_participants,
    list_specimens,
    parse_date,
    read_recontact,
    register_participant,
    update_participant,
    withdraw_consent,
)
from biobank.registry.vocab import SPECIMEN_STATUSES, SPECIMEN_TYPES, UNITS
from biobank.service import accounts, queries
from biobank.service.app import LANG_COOKIE, Ctx, HTTPError, make_ctx
from biobank.service.i18n import LOCALES
from biobank.service.library_messages import library_message

__all__: list[str] = []

F = Annotated[str, Form()]
_PSEUDONYM = re.compile(r"P-[A-Z2-7]{12}")


def ctx_of(request: Request) -> Ctx:
    """The context of a request the guard has let through."""
    return make_ctx(request, getattr(request.state, "principal", None))


def safe_next(value: str | None) -> str:
    """A local path to go to after login or a language switch (never another site)."""
    if value and value.startswith("/") and not value.startswith(("//", "/\\")):
        return value
    return "/"


def redirect(request: Request, url: str) -> RedirectResponse:
    """303 See Other to ``url`` (a route path), the answer to a successful form."""
    return RedirectResponse(str(request.scope.get("root_path", "")) + url, status_code=303)


def problems_of(exc: ValidationError, ctx: Ctx) -> dict[str, str]:
    """Field -> translated message of a rejected form (never the value typed)."""
    items = exc.problems if isinstance(exc, ImportRejected) else [exc.problem]
    out: dict[str, str] = {}
    for p in items:
        key = p.field or "_form"
        msg = library_message(p.message, ctx.gettext)
        out[key] = f"{out[key]}; {msg}" if key in out else msg
    return out


# -- login, language, home, password ----------------------------------------------------
def login_form(request: Request, next: str = "/") -> Response:
    return ctx_of(request).render("login.html", next=safe_next(next), error="")


def login(request: Request, username: F = "", password: F = "", next: F = "/") -> Response:
    ctx = ctx_of(request)
    _ = ctx.gettext
    service = ctx.service
    if service.limiter.blocked(ctx.client):
        raise HTTPError(429, _("Too many failed logins from this address: wait and try again."))
    with service.locked() as store:
        principal = accounts.authenticate(
            store, username.strip(), password, client=ctx.client, policy=service.policy
        )
        if principal is None:
            service.limiter.failed(ctx.client)
            error = _("Wrong user name or password, or the account is locked.")
            return ctx.render("login.html", http_status=401, next=safe_next(next), error=error)
        token = accounts.start_session(store, principal, client=ctx.client, policy=service.policy)
    request.session.clear()
    request.session["token"] = token
    return redirect(request, safe_next(next))


def logout(request: Request) -> Response:
    ctx = ctx_of(request)
    token = request.session.get("token")
    if isinstance(token, str):
        with ctx.service.locked() as store:
            accounts.end_session(store, ctx.user, token, client=ctx.client)
    request.session.clear()
    return redirect(request, "/login")


def switch_language(request: Request, code: str, next: str = "/") -> Response:
    if code not in LOCALES:
        raise HTTPError(404)
    response = redirect(request, safe_next(next))
    response.set_cookie(LANG_COOKIE, code, max_age=365 * 86400, samesite="lax", httponly=True)
    return response


def home(request: Request) -> Response:
    return ctx_of(request).render("home.html")


def password_form(request: Request) -> Response:
    return ctx_of(request).render("password.html", error="", done=False)


def password_change(request: Request, current: F = "", new: F = "", repeat: F = "") -> Response:
    ctx = ctx_of(request)
    _ = ctx.gettext
    if new != repeat:
        return ctx.render(
            "password.html", http_status=422, error=_("The two new passwords differ.")
        )
    try:
        ctx.act(
            lambda store: accounts.change_password(store, ctx.user, current, new, client=ctx.client)
        )
    except AccessDenied:
        return ctx.render(
            "password.html", http_status=403, error=_("The current password is wrong.")
        )
    except ValidationError as exc:
        return ctx.render(
            "password.html", http_status=422, error=library_message(exc.problem.message, _)
        )
    with ctx.service.locked() as store:  # every session ended: start this one again
        token = accounts.start_session(
            store, ctx.user, client=ctx.client, policy=ctx.service.policy
        )
    request.session["token"] = token
    return ctx.render("password.html", error="", done=True)


# -- admin: users --------------------------------------------------------------------------
def users_page(request: Request) -> Response:
    return _users(request)


def _users(request: Request, error: str = "") -> Response:
    ctx = ctx_of(request)
    users = ctx.act(lambda store: accounts.list_accounts(store, ctx.user))
    return ctx.render("users.html", users=users, roles=list(Role), error=error)


def user_create(request: Request, username: F = "", role: F = "", password: F = "") -> Response:
    ctx = ctx_of(request)
    try:
        ctx.act(
            lambda store: accounts.create_account(
                store, ctx.user, username.strip(), role, password, client=ctx.client
            )
        )
    except ValidationError as exc:
        return _users(request, error=library_message(exc.problem.message, ctx.gettext))
    return redirect(request, "/admin/users")


def user_role(request: Request, name: str, role: F = "") -> Response:
    ctx = ctx_of(request)
    ctx.act(lambda store: accounts.set_role(store, ctx.user, name, role, client=ctx.client))
    return redirect(request, "/admin/users")


def user_password(request: Request, name: str, password: F = "") -> Response:
    ctx = ctx_of(request)
    try:
        ctx.act(
            lambda store: accounts.reset_password(
                store, ctx.user, name, password, client=ctx.client
            )
        )
    except ValidationError as exc:
        return _users(request, error=library_message(exc.problem.message, ctx.gettext))
    return redirect(request, "/admin/users")


def user_active(request: Request, name: str, active: F = "") -> Response:
    ctx = ctx_of(request)
    on = active == "1"
    ctx.act(lambda store: accounts.set_active(store, ctx.user, name, on, client=ctx.client))
    return redirect(request, "/admin/users")


# -- dashboard, participants -----------------------------------------------------------------
def dashboard(request: Request) -> Response:
    ctx = ctx_of(request)
    data = ctx.act(lambda store: queries.dashboard(store, ctx.user))
    return ctx.render("dashboard.html", **data, types=SPECIMEN_TYPES, statuses=SPECIMEN_STATUSES)


def participants_page(request: Request) -> Response:
    return _participants(request)


def _participants(request: Request, error: str = "", http_status: int = 200) -> Response:
    ctx = ctx_of(request)
    rows = ctx.act(lambda store: list_participants(store, ctx.user, limit=50))
    return ctx.render("participants.html", http_status=http_status, rows=rows, error=error)


def participant_search(request: Request, q: F = "") -> Response:
    ctx = ctx_of(request)
    _ = ctx.gettext
    query = q.strip().upper()
    if _PSEUDONYM.fullmatch(query):
        try:
            ctx.act(lambda store: get_participant(store, ctx.user, query))
        except NotFoundError:
            return _participants(request, error=_("No participant found."), http_status=404)
        return redirect(request, f"/participants/{query}")
    try:
        pid = ctx.act(lambda store: find_participant(store, ctx.user, q))
    except NotFoundError:
        return _participants(request, error=_("No participant found."), http_status=404)
    except ValidationError as exc:
        return _participants(
            request, error=library_message(exc.problem.message, _), http_status=422
        )
    return redirect(request, f"/participants/{pid}")


def participant_form(request: Request) -> Response:
    return ctx_of(request).render("participant_new.html", values={}, problems={})


def participant_register(
    request: Request,
    national_id: F = "",
    name: F = "",
    sex: F = "",
    birth_date: F = "",
    phone: F = "",
    enrolment_date: F = "",
    site: F = "",
    cohorts: F = "",
) -> Response:
    ctx = ctx_of(request)
    values = {
        "national_id": national_id,
        "name": name,
        "sex": sex,
        "birth_date": birth_date,
        "phone": phone,
        "enrolment_date": enrolment_date,
        "site": site,
        "cohorts": cohorts,
    }
    try:
        pid = ctx.act(
            lambda store: register_participant(
                store,
                ctx.user,
                national_id=national_id,
                name=name,
                sex=sex,
                birth_date=birth_date,
                enrolment_date=enrolment_date,
                site=site,
                phone=phone,
                cohorts=[c.strip() for c in cohorts.replace(";", ",").split(",") if c.strip()],
            )
        )
    except ValidationError as exc:
        return ctx.render(
            "participant_new.html", http_status=422, values=values, problems=problems_of(exc, ctx)
        )
    return redirect(request, f"/participants/{pid}")


def _participant_refused(ctx: Ctx, pid: str, exc: ValidationError) -> Response:
    """The participant's page again (422) with the problems of a refused form."""
    view = _participant_view(ctx, pid)
    return ctx.render("participant.html", http_status=422, **view, problems=problems_of(exc, ctx))


def _participant_view(ctx: Ctx, pid: str) -> dict[str, Any]:
    def read(store: Any) -> dict[str, Any]:
        from biobank.core.access import Permission
        from biobank.families.checks import participant_family_summary, participant_sample_qc

        record = get_participant(store, ctx.user, pid, lang=ctx.locale)
        staff = ctx.user.can(Permission.REGISTRY_READ)
        family = participant_family_summary(store, ctx.user, pid) if staff else None
        return {
            "p": record,
            "consents": queries.consent_history(store, ctx.user, pid),
            "specimens": list_specimens(store, ctx.user, participant_id=pid, limit=500),
            "family": family,
            # the Sample QC section (templates/_sample_qc.html), staff only
            "sample_qc": participant_sample_qc(store, ctx.user, pid) if staff else None,
        }

    return ctx.act(read)


def participant_page(request: Request, pid: str) -> Response:
    ctx = ctx_of(request)
    return ctx.render("participant.html", **_participant_view(ctx, pid), problems={})


def consent_add(
    request: Request,
    pid: str,
    version: F = "",
    signed_date: F = "",
    duo_codes: F = "",
    disease: F = "",
) -> Response:
    ctx = ctx_of(request)
    try:
        signed = parse_date(signed_date, field="signed_date")
        ctx.act(
            lambda store: add_consent(
                store,
                ctx.user,
                pid,
                version=version,
                signed_date=signed,
                duo_codes=duo_codes,
                disease=disease.strip() or None,
            )
        )
    except ValidationError as exc:
        return _participant_refused(ctx, pid, exc)
    return redirect(request, f"/participants/{pid}")


def consent_withdraw(
    request: Request, pid: str, reason: F = "", withdrawn_date: F = ""
) -> Response:
    ctx = ctx_of(request)
    try:
        when = parse_date(withdrawn_date, field="withdrawn_date") if withdrawn_date else None
        ctx.act(
            lambda store: withdraw_consent(store, ctx.user, pid, withdrawn_date=when, reason=reason)
        )
    except ValidationError as exc:
        return _participant_refused(ctx, pid, exc)
    return redirect(request, f"/participants/{pid}")


def phenotype_add(request: Request, pid: str, hpo_ids: F = "", excluded: F = "") -> Response:
    """Register HPO terms of the participant (space- or ;-separated)."""
    from biobank.registry.phenotypes import add_phenotypes

    ctx = ctx_of(request)
    terms = [t for t in hpo_ids.replace(";", " ").replace(",", " ").split() if t]
    try:
        if not terms:
            raise ValidationError("give at least one HPO term, e.g. HP:0001394", field="hpo_ids")
        ctx.act(lambda store: add_phenotypes(store, ctx.user, pid, terms, observed=not excluded))
    except ValidationError as exc:
        return _participant_refused(ctx, pid, exc)
    return redirect(request, f"/participants/{pid}")


def family_register(request: Request, pid: str, ped: F = "") -> Response:
    """Register family members from PED lines typed on the participant's page."""
    from biobank.registry.pedigree import parse_ped, register_family

    ctx = ctx_of(request)
    try:
        rows = parse_ped(ped)
        ctx.act(lambda store: register_family(store, ctx.user, rows, reason="web form"))
    except ValidationError as exc:
        return _participant_refused(ctx, pid, exc)
    return redirect(request, f"/participants/{pid}")


def affected_set(
    request: Request, pid: str, family_id: F = "", phenotype: F = "", status: F = ""
) -> Response:
    """Register the participant's affected status for one phenotype in one of their families."""
    from biobank.registry.affected import set_affected

    ctx = ctx_of(request)
    try:
        ctx.act(
            lambda store: set_affected(
                store, ctx.user, family_id, pid, phenotype, status, reason="web form"
            )
        )
    except ValidationError as exc:
        return _participant_refused(ctx, pid, exc)
    return redirect(request, f"/participants/{pid}")


def participant_update(
    request: Request,
    pid: str,
    reason: F = "",
    site: F = "",
    enrolment_date: F = "",
    cohorts: F = "",
    name: F = "",
    phone: F = "",
) -> Response:
    """Change the site, enrolment date, cohorts, name or phone (an empty field is kept)."""
    ctx = ctx_of(request)
    groups = [c for c in re.split(r"[\s,;]+", cohorts.strip()) if c] or None
    try:
        when = parse_date(enrolment_date, field="enrolment_date") if enrolment_date else None
        ctx.act(
            lambda store: update_participant(
                store,
                ctx.user,
                pid,
                reason=reason,
                site=site.strip() or None,
                enrolment_date=when,
                cohorts=groups,
                name=name.strip() or None,
                phone=phone.strip() or None,
            )
        )
    except ValidationError as exc:
        return _participant_refused(ctx, pid, exc)
    return redirect(request, f"/participants/{pid}")


def participant_recontact(request: Request, pid: str, reason: F = "") -> Response:
    """Show a participant's re-contact identifiers (``recontact_read``; audited with the reason)."""
    ctx = ctx_of(request)
    try:
        found = ctx.act(lambda store: read_recontact(store, ctx.user, pid, reason=reason))
    except ValidationError as exc:
        return _participant_refused(ctx, pid, exc)
    response = ctx.render(
        "participant.html", **_participant_view(ctx, pid), problems={}, recontact=found
    )
    response.headers["Cache-Control"] = "no-store"  # never kept by the browser or a proxy
    return response


def national_id_check(request: Request, national_id: F = "") -> Response:
    """Validate an identity number as it is typed (no lookup, nothing stored or logged)."""
    ctx = ctx_of(request)
    _ = ctx.gettext
    try:
        number = validate_national_id(national_id)
    except ValidationError as exc:
        return JSONResponse({"valid": False, "message": library_message(exc.problem.message, _)})
    sex = national_id_sex(number)
    return JSONResponse(
        {
            "valid": True,
            "message": _("Valid identity number."),
            "sex": sex,
            "birth_date": national_id_birth_date(number).isoformat(),
        }
    )


# -- specimens -------------------------------------------------------------------------------
def specimens_page(request: Request, status: str = "", specimen_type: str = "") -> Response:
    ctx = ctx_of(request)
    rows = ctx.act(
        lambda store: list_specimens(
            store, ctx.user, status=status or None, specimen_type=specimen_type or None, limit=200
        )
    )
    return ctx.render(
        "specimens.html",
        rows=rows,
        types=SPECIMEN_TYPES,
        statuses=SPECIMEN_STATUSES,
        status=status,
        specimen_type=specimen_type,
    )


def specimen_form(request: Request, participant_id: str = "") -> Response:
    ctx = ctx_of(request)
    return ctx.render(
        "specimen_new.html",
        values={"participant_id": participant_id},
        problems={},
        types=SPECIMEN_TYPES,
        units=UNITS,
    )


def specimen_accession(
    request: Request,
    label: F = "",
    participant_id: F = "",
    specimen_type: F = "",
    collected_at: F = "",
    quantity: F = "",
    unit: F = "",
    parent_label: F = "",
    anatomical_site: F = "",
    freezer: F = "",
    rack: F = "",
    box: F = "",
    position: F = "",
) -> Response:
    ctx = ctx_of(request)
    values = dict(
        label=label,
        participant_id=participant_id,
        specimen_type=specimen_type,
        collected_at=collected_at,
        quantity=quantity,
        unit=unit,
        parent_label=parent_label,
        anatomical_site=anatomical_site,
        freezer=freezer,
        rack=rack,
        box=box,
        position=position,
    )
    try:
        try:
            amount = float(quantity)
        except ValueError as exc:
            raise ValidationError("quantity must be a number", field="quantity") from exc
        rec = ctx.act(
            lambda store: add_specimen(
                store,
                ctx.user,
                label=label.strip(),
                participant_id=participant_id.strip(),
                specimen_type=specimen_type,
                collected_at=collected_at,
                quantity=amount,
                unit=unit,
                parent_label=parent_label.strip() or None,
                anatomical_site=anatomical_site.strip() or None,
                freezer=freezer or None,
                rack=rack or None,
                box=box or None,
                position=position or None,
            )
        )
    except ValidationError as exc:
        return ctx.render(
            "specimen_new.html",
            http_status=422,
            values=values,
            problems=problems_of(exc, ctx),
            types=SPECIMEN_TYPES,
            units=UNITS,
        )
    return redirect(request, f"/specimens/{rec.label}")


def specimen_barcode(request: Request, label: str) -> Response:
    ctx = ctx_of(request)
    svg = ctx.act(lambda store: (get_specimen(store, ctx.user, label), label_barcode_svg(label)))[1]
    return Response(svg, media_type="image/svg+xml")


def specimen_json(request: Request, label: str) -> Response:
    ctx = ctx_of(request)
    spec = ctx.act(lambda store: get_specimen(store, ctx.user, label))
    return JSONResponse(
        {k: v.isoformat() if isinstance(v, dt.date) else v for k, v in spec.items()}
    )


# -- audit -----------------------------------------------------------------------------------
def audit_page(
    request: Request, user: str = "", action: str = "", target: str = "", before: int | None = None
) -> Response:
    ctx = ctx_of(request)
    rows = ctx.act(
        lambda store: queries.audit_entries(
            store, ctx.user, user=user, action=action, target=target, before=before
        )
    )
    return ctx.render(
        "audit.html",
        rows=rows,
        user=user,
        action=action,
        target=target,
        verified=None,
        page=queries.AUDIT_PAGE,
    )


def audit_verify(request: Request) -> Response:
    ctx = ctx_of(request)

    def run(store: Any) -> tuple[bool, str]:
        from biobank.core.access import Permission, require
        from biobank.core.errors import AuditIntegrityError

        require(ctx.user, Permission.AUDIT_READ)
        try:
            report = audit.verify(store.con)
        except AuditIntegrityError as exc:
            return False, str(exc)
        return True, str(report.entries)

    ok, detail = ctx.act(run)
    rows = ctx.act(lambda store: queries.audit_entries(store, ctx.user))
    return ctx.render(
        "audit.html",
        rows=rows,
        user="",
        action="",
        target="",
        verified=(ok, detail),
        page=queries.AUDIT_PAGE,
    )
