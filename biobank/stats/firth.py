"""Firth-penalised logistic fits of a block of rows, as ``plink2 --glm`` makes them.

:func:`_firth_block` follows plink2's own iteration, step-halving and stopping
rules (those of the logistf R package); :mod:`biobank.stats.regression` calls
it for the rows plink2 refits (its ``firth-fallback``).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from biobank.stats.irls import _block_arrays, _fit_state, _row_dots

__all__: list[str] = []


def _firth_block(
    g: np.ndarray,
    y: np.ndarray,
    cov: np.ndarray,
    cc: np.ndarray,
    start: np.ndarray,
    *,
    max_iter: int = 25,
    conv: float = 1e-4,
    max_halvings: int = 5,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Firth-penalised fits of a block of rows, with plink2's iteration and stopping rules.

    Newton steps on the penalised log-likelihood ``l + log det(I) / 2``
    (Firth 1993), with ``I = X'VX`` the Fisher information: the modified
    score ``U* = X'(y - p + h (1/2 - p))`` (``h`` the hat diagonal
    ``v_i x_i' I^-1 x_i``) times ``I^-1``, capped at 5. As in ``plink2
    --glm`` v2.00a3 (a port of the logistf R package): a step that lowers the
    penalised log-likelihood is halved up to ``max_halvings`` times and then
    taken anyway; the fit has converged when the step and ``U*`` are at most
    ``conv`` and the penalised log-likelihood changed by at most ``conv``
    (also when halving failed but the step was below 1e-3 and ``U*`` below
    0.05, plink2's bail-out); after ``max_iter`` iterations the estimate is
    reported as it is (plink2's UNFINISHED). The standard error is from
    ``I^-1`` at the estimate. Arguments as :func:`_newton_block`.

    Returns
    -------
    tuple
        ``beta``, ``se`` and whether the fit gave a result (not when an
        information matrix was singular).
    """
    v = g.shape[0]
    gz, m, complete, beta = _block_arrays(g, start)

    def evaluate(rows: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, ...]:
        """Penalised log-likelihood, p, v, information and whether it is usable."""
        ll, mu, w, info, ok, logdet = _fit_state(
            gz[rows], m[rows], b, y, cov, cc, complete=complete, loglik=True
        )
        return ll + 0.5 * np.where(ok, logdet, 0.0), mu, w, info, ok & np.isfinite(ll)

    ll, mu, w, info, ok = evaluate(np.arange(v), beta)
    result = np.zeros(v, dtype=bool)
    final = np.zeros_like(info)  # information at each row's estimate
    bailed = np.zeros(v, dtype=bool)  # plink2's hs_bail: once set, stays set
    active = np.flatnonzero(ok)
    mu, w, info, ll = mu[ok], w[ok], info[ok], ll[ok]
    for it in range(max_iter):
        if not len(active):
            break
        gr, mr = gz[active], m[active]
        inv = np.linalg.inv(info)
        # hat diagonal h_i = w_i x_i' I^-1 x_i with x_i = (g_i, c_i)
        # = g (inv00 g + 2 inv01 c) + inv11 : c c'
        part = (2.0 * inv[:, 0, 1:]) @ cov.T
        part += inv[:, 0, :1] * gr
        part *= gr
        h = inv[:, 1:, 1:].reshape(len(active), -1) @ cc.T
        h += part
        h *= w
        part = np.subtract(0.5, mu, out=part)
        h *= part
        h += y
        h -= mu
        if not complete:
            h *= mr
        score = np.column_stack([_row_dots(h, gr), h @ cov])
        delta = np.einsum("vij,vj->vi", inv, score)
        biggest = np.abs(delta).max(axis=1)
        delta *= np.minimum(1.0, 5.0 / np.maximum(biggest, 1e-300))[:, None]
        step_max = np.minimum(biggest, 5.0)
        grad_max = np.abs(score).max(axis=1)
        small = (step_max <= conv) & (grad_max < conv)
        threshold = ll - np.where(small, 0.999999 * conv, 0.0)
        new = evaluate(active, beta[active] + delta)
        frac = _firth_halving(
            evaluate,
            active,
            beta,
            delta,
            new,
            ll=ll,
            threshold=threshold,
            small=small,
            step_max=step_max,
            grad_max=grad_max,
            bailed=bailed,
            conv=conv,
            max_halvings=max_halvings,
        )
        new_ll, new_mu, new_w, new_info, new_ok = new
        beta[active] += frac[:, None] * delta
        done = (np.abs(new_ll - ll) <= conv) & (small | bailed[active])
        if it == max_iter - 1:
            done[:] = True
        finished = done & new_ok
        result[active[finished]] = True
        final[active[finished]] = new_info[finished]
        keep = ~done & new_ok
        active = active[keep]
        ll, mu, w, info = new_ll[keep], new_mu[keep], new_w[keep], new_info[keep]
    se = np.full(v, np.nan)
    if result.any():
        se[result] = np.sqrt(np.maximum(np.linalg.inv(final[result])[:, 0, 0], 0.0))
    return beta[:, 0], se, result & np.isfinite(beta[:, 0])


def _firth_halving(
    evaluate: Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, ...]],
    active: np.ndarray,
    beta: np.ndarray,
    delta: np.ndarray,
    new: tuple[np.ndarray, ...],
    *,
    ll: np.ndarray,
    threshold: np.ndarray,
    small: np.ndarray,
    step_max: np.ndarray,
    grad_max: np.ndarray,
    bailed: np.ndarray,
    conv: float,
    max_halvings: int,
) -> np.ndarray:
    """plink2's step halving of one Firth iteration; return the fraction of ``delta`` taken.

    A step to below the threshold is halved up to ``max_halvings`` times
    (then taken anyway); one that stays above it but does not raise the
    likelihood is halved once more; when halving fails on a nearly converged
    fit, the step is dropped and the fit "bails out" (``bailed`` is set).
    ``new`` (the state after the full step, from ``evaluate``) is updated in
    place to the state after the step taken.
    """
    frac = np.ones(len(active))
    halving = np.ones(len(active), dtype=np.int64)
    limit = np.full(len(active), max_halvings)
    open_ = np.ones(len(active), dtype=bool)
    while True:
        new_ll = new[0]
        open_ &= halving <= limit
        above = open_ & (new_ll >= threshold)
        # (an exact tie counts as not better unless the step was already
        # tiny: singleton fits otherwise jump across the optimum forever,
        # their map x -> x + I^-1 U*(x) having slope -1 there)
        better = (new_ll > ll) | (small & (new_ll >= ll))
        open_ &= ~(above & better)
        limit = np.where(above & open_, halving, limit)
        out = open_ & ~above & (halving == limit)
        out &= (step_max < 1e-3) & (grad_max < 0.05) & (new_ll >= ll - conv)
        halving[out] -= 1
        limit[out] -= 1
        bailed[active[out]] = True
        if not open_.any():
            break
        frac[open_] -= 2.0 ** -halving[open_]
        halving[open_] += 1
        wi = np.flatnonzero(open_)
        sub = evaluate(active[wi], beta[active[wi]] + frac[wi, None] * delta[wi])
        for part, value in zip(new, sub, strict=True):
            part[wi] = value
    return frac
