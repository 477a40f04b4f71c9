"""Shared pieces of the exact tests (:mod:`biobank.stats.hwe`,
:mod:`biobank.stats.fisher`): grouping variants by their margins, and the
two-sided p-value of an outcome in one discrete distribution.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

__all__ = ["by_key", "no_more_likely", "tail_mass"]


def by_key(keys: np.ndarray) -> Iterator[tuple[list[int], np.ndarray]]:
    """Yield each distinct row of ``keys`` (n, k) with the indices of the rows equal to it."""
    uniq, group = np.unique(keys, axis=0, return_inverse=True)
    group = group.ravel()
    order = np.argsort(group, kind="stable")
    bounds = np.searchsorted(group[order], np.arange(len(uniq) + 1))
    for gi, key in enumerate(uniq.tolist()):
        yield key, order[bounds[gi] : bounds[gi + 1]]


def no_more_likely(probs: np.ndarray, observed: np.ndarray, rel_tol: float) -> np.ndarray:
    """Two-sided exact p-values from one (unnormalised) discrete distribution ``probs``.

    For each ``observed`` outcome index: the share of the probability in
    outcomes no more likely than it, counting ties within ``rel_tol``.
    """
    return tail_mass(probs, probs[observed], rel_tol)


def tail_mass(probs: np.ndarray, observed: np.ndarray, rel_tol: float) -> np.ndarray:
    """:func:`no_more_likely` for outcomes given by their probabilities ``observed``."""
    ranked = np.sort(probs)
    cum = np.cumsum(ranked)
    at = np.searchsorted(ranked, observed * (1 + rel_tol), side="right") - 1
    return np.where(at >= 0, np.minimum(cum[np.maximum(at, 0)] / cum[-1], 1.0), 0.0)
