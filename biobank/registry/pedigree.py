"""Pedigrees: families of participants, registered from PED files or one member at a time.

A family is a set of participants with their father and mother (when known),
whether they are affected by the family's disease, and optional monozygotic
twin groups. The input is the PED format of plink and bcftools, with people
named by their **resident identity number**, hashed to the participant
pseudonym on the way in like every other registry input::

    # family  individual          father              mother              sex  phenotype [twin]
    FAM01     110105198001010011  0                   0                   1    1
    FAM01     110105198203040026  0                   0                   2    1
    FAM01     110105201005060035  110105198001010011  110105198203040026  1    2

Columns are separated by tabs or spaces; ``0`` is an unknown parent; sex is
``1`` male, ``2`` female, ``0`` unknown (then the registered sex is used);
phenotype ``1`` unaffected, ``2`` affected, ``0`` or ``-9`` unknown; the optional
seventh column names a monozygotic twin group (``.`` or ``0`` for none).

A pedigree is refused, with the file and line of every problem and nothing
written, when a person is not registered, is listed twice (or with
conflicting parents, here or in the store), a parent has no line of their own
in the family, a father is not male or a mother not female, a parent is
younger than the child plus :data:`MIN_PARENT_AGE` years, a person is their
own ancestor (a cycle), or twins do not share parents, birth year (and sex).

Every accepted member is a ``family_member`` registry event
(:mod:`biobank.registry.events`), so replay reproduces the table.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import polars as pl

from biobank.core import audit
from biobank.core.access import Permission, Principal, require
from biobank.core.errors import ImportRejected, Problem, ValidationError
from biobank.core.ids import center_key, pseudonym, validate_national_id
from biobank.registry import affected, events
from biobank.registry.visibility import participant_visibility_sql

if TYPE_CHECKING:
    from biobank.core.store import Store

__all__ = [
    "AFFECTED_STATUSES",
    "MIN_PARENT_AGE",
    "FamilyMember",
    "PedRow",
    "PedigreeImport",
    "family_members",
    "import_pedigree",
    "parse_ped",
    "read_ped",
    "register_family",
    "validate_family",
]

logger = logging.getLogger(__name__)

#: A parent must be born at least this many years before the child (birth years).
MIN_PARENT_AGE = 12
AFFECTED_STATUSES = ("affected", "unaffected", "unknown")
_PHENOTYPE = {"1": "unaffected", "2": "affected", "0": "unknown", "-9": "unknown"}
_SEX = {"1": "male", "2": "female", "0": None}
_NONE = {"", "0", "."}


@dataclass(frozen=True)
class PedRow:
    """One line of a PED file (or one member given through the API), as written.

    ``individual``, ``father`` and ``mother`` are resident identity numbers
    (``"0"`` for an unknown parent); ``line`` is 1-based in ``file``.
    """

    family_id: str
    individual: str
    father: str = "0"
    mother: str = "0"
    sex: str = "0"
    phenotype: str = "0"
    twin_group: str = "."
    line: int | None = None


@dataclass(frozen=True)
class FamilyMember:
    """A validated family member: pseudonyms and the statuses stored."""

    family_id: str
    participant_id: str
    father_id: str | None
    mother_id: str | None
    affected: str
    twin_group: str | None


@dataclass
class PedigreeImport:
    """What a pedigree import did."""

    source: str
    families: int
    members: int
    created: int
    unchanged: int

    def as_dict(self) -> dict[str, Any]:
        """Return the result as a plain dict (for printing)."""
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def read_ped(path: str | Path) -> list[PedRow]:
    """Read a PED file (see the module docstring) into rows.

    Raises
    ------
    ValidationError
        If the file cannot be read or a line has fewer than 6 or more than 7 columns.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise ValidationError(f"cannot read the PED file: {exc}", file=path) from exc
    return parse_ped(text, file=path)


def parse_ped(text: str, *, file: str | Path | None = None) -> list[PedRow]:
    """Parse PED text (a file's content, or lines typed in a form); see :func:`read_ped`.

    Raises
    ------
    ValidationError
        If a line has fewer than 6 or more than 7 columns, or there is no member.
    """
    path = file
    rows: list[PedRow] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split()
        if len(parts) not in (6, 7):
            raise ValidationError(
                f"a PED line has 6 columns (family, individual, father, mother, sex, "
                f"phenotype) and an optional twin group; this one has {len(parts)}",
                file=path,
                line=number,
                value=line[:80],
            )
        fam, ind, father, mother, sex, pheno = parts[:6]
        twin = parts[6] if len(parts) == 7 else "."
        rows.append(PedRow(fam, ind, father, mother, sex, pheno, twin, line=number))
    if not rows:
        raise ValidationError("the PED file has no members", file=path)
    return rows


def _registered(con: duckdb.DuckDBPyConnection, pids: Iterable[str]) -> dict[str, tuple[str, int]]:
    """participant_id -> (sex, birth_year) for the registered ones among ``pids``."""
    rows = con.execute(
        "SELECT participant_id, sex, birth_year FROM participant"
        " WHERE participant_id IN (SELECT unnest(?::VARCHAR[]))",
        [sorted(set(pids))],
    ).fetchall()
    return {r[0]: (r[1], int(r[2])) for r in rows}


def _stored_members(con: duckdb.DuckDBPyConnection) -> dict[tuple[str, str], FamilyMember]:
    rows = con.execute(
        "SELECT family_id, participant_id, father_id, mother_id, affected, twin_group"
        " FROM family_member"
    ).fetchall()
    return {(r[0], r[1]): FamilyMember(*r) for r in rows}


class _Checker:
    """Collects the problems of a set of PED rows (see :func:`validate_family`)."""

    def __init__(self, file: str | None) -> None:
        self.file = file
        self.problems: list[Problem] = []

    def bad(self, row: PedRow | None, message: str, fld: str, value: object = None) -> None:
        self.problems.append(
            Problem(
                message,
                file=self.file,
                line=row.line if row else None,
                field=fld,
                value=None if value is None else str(value),
            )
        )

    def person(self, row: PedRow, raw: str, fld: str, key: bytes) -> str | None:
        try:
            return pseudonym(validate_national_id(raw.strip(), field=fld), key)
        except ValidationError as exc:
            self.bad(row, exc.problem.message, fld)
            return None


def _parse_rows(
    chk: _Checker, rows: Sequence[PedRow], key: bytes
) -> list[tuple[PedRow, FamilyMember]]:
    """Hash identity numbers and decode the coded columns; report malformed values."""
    out: list[tuple[PedRow, FamilyMember]] = []
    for row in rows:
        n_before = len(chk.problems)
        if not row.family_id.strip() or len(row.family_id) > 64:
            chk.bad(row, "the family id must be 1-64 characters", "family_id", row.family_id)
        pid = chk.person(row, row.individual, "individual", key)
        father = None if row.father in _NONE else chk.person(row, row.father, "father", key)
        mother = None if row.mother in _NONE else chk.person(row, row.mother, "mother", key)
        if row.sex not in _SEX:
            chk.bad(row, "sex must be 1 (male), 2 (female) or 0 (unknown)", "sex", row.sex)
        if row.phenotype not in _PHENOTYPE:
            chk.bad(
                row,
                "phenotype must be 1 (unaffected), 2 (affected), 0 or -9 (unknown)",
                "phenotype",
                row.phenotype,
            )
        if pid is not None and pid in (father, mother):
            chk.bad(row, "a person cannot be their own parent", "father/mother")
        if father is not None and father == mother:
            chk.bad(row, "father and mother are the same person", "mother")
        if len(chk.problems) > n_before or pid is None:
            continue
        twin = None if row.twin_group in _NONE else row.twin_group
        member = FamilyMember(row.family_id, pid, father, mother, _PHENOTYPE[row.phenotype], twin)
        out.append((row, member))
    return out


def _check_registry(
    chk: _Checker,
    parsed: list[tuple[PedRow, FamilyMember]],
    known: dict[str, tuple[str, int]],
) -> None:
    """Registration, sex and parents' ages."""
    for row, m in parsed:
        if m.participant_id not in known:
            chk.bad(row, "this person is not registered: register them first", "individual")
            continue
        sex, year = known[m.participant_id]
        coded = _SEX.get(row.sex)
        if coded is not None and coded != sex:
            chk.bad(row, f"sex {row.sex} ({coded}) differs from the registered {sex}", "sex")
        for parent, fld, want in (
            (m.father_id, "father", "male"),
            (m.mother_id, "mother", "female"),
        ):
            if parent is None or parent not in known:
                continue
            p_sex, p_year = known[parent]
            if p_sex != want:
                chk.bad(row, f"the {fld} is registered as {p_sex}, not {want}", fld)
            if p_year > year - MIN_PARENT_AGE:
                chk.bad(
                    row,
                    f"the {fld} was born in {p_year}, the child in {year}: a parent must be "
                    f"at least {MIN_PARENT_AGE} years older",
                    fld,
                )


def _check_structure(chk: _Checker, parsed: list[tuple[PedRow, FamilyMember]]) -> None:
    """Duplicates, parents without a line of their own, cycles, twins."""
    by_family: dict[str, dict[str, tuple[PedRow, FamilyMember]]] = {}
    for row, m in parsed:
        fam = by_family.setdefault(m.family_id, {})
        if m.participant_id in fam:
            first = fam[m.participant_id]
            same = (first[1].father_id, first[1].mother_id) == (m.father_id, m.mother_id)
            what = "listed twice" if same else "listed twice with different parents"
            chk.bad(row, f"this person is {what} (first on line {first[0].line})", "individual")
            continue
        fam[m.participant_id] = (row, m)
    for fam in by_family.values():
        for row, m in fam.values():
            for parent, fld in ((m.father_id, "father"), (m.mother_id, "mother")):
                if parent is not None and parent not in fam:
                    chk.bad(
                        row,
                        f"the {fld} has no line of their own in family {m.family_id}: add one",
                        fld,
                    )
        _check_cycles(chk, fam)
        _check_twins(chk, fam)


def _check_cycles(chk: _Checker, fam: dict[str, tuple[PedRow, FamilyMember]]) -> None:
    """Report each person who is their own ancestor."""
    for pid, (row, _) in fam.items():
        seen: set[str] = set()
        stack = [p for p in (fam[pid][1].father_id, fam[pid][1].mother_id) if p]
        while stack:
            cur = stack.pop()
            if cur == pid:
                chk.bad(row, "this person is their own ancestor (a cycle of parents)", "individual")
                break
            if cur in seen or cur not in fam:
                continue
            seen.add(cur)
            stack += [p for p in (fam[cur][1].father_id, fam[cur][1].mother_id) if p]


def _check_twins(chk: _Checker, fam: dict[str, tuple[PedRow, FamilyMember]]) -> None:
    groups: dict[str, list[tuple[PedRow, FamilyMember]]] = {}
    for row, m in fam.values():
        if m.twin_group is not None:
            groups.setdefault(m.twin_group, []).append((row, m))
    for name, members in groups.items():
        first_row, first = members[0]
        if len(members) < 2:
            chk.bad(first_row, f"twin group {name!r} has one member", "twin_group", name)
        for row, m in members[1:]:
            if (m.father_id, m.mother_id) != (first.father_id, first.mother_id):
                chk.bad(row, f"twins of group {name!r} must have the same parents", "twin_group")


def _check_twin_registry(
    chk: _Checker, parsed: list[tuple[PedRow, FamilyMember]], known: dict[str, tuple[str, int]]
) -> None:
    first: dict[tuple[str, str], tuple[str, int]] = {}
    for row, m in parsed:
        if m.twin_group is None or m.participant_id not in known:
            continue
        sex_year = known[m.participant_id]
        ref = first.setdefault((m.family_id, m.twin_group), sex_year)
        if ref != sex_year:
            chk.bad(
                row,
                f"monozygotic twins share sex and birth year: {sex_year} differs from {ref}",
                "twin_group",
                m.twin_group,
            )


def validate_family(
    con: duckdb.DuckDBPyConnection,
    rows: Sequence[PedRow],
    key: bytes,
    *,
    file: str | None = None,
    ignore_affected: bool = False,
) -> tuple[list[FamilyMember], list[FamilyMember], list[Problem]]:
    """Validate PED rows against each other, the registry and the stored pedigrees.

    Rows of a family already stored are checked together with the stored
    members, so a member can be added to a registered family. With
    ``ignore_affected`` a stored member's overall status is not compared (the
    sixth column is another phenotype's status).

    Returns
    -------
    tuple
        ``(new, unchanged, problems)``: members to create, members already
        stored identically, and every problem found (empty when valid).
    """
    chk = _Checker(file)
    parsed = _parse_rows(chk, rows, key)
    stored = _stored_members(con)
    conflicts: list[tuple[PedRow, FamilyMember]] = []
    new: list[FamilyMember] = []
    unchanged: list[FamilyMember] = []
    for row, m in parsed:
        old = stored.get((m.family_id, m.participant_id))
        if old is not None and ignore_affected:
            old = dataclasses.replace(old, affected=m.affected)
        if old is None:
            new.append(m)
        elif old == m:
            unchanged.append(m)
        else:
            conflicts.append((row, m))
            chk.bad(
                row,
                f"family {m.family_id} already has this person with other parents, status "
                "or twin group: relations are not overwritten (ask an admin to correct them)",
                "individual",
            )
    for row, m in parsed:  # a person has one father and mother, in whichever family
        for (fam, pid), old in stored.items():
            if (
                pid == m.participant_id
                and fam != m.family_id
                and ((old.father_id, old.mother_id) != (m.father_id, m.mother_id))
            ):
                chk.bad(
                    row,
                    f"this person is registered in family {fam} with other parents",
                    "individual",
                )
    families = {m.family_id for _, m in parsed}
    context = [
        (PedRow(m.family_id, "", line=None), m)
        for (fam, pid), m in stored.items()
        if fam in families and not any(x.participant_id == pid for _, x in parsed)
    ]
    everyone = context + parsed
    pids = {m.participant_id for _, m in everyone}
    pids |= {p for _, m in everyone for p in (m.father_id, m.mother_id) if p}
    known = _registered(con, pids)
    _check_registry(chk, parsed, known)
    _check_structure(chk, everyone)
    _check_twin_registry(chk, everyone, known)
    return new, unchanged, chk.problems


def register_family(
    store: Store,
    principal: Principal,
    rows: Sequence[PedRow],
    *,
    source: str = "api",
    reason: str = "pedigree registration",
    phenotype: str | None = None,
) -> PedigreeImport:
    """Register family members (all or nothing); see the module docstring.

    Parameters
    ----------
    store, principal
        The store and who registers (needs ``registry_write``).
    rows
        The members, as PED rows with resident identity numbers.
    source
        Where the rows come from (a file path, or ``"api"``), for messages and audit.
    reason
        Kept with each registry event.
    phenotype
        An HPO term or ICD-10 code: the rows' phenotype column is then that
        phenotype's status (:mod:`biobank.registry.affected`) for every member;
        a new member's overall status is set from it too, a stored member's is
        left as it is.

    Returns
    -------
    PedigreeImport

    Raises
    ------
    AccessDenied
        Without ``registry_write``.
    ImportRejected
        With every problem found (file, line, field); nothing is written.
    """
    require(principal, Permission.REGISTRY_WRITE)
    key = center_key(store.path)
    file = None if source == "api" else source
    term = None if phenotype is None else affected.check_phenotype(phenotype, field="--phenotype")
    with store.transaction() as con:
        new, unchanged, problems = validate_family(
            con, rows, key, file=file, ignore_affected=term is not None
        )
        if problems:
            raise ImportRejected(problems, file=file)
        stamp = events.now()
        events.emit_many(
            con,
            principal,
            "family_member",
            "create",
            [
                {
                    "family_id": m.family_id,
                    "participant_id": m.participant_id,
                    "father_id": m.father_id,
                    "mother_id": m.mother_id,
                    "affected": m.affected,
                    "twin_group": m.twin_group,
                    "created_at": stamp,
                    "updated_at": stamp,
                }
                for m in new
            ],
            reason=reason,
        )
        if term is not None:
            affected.write_statuses(
                con,
                principal,
                [(m.family_id, m.participant_id, m.affected) for m in new + unchanged],
                term,
                source=f"ped:{Path(source).name}" if file else "staff",
                reason=reason,
            )
        families = sorted({r.family_id for r in rows})
        audit.record(
            con,
            principal,
            "pedigree.register",
            source,
            {
                "families": families[:50],
                "created": len(new),
                "unchanged": len(unchanged),
                "phenotype": term[0] if term else None,
            },
        )
    logger.info("pedigree %s: %d members created, %d unchanged", source, len(new), len(unchanged))
    return PedigreeImport(
        source=source,
        families=len(families),
        members=len(rows),
        created=len(new),
        unchanged=len(unchanged),
    )


def import_pedigree(
    store: Store, principal: Principal, path: str | Path, *, phenotype: str | None = None
) -> PedigreeImport:
    """Register the families of a PED file (all or nothing); see :func:`register_family`.

    ``phenotype``: the sixth column is that phenotype's affected status.

    Raises
    ------
    ValidationError
        If the file cannot be read or a line is malformed.
    ImportRejected
        With every problem (file, line, field); nothing is written.
    """
    return register_family(
        store,
        principal,
        read_ped(path),
        source=str(path),
        reason=f"PED import {Path(path).name}",
        phenotype=phenotype,
    )


def family_members(
    store: Store,
    principal: Principal,
    *,
    family_id: str | None = None,
    families: Sequence[str] | None = None,
) -> pl.DataFrame:
    """Return family members the principal may see, with sex and birth year (audited).

    Researchers see only members whose consent permits their purpose; a parent
    they may not see reads as unknown (``NULL``).

    Returns
    -------
    polars.DataFrame
        ``family_id, participant_id, father_id, mother_id, sex, birth_year,
        affected, twin_group``, ordered by family then birth year.

    Raises
    ------
    AccessDenied, ConsentError
        As :func:`biobank.registry.visibility.participant_visibility_sql`.
    NotFoundError
        Never: an unknown family gives an empty frame.
    """
    visible = participant_visibility_sql(principal)
    wanted = [family_id] if family_id is not None else list(families or [])
    where = "WHERE f.family_id IN (SELECT unnest(?::VARCHAR[]))" if wanted else ""
    sql = (
        f"WITH vis AS ({visible}) SELECT f.family_id, f.participant_id,"
        " CASE WHEN f.father_id IN (SELECT participant_id FROM vis) THEN f.father_id END"
        " AS father_id,"
        " CASE WHEN f.mother_id IN (SELECT participant_id FROM vis) THEN f.mother_id END"
        " AS mother_id,"
        " p.sex, p.birth_year, f.affected, f.twin_group"
        " FROM family_member f JOIN participant p USING (participant_id)"
        f" {where}{' AND' if wanted else ' WHERE'}"
        " f.participant_id IN (SELECT participant_id FROM vis)"
        " ORDER BY f.family_id, p.birth_year, f.participant_id"
    )
    with store.transaction() as con:
        df = con.execute(sql, [wanted] if wanted else []).pl()
        audit.record(
            con,
            principal,
            "pedigree.read",
            family_id or "families",
            {"families": wanted[:50], "rows": df.height},
        )
    return df
