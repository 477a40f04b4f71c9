"""Disclosure control: the one owner of the small-count rule.

Aggregate numbers shown to someone without individual-level access must not
let a reader single out a person. The rule every output path applies:

* a count from 1 to ``min_count - 1`` is *small*; ``0`` and counts of at least
  ``min_count`` are shown;
* a small count is replaced by null, and so is every number derived from it
  on the same row (frequencies, odds ratios, p-values), and the row is flagged;
* a whole group smaller than ``min_count`` is left out.

:data:`SMALL_COUNT_THRESHOLD` is the center's default. Every module that
suppresses counts (statistics, survival, the research workbench, the CLI)
calls the functions here; none keeps its own threshold or its own copy of the
rule.
"""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

__all__ = [
    "SMALL_COUNT_THRESHOLD",
    "is_small",
    "small_count_expr",
    "suppress_rows",
    "suppress_small_counts",
    "suppressed_count",
]

#: Default threshold: aggregate counts from 1 to ``SMALL_COUNT_THRESHOLD - 1`` are suppressed.
SMALL_COUNT_THRESHOLD = 5


def is_small(n: int, min_count: int = SMALL_COUNT_THRESHOLD) -> bool:
    """Return whether the count ``n`` is small (1 .. ``min_count - 1``).

    >>> is_small(0), is_small(3), is_small(5)
    (False, True, False)
    """
    return 0 < n < min_count


def suppressed_count(n: int, min_count: int = SMALL_COUNT_THRESHOLD) -> int | None:
    """Return ``n``, or ``None`` when it is small.

    >>> suppressed_count(3) is None, suppressed_count(0), suppressed_count(12)
    (True, 0, 12)
    """
    return None if is_small(n, min_count) else n


def small_count_expr(columns: Sequence[str], min_count: int = SMALL_COUNT_THRESHOLD) -> pl.Expr:
    """A polars expression that is true on rows where any of ``columns`` is small."""
    small = pl.lit(False)
    for c in columns:
        small = small | ((pl.col(c) > 0) & (pl.col(c) < min_count))
    return small


def suppress_small_counts(
    df: pl.DataFrame, columns: Sequence[str], *, min_count: int = SMALL_COUNT_THRESHOLD
) -> pl.DataFrame:
    """Replace counts between 1 and ``min_count - 1`` by null in ``columns``, cell by cell.

    >>> suppress_small_counts(pl.DataFrame({"n": [0, 3, 5]}), ["n"])["n"].to_list()
    [0, None, 5]
    """
    return df.with_columns(
        [
            pl.when((pl.col(c) > 0) & (pl.col(c) < min_count))
            .then(None)
            .otherwise(pl.col(c))
            .alias(c)
            for c in columns
        ]
    )


def suppress_rows(
    df: pl.DataFrame,
    counts: Sequence[str],
    derived: Sequence[str] = (),
    *,
    min_count: int | None = SMALL_COUNT_THRESHOLD,
    flag: str = "suppressed",
) -> pl.DataFrame:
    """Null the small ``counts`` of a row and everything ``derived`` from them; flag the row.

    Parameters
    ----------
    df
        One row per reported unit (a variant, a gene, a group).
    counts
        The count columns the rule looks at.
    derived
        Columns computed from those counts; nulled on a flagged row.
    min_count
        The threshold; ``None`` returns ``df`` unchanged (for callers with
        individual-level access).
    flag
        Name of the boolean column added: true where the row was suppressed.

    >>> df = pl.DataFrame({"n": [2, 9], "f": [0.1, 0.4]})
    >>> suppress_rows(df, ["n"], ["f"], flag="s").rows()
    [(None, None, True), (9, 0.4, False)]
    """
    if min_count is None:
        return df
    df = df.with_columns(small_count_expr(counts, min_count).alias(flag))
    return df.with_columns(
        [
            pl.when(pl.col(flag)).then(None).otherwise(pl.col(c)).alias(c)
            for c in [*counts, *derived]
        ]
    )
