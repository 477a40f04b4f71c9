"""Cohort definitions: clinical criteria combined with ``&``, ``|``, ``~`` and compiled to SQL.

A criterion selects participants from the clinical tables (see
:mod:`biobank.clinical.load`)::

    >>> t2d = Diagnosis("E11") & Lab("HbA1c", ">=", 6.5)
    >>> controls = ~Diagnosis("E10-E14") & Age(min=40, at="2024-01-01")
    >>> Criterion.from_json(t2d.to_json()) == t2d
    True

==================  ===================================================================
criterion           selects participants who
==================  ===================================================================
``Diagnosis``       have a diagnosis under any of the ICD-10 patterns (``E11`` matches
                    ``E11.9`` and ``E11.900x001``; ranges ``I20-I25``), optionally
                    within a date window and an age-at-diagnosis range
``Sex``             are ``female`` or ``male``
``Age``             are in an age range at a date (default: today)
``Lab``             have a measurement (``HbA1c``, ``LDL-C`` ...) meeting a threshold,
                    at any time in a window or for the latest value in it
``Died``            died (in a window, of a cause under the given patterns)
``InStudy``         belong to a registry study cohort (``T2D``, ``CAD``)
``And/Or/Not``      combine criteria (written ``a & b``, ``a | b``, ``~a``)
==================  ===================================================================

Ages are in whole years, **event year minus year of birth**: the store keeps only
the year of birth, so an age can be one year more than the exact age.

Criteria are evaluated only over the participants with clinical data whose
current consent permits the purpose (:func:`cohort_sql`), so a withdrawal takes
effect in every saved cohort at its next use. Saved cohorts
(:func:`save_cohort`) store only the JSON definition, never the members.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, ClassVar

import duckdb
import polars as pl

from biobank.core import audit, icd10
from biobank.core.access import Permission, Principal, require
from biobank.core.errors import ConflictError, NotFoundError, ValidationError

if TYPE_CHECKING:
    from biobank.core.store import Store

__all__ = [
    "Age",
    "And",
    "Criterion",
    "Diagnosis",
    "Died",
    "InStudy",
    "Lab",
    "Not",
    "Or",
    "Sex",
    "case_control_sql",
    "case_diagnoses",
    "cohort_sql",
    "criterion_from_options",
    "get_cohort",
    "list_cohorts",
    "parse_lab",
    "save_cohort",
    "universe_sql",
]

logger = logging.getLogger(__name__)

_OPERATORS = (">=", "<=", "!=", ">", "<", "=")
_NAME = re.compile(r"^[A-Za-z][\w.-]{0,63}$")

SqlPart = tuple[str, list[Any]]


def _date(value: str | dt.date | None, field: str) -> dt.date | None:
    if value is None or isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError as exc:
        raise ValidationError(
            "not a date in the form YYYY-MM-DD", field=field, value=value
        ) from exc


def _window(column: str, after: dt.date | None, before: dt.date | None) -> SqlPart:
    sql, params = "", []
    if after is not None:
        sql += f" AND {column} >= ?"
        params.append(after)
    if before is not None:
        sql += f" AND {column} <= ?"
        params.append(before)
    return sql, params


def _patterns(codes: Sequence[str], column: str, field: str) -> SqlPart:
    parts, params = [], []
    for code in codes:
        sql, p = icd10.parse_pattern(code, field=field).sql(column)
        parts.append(sql)
        params.extend(p)
    return "(" + " OR ".join(parts) + ")", params


class Criterion:
    """Base of every criterion: combine with ``&``, ``|``, ``~``; serialise with JSON."""

    kind: ClassVar[str] = ""
    _registry: ClassVar[dict[str, type[Criterion]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.kind:
            Criterion._registry[cls.kind] = cls

    def __and__(self, other: Criterion) -> Criterion:
        return And((self, other))

    def __or__(self, other: Criterion) -> Criterion:
        return Or((self, other))

    def __invert__(self) -> Criterion:
        return Not(self)

    def sql(self) -> SqlPart:
        """Return a SQL condition on alias ``p`` (``clinical_person``) and its parameters."""
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON-ready form ``{"type": ..., <fields>}``."""
        out: dict[str, Any] = {"type": self.kind}
        for f in fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if isinstance(value, dt.date):
                value = value.isoformat()
            elif isinstance(value, Criterion):
                value = value.to_dict()
            elif isinstance(value, tuple):
                value = [v.to_dict() if isinstance(v, Criterion) else v for v in value]
            if value is not None:
                out[f.name] = value
        return out

    def to_json(self) -> str:
        """Return the definition as a JSON string."""
        return json.dumps(self.to_dict(), sort_keys=True)

    @staticmethod
    def from_dict(data: dict[str, Any]) -> Criterion:
        """Build a criterion from its :meth:`to_dict` form.

        Raises
        ------
        ValidationError
            If the type is unknown or a field is invalid.
        """
        if not isinstance(data, dict) or "type" not in data:
            raise ValidationError(
                'a criterion is an object with a "type" (diagnosis, sex, age, lab, died, '
                "study, and, or, not)",
                field="type",
                value=str(data)[:80],
            )
        kind = data["type"]
        cls = Criterion._registry.get(kind)
        if cls is None:
            raise ValidationError(
                f"unknown criterion type: use one of {', '.join(sorted(Criterion._registry))}",
                field="type",
                value=kind,
            )
        args = {k: v for k, v in data.items() if k != "type"}
        try:
            if cls in (And, Or):
                return cls(tuple(Criterion.from_dict(a) for a in args["args"]))
            if cls is Not:
                return Not(Criterion.from_dict(args["arg"]))
            for key, value in list(args.items()):
                if isinstance(value, list):
                    args[key] = tuple(value)
            return cls(**args)
        except (TypeError, KeyError) as exc:
            raise ValidationError(
                f"bad fields for a '{kind}' criterion: {exc}", field=kind, value=str(args)[:80]
            ) from exc

    @staticmethod
    def from_json(text: str) -> Criterion:
        """Build a criterion from a JSON string (see :meth:`to_json`)."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValidationError(f"not valid JSON: {exc}", value=text[:80]) from exc
        return Criterion.from_dict(data)

    def walk(self, *, negated: bool = False) -> Iterator[tuple[Criterion, bool]]:
        """Yield every node with whether it sits under an odd number of ``Not``."""
        yield self, negated


@dataclass(frozen=True)
class Diagnosis(Criterion):
    """Participants with a diagnosis under any of ``codes``.

    Parameters
    ----------
    codes
        ICD-10 codes or ranges (``"E11"``, ``"I20-I25"``); a single string is one code.
    after, before
        Diagnosis date window (inclusive).
    min_age, max_age
        Age at diagnosis (inclusive; event year minus year of birth).
    """

    kind: ClassVar[str] = "diagnosis"
    codes: tuple[str, ...]
    after: dt.date | None = None
    before: dt.date | None = None
    min_age: int | None = None
    max_age: int | None = None

    def __init__(
        self,
        codes: str | Sequence[str],
        *more: str,
        after: str | dt.date | None = None,
        before: str | dt.date | None = None,
        min_age: int | None = None,
        max_age: int | None = None,
    ) -> None:
        items = (codes,) if isinstance(codes, str) else tuple(codes)
        items = items + more
        if not items:
            raise ValidationError("a Diagnosis needs at least one ICD-10 code", field="codes")
        normal = tuple(icd10.parse_pattern(c, field="codes").text for c in items)
        object.__setattr__(self, "codes", normal)
        object.__setattr__(self, "after", _date(after, "after"))
        object.__setattr__(self, "before", _date(before, "before"))
        object.__setattr__(self, "min_age", min_age)
        object.__setattr__(self, "max_age", max_age)

    def sql(self) -> SqlPart:
        cond, params = _patterns(self.codes, "c.code_compact", "codes")
        win, wparams = _window("c.start_date", self.after, self.before)
        age = ""
        if self.min_age is not None:
            age += " AND year(c.start_date) - p.year_of_birth >= ?"
            wparams.append(self.min_age)
        if self.max_age is not None:
            age += " AND year(c.start_date) - p.year_of_birth <= ?"
            wparams.append(self.max_age)
        return (
            "EXISTS (SELECT 1 FROM clinical_condition c WHERE c.participant_id = p.participant_id"
            f" AND {cond}{win}{age})",
            params + wparams,
        )


@dataclass(frozen=True)
class Sex(Criterion):
    """Participants of one sex: ``"female"`` or ``"male"`` (``F``/``M`` accepted)."""

    kind: ClassVar[str] = "sex"
    sex: str

    def __post_init__(self) -> None:
        value = {"f": "female", "m": "male"}.get(self.sex.lower(), self.sex.lower())
        if value not in ("female", "male"):
            raise ValidationError("sex must be female or male", field="sex", value=self.sex)
        object.__setattr__(self, "sex", value)

    def sql(self) -> SqlPart:
        return "p.sex = ?", [self.sex]


@dataclass(frozen=True)
class Age(Criterion):
    """Participants aged ``min``..``max`` (inclusive) at date ``at`` (default: today)."""

    kind: ClassVar[str] = "age"
    min: int | None = None
    max: int | None = None
    at: dt.date | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "at", _date(self.at, "at"))
        if self.min is None and self.max is None:
            raise ValidationError("Age needs min or max", field="age")

    def sql(self) -> SqlPart:
        at = self.at or dt.date.today()
        parts, params = [], []
        if self.min is not None:
            parts.append("? - p.year_of_birth >= ?")
            params += [at.year, self.min]
        if self.max is not None:
            parts.append("? - p.year_of_birth <= ?")
            params += [at.year, self.max]
        return "(" + " AND ".join(parts) + ")", params


@dataclass(frozen=True)
class Lab(Criterion):
    """Participants with a measurement ``name`` ``op`` ``value``.

    Parameters
    ----------
    name
        The measurement name as loaded (``HbA1c``, case-insensitive).
    op
        One of ``>=``, ``>``, ``<=``, ``<``, ``=``, ``!=``.
    value
        The threshold, in the unit of the loaded values.
    which
        ``"any"``: some measurement in the window meets it; ``"latest"``: the
        latest measurement in the window does.
    after, before
        Measurement date window (inclusive).
    """

    kind: ClassVar[str] = "lab"
    name: str
    op: str
    value: float
    which: str = "any"
    after: dt.date | None = None
    before: dt.date | None = None

    def __post_init__(self) -> None:
        if self.op not in _OPERATORS:
            raise ValidationError(
                f"lab operator must be one of {' '.join(_OPERATORS)}", field="op", value=self.op
            )
        if self.which not in ("any", "latest"):
            raise ValidationError(
                "which must be 'any' or 'latest'", field="which", value=self.which
            )
        object.__setattr__(self, "value", float(self.value))
        object.__setattr__(self, "after", _date(self.after, "after"))
        object.__setattr__(self, "before", _date(self.before, "before"))

    def sql(self) -> SqlPart:
        win, wparams = _window("m.measured_on", self.after, self.before)
        base = (
            "FROM clinical_measurement m WHERE m.participant_id = p.participant_id"
            f" AND lower(m.name) = lower(?){win}"
        )
        if self.which == "any":
            return f"EXISTS (SELECT 1 {base} AND m.value {self.op} ?)", [
                self.name,
                *wparams,
                self.value,
            ]
        return f"coalesce((SELECT arg_max(m.value, m.measured_on) {base}) {self.op} ?, FALSE)", [
            self.name,
            *wparams,
            self.value,
        ]


@dataclass(frozen=True)
class Died(Criterion):
    """Participants who died, optionally in a window and of a cause under ``causes``."""

    kind: ClassVar[str] = "died"
    causes: tuple[str, ...] = ()
    after: dt.date | None = None
    before: dt.date | None = None

    def __post_init__(self) -> None:
        causes = (self.causes,) if isinstance(self.causes, str) else tuple(self.causes)
        object.__setattr__(
            self, "causes", tuple(icd10.parse_pattern(c, field="causes").text for c in causes)
        )
        object.__setattr__(self, "after", _date(self.after, "after"))
        object.__setattr__(self, "before", _date(self.before, "before"))

    def sql(self) -> SqlPart:
        win, params = _window("d.death_date", self.after, self.before)
        cause = ""
        if self.causes:
            cond, cparams = _patterns(self.causes, "d.cause_compact", "causes")
            cause = f" AND {cond}"
            params = params + cparams
        return (
            "EXISTS (SELECT 1 FROM clinical_death d WHERE d.participant_id = p.participant_id"
            f"{win}{cause})",
            params,
        )

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        if not self.causes:
            out.pop("causes", None)
        return out


@dataclass(frozen=True)
class InStudy(Criterion):
    """Participants enrolled in a registry study cohort (``participants.csv`` column cohorts)."""

    kind: ClassVar[str] = "study"
    study: str

    def sql(self) -> SqlPart:
        return (
            "EXISTS (SELECT 1 FROM participant_cohort s WHERE s.participant_id = p.participant_id"
            " AND s.cohort = ?)",
            [self.study],
        )


@dataclass(frozen=True)
class And(Criterion):
    """All of ``args``."""

    kind: ClassVar[str] = "and"
    args: tuple[Criterion, ...]

    def __and__(self, other: Criterion) -> Criterion:
        return And((*self.args, other))

    def sql(self) -> SqlPart:
        parts = [a.sql() for a in self.args]
        return "(" + " AND ".join(s for s, _ in parts) + ")", [x for _, p in parts for x in p]

    def walk(self, *, negated: bool = False) -> Iterator[tuple[Criterion, bool]]:
        yield self, negated
        for a in self.args:
            yield from a.walk(negated=negated)


@dataclass(frozen=True)
class Or(Criterion):
    """Any of ``args``."""

    kind: ClassVar[str] = "or"
    args: tuple[Criterion, ...]

    def __or__(self, other: Criterion) -> Criterion:
        return Or((*self.args, other))

    def sql(self) -> SqlPart:
        parts = [a.sql() for a in self.args]
        return "(" + " OR ".join(s for s, _ in parts) + ")", [x for _, p in parts for x in p]

    def walk(self, *, negated: bool = False) -> Iterator[tuple[Criterion, bool]]:
        yield self, negated
        for a in self.args:
            yield from a.walk(negated=negated)


@dataclass(frozen=True)
class Not(Criterion):
    """Not ``arg``."""

    kind: ClassVar[str] = "not"
    arg: Criterion

    def sql(self) -> SqlPart:
        s, p = self.arg.sql()
        return f"(NOT {s})", p

    def walk(self, *, negated: bool = False) -> Iterator[tuple[Criterion, bool]]:
        yield self, negated
        yield from self.arg.walk(negated=not negated)


_LAB_TEXT = re.compile(
    r"^\s*(?P<name>[^<>=!]+?)\s*(?P<op>>=|<=|!=|>|<|=)\s*(?P<value>[-+0-9.eE]+)\s*$"
)


def parse_lab(text: str, *, which: str = "any") -> Lab:
    """Parse a lab threshold written as ``NAME OP VALUE`` (``HbA1c>=6.5``).

    Raises
    ------
    ValidationError
        If the text is not of that form.

    Examples
    --------
    >>> parse_lab("HbA1c >= 6.5", which="latest")
    Lab(name='HbA1c', op='>=', value=6.5, which='latest', after=None, before=None)
    """
    m = _LAB_TEXT.match(text or "")
    if m is None:
        raise ValidationError(
            "a lab threshold is NAME OP VALUE, e.g. 'HbA1c>=6.5' or 'LDL-C<3.4'",
            field="lab",
            value=text,
        )
    try:
        value = float(m["value"])
    except ValueError as exc:
        raise ValidationError("the threshold is not a number", field="lab", value=text) from exc
    return Lab(m["name"], m["op"], value, which=which)


def criterion_from_options(
    *,
    diagnoses: Sequence[str] = (),
    exclude_diagnoses: Sequence[str] = (),
    diagnosed_after: str | None = None,
    diagnosed_before: str | None = None,
    sex: str | None = None,
    min_age: int | None = None,
    max_age: int | None = None,
    age_at: str | None = None,
    labs: Sequence[str] = (),
    lab_which: str = "any",
    died: bool | None = None,
    studies: Sequence[str] = (),
) -> Criterion | None:
    """Build the AND of command-line style options (``biobank cohort define``).

    Returns ``None`` when no option is given (everyone).
    """
    parts: list[Criterion] = []
    if diagnoses:
        parts.append(Diagnosis(diagnoses, after=diagnosed_after, before=diagnosed_before))
    elif diagnosed_after or diagnosed_before:
        raise ValidationError("a diagnosis date window needs --diagnosis", field="diagnosis")
    if exclude_diagnoses:
        parts.append(Not(Diagnosis(exclude_diagnoses)))
    if sex:
        parts.append(Sex(sex))
    if min_age is not None or max_age is not None:
        parts.append(Age(min=min_age, max=max_age, at=_date(age_at, "age_at")))
    parts.extend(parse_lab(t, which=lab_which) for t in labs)
    if died is not None:
        parts.append(Died() if died else Not(Died()))
    parts.extend(InStudy(s) for s in studies)
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else And(tuple(parts))


def universe_sql(purpose: str) -> str:
    """Return SQL for the participants a purpose may use: with clinical data and consent.

    The query has the columns of ``clinical_person`` (participant_id, sex,
    year_of_birth) and is meant as ``FROM (...) p``.
    """
    from biobank.registry.consent import permitted_participants_sql

    return (
        "SELECT cp.participant_id, cp.sex, cp.year_of_birth FROM clinical_person cp"
        f" WHERE cp.participant_id IN ({permitted_participants_sql(purpose)})"
    )


def cohort_sql(criterion: Criterion | None, *, purpose: str) -> SqlPart:
    """Return SQL (and parameters) selecting ``participant_id`` of a cohort.

    Parameters
    ----------
    criterion
        The definition; ``None`` means everyone the purpose may use.
    purpose
        The research purpose, matched against consents.
    """
    where, params = criterion.sql() if criterion is not None else ("TRUE", [])
    return (
        f"SELECT p.participant_id FROM ({universe_sql(purpose)}) p WHERE {where}"
        " ORDER BY p.participant_id",
        params,
    )


def case_diagnoses(criterion: Criterion) -> tuple[str, ...]:
    """Return the diagnosis patterns a case definition requires (not under a ``Not``)."""
    codes: list[str] = []
    for node, negated in criterion.walk():
        if isinstance(node, Diagnosis) and not negated:
            codes.extend(c for c in node.codes if c not in codes)
    return tuple(codes)


def case_control_sql(
    cases: Criterion, controls: Criterion | None = None, *, purpose: str
) -> SqlPart:
    """Return SQL with ``participant_id, is_case`` for cases and their controls.

    Controls are the participants matching ``controls`` (default: everyone the
    purpose may use) who are not cases and have **no diagnosis under the case
    codes** at all (e.g. a person with E11 outside the case window, or failing
    an HbA1c threshold, is neither case nor control).
    """
    case_where, case_params = cases.sql()
    excl = case_diagnoses(cases)
    parts: list[SqlPart] = []
    if controls is not None:
        parts.append(controls.sql())
    if excl:
        parts.append(Not(Diagnosis(excl)).sql())
    ctrl_where = " AND ".join(s for s, _ in parts) or "TRUE"
    ctrl_params = [x for _, p in parts for x in p]
    return (
        "SELECT participant_id, is_case FROM ("
        f"SELECT p.participant_id, ({case_where}) AS is_case, ({ctrl_where}) AS is_control"
        f" FROM ({universe_sql(purpose)}) p) WHERE is_case OR is_control"
        " ORDER BY participant_id",
        case_params + ctrl_params,
    )


def save_cohort(
    store: Store,
    principal: Principal,
    name: str,
    criterion: Criterion,
    *,
    description: str = "",
    replace: bool = False,
) -> None:
    """Save a named cohort definition (only the definition; members are re-computed on use).

    Raises
    ------
    AccessDenied
        Unless the principal is a researcher.
    ValidationError
        If the name is not a letter followed by letters, digits, ``_.-`` (max 64).
    ConflictError
        If the name exists and ``replace`` is false.
    """
    require(principal, Permission.RESEARCH_READ)
    if not _NAME.match(name):
        raise ValidationError(
            "a cohort name starts with a letter and has up to 64 letters, digits, _ . -",
            field="name",
            value=name,
        )
    with store.transaction() as con:
        exists = con.execute("SELECT 1 FROM cohort_definition WHERE name = ?", [name]).fetchone()
        if exists and not replace:
            raise ConflictError(
                f"a cohort named '{name}' exists: choose another name or replace it"
            )
        con.execute("DELETE FROM cohort_definition WHERE name = ?", [name])
        con.execute(
            "INSERT INTO cohort_definition VALUES (?, ?, ?, ?, ?)",
            [
                name,
                criterion.to_json(),
                description,
                principal.user,
                dt.datetime.now(dt.UTC).replace(tzinfo=None),
            ],
        )
        audit.record(
            con,
            principal,
            "cohort.define",
            name,
            {"definition": criterion.to_dict(), "replaced": bool(exists)},
        )


def get_cohort(con: duckdb.DuckDBPyConnection, name: str) -> Criterion:
    """Return a saved cohort's definition.

    Raises
    ------
    NotFoundError
        If there is no cohort with that name.
    """
    row = con.execute(
        "SELECT CAST(definition AS VARCHAR) FROM cohort_definition WHERE name = ?", [name]
    ).fetchone()
    if row is None:
        raise NotFoundError(f"no saved cohort named '{name}': list them with 'biobank cohort list'")
    return Criterion.from_json(str(row[0]))


def list_cohorts(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """Return the saved cohorts: name, description, definition (JSON), created_by, created_at."""
    return con.execute(
        "SELECT name, description, CAST(definition AS VARCHAR) AS definition, created_by,"
        " created_at FROM cohort_definition ORDER BY name"
    ).pl()
