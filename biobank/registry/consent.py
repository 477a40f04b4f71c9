"""Consents with GA4GH Data Use Ontology codes, and which participants a purpose may use.

A consent has one DUO permission code and any number of modifiers:

=====  ==============================================================
code   permits research purposes
=====  ==============================================================
NRES   all (no restriction)
GRU    all: ``GRU``, ``HMB``, ``POA``, ``DS:<ICD-10>``
HMB    ``HMB`` and every ``DS:<ICD-10>``
DS     ``DS:<Y>`` where Y is the consent's ICD-10 code X or below it
       (consent ``DS:C50`` permits ``DS:C50`` and ``DS:C50.9``)
POA    ``POA`` only
=====  ==============================================================

Consents are versioned per participant; the **current** consent is the one
signed last (latest ``signed_date``, then the latest registered). A withdrawn
current consent permits nothing, at once, for every later query and export.
Modifiers (GSO, IRB, PUB, COL, NPU, NCU, RS, GS, MOR, TS, US ...) are recorded
and shown with the consent; they constrain who may use the data and how, which
the data access committee checks: they do not change which purposes match.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import duckdb

from biobank.core import audit, icd10
from biobank.core.access import Permission, Principal, require
from biobank.core.errors import ConflictError, ConsentError, NotFoundError, ValidationError
from biobank.registry import events
from biobank.registry.vocab import DUO_MODIFIERS, DUO_PRIMARY

if TYPE_CHECKING:
    from biobank.core.store import Store

__all__ = [
    "PURPOSE_FORMS",
    "ConsentCodes",
    "Purpose",
    "add_consent",
    "consent_permits",
    "current_consent",
    "current_consent_sql",
    "normalise_icd10",
    "parse_duo_codes",
    "parse_purpose",
    "permitted_participants",
    "permitted_participants_sql",
    "withdraw_consent",
]

logger = logging.getLogger(__name__)

#: The accepted forms of a research purpose, for error messages.
PURPOSE_FORMS = "GRU, HMB, POA or DS:<ICD-10 code> (e.g. DS:E11, DS:C50.9)"


def normalise_icd10(code: str, *, field: str = "disease") -> str:
    """Return an ICD-10 code in display form (``e119`` -> ``E11.9``), or raise.

    Delegates to :func:`biobank.core.icd10.normalise` (WHO and the national clinical
    editions 2.0).

    Raises
    ------
    ValidationError
        If the code is not an ICD-10 code.

    Examples
    --------
    >>> normalise_icd10("c509"), normalise_icd10("E11")
    ('C50.9', 'E11')
    """
    return icd10.normalise(code, field=field)


@dataclass(frozen=True)
class Purpose:
    """A parsed research purpose: ``code`` (GRU, HMB, POA, DS) and the disease for DS."""

    code: str
    disease: str | None = None

    def __str__(self) -> str:
        return f"DS:{self.disease}" if self.code == "DS" else self.code


def parse_purpose(purpose: str) -> Purpose:
    """Parse a research purpose string.

    Raises
    ------
    ValidationError
        If it is not one of :data:`PURPOSE_FORMS`.

    Examples
    --------
    >>> parse_purpose("ds:c50.9")
    Purpose(code='DS', disease='C50.9')
    """
    text = (purpose or "").strip().upper()
    if text in {"GRU", "HMB", "POA"}:
        return Purpose(text)
    if text.startswith("DS:") or text.startswith("DS-"):
        try:
            return Purpose("DS", normalise_icd10(text[3:], field="purpose"))
        except ValidationError as exc:
            raise ValidationError(
                f"purpose '{purpose}' has no valid ICD-10 code after 'DS:'; "
                f"a purpose is one of {PURPOSE_FORMS}",
                field="purpose",
                value=purpose,
            ) from exc
    raise ValidationError(
        f"purpose '{purpose}' is not one of {PURPOSE_FORMS}", field="purpose", value=purpose
    )


def current_consent_sql() -> str:
    """Return SQL selecting each participant's current consent row (latest signed, then seq)."""
    return (
        "SELECT * FROM consent QUALIFY row_number() OVER ("
        "PARTITION BY participant_id ORDER BY signed_date DESC, consent_seq DESC) = 1"
    )


def permitted_participants_sql(purpose: str) -> str:
    """Return a SQL query with one column ``participant_id``: who ``purpose`` may use.

    The participants whose current consent (latest version) is not withdrawn
    and permits ``purpose`` (see the module docstring for the rules).

    Parameters
    ----------
    purpose
        ``GRU``, ``HMB``, ``POA`` or ``DS:<ICD-10 code>``.

    Raises
    ------
    ValidationError
        If ``purpose`` is not one of those forms.

    Examples
    --------
    >>> "participant_id" in permitted_participants_sql("DS:E11")
    True
    """
    p = parse_purpose(purpose)
    if p.code == "GRU":
        cond = "c.primary_code IN ('NRES', 'GRU')"
    elif p.code == "HMB":
        cond = "c.primary_code IN ('NRES', 'GRU', 'HMB')"
    elif p.code == "POA":
        cond = "c.primary_code IN ('NRES', 'GRU', 'POA')"
    else:
        assert p.disease is not None
        # parse_purpose allows only [A-Z0-9.] in the code, so the literal is safe
        compact = icd10.compact(p.disease)
        cond = (
            "(c.primary_code IN ('NRES', 'GRU', 'HMB') OR (c.primary_code = 'DS'"
            f" AND starts_with('{compact}', upper(replace(c.disease, '.', '')))))"
        )
    return (
        f"SELECT c.participant_id FROM ({current_consent_sql()}) AS c"
        f" WHERE c.withdrawn_date IS NULL AND {cond}"
    )


def consent_permits(primary_code: str, disease: str | None, purpose: str | Purpose) -> bool:
    """Return whether a (not withdrawn) consent with these codes permits ``purpose``."""
    p = purpose if isinstance(purpose, Purpose) else parse_purpose(purpose)
    if primary_code in {"NRES", "GRU"}:
        return True
    if primary_code == "HMB":
        return p.code in {"HMB", "DS"}
    if primary_code == "POA":
        return p.code == "POA"
    if primary_code == "DS" and p.code == "DS" and disease and p.disease:
        return icd10.compact(p.disease).startswith(icd10.compact(disease))
    return False


def permitted_participants(con: duckdb.DuckDBPyConnection, purpose: str) -> list[str]:
    """Return the sorted pseudonyms of participants whose current consent permits ``purpose``.

    Raises
    ------
    ValidationError
        If ``purpose`` is malformed.
    """
    sql = permitted_participants_sql(purpose)
    return [r[0] for r in con.execute(f"SELECT participant_id FROM ({sql}) ORDER BY 1").fetchall()]


@dataclass(frozen=True)
class ConsentCodes:
    """Parsed ``duo_codes``: the primary code, the ICD-10 disease (DS only), the modifiers."""

    primary_code: str
    disease: str | None
    modifiers: tuple[str, ...]


def parse_duo_codes(duo_codes: str, disease: str | None = None) -> ConsentCodes:
    """Parse ``;``-separated DUO codes (one primary code plus modifiers) and the DS disease.

    ``DS:E11`` in ``duo_codes`` is accepted as well as ``DS`` with ``disease=E11``.

    Raises
    ------
    ValidationError
        Naming the bad code, a missing or second primary code, or a disease
        missing for DS (or given without DS).
    """
    tokens = [t.strip().upper() for t in (duo_codes or "").split(";") if t.strip()]
    primary: list[str] = []
    modifiers: list[str] = []
    disease_code = (disease or "").strip() or None
    for token in tokens:
        if token.startswith("DS:"):
            inline = normalise_icd10(token[3:], field="duo_codes")
            if disease_code and normalise_icd10(disease_code) != inline:
                raise ValidationError(
                    f"duo_codes says {token} but disease says {disease_code}: "
                    "give the disease once",
                    field="disease",
                    value=disease_code,
                )
            disease_code = inline
            token = "DS"
        if token in DUO_PRIMARY:
            primary.append(token)
        elif token in DUO_MODIFIERS:
            if token not in modifiers:
                modifiers.append(token)
        else:
            raise ValidationError(
                f"'{token}' is not a DUO code: use one of {', '.join(DUO_PRIMARY)} "
                f"plus modifiers from {', '.join(DUO_MODIFIERS)}",
                field="duo_codes",
                value=duo_codes,
            )
    if len(primary) != 1:
        raise ValidationError(
            f"duo_codes needs exactly one primary code ({', '.join(DUO_PRIMARY)}), "
            f"found {len(primary)}{': ' + ', '.join(primary) if primary else ''}",
            field="duo_codes",
            value=duo_codes,
        )
    code = primary[0]
    if code == "DS":
        if not disease_code:
            raise ValidationError(
                "a DS (disease-specific) consent needs the ICD-10 code of the disease "
                "in column disease (e.g. E11)",
                field="disease",
                value="",
            )
        disease_code = normalise_icd10(disease_code)
    elif disease_code:
        raise ValidationError(
            f"disease is only given for DS consents, but the primary code is {code}: "
            "leave disease empty or use DS",
            field="disease",
            value=disease_code,
        )
    return ConsentCodes(code, disease_code if code == "DS" else None, tuple(modifiers))


def current_consent(con: duckdb.DuckDBPyConnection, participant_id: str) -> dict[str, Any] | None:
    """Return the participant's current consent as a dict (or ``None`` if there is none)."""
    cur = con.execute(
        f"SELECT * FROM ({current_consent_sql()}) WHERE participant_id = ?", [participant_id]
    )
    row = cur.fetchone()
    if row is None:
        return None
    names = [d[0] for d in cur.description]
    return dict(zip(names, row, strict=True))


def _check_participant(con: duckdb.DuckDBPyConnection, participant_id: str) -> dt.date:
    row = con.execute(
        "SELECT enrolment_date FROM participant WHERE participant_id = ?", [participant_id]
    ).fetchone()
    if row is None:
        raise NotFoundError(
            f"no participant {participant_id}: register the participant before the consent"
        )
    enrolled: dt.date = row[0]
    return enrolled


def consent_row(
    con: duckdb.DuckDBPyConnection,
    participant_id: str,
    *,
    version: str,
    signed_date: dt.date,
    codes: ConsentCodes,
    withdrawn_date: dt.date | None = None,
) -> dict[str, Any]:
    """Return the consent row to insert (validated dates, next ``consent_seq``).

    Raises
    ------
    ValidationError
        If a date is in the future or the withdrawal precedes the signature.
    """
    today = dt.date.today()
    if signed_date > today:
        raise ValidationError(
            f"signed_date {signed_date} is in the future", field="signed_date", value=signed_date
        )
    if withdrawn_date is not None:
        if withdrawn_date > today:
            raise ValidationError(
                f"withdrawn_date {withdrawn_date} is in the future",
                field="withdrawn_date",
                value=withdrawn_date,
            )
        if withdrawn_date < signed_date:
            raise ValidationError(
                f"withdrawn_date {withdrawn_date} is before signed_date {signed_date}",
                field="withdrawn_date",
                value=withdrawn_date,
            )
    seq = con.execute("SELECT nextval('consent_seq')").fetchone()
    assert seq is not None
    return {
        "participant_id": participant_id,
        "consent_version": version,
        "consent_seq": int(seq[0]),
        "signed_date": signed_date,
        "primary_code": codes.primary_code,
        "disease": codes.disease,
        "modifiers": ";".join(codes.modifiers),
        "withdrawn_date": withdrawn_date,
    }


def add_consent(
    store: Store,
    principal: Principal,
    participant_id: str,
    *,
    version: str,
    signed_date: dt.date,
    duo_codes: str,
    disease: str | None = None,
    reason: str = "consent signed",
) -> dict[str, Any]:
    """Register a new consent version for a participant.

    Parameters
    ----------
    store
        The store.
    principal
        Who registers it (needs ``registry_write``).
    participant_id
        The participant's pseudonym.
    version
        The consent form version (e.g. ``v2``); unique per participant.
    signed_date
        When it was signed.
    duo_codes
        ``;``-separated DUO codes, e.g. ``HMB;IRB;PUB`` or ``DS;NPU``.
    disease
        ICD-10 code for a DS consent.
    reason
        Why (kept with the event).

    Returns
    -------
    dict
        The consent row written.

    Raises
    ------
    AccessDenied
        Without ``registry_write``.
    NotFoundError
        If the participant is not registered.
    ConflictError
        If that version is already registered for the participant.
    ValidationError
        For bad codes or dates.
    """
    require(principal, Permission.REGISTRY_WRITE)
    version = (version or "").strip()
    if not version:
        raise ValidationError("consent_version must not be empty", field="consent_version")
    codes = parse_duo_codes(duo_codes, disease)
    with store.transaction() as con:
        _check_participant(con, participant_id)
        if con.execute(
            "SELECT 1 FROM consent WHERE participant_id = ? AND consent_version = ?",
            [participant_id, version],
        ).fetchone():
            raise ConflictError(
                f"consent version '{version}' is already registered for {participant_id}: "
                "register a new version instead"
            )
        row = consent_row(
            con, participant_id, version=version, signed_date=signed_date, codes=codes
        )
        events.emit(con, principal, "consent", "create", row, reason=reason)
        audit.record(
            con,
            principal,
            "consent.create",
            participant_id,
            {"version": version, "codes": duo_codes},
        )
    return row


def withdraw_consent(
    store: Store,
    principal: Principal,
    participant_id: str,
    *,
    withdrawn_date: dt.date | None = None,
    reason: str,
) -> dict[str, Any]:
    """Record that a participant withdrew consent; effective at once for every query and export.

    Parameters
    ----------
    store
        The store.
    principal
        Who records it (needs ``registry_write``).
    participant_id
        The participant's pseudonym.
    withdrawn_date
        When the participant withdrew (default: today).
    reason
        Why (required; kept with the event).

    Returns
    -------
    dict
        The withdrawn consent.

    Raises
    ------
    AccessDenied
        Without ``registry_write``.
    NotFoundError
        If the participant or their consent is not registered.
    ConsentError
        If the current consent is already withdrawn.
    ValidationError
        If the date is in the future or before the consent was signed, or no reason is given.
    """
    require(principal, Permission.REGISTRY_WRITE)
    if not reason.strip():
        raise ValidationError("give the reason for the withdrawal", field="reason")
    when = withdrawn_date or dt.date.today()
    with store.transaction() as con:
        _check_participant(con, participant_id)
        current = current_consent(con, participant_id)
        if current is None:
            raise NotFoundError(f"{participant_id} has no consent to withdraw")
        if current["withdrawn_date"] is not None:
            raise ConsentError(
                f"the current consent ({current['consent_version']}) of {participant_id} was "
                f"already withdrawn on {current['withdrawn_date']}"
            )
        if when > dt.date.today():
            raise ValidationError(
                f"withdrawn_date {when} is in the future", field="withdrawn_date", value=when
            )
        if when < current["signed_date"]:
            raise ValidationError(
                f"withdrawn_date {when} is before the consent was signed "
                f"({current['signed_date']})",
                field="withdrawn_date",
                value=when,
            )
        data = {
            "participant_id": participant_id,
            "consent_version": current["consent_version"],
            "withdrawn_date": when,
        }
        events.emit(con, principal, "consent", "withdraw", data, reason=reason)
        audit.record(
            con,
            principal,
            "consent.withdraw",
            participant_id,
            {"version": current["consent_version"], "date": when.isoformat(), "reason": reason},
        )
    current["withdrawn_date"] = when
    return current
