"""Query auditing of released cohort counts: differencing across any number of releases.

The pairwise rule of :func:`biobank.research.output_checks.release_count`
(a new cohort within ``min_count - 1`` members of a released one is withheld)
misses attacks that combine three or more counts: with ``|A|``, ``|B|`` and
``|A ∪ B ∪ C|`` ... released, ``|A| + |B| - |A ∩ B|`` style sums and differences
can isolate one participant although every pair differs by many. This module
audits a new count against **every** count released before to the same user
(and to the colleagues of the user's projects, :func:`record_users`), the way
Chin and Ozsoyoglu audit SUM/COUNT queries (*Auditing and inference control in
statistical databases*, IEEE TSE 8(6), 1982):

1. Each released cohort is a 0/1 row over the participants (its membership,
   kept server-side in ``disclosure_release.members``, never shown).
2. Participants with the same pattern of membership across the releases form
   an **equivalence class**: no combination of counts tells them apart, so the
   columns of the matrix reduce to the classes (columns of participants in no
   release are left out: nothing is known of them).
3. A class ``c`` is **isolable** when its indicator ``e_c`` lies in the row
   space of the membership matrix (over the rationals): then some linear
   combination of released counts equals its size. It is a disclosure when the
   class has from 1 to ``min_count - 1`` members (one member: that person's
   membership of every released cohort is known; a few: a small cell).

The row space test runs on the reduced row echelon form: ``e_c`` is in the row
space exactly when the echelon form has a row equal to ``e_c``. The elimination
is exact modular arithmetic over the prime ``2**31 - 1`` with numpy ``int64``
(products stay below ``2**62``): the rank over that field equals the rank over
the rationals unless the prime divides every maximal minor involved, which for
0/1 matrices of this size has a probability of the order of ``1e-9``; floats
are not used, so no tolerance is involved.

A release is refused only when it makes a small class isolable that was not
isolable (as the same participants) before: a history recorded before this
check existed does not block every later count.

Limits (also in ``docs/data-access.md``): the auditor reasons linearly (as in
the literature); an attacker using that counts are non-negative integers can
sometimes bound a class further (e.g. ``x - y = 1`` and ``x + z = 1`` give
``x = 1``), and a derivable *sum* of several small classes is caught only when
it is also a pairwise difference. A person with several accounts in different
projects is several users. Record-level users are not audited (they may see
the rows).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import duckdb
import numpy as np
import numpy.typing as npt
import polars as pl

__all__ = [
    "PRIME",
    "AuditFinding",
    "audit_release",
    "isolable_columns",
    "membership_classes",
    "record_users",
]

#: The prime of the exact modular elimination (``2**31 - 1``).
PRIME = 2_147_483_647


@dataclass(frozen=True)
class AuditFinding:
    """Why a new count was refused by :func:`audit_release`.

    Attributes
    ----------
    releases
        How many earlier releases the derivation may combine with the new one.
    smallest
        The size of the smallest class that became isolable (kept in the audit
        log, never shown to the user).
    """

    releases: int
    smallest: int


def record_users(con: duckdb.DuckDBPyConnection, user: str) -> list[str]:
    """Return the users whose released counts are audited together with ``user``'s.

    The user and everyone who applied for data access under a project name the
    user applied under (``access_request.project``): colleagues of one project
    share one record, so two accounts of one project cannot split an attack.
    """
    rows = con.execute(
        "SELECT DISTINCT applicant FROM access_request WHERE project IN"
        " (SELECT project FROM access_request WHERE applicant = ?)",
        [user],
    ).fetchall()
    return sorted({user, *(str(r[0]) for r in rows)})


def membership_classes(
    con: duckdb.DuckDBPyConnection, users: Sequence[str], members: Sequence[str]
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Return the membership matrix of the released cohorts and ``members``, by class.

    Parameters
    ----------
    con
        The store.
    users
        Whose releases (``disclosure_release.user_name``).
    members
        The new cohort (row 0 of the matrix).

    Returns
    -------
    tuple
        ``(matrix, sizes)``: ``matrix[j, c]`` is 1 when class ``c`` is in
        release ``j`` (row 0 the new cohort, then the releases in order);
        ``sizes[c]`` is the number of participants of class ``c``.
    """
    cur = con.cursor()
    try:
        cur.register("_audit_new", pl.DataFrame({"m": list(members)}, schema={"m": pl.String}))
        found = cur.execute(
            """
            WITH r AS (SELECT row_number() OVER (ORDER BY release_id) AS j, members
                       FROM disclosure_release WHERE list_contains(?, user_name)),
                 u AS (SELECT j, unnest(members) AS m FROM r
                       UNION ALL SELECT 0 AS j, m FROM _audit_new)
            SELECT CAST(j AS BIGINT) AS j, dense_rank() OVER (ORDER BY m) - 1 AS p,
                   (SELECT count(*) FROM r) AS k
            FROM u
            """,
            [list(users)],
        ).fetchnumpy()
    finally:
        cur.close()
    j, person = np.asarray(found["j"], dtype=np.int64), np.asarray(found["p"], dtype=np.int64)
    ks = np.asarray(found["k"], dtype=np.int64)
    k = int(ks[0]) if ks.size else 0
    present = np.zeros((k + 1, int(person.max()) + 1 if person.size else 0), dtype=np.bool_)
    present[j, person] = True
    patterns, sizes = np.unique(present, axis=1, return_counts=True)
    return patterns.astype(np.int64), sizes.astype(np.int64)


def _echelon(a: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """The reduced row echelon form of ``a`` modulo :data:`PRIME` (zero rows dropped)."""
    a = a % PRIME
    n_rows, n_cols = a.shape
    r = 0
    for c in range(n_cols):
        if r == n_rows:
            break
        nz = np.flatnonzero(a[r:, c])
        if nz.size == 0:
            continue
        i = r + int(nz[0])
        if i != r:
            a[[r, i]] = a[[i, r]]
        inv = pow(int(a[r, c]), PRIME - 2, PRIME)
        a[r, c:] = (a[r, c:] * inv) % PRIME
        col = a[:, c].copy()
        col[r] = 0
        others = np.flatnonzero(col)
        if others.size:
            a[others, c:] = (a[others, c:] - (col[others, None] * a[r, c:]) % PRIME) % PRIME
        r += 1
    return a[:r]


def _isolable_exact(a: npt.NDArray[np.int64]) -> npt.NDArray[np.bool_]:
    """Unit vectors in the row space from the full echelon form (``e_c`` is one of its rows)."""
    out = np.zeros(a.shape[1], dtype=np.bool_)
    ech = _echelon(a)
    single = np.count_nonzero(ech, axis=1) == 1
    for row in ech[single]:
        out[int(np.flatnonzero(row)[0])] = True
    return out


def _isolable_projected(a: npt.NDArray[np.int64]) -> npt.NDArray[np.bool_] | None:
    """The same answer for a wide matrix (many more columns than rows), or ``None``.

    A column basis ``B`` is proposed by an LU factorisation in floating point, then
    checked exactly: ``M[:, B]`` must have full column rank modulo
    :data:`PRIME` and the other columns, combined with random weights ``w``,
    must be a combination ``M[:, B] y`` (consistency of the system on every
    row). Columns outside ``B`` are then in the span of ``B`` (never
    isolable); a basis column ``b`` is isolable exactly when no other column
    uses it, i.e. row ``b`` of the coefficients is zero, which ``y_b = 0``
    tests with an error probability of at most ``1 / PRIME`` towards
    *isolable* (refusing), never towards releasing. ``None`` when the float
    basis does not check out (the caller eliminates in full).
    """
    from scipy.linalg import LinAlgWarning, lu_factor

    # LU with partial pivoting of the transpose picks independent columns as pivot rows
    with warnings.catch_warnings():  # a singular factor is expected (rank < columns)
        warnings.simplefilter("ignore", LinAlgWarning)
        lu, swaps = lu_factor(a.T.astype(np.float64), check_finite=False)
    order = np.arange(a.shape[1])
    for i, other in enumerate(swaps):
        order[i], order[other] = order[other], order[i]
    diag = np.abs(np.diag(lu))
    keep = diag > max(float(diag.max()), 1.0) * max(a.shape) * np.finfo(np.float64).eps
    basis = np.sort(order[: diag.size][keep])
    rank = int(basis.size)
    rest = np.setdiff1d(np.arange(a.shape[1]), basis)
    w = np.random.default_rng().integers(1, PRIME, size=rest.size, dtype=np.int64)
    z = np.zeros(a.shape[0], dtype=np.int64)
    for start in range(0, rest.size, 1 << 11):  # sums of 0/1 x w stay below 2**63
        part = rest[start : start + (1 << 11)]
        z = (z + a[:, part] @ w[start : start + (1 << 11)]) % PRIME
    ech = _echelon(np.column_stack([a[:, basis], z]))
    if ech.shape[0] != rank or np.any(ech[:, :rank] != np.eye(rank, dtype=np.int64)):
        return None  # the float basis is not a basis, or the system is inconsistent
    out = np.zeros(a.shape[1], dtype=np.bool_)
    out[basis[ech[:, rank] == 0]] = True
    return out


def isolable_columns(matrix: npt.NDArray[np.int64]) -> npt.NDArray[np.bool_]:
    """Return, per column ``c``, whether the unit vector ``e_c`` lies in the row space.

    Exact over the integers modulo :data:`PRIME` (see the module docstring);
    a wide matrix takes the faster route of :func:`_isolable_projected`.

    Examples
    --------
    >>> m = np.array([[1, 1, 0], [0, 1, 1], [1, 1, 1]])  # A, B, A | B
    >>> isolable_columns(m).tolist()  # A - B only, B - A only and A & B: all derivable
    [True, True, True]
    >>> isolable_columns(np.array([[1, 1, 0], [0, 1, 1]])).tolist()
    [False, False, False]
    """
    if matrix.size == 0:
        return np.zeros(matrix.shape[1], dtype=np.bool_)
    a = np.unique(matrix.astype(np.int64), axis=0)
    a = a[a.any(axis=1)]
    if a.shape[0] == 0:
        return np.zeros(matrix.shape[1], dtype=np.bool_)
    if a.shape[1] > 2 * a.shape[0]:
        fast = _isolable_projected(a)
        if fast is not None:
            return fast
    return _isolable_exact(a)


def audit_release(
    con: duckdb.DuckDBPyConnection,
    users: Sequence[str],
    members: Sequence[str],
    *,
    min_count: int,
) -> AuditFinding | None:
    """Return why releasing the count of ``members`` would disclose, or ``None`` if it would not.

    The count is refused when, together with the counts already released to
    ``users``, it makes the size of an equivalence class of 1 to
    ``min_count - 1`` participants derivable that was not derivable before.

    Parameters
    ----------
    con
        The store (``disclosure_release``).
    users
        Whose released counts are combined (:func:`record_users`).
    members
        The new cohort's participant ids.
    min_count
        The small-count threshold.
    """
    matrix, sizes = membership_classes(con, users, members)
    small = (sizes > 0) & (sizes < min_count)
    if not small.any() or matrix.shape[0] < 2:
        return None
    now = isolable_columns(matrix) & small
    if not now.any():
        return None
    # the same participants isolable before (an unsplit class of the old history) is not new
    old_patterns = [
        tuple(int(j) for j in np.flatnonzero(matrix[1:, c])) for c in range(matrix.shape[1])
    ]
    merged: dict[tuple[int, ...], list[int]] = {}
    for c, pattern in enumerate(old_patterns):
        merged.setdefault(pattern, []).append(c)
    keys = list(merged)
    old = np.zeros((matrix.shape[0] - 1, len(keys)), dtype=np.int64)
    for c, pattern in enumerate(keys):
        old[list(pattern), c] = 1
    was = isolable_columns(old)
    position = {pattern: i for i, pattern in enumerate(keys)}
    fresh = [
        c
        for c in np.flatnonzero(now)
        if not (len(merged[old_patterns[c]]) == 1 and was[position[old_patterns[c]]])
    ]
    if not fresh:
        return None
    return AuditFinding(releases=matrix.shape[0] - 1, smallest=int(sizes[fresh].min()))
