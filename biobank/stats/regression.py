"""Logistic regression of case status on many predictors at once, with
plink2's Firth fallback.

Ordinary fits are vectorised IRLS for a block of variants at once (the same
maximum-likelihood estimate as statsmodels' ``Logit``; Wald SE and p). As
``plink2 --glm`` (its default ``firth-fallback``), variants where ordinary
logistic regression does not converge, or where cases or controls carry no
ALT allele (separation), are refitted with Firth's penalised likelihood.
Firth fits follow plink2's own iteration, step-halving and stopping rules
(those of the logistf R package: at most 25 iterations, step, score and
penalised log-likelihood change below 1e-4), so their estimates are plink2's
to ~1e-4; a fit that reaches 25 iterations is reported, as plink2 does (with
its ERRCODE ``UNFINISHED``).

Beside the Wald test of the fit, the likelihood-ratio test (the fit's
log-likelihood against the covariates-only model's on the same samples) and
the score (Rao) test (from the covariates-only model alone), as hail's
``logistic_regression_rows`` offers them (:func:`_null_tests`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np
import polars as pl

from biobank.core.errors import ValidationError
from biobank.stats.firth import _firth_block
from biobank.stats.irls import (
    _expit,
    _newton_block,
    _null_fit,
    _softplus,
    _usable,
)

__all__ = ["LOGISTIC_TESTS", "logistic_regression"]


#: genotypes per block of :func:`_newton` (the arrays of a block stay in the CPU cache)
_FIT_BLOCK_CELLS = 200_000


def _newton(
    g: np.ndarray,
    y: np.ndarray,
    cov: np.ndarray,
    *,
    firth: bool,
    line_search: bool = False,
    max_iter: int = 100,
    tol: float = 1e-6,
    threads: int = 2,
    loglik: bool = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Fit ``logit P(y) = b*g + cov @ c`` for every row of ``g``.

    Ordinary fits (``firth=False``) are Newton-Raphson (IRLS). With
    ``line_search`` a step that lowers the log-likelihood is halved; without
    it, full Newton steps (capped at 5) are taken and the likelihood is never
    computed, which is about twice as fast (the transcendental functions
    dominate); :func:`logistic_regression` refits the rows that did not
    converge that way with the line search. Firth fits (``firth=True``) are
    :func:`_firth_block`'s, plink2's own algorithm (``line_search``,
    ``max_iter`` and ``tol`` do not apply). The rows are fitted in blocks
    small enough to stay in the CPU cache (about 200,000 genotypes each);
    within a block all rows are iterated together (only those not yet
    converged), and blocks run on ``threads`` threads (numpy releases the GIL).

    Parameters
    ----------
    g
        (variants, samples) predictor; NaN = missing (that sample is left out).
    y
        (samples,) 0/1 outcome.
    cov
        (samples, k) covariates including the intercept column.
    firth
        Maximise the Firth-penalised likelihood.
    line_search
        Halve steps that lower the likelihood (ordinary fits).
    max_iter, tol
        Iteration limit and convergence (largest step below ``tol``) of
        ordinary fits.
    threads
        Blocks fitted at the same time.
    loglik
        Also return each ordinary fit's log-likelihood at its estimate (one
        more evaluation; for the likelihood-ratio test).

    Returns
    -------
    tuple
        ``beta`` and ``se`` of the ``g`` coefficient, whether each fit
        gave a result (converged, or for Firth also stopped at the iteration
        limit, as plink2 reports it), and the log-likelihood (NaN unless
        ``loglik`` and an ordinary fit).
    """
    from concurrent.futures import ThreadPoolExecutor

    v, n = g.shape
    start = _null_fit(y, cov)  # start at the covariates-only fit: few iterations
    cc = (cov[:, :, None] * cov[:, None, :]).reshape(n, -1)
    rows = max(8, _FIT_BLOCK_CELLS // max(n, 1))
    bounds = [(i, min(i + rows, v)) for i in range(0, v, rows)]
    beta = np.full(v, np.nan)
    se = np.full(v, np.nan)
    converged = np.zeros(v, dtype=bool)
    ll = np.full(v, np.nan)

    def fit(lo: int, hi: int) -> None:
        if firth:
            beta[lo:hi], se[lo:hi], converged[lo:hi] = _firth_block(g[lo:hi], y, cov, cc, start)
        else:
            beta[lo:hi], se[lo:hi], converged[lo:hi], ll[lo:hi] = _newton_block(
                g[lo:hi],
                y,
                cov,
                cc,
                start,
                line_search=line_search,
                max_iter=max_iter,
                tol=tol,
                loglik=loglik,
            )

    if threads <= 1 or len(bounds) == 1:
        for lo, hi in bounds:
            fit(lo, hi)
    else:
        with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="glm") as pool:
            for fut in [pool.submit(fit, lo, hi) for lo, hi in bounds]:
                fut.result()
    return beta, se, converged, ll


def _fit_rows(
    g: np.ndarray, y: np.ndarray, cov: np.ndarray, *, firth_fallback: bool, loglik: bool = False
) -> np.ndarray:
    """Fits of :func:`logistic_regression`: (rows, 4) beta, standard error, Firth used (0/1),
    and the ordinary fit's log-likelihood (NaN unless ``loglik``; NaN for Firth fits)."""
    v = len(g)
    # carriers (g != 0, NaN is not) among cases and controls, as one matrix product
    groups = np.column_stack([y == 1, y == 0]).astype(np.float32)
    carriers = (g != 0).astype(np.float32) @ groups
    case_nz, ctrl_nz = carriers[:, 0] > 0, carriers[:, 1] > 0
    gmin = np.fmin.reduce(g, axis=1)  # fmin/fmax skip NaN (all-NaN rows give NaN)
    gmax = np.fmax.reduce(g, axis=1)
    const = ~(gmax > gmin)
    separated = ~(case_nz & ctrl_nz) & ~const
    out = np.full((v, 4), np.nan)
    out[:, 2] = 0
    plain = np.flatnonzero(~const & ~separated)
    if len(plain):
        b, s, ok, ll = _newton(g[plain], y, cov, firth=False, line_search=False, loglik=loglik)
        ok &= np.abs(b) < 15
        if not ok.all():  # again with step halving before giving up on them
            again = np.flatnonzero(~ok)
            b[again], s[again], ok[again], ll[again] = _newton(
                g[plain[again]], y, cov, firth=False, line_search=True, loglik=loglik
            )
            ok[again] &= np.abs(b[again]) < 15
        out[plain[ok], 0], out[plain[ok], 1], out[plain[ok], 3] = b[ok], s[ok], ll[ok]
        separated[plain[~ok]] = True
    refit = np.flatnonzero(separated)
    if len(refit) and firth_fallback:
        b, s, ok, _ = _newton(g[refit], y, cov, firth=True)
        out[refit[ok], 0], out[refit[ok], 1] = b[ok], s[ok]
        out[refit, 2] = 1
    return out


def _masked_null_fits(
    m: np.ndarray, y: np.ndarray, cov: np.ndarray, cc: np.ndarray, start: np.ndarray
) -> np.ndarray:
    """(rows, k) covariates-only fits on each row's called samples (``m`` 1 = called).

    Newton's method for all rows at once from the shared null fit ``start``
    (a few iterations: rows differ from the full sample set by their missing
    calls). Rows whose information is singular get NaN.
    """
    kc = cov.shape[1]
    b = np.tile(start, (len(m), 1))
    active = np.ones(len(m), dtype=bool)
    for _ in range(50):
        idx = np.flatnonzero(active)
        if not len(idx):
            break
        mu = _expit(b[idx] @ cov.T)
        w = mu * (1 - mu) * m[idx]
        info = (w @ cc).reshape(-1, kc, kc)
        score = ((y - mu) * m[idx]) @ cov
        ok, _ = _usable(info)
        step = np.full((len(idx), kc), np.nan)
        if ok.any():
            step[ok] = np.linalg.solve(info[ok], score[ok][..., None])[..., 0]
        b[idx] += step
        done = ~ok | (np.abs(step).max(axis=1) < 1e-10)
        active[idx[done]] = False
    return b


def _null_tests(g: np.ndarray, y: np.ndarray, cov: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Null log-likelihood and Rao score statistic of each row of ``g`` (NaN = missing).

    The null model (covariates only) is fitted once for the rows without
    missing calls and, for a row with missing calls, on its called samples
    (as every test leaves those samples out). The score statistic is
    ``U^2 / V`` with ``U = sum g_i (y_i - mu_i)`` and ``V`` the efficient
    information of the genotype coefficient at the null,
    ``g'Wg - g'WC (C'WC)^-1 C'Wg`` (``W = mu (1 - mu)``); chi-square 1 df. It
    needs no fit of the full model, so it is defined for separated rows too.
    Rows are processed in cache-sized chunks.

    Returns
    -------
    tuple
        ``(rows,)`` null log-likelihood and score chi-square (NaN for rows
        whose genotype is constant among called samples).
    """
    v, n = g.shape
    kc = cov.shape[1]
    start = _null_fit(y, cov)
    cc = (cov[:, :, None] * cov[:, None, :]).reshape(n, -1)
    eta0 = cov @ start
    mu0 = _expit(eta0)
    w0 = mu0 * (1 - mu0)
    ll_all = float((y * eta0 - _softplus(eta0, mu0)).sum())
    ll0 = np.full(v, np.nan)
    chi2 = np.full(v, np.nan)
    mask = ~np.isnan(g)
    complete = mask.all(axis=1)
    rows = max(8, _FIT_BLOCK_CELLS // max(n, 1))
    for lo in range(0, v, rows):
        sl = slice(lo, min(lo + rows, v))
        gz = np.where(mask[sl], g[sl], 0.0).astype(np.float64)
        m = mask[sl].astype(np.float64)
        full = complete[sl]
        u = np.empty(len(gz))
        igg = np.empty(len(gz))
        igc = np.empty((len(gz), kc))
        icc = np.empty((len(gz), kc, kc))
        if full.any():
            gf = gz[full]
            u[full] = gf @ (y - mu0)
            igg[full] = (gf * gf) @ w0
            igc[full] = gf @ (w0[:, None] * cov)
            icc[full] = (w0 @ cc).reshape(kc, kc)
            ll0[lo + np.flatnonzero(full)] = ll_all
        part = np.flatnonzero(~full)
        if len(part):
            gp, mp = gz[part], m[part]
            b = _masked_null_fits(mp, y, cov, cc, start)
            eta = b @ cov.T
            mu = _expit(eta)
            ll0[lo + part] = ((y * eta - _softplus(eta, mu)) * mp).sum(axis=1)
            w = mu * (1 - mu) * mp
            u[part] = ((y - mu) * mp * gp).sum(axis=1)
            wg = w * gp
            igg[part] = (wg * gp).sum(axis=1)
            igc[part] = wg @ cov
            icc[part] = (w @ cc).reshape(-1, kc, kc)
        ok, _ = _usable(icc)
        ok &= np.isfinite(u)
        var = np.full(len(gz), np.nan)
        if ok.any():
            sol = np.linalg.solve(icc[ok], igc[ok][..., None])[..., 0]
            var[ok] = igg[ok] - np.einsum("ij,ij->i", igc[ok], sol)
        good = var > 1e-8 * np.maximum(igg, 1e-300)
        chi2[lo + np.flatnonzero(good)] = u[good] ** 2 / var[good]
    return ll0, chi2


#: The tests :func:`logistic_regression` can run.
LOGISTIC_TESTS = ("wald", "lrt", "score")


def _check_tests(tests: Sequence[str]) -> None:
    """Raise ValidationError unless ``tests`` names some of :data:`LOGISTIC_TESTS`."""
    unknown = sorted(set(tests) - set(LOGISTIC_TESTS))
    if unknown or not tests:
        raise ValidationError(
            f"tests must be among {', '.join(LOGISTIC_TESTS)}, not {unknown or 'nothing'}",
            field="tests",
        )


def _row_keys(g: np.ndarray, row_codes: np.ndarray | None) -> list[bytes]:
    """128-bit BLAKE2 digests of the rows of ``row_codes`` (or of ``g`` without them)."""
    hashed = g if row_codes is None else np.ascontiguousarray(row_codes)
    if hashed.shape != g.shape:
        raise ValidationError(
            f"row_codes have shape {hashed.shape}, not that of g {g.shape}", field="row_codes"
        )
    return [hashlib.blake2b(row.tobytes(), digest_size=16).digest() for row in hashed]


def _fit_new_rows(
    g: np.ndarray,
    y: np.ndarray,
    cov: np.ndarray,
    keys: list[bytes],
    cache: dict[bytes, tuple[float, ...]],
    *,
    tests: Sequence[str],
    firth_fallback: bool,
) -> None:
    """Fit the rows of ``g`` whose key is not in ``cache`` yet, once per key, into ``cache``.

    A cached fit is ``(beta, se, firth, lrt_chi2, score_chi2)``.
    """
    from threadpoolctl import threadpool_limits

    new = {key: r for r, key in enumerate(keys) if key not in cache}
    if not new:
        return
    rows = np.fromiter(new.values(), dtype=np.int64, count=len(new))
    fitted = np.full((len(rows), 5), np.nan)
    fitted[:, 2] = 0
    # the fits' matrix products are small: a multi-threaded BLAS inside the fit
    # threads oversubscribes the cores (2-3x slower on two cores)
    with threadpool_limits(1, user_api="blas"):
        if "wald" in tests or "lrt" in tests:
            fitted[:, :4] = _fit_rows(g[rows], y, cov, firth_fallback=firth_fallback, loglik=True)
        if "lrt" in tests or "score" in tests:
            ll0, fitted[:, 4] = _null_tests(g[rows], y, cov)
            fitted[:, 3] = np.maximum(2 * (fitted[:, 3] - ll0), 0.0)
    cache.update(zip(new, map(tuple, fitted.tolist()), strict=True))


def logistic_regression(
    g: np.ndarray,
    y: np.ndarray,
    covariates: np.ndarray | None = None,
    *,
    firth_fallback: bool = True,
    fit_cache: dict[bytes, tuple[float, ...]] | None = None,
    tests: Sequence[str] = ("wald",),
    row_codes: np.ndarray | None = None,
) -> pl.DataFrame:
    """Logistic regression of ``y`` on each row of ``g`` plus covariates, vectorised.

    Ordinary maximum likelihood (Newton/IRLS) for all rows at once. As
    ``plink2 --glm`` with its default ``firth-fallback``, rows where cases or
    controls all have ``g == 0`` (complete or quasi-complete separation) and
    rows whose ordinary fit does not converge (or gives |beta| > 15) are
    refitted with Firth's penalised likelihood when ``firth_fallback``,
    otherwise reported as null. Rows where ``g`` is constant are null.

    Besides the Wald test of the fit, as hail's ``logistic_regression_rows``:
    the likelihood-ratio test (``"lrt"``: twice the log-likelihood of the fit
    over that of the covariates-only model on the same samples; null where
    only a Firth fit exists) and the score (Rao) test (``"score"``: needs
    only the covariates-only model, so it is the fastest and is defined for
    separated rows too). Both are chi-square with 1 degree of freedom.

    Parameters
    ----------
    g
        (variants, samples) predictor (e.g. ALT dosage); NaN = missing.
    y
        (samples,) 0/1 outcome.
    covariates
        (samples, k) covariates without intercept (added here), or ``None``.
    firth_fallback
        Refit problem rows with Firth regression.
    fit_cache
        Fits by row content (a 128-bit BLAKE2 digest of the row), shared
        between calls with the same ``y``, ``covariates`` and ``tests`` (e.g.
        the blocks of one association run). Identical rows are common
        (singletons of one sample, which need Firth fits, and variants in
        complete LD): each distinct row is fitted once, here and in later
        calls given the same dict. Within one call rows are always
        deduplicated.
    tests
        Any of ``"wald"`` (the fit: beta, its SE, z and p), ``"lrt"`` and
        ``"score"``. Without ``"wald"`` and ``"lrt"`` no model with the
        genotype is fitted and those columns are null.
    row_codes
        Optional (variants, samples) small-integer array whose rows are equal
        exactly where the rows of ``g`` are (e.g. the dosages ``g`` was made
        from, -1 where missing): hashed for ``fit_cache`` instead of ``g``
        (a quarter of the bytes of float32). Digests of codes and of ``g``
        never meet in one cache: a cache is for one kind of key.

    Returns
    -------
    polars.DataFrame
        ``beta, standard_error, z, p_value`` (Wald, normal), ``firth``
        (whether the Firth fit was used), ``lrt_chi2, lrt_p_value``,
        ``score_chi2, score_p_value`` (null unless asked for), ``n_obs`` per
        row of ``g``.

    Raises
    ------
    ValidationError
        If ``tests`` names an unknown test.
    """
    from scipy.stats import chi2, norm

    _check_tests(tests)
    y = np.asarray(y, dtype=np.float64)
    n = len(y)
    cov = np.ones((n, 1))
    if covariates is not None and covariates.size:
        cov = np.column_stack([cov, np.asarray(covariates, dtype=np.float64)])
    g = np.asarray(g)
    if g.dtype not in (np.float32, np.float64):  # float32 holds dosages exactly, in half the memory
        g = np.asarray(g, dtype=np.float64)
    g = np.ascontiguousarray(g)
    v = len(g)
    mask = ~np.isnan(g)
    # one fit per distinct row content: identical rows (variants in complete LD,
    # singletons of the same sample) are common, and a fit depends on nothing else
    cache = {} if fit_cache is None else fit_cache
    keys = _row_keys(g, row_codes)
    _fit_new_rows(g, y, cov, keys, cache, tests=tests, firth_fallback=firth_fallback)
    fits = np.array([cache[key][:3] for key in keys], dtype=np.float64).reshape(-1, 3)
    extra = np.full((v, 2), np.nan)
    if "lrt" in tests or "score" in tests:
        extra = np.array([cache[key][3:5] for key in keys], dtype=np.float64).reshape(-1, 2)
    beta, se, firth = fits[:, 0], fits[:, 1], fits[:, 2] > 0
    z = beta / se
    p = 2 * norm.sf(np.abs(z))
    nan = np.full(v, np.nan)
    if "wald" not in tests:
        beta, se, z, p = nan, nan, nan, nan
    lrt = extra[:, 0] if "lrt" in tests else nan
    score = extra[:, 1] if "score" in tests else nan
    return pl.DataFrame(
        {
            "beta": beta,
            "standard_error": se,
            "z": z,
            "p_value": p,
            "firth": firth,
            "lrt_chi2": lrt,
            "lrt_p_value": chi2.sf(lrt, 1),
            "score_chi2": score,
            "score_p_value": chi2.sf(score, 1),
            "n_obs": mask.sum(axis=1),
        },
        nan_to_null=True,
    )
