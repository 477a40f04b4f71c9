"""Fisher's exact test on many 2x2 tables at once (:func:`fisher_tables`)."""

from __future__ import annotations

import numpy as np

from biobank.stats.exact import by_key, no_more_likely

__all__ = ["fisher_tables"]


def fisher_tables(table: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Fisher's exact test (two-sided) for each 2x2 table ``[[a, b], [c, d]]`` (n, 4).

    The two-sided p-value of R's ``fisher.test`` (and of
    :func:`scipy.stats.fisher_exact`): the total hypergeometric probability of
    the tables with the observed margins that are no more likely than the
    observed one (R's relative tolerance of 1e-7 for ties). As R does, the
    probabilities come from the log pmf (here from a table of log factorials,
    :func:`scipy.special.gammaln`), scaled by their maximum and summed; each
    distinct set of margins is computed once, all of them in one vectorised
    step. The odds ratio is the sample
    odds ratio ``ad / bc`` (``inf`` when ``bc == 0``; NaN, with p = 1, when a
    row or column is empty), as scipy gives it.
    """
    from scipy.special import gammaln

    t = np.asarray(table, dtype=np.int64).reshape(-1, 4)
    a, b, c, d = t.T
    n_tab = len(t)
    odds = np.full(n_tab, np.inf)
    finite = (b > 0) & (c > 0)
    odds[finite] = (a[finite] * d[finite]) / (b[finite] * c[finite])
    pval = np.ones(n_tab)
    row1, row2, col1 = a + b, c + d, a + c
    empty = (row1 == 0) | (row2 == 0) | (col1 == 0) | (b + d == 0)
    odds[empty] = np.nan
    todo = np.flatnonzero(~empty)
    if not len(todo):
        return odds, pval
    margins = np.column_stack([row1[todo] + row2[todo], row1[todo], col1[todo]])
    # all supports in one vectorised logpmf call, then one lookup per set of margins
    groups = list(by_key(margins))
    total, r1, c1 = np.array([key for key, _ in groups], dtype=np.int64).reshape(-1, 3).T
    lo = np.maximum(0, c1 - (total - r1))
    size = np.minimum(r1, c1) - lo + 1
    start = np.concatenate([[0], np.cumsum(size)])
    owner = np.repeat(np.arange(len(groups)), size)
    x = np.arange(start[-1]) - start[owner] + lo[owner]
    # log pmf up to a constant per set of margins (which the scaling below
    # removes): -log(x! (r1 - x)! (c1 - x)! (total - r1 - c1 + x)!), from a
    # table of log factorials
    log_fact = gammaln(np.arange(int(total.max()) + 1) + 1.0)
    r1o, c1o = r1[owner], c1[owner]
    logp = -(
        log_fact[x] + log_fact[r1o - x] + log_fact[c1o - x] + log_fact[total[owner] - r1o - c1o + x]
    )
    for gi, (_, rows) in enumerate(groups):
        members = todo[rows]
        lp = logp[start[gi] : start[gi + 1]]
        pval[members] = no_more_likely(np.exp(lp - lp.max()), a[members] - lo[gi], 1e-7)
    return odds, pval
