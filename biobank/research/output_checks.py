"""Output checking: what an aggregate result must pass before it is shown or leaves.

A researcher **without record-level access** for a purpose (no approved data
access request in force, :func:`biobank.research.access_requests.approved_request_for`)
sees only aggregates, and every aggregate goes through the checks here:

1. **Minimum cell count.** A count from 1 to ``min_count - 1`` is withheld (the
   rule and threshold of :mod:`biobank.core.disclosure`, owned there).
2. **Dominance.** A cell of a magnitude table (a sum or mean of values) fails
   when a few contributors dominate it: the *N-K rule* (the largest 2 values
   make more than 90% of the total) and the *p-percent rule* (the others sum
   to less than 10% of the largest). Both come from ACRO (below).
3. **Differencing.** Each cohort released to a user is recorded with its
   members (table ``disclosure_release``). A new cohort whose members differ
   from one already released to the same user by 1 to ``min_count - 1``
   participants (the size of the symmetric difference) is withheld, whatever
   its size: otherwise ``E11 & male`` (56) and ``(E11 | E83) & male`` (57)
   give away the one male with Wilson disease. The same cohort again is
   released again. The record is per user and across purposes.

**ACRO** (the SACRO project's output checker, ``acro`` on PyPI; used by
:func:`check_table`) runs checks 1 and 2 on tables built from the record-level
data, the way a trusted research environment checks outputs before release:
its ``crosstab`` computes the table and flags each cell
(``MinimumThresholdCheck``, ``NKCheck``, ``PPercentCheck``); we set its
threshold to the center's :data:`~biobank.core.disclosure.SMALL_COUNT_THRESHOLD`
and withhold flagged cells. ACRO cannot do check 3 across outputs (it only
recommends a manual review for linked tables), so the differencing record is
ours (:func:`release_count`).

4. **Differencing of several releases** (query auditing,
   :mod:`biobank.research.query_audit`): the new cohort is refused when,
   combined linearly with all the cohorts released before, it makes the size
   of a group of 1 to ``min_count - 1`` participants (an equivalence class of
   membership patterns) derivable: the three-way attack ``|A| + |B| - |A ∪ B|``
   and longer chains that no pair gives away.

The record covers the user and the colleagues of the user's projects
(applicants under the same ``access_request.project``,
:func:`~biobank.research.query_audit.record_users`). Known limits: the audit
reasons linearly (not with the integrality and sign of counts); a person with
several accounts outside one project is several users. Record-level access (an
approved request) bypasses these checks by design: that user may see the rows
(of the approved fields).
"""

from __future__ import annotations

import datetime as dt
import logging
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import polars as pl

from biobank.core import audit
from biobank.core.access import Principal
from biobank.core.disclosure import SMALL_COUNT_THRESHOLD, is_small

if TYPE_CHECKING:
    from biobank.clinical.cohorts import Criterion
    from biobank.core.store import Store

__all__ = [
    "CountRelease",
    "TableCheck",
    "check_table",
    "checked_count",
    "release_count",
    "released_cohorts",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CountRelease:
    """The outcome of :func:`release_count`.

    Attributes
    ----------
    n
        The count, or ``None`` when withheld.
    withheld
        Why it was withheld (``None`` when released).
    """

    n: int | None
    withheld: str | None = None


def released_cohorts(store: Store, user: str) -> pl.DataFrame:
    """Return the cohorts released to ``user``.

    Columns: ``release_id, purpose, label, n_members, released_at``.
    """
    return store.con.execute(
        "SELECT release_id, purpose, label, n_members, released_at FROM disclosure_release"
        " WHERE user_name = ? ORDER BY release_id",
        [user],
    ).pl()


def _nearest(
    store: Store, users: Sequence[str], members: Sequence[str]
) -> tuple[int, str, int] | None:
    """The released cohort of ``users`` nearest ``members``: (id, label, symmetric difference)."""
    cur = store.cursor()
    try:
        cur.register("_release_new", pl.DataFrame({"m": list(members)}, schema={"m": pl.String}))
        row = cur.execute(
            """
            WITH r AS (SELECT release_id, label, n_members, unnest(members) AS m
                       FROM disclosure_release WHERE list_contains(?, user_name)),
                 common AS (SELECT release_id, any_value(label) AS label,
                                   any_value(n_members) AS n_members,
                                   count(n.m) AS shared
                            FROM r LEFT JOIN _release_new n USING (m)
                            GROUP BY release_id)
            SELECT release_id, label, n_members + ? - 2 * shared AS diff
            FROM common ORDER BY diff, release_id LIMIT 1
            """,
            [list(users), len(members)],
        ).fetchone()
    finally:
        cur.close()
    return (int(row[0]), str(row[1]), int(row[2])) if row else None


def release_count(
    store: Store,
    principal: Principal,
    members: Sequence[str],
    *,
    purpose: str,
    label: str,
    min_count: int = SMALL_COUNT_THRESHOLD,
    record_user: str | None = None,
) -> CountRelease:
    """Release the size of a cohort to ``principal``, or withhold it (checks 1 and 3).

    A released cohort is recorded (members and label) for later differencing
    checks; a withheld one is audited (``disclosure.withheld``) with the reason.

    Parameters
    ----------
    store
        The store (the record is written to it).
    principal
        Who will see the number.
    members
        The cohort's participant ids.
    purpose
        The research purpose it was computed for.
    label
        What the cohort is (its definition or name), kept with the record.
    min_count
        The small-count threshold.
    record_user
        The store user whose record the release is checked against and kept in
        (default ``principal.user``): a partner centre, audited as
        ``partner:NAME``, keeps its record as the store user ``NAME``
        (:func:`biobank.research.partners.partner_principal`), shared by its
        Beacon and federation counts, its workbench and its projects.
    """
    from biobank.research.query_audit import audit_release, record_users

    ids = sorted(set(members))
    n = len(ids)
    reason: str | None = None
    detail: dict[str, Any] = {}
    owner = record_user or principal.user
    users = record_users(store.con, owner)
    nearest = _nearest(store, users, ids) if n else None
    if is_small(n, min_count):
        reason = f"fewer than {min_count} participants"
    elif nearest is not None and is_small(nearest[2], min_count):
        whom = "you or your project" if len(users) > 1 else "you"
        reason = (
            f"it differs from the cohort released to {whom} as '{nearest[1][:80]}' by fewer"
            f" than {min_count} participants (differencing)"
        )
    elif n and (nearest is None or nearest[2] != 0):
        finding = audit_release(store.con, users, ids, min_count=min_count)
        if finding is not None:
            reason = (
                f"combined with the {finding.releases} cohorts already released to you"
                f"{' and your project' if len(users) > 1 else ''}, it would let the"
                f" membership of fewer than {min_count} participants be derived"
                " (differencing of several releases)"
            )
            detail = {"releases": finding.releases, "smallest_class": finding.smallest}
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    with store.transaction() as con:
        if reason is not None:
            audit.record(
                con,
                principal,
                "disclosure.withheld",
                label[:200],
                {"purpose": purpose, "reason": reason, **detail},
            )
            return CountRelease(None, reason)
        if n and (nearest is None or nearest[2] != 0):
            con.execute(
                "INSERT INTO disclosure_release (user_name, purpose, label, n_members, members,"
                " released_at) VALUES (?, ?, ?, ?, ?, ?)",
                [owner, purpose, label[:500], n, ids, now],
            )
    return CountRelease(n)


@dataclass(frozen=True)
class TableCheck:
    """The outcome of :func:`check_table`.

    Attributes
    ----------
    table
        Long form: the ``index`` and ``columns`` variables, ``value`` (null
        where withheld) and ``withheld`` (the failed checks, ``""`` if none).
    status
        ACRO's status: ``"pass"``, ``"fail"`` or ``"review"``.
    failed
        Number of cells failing each check.
    """

    table: pl.DataFrame
    status: str
    failed: dict[str, int]


def _acro(min_count: int) -> Any:
    import acro  # type: ignore[import-untyped]

    logging.getLogger("acro").setLevel(logging.WARNING)
    checker = acro.ACRO(suppress=False)
    checker.config["safe_threshold"] = min_count
    checker.config["zeros_are_disclosive"] = False
    return checker


def check_table(
    data: pl.DataFrame,
    index: str,
    columns: str,
    *,
    values: str | None = None,
    aggfunc: str | None = None,
    min_count: int = SMALL_COUNT_THRESHOLD,
) -> TableCheck:
    """Tabulate record-level ``data`` with ACRO and withhold the cells that fail its checks.

    Parameters
    ----------
    data
        One row per record (participant, measurement).
    index, columns
        The variables of the rows and columns of the table.
    values, aggfunc
        For a magnitude table: the value column and ``"sum"`` or ``"mean"``
        (dominance checks apply); omit both for a frequency table.
    min_count
        The minimum cell count (the center's threshold by default).

    Examples
    --------
    >>> df = pl.DataFrame({"sex": ["f"] * 6 + ["m"] * 2, "band": ["60-69"] * 8})
    >>> check_table(df, "sex", "band").table.rows()
    [('f', '60-69', 6.0, ''), ('m', '60-69', None, 'MinimumThresholdCheck')]
    """
    frame = data.select(index, columns, *([values] if values else [])).to_pandas()
    checker = _acro(min_count)
    with warnings.catch_warnings():  # pandas deprecations inside ACRO's aggregation
        warnings.simplefilter("ignore", FutureWarning)
        table = checker.crosstab(
            frame[index],
            frame[columns],
            values=frame[values] if values else None,
            aggfunc=aggfunc,
        )
    record = checker.results.get(checker.results.get_keys()[-1])
    outcome = record.outcome
    rows: list[dict[str, Any]] = []
    for row_key in table.index:
        for col_key in table.columns:
            flags = str(outcome.loc[row_key, col_key]).strip()
            failed = (
                ""
                if flags in ("ok", "")
                else "; ".join(f.strip() for f in flags.split(";") if f.strip())
            )
            value = table.loc[row_key, col_key]
            rows.append(
                {
                    index: str(row_key),
                    columns: str(col_key),
                    "value": None if failed or value != value else float(value),
                    "withheld": failed,
                }
            )
    summary = {k: int(v) for k, v in (record.sdc.get("summary") or {}).items() if v}
    return TableCheck(
        table=pl.DataFrame(
            rows,
            schema={
                index: pl.String,
                columns: pl.String,
                "value": pl.Float64,
                "withheld": pl.String,
            },
        ),
        status=str(record.status),
        failed=summary,
    )


def checked_count(
    store: Store,
    principal: Principal,
    criterion: Criterion | None,
    *,
    purpose: str,
    min_count: int = SMALL_COUNT_THRESHOLD,
) -> CountRelease:
    """Count a cohort over the participants ``purpose`` may use, with the output checks.

    The one call for a service that shows cohort sizes (the research
    workbench, a beacon): consent-filtered membership
    (:func:`biobank.clinical.cohorts.cohort_sql`), then the small-count rule,
    and, unless ``principal`` has record-level access for the purpose
    (:func:`biobank.research.access_requests.approved_request_for`), the
    differencing check of :func:`release_count`.

    Parameters
    ----------
    store
        The store.
    principal
        Who will see the number.
    criterion
        The cohort; ``None`` is everyone the purpose may use.
    purpose
        The research purpose.
    min_count
        The small-count threshold.
    """
    from biobank.clinical.cohorts import cohort_sql
    from biobank.research.access_requests import approved_request_for

    sql, params = cohort_sql(criterion, purpose=purpose)
    ids = [str(r[0]) for r in store.con.execute(sql, params).fetchall()]
    if approved_request_for(store.con, principal.user, purpose) is not None:
        small = is_small(len(ids), min_count)
        return CountRelease(
            None if small else len(ids), f"fewer than {min_count} participants" if small else None
        )
    label = criterion.to_json() if criterion is not None else "everyone"
    return release_count(store, principal, ids, purpose=purpose, label=label, min_count=min_count)
