"""Participants: pseudonymised registration, re-contact identifiers, look-ups and listing.

The participant key everywhere in the store is the pseudonym
``ids.pseudonym(validated national id, ids.center_key(store.path))``. The
national ID is validated (check character, birth date) *before* hashing, so a
typo is rejected instead of creating a second person, and the sex and birth
date given with it must agree with those encoded in it. Research tables keep
the sex, the birth *year*, the enrolment date, the site and cohort memberships;
the name, national ID, phone and full birth date are kept only for re-contact,
encrypted with Fernet under a key derived from the center key (HKDF-SHA256),
and readable only through :func:`read_recontact` (``recontact_read``, audited).

Researchers see only participants whose current consent permits their
purpose (:func:`biobank.registry.consent.permitted_participants_sql`). Every write and
every read of individual-level data is recorded in the audit log.

CSV imports are in :mod:`biobank.registry.imports`; specimens, storage and
sequencing links in :mod:`biobank.registry.specimens`.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import duckdb

from biobank.core import audit
from biobank.core.access import Permission, Principal, require
from biobank.core.errors import (
    ConflictError,
    ConsentError,
    NotFoundError,
    Problem,
    ValidationError,
)
from biobank.core.ids import (
    center_key,
    national_id_birth_date,
    national_id_sex,
    pseudonym,
    validate_national_id,
)
from biobank.registry import events
from biobank.registry.consent import current_consent, permitted_participants_sql
from biobank.registry.recontact import decrypt_identifiers, encrypt_identifiers, read_recontact
from biobank.registry.visibility import audited_rows, participant_visibility_sql
from biobank.registry.vocab import SEXES, check_term

if TYPE_CHECKING:
    from biobank.core.store import Store

__all__ = [
    "ParticipantRecord",
    "find_participant",
    "get_participant",
    "list_participants",
    "mask_national_id",
    "parse_date",
    "participant_visibility_sql",
    "read_recontact",
    "register_participant",
    "update_participant",
    "validate_participant",
    "write_participants",
]

logger = logging.getLogger(__name__)

_PHONE = re.compile(r"^(\+?86)?(1[3-9][0-9]{9}|0[0-9]{2,3}-?[0-9]{7,8})$")
_COHORT = re.compile(r"^[\w.-]{1,32}$")


def mask_national_id(value: str) -> str:
    """Return an identity number with its birth date and order code hidden (for messages)."""
    v = (value or "").strip()
    return v[:6] + "*" * max(len(v) - 10, 0) + v[-4:] if len(v) > 10 else "*" * len(v)


def parse_date(value: str, *, field: str) -> dt.date:
    """Parse an ISO date ``YYYY-MM-DD``.

    Raises
    ------
    ValidationError
        If the value is not a real date in that form.
    """
    try:
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value.strip()):
            raise ValueError(value)
        return dt.date.fromisoformat(value.strip())
    except ValueError as exc:
        raise ValidationError(
            "not a real date in the form YYYY-MM-DD (e.g. 2024-03-15)", field=field, value=value
        ) from exc


@dataclass(frozen=True)
class ParticipantRecord:
    """A validated participant: the research row, cohorts and the identifiers to encrypt."""

    national_id: str
    participant_id: str
    sex: str
    birth_year: int
    enrolment_date: dt.date
    site: str
    cohorts: tuple[str, ...]
    identifiers: dict[str, str] = field(repr=False)

    def research_row(self) -> dict[str, Any]:
        """The columns of table ``participant`` (without timestamps)."""
        return {
            "participant_id": self.participant_id,
            "sex": self.sex,
            "birth_year": self.birth_year,
            "enrolment_date": self.enrolment_date,
            "site": self.site,
        }


def _bad(problems: list[Problem], message: str, fld: str, value: object) -> None:
    problems.append(Problem(message, field=fld, value=None if value is None else str(value)))


def _check_identity(
    values: Mapping[str, str], problems: list[Problem]
) -> tuple[str | None, str, str]:
    """Check the identity number, name and sex; return the number (if valid), name and sex."""
    raw_id = values.get("national_id", "")
    number: str | None = None
    try:
        number = validate_national_id(raw_id)
    except ValidationError as exc:
        _bad(problems, exc.problem.message, "national_id", mask_national_id(raw_id))
    name = values.get("name", "").strip()
    if not name:
        _bad(problems, "name is required (kept encrypted for re-contact only)", "name", "")
    elif len(name) > 100:
        _bad(problems, "name is longer than 100 characters", "name", name[:20] + "…")
    elif any(unicodedata.category(ch) in ("Cc", "Zl", "Zp") for ch in name):
        _bad(
            problems,
            "name holds a line break or control character (a quoted newline in the CSV?):"
            " write the name on one line",
            "name",
            name.replace("\n", "\\n").replace("\r", "\\r")[:40],
        )
    sex = values.get("sex", "").strip().lower()
    if sex not in SEXES:
        _bad(problems, f"sex must be one of: {', '.join(SEXES)}", "sex", values.get("sex", ""))
    elif number is not None and national_id_sex(number) != sex:
        _bad(
            problems,
            f"sex is '{sex}' but the identity number encodes {national_id_sex(number)} "
            "(17th digit: odd = male, even = female): check both against the identity card",
            "sex",
            sex,
        )
    return number, name, sex


def _parse_date_field(
    values: Mapping[str, str], fld: str, problems: list[Problem]
) -> dt.date | None:
    """Parse the date in ``values[fld]``, or note the problem and return ``None``."""
    try:
        return parse_date(values.get(fld, ""), field=fld)
    except ValidationError as exc:
        _bad(problems, exc.problem.message, fld, values.get(fld, ""))
        return None


def _check_birth_date(
    values: Mapping[str, str], number: str | None, today: dt.date, problems: list[Problem]
) -> dt.date | None:
    """Check the birth date against the identity number and today."""
    birth = _parse_date_field(values, "birth_date", problems)
    if birth is not None and number is not None and national_id_birth_date(number) != birth:
        _bad(
            problems,
            "birth_date differs from the birth date in the identity number "
            "(characters 7-14): check both against the identity card",
            "birth_date",
            birth.isoformat(),
        )
    if birth is not None and birth > today:
        _bad(problems, "birth_date is in the future", "birth_date", birth.isoformat())
    return birth


def _check_phone(values: Mapping[str, str], problems: list[Problem]) -> str:
    """Return the phone number without spaces and brackets (empty if none given)."""
    phone = re.sub(r"[\s()]", "", values.get("phone", ""))
    if phone and not _PHONE.match(phone):
        _bad(
            problems,
            "phone must be a mainland mobile (11 digits starting 1) or a landline with "
            "area code (e.g. 010-12345678), optionally with +86",
            "phone",
            "(hidden)",
        )
    return phone


def _check_enrolment(
    values: Mapping[str, str], birth: dt.date | None, today: dt.date, problems: list[Problem]
) -> dt.date | None:
    """Check the enrolment date: not in the future, not before the birth date."""
    enrol = _parse_date_field(values, "enrolment_date", problems)
    if enrol is not None:
        if enrol > today:
            _bad(
                problems,
                f"enrolment_date is in the future (today is {today})",
                "enrolment_date",
                enrol,
            )
        elif birth is not None and enrol < birth:
            _bad(problems, "enrolment_date is before the birth date", "enrolment_date", enrol)
    return enrol


def _check_cohorts(values: Mapping[str, str], problems: list[Problem]) -> list[str]:
    """Return the distinct cohort names of the ``;``-separated list, in given order."""
    cohorts: list[str] = []
    for token in values.get("cohorts", "").split(";"):
        token = token.strip()
        if not token:
            continue
        if not _COHORT.match(token):
            _bad(
                problems,
                "a cohort name is letters, digits, '_', '.' or '-' (at most 32); "
                "separate cohorts with ';'",
                "cohorts",
                token,
            )
        elif token not in cohorts:
            cohorts.append(token)
    return cohorts


def validate_participant(
    values: Mapping[str, str], key: bytes, *, today: dt.date | None = None
) -> tuple[ParticipantRecord | None, list[Problem]]:
    """Validate one participant (a CSV row or API input), field by field.

    Parameters
    ----------
    values
        ``national_id, name, sex, birth_date, phone, enrolment_date, site, cohorts``.
    key
        The center key (for the pseudonym).
    today
        The date that counts as today (dates after it are refused).

    Returns
    -------
    tuple
        The record (``None`` if any problem) and every problem found (without file/line).
    """
    today = today or dt.date.today()
    problems: list[Problem] = []
    number, name, sex = _check_identity(values, problems)
    birth = _check_birth_date(values, number, today, problems)
    phone = _check_phone(values, problems)
    enrol = _check_enrolment(values, birth, today, problems)
    site = values.get("site", "").strip()
    if not site:
        _bad(problems, "site (the enrolling hospital or centre) is required", "site", "")
    cohorts = _check_cohorts(values, problems)
    if problems:
        return None, problems
    assert number is not None
    assert birth is not None
    assert enrol is not None
    return (
        ParticipantRecord(
            national_id=number,
            participant_id=pseudonym(number, key),
            sex=sex,
            birth_year=birth.year,
            enrolment_date=enrol,
            site=site,
            cohorts=tuple(sorted(cohorts)),
            identifiers={
                "name": name,
                "national_id": number,
                "phone": phone,
                "birth_date": birth.isoformat(),
            },
        ),
        [],
    )


def stored_participant(
    con: duckdb.DuckDBPyConnection, participant_id: str
) -> dict[str, Any] | None:
    """Return the stored research row plus ``cohorts`` and the encrypted ``token``, or ``None``."""
    cur = con.execute(
        "SELECT p.*, r.token FROM participant p LEFT JOIN recontact_identifier r"
        " USING (participant_id) WHERE participant_id = ?",
        [participant_id],
    )
    row = cur.fetchone()
    if row is None:
        return None
    record = dict(zip([d[0] for d in cur.description], row, strict=True))
    record["cohorts"] = tuple(
        r[0]
        for r in con.execute(
            "SELECT cohort FROM participant_cohort WHERE participant_id = ? ORDER BY cohort",
            [participant_id],
        ).fetchall()
    )
    return record


def participant_differences(
    stored: Mapping[str, Any], record: ParticipantRecord, key: bytes
) -> list[str]:
    """Return the fields in which ``record`` differs from the stored participant."""
    diffs = [
        f"{col} (registered {stored[col]}, given {value})"
        for col, value in record.research_row().items()
        if stored[col] != value
    ]
    if tuple(stored["cohorts"]) != record.cohorts:
        diffs.append(
            f"cohorts (registered {';'.join(stored['cohorts']) or '-'}, "
            f"given {';'.join(record.cohorts) or '-'})"
        )
    if stored.get("token"):
        ident = decrypt_identifiers(stored["token"], key)
        diffs.extend(
            f"{name} (differs from the registered one)"
            for name in ("name", "phone")
            if ident.get(name, "") != record.identifiers[name]
        )
    return diffs


def write_participants(
    con: duckdb.DuckDBPyConnection,
    principal: Principal,
    records: Sequence[ParticipantRecord],
    key: bytes,
    *,
    reason: str,
) -> None:
    """Insert validated new participants (events, cohorts, encrypted identifiers) in bulk."""
    if not records:
        return
    stamp = events.now()
    events.emit_many(
        con,
        principal,
        "participant",
        "create",
        [{**r.research_row(), "created_at": stamp, "updated_at": stamp} for r in records],
        reason=reason,
    )
    events.emit_many(
        con,
        principal,
        "participant_cohort",
        "create",
        [{"participant_id": r.participant_id, "cohort": c} for r in records for c in r.cohorts],
        reason=reason,
    )
    # only the ciphertext goes into the event log, never the identifiers in clear
    events.emit_many(
        con,
        principal,
        "recontact_identifier",
        "create",
        [
            {
                "participant_id": r.participant_id,
                "token": encrypt_identifiers(r.identifiers, key),
                "updated_at": stamp,
            }
            for r in records
        ],
        reason=reason,
    )


def register_participant(
    store: Store,
    principal: Principal,
    *,
    national_id: str,
    name: str,
    sex: str,
    birth_date: str | dt.date,
    enrolment_date: str | dt.date,
    site: str,
    phone: str = "",
    cohorts: Sequence[str] = (),
    reason: str = "registered",
) -> str:
    """Register one participant; return the pseudonym.

    Registering the same person again with the same details is a no-op (the
    pseudonym is returned); with different details it is a conflict.

    Raises
    ------
    AccessDenied
        Without ``registry_write``.
    ImportRejected
        Listing every invalid field.
    ConflictError
        If the person is registered with different details.
    ConfigError
        If the store has no center key.
    """
    from biobank.core.errors import ImportRejected

    require(principal, Permission.REGISTRY_WRITE)
    key = center_key(store.path)
    values = {
        "national_id": national_id,
        "name": name,
        "sex": sex,
        "birth_date": str(birth_date),
        "phone": phone,
        "enrolment_date": str(enrolment_date),
        "site": site,
        "cohorts": ";".join(cohorts),
    }
    record, problems = validate_participant(values, key)
    if record is None:
        raise ImportRejected(problems)
    with store.transaction() as con:
        stored = stored_participant(con, record.participant_id)
        if stored is not None:
            diffs = participant_differences(stored, record, key)
            if diffs:
                raise ConflictError(
                    f"this person is already registered as {record.participant_id} with "
                    f"different details: {'; '.join(diffs)}; "
                    "use 'participant update' to change them"
                )
            logger.info("participant %s already registered, nothing to do", record.participant_id)
            return record.participant_id
        write_participants(con, principal, [record], key, reason=reason)
        audit.record(con, principal, "participant.create", record.participant_id, {"site": site})
    return record.participant_id


def _emit_cohort_changes(
    con: duckdb.DuckDBPyConnection,
    principal: Principal,
    participant_id: str,
    old: Iterable[str],
    new: Iterable[str],
    *,
    reason: str,
) -> bool:
    """Delete the cohorts left and create the cohorts joined; return whether any changed."""
    before, after = set(old), set(new)
    for action, cohorts in (("delete", before - after), ("create", after - before)):
        for cohort in sorted(cohorts):
            events.emit(
                con,
                principal,
                "participant_cohort",
                action,
                {"participant_id": participant_id, "cohort": cohort},
                reason=reason,
            )
    return before != after


def _emit_identifier_change(
    con: duckdb.DuckDBPyConnection,
    principal: Principal,
    participant_id: str,
    record: ParticipantRecord,
    ident: Mapping[str, str],
    key: bytes,
    *,
    reason: str,
) -> list[str]:
    """Store the re-encrypted identifiers if name or phone changed; return those changed."""
    changed = [n for n in ("name", "phone") if record.identifiers[n] != ident.get(n, "")]
    if changed:
        events.emit(
            con,
            principal,
            "recontact_identifier",
            "update",
            {
                "participant_id": participant_id,
                "token": encrypt_identifiers(record.identifiers, key),
                "updated_at": events.now(),
            },
            reason=reason,
        )
    return changed


def update_participant(
    store: Store,
    principal: Principal,
    participant_id: str,
    *,
    reason: str,
    site: str | None = None,
    enrolment_date: dt.date | None = None,
    cohorts: Iterable[str] | None = None,
    name: str | None = None,
    phone: str | None = None,
) -> dict[str, Any]:
    """Change a participant's site, enrolment date, cohorts or re-contact name/phone.

    Sex and birth date follow from the identity number and cannot be changed;
    a wrong identity number is corrected by registering the right one.

    Returns
    -------
    dict
        The changed fields (identifiers reported by name only).

    Raises
    ------
    AccessDenied
        Without ``registry_write``.
    NotFoundError
        If there is no such participant.
    ValidationError
        For a bad value or an empty reason.
    """
    require(principal, Permission.REGISTRY_WRITE)
    if not reason.strip():
        raise ValidationError("give the reason for the change", field="reason")
    key = center_key(store.path)
    with store.transaction() as con:
        stored = stored_participant(con, participant_id)
        if stored is None:
            raise NotFoundError(f"no participant {participant_id}")
        ident = decrypt_identifiers(stored["token"], key) if stored.get("token") else {}
        values = {
            "national_id": ident.get("national_id", ""),
            "name": name if name is not None else ident.get("name", ""),
            "sex": stored["sex"],
            "birth_date": ident.get("birth_date", ""),
            "phone": phone if phone is not None else ident.get("phone", ""),
            "enrolment_date": (enrolment_date or stored["enrolment_date"]).isoformat(),
            "site": site if site is not None else stored["site"],
            "cohorts": ";".join(cohorts if cohorts is not None else stored["cohorts"]),
        }
        record, problems = validate_participant(values, key)
        if record is None:
            first = problems[0]
            raise ValidationError(first.message, field=first.field, value=first.value)
        changed: dict[str, Any] = {
            col: value
            for col, value in record.research_row().items()
            if stored[col] != value and col not in {"participant_id"}
        }
        if changed:
            events.emit(
                con,
                principal,
                "participant",
                "update",
                {"participant_id": participant_id, **changed, "updated_at": events.now()},
                reason=reason,
            )
        if _emit_cohort_changes(
            con, principal, participant_id, stored["cohorts"], record.cohorts, reason=reason
        ):
            changed["cohorts"] = ";".join(record.cohorts)
        for n in _emit_identifier_change(
            con, principal, participant_id, record, ident, key, reason=reason
        ):
            changed[n] = "(changed, encrypted)"
        if changed:
            audit.record(
                con,
                principal,
                "participant.update",
                participant_id,
                {"fields": sorted(changed), "reason": reason},
            )
    return changed


def find_participant(store: Store, principal: Principal, national_id: str) -> str:
    """Return the pseudonym of a registered person given their identity number.

    Raises
    ------
    AccessDenied
        Without ``registry_read`` (researchers never look people up by identity number).
    ValidationError
        If the number is invalid.
    NotFoundError
        If the person is not registered.
    """
    require(principal, Permission.REGISTRY_READ)
    number = validate_national_id(national_id)
    pid = pseudonym(number, center_key(store.path))
    with store.transaction() as con:
        found = con.execute("SELECT 1 FROM participant WHERE participant_id = ?", [pid]).fetchone()
        audit.record(con, principal, "participant.lookup", pid, {"found": bool(found)})
    if not found:
        raise NotFoundError(f"no participant with identity number {mask_national_id(number)}")
    return pid


def get_participant(
    store: Store, principal: Principal, participant_id: str, *, lang: str = "en"
) -> dict[str, Any]:
    """Return one participant's research record, cohorts, current consent and specimen count.

    Raises
    ------
    AccessDenied
        For a role that reads neither the registry nor research data.
    NotFoundError
        If there is no such participant.
    ConsentError
        For a researcher whose purpose the participant's current consent does not permit.
    """
    visible = participant_visibility_sql(principal)
    with store.transaction() as con:
        stored = stored_participant(con, participant_id)
        if stored is None:
            raise NotFoundError(f"no participant {participant_id}")
        if not con.execute(
            f"SELECT 1 FROM ({visible}) WHERE participant_id = ?", [participant_id]
        ).fetchone():
            raise ConsentError(
                f"participant {participant_id} has not consented to purpose "
                f"'{principal.purpose}' (or withdrew)"
            )
        consent = current_consent(con, participant_id)
        n_specimens = con.execute(
            "SELECT count(*) FROM specimen WHERE participant_id = ?", [participant_id]
        ).fetchone()
        audit.record(con, principal, "participant.read", participant_id, {})
    out = {k: v for k, v in stored.items() if k not in {"token", "created_at", "updated_at"}}
    out["sex"] = SEXES[out["sex"]].label(lang)
    out["cohorts"] = ";".join(stored["cohorts"])
    out["consent_version"] = consent["consent_version"] if consent else None
    out["consent_codes"] = _codes_text(consent) if consent else None
    out["withdrawn_date"] = consent["withdrawn_date"] if consent else None
    out["specimens"] = int(n_specimens[0]) if n_specimens else 0
    return out


def _codes_text(consent: Mapping[str, Any]) -> str:
    primary = str(consent["primary_code"])
    if primary == "DS":
        primary = f"DS:{consent['disease']}"
    return ";".join([primary, *[m for m in str(consent["modifiers"]).split(";") if m]])


def list_participants(
    store: Store,
    principal: Principal,
    *,
    site: str | None = None,
    cohort: str | None = None,
    sex: str | None = None,
    consented_for: str | None = None,
    include_withdrawn: bool = True,
    limit: int | None = None,
) -> list[dict[str, Any]]:
    """List participants (pseudonymised) with filters.

    Parameters
    ----------
    store, principal
        The store and who asks (researchers see only consented participants).
    site, cohort, sex
        Keep only participants of this site / cohort / sex.
    consented_for
        Keep only participants whose current consent permits this purpose.
    include_withdrawn
        Include participants whose current consent is withdrawn (registry staff only).
    limit
        At most this many rows.

    Returns
    -------
    list of dict
        ``participant_id, sex, birth_year, enrolment_date, site, cohorts,
        consent_version, consent_codes, withdrawn_date``.

    Raises
    ------
    ValidationError
        If ``sex`` is not ``female`` or ``male``.
    """
    visible = participant_visibility_sql(principal)
    where = [f"p.participant_id IN ({visible})"]
    params: list[Any] = []
    if site:
        where.append("p.site = ?")
        params.append(site)
    if sex:
        check_term(SEXES, sex, field="sex", name="sex")
        where.append("p.sex = ?")
        params.append(sex)
    if cohort:
        where.append(
            "p.participant_id IN (SELECT participant_id FROM participant_cohort WHERE cohort = ?)"
        )
        params.append(cohort)
    if consented_for:
        where.append(f"p.participant_id IN ({permitted_participants_sql(consented_for)})")
    if not include_withdrawn:
        where.append("c.withdrawn_date IS NULL")
    sql = (
        "SELECT p.participant_id, p.sex, p.birth_year, p.enrolment_date, p.site,"
        " (SELECT string_agg(cohort, ';' ORDER BY cohort) FROM participant_cohort pc"
        "  WHERE pc.participant_id = p.participant_id) AS cohorts,"
        " c.consent_version, c.primary_code, c.disease, c.modifiers, c.withdrawn_date"
        " FROM participant p LEFT JOIN (SELECT * FROM consent QUALIFY row_number() OVER ("
        "  PARTITION BY participant_id ORDER BY signed_date DESC, consent_seq DESC) = 1) c"
        " USING (participant_id)"
        f" WHERE {' AND '.join(where)} ORDER BY p.participant_id"
    )
    rows = audited_rows(
        store,
        principal,
        sql,
        params,
        limit=limit,
        action="participant.list",
        target="participant",
        filters={"site": site, "cohort": cohort, "sex": sex, "consented_for": consented_for},
    )
    out = []
    for r in rows:
        codes = _codes_text(r) if r["primary_code"] else None
        for k in ("primary_code", "disease", "modifiers"):
            r.pop(k)
        r["consent_codes"] = codes
        if not principal.can(Permission.REGISTRY_READ):
            r.pop("withdrawn_date")
        out.append(r)
    return out
