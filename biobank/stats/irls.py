"""Vectorised kernels of the logistic fits of :mod:`biobank.stats.regression`.

Every function works on a block of rows at once: ``g`` (rows, samples)
genotypes (0 where missing, with a 0/1 call mask), ``cov`` (samples, k) the
covariates with the intercept column, ``cc`` their per-sample outer products
(samples, k * k), ``b`` (rows, k + 1) coefficients, genotype first. The
state of a fit at ``b`` (:func:`_fit_state`: linear predictor, ``mu``, weights,
information ``X'WX`` and its log determinant) is shared by the ordinary
Newton/IRLS fits (:func:`_newton_block`) and the Firth fits
(:mod:`biobank.stats.firth`).
"""

from __future__ import annotations

import numpy as np

__all__: list[str] = []


def _expit(eta: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """The logistic function ``1 / (1 + e^-eta)``, elementwise, in numpy's vectorised ``exp``.

    About twice as fast as :func:`scipy.special.expit` here (numpy's ``exp``
    uses the CPU's vector instructions) and as exact (the two agree to a unit
    in the last place); ``e^-eta`` overflowing to infinity gives 0, as it should.
    """
    out = np.negative(eta, out=out)
    with np.errstate(over="ignore"):
        np.exp(out, out=out)
    out += 1.0
    return np.reciprocal(out, out=out)


def _null_fit(y: np.ndarray, cov: np.ndarray, *, max_iter: int = 50) -> np.ndarray:
    """Coefficients of the covariates-only logistic model (the start for every variant)."""
    b = np.zeros(cov.shape[1])
    for _ in range(max_iter):
        mu = _expit(cov @ b)
        w = mu * (1 - mu)
        step = np.linalg.lstsq(cov.T @ (cov * w[:, None]), cov.T @ (y - mu), rcond=None)[0]
        b += np.clip(step, -5, 5)
        if np.abs(step).max() < 1e-10:
            break
    return b


def _softplus(eta: np.ndarray, mu: np.ndarray) -> np.ndarray:
    """``log(1 + e^eta)`` given ``mu = expit(eta)``.

    ``eta - log(mu)`` for ``eta > 0``, else ``-log(1 - mu)``: one log of a
    number in [0.5, 1] (accurate) instead of :func:`numpy.logaddexp`, which
    costs two transcendental functions per element.
    """
    half = 1.0 - mu
    np.copyto(half, mu, where=eta > 0)  # the one of mu, 1 - mu in [0.5, 1]
    np.log(half, out=half)
    out = np.maximum(eta, 0.0)
    out -= half
    return out


def _information(i00: np.ndarray, wg: np.ndarray, wcc: np.ndarray) -> np.ndarray:
    """(rows, k, k) ``X' W X`` from its genotype, genotype-covariate and covariate parts."""
    kc = wg.shape[1]
    info = np.empty((len(i00), kc + 1, kc + 1))
    info[:, 0, 0] = i00
    info[:, 0, 1:] = wg
    info[:, 1:, 0] = wg
    info[:, 1:, 1:] = np.reshape(wcc, (-1, kc, kc))
    return info


def _weighted_information(
    w: np.ndarray, gr: np.ndarray, cov: np.ndarray, cc: np.ndarray
) -> np.ndarray:
    """(rows, k, k) ``X' diag(w) X`` per row, ``X = (g, cov)``; ``w`` (rows, samples)."""
    wgr = w * gr
    return _information(_row_dots(wgr, gr), wgr @ cov, w @ cc)


def _row_dots(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``(a * b).sum(axis=1)`` without the (rows, samples) temporary."""
    return np.einsum("ij,ij->i", a, b)


def _usable(info: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows whose (k, k) matrix is positive definite enough to invert, and its log det."""
    sign, logdet = np.linalg.slogdet(info)
    return (sign > 0) & np.isfinite(logdet) & (logdet > -700), logdet


def _block_arrays(
    g: np.ndarray, start: np.ndarray
) -> tuple[np.ndarray, np.ndarray, bool, np.ndarray]:
    """A fit block's genotypes (0 where missing), call mask, whether complete, start betas."""
    mask = ~np.isnan(g)
    gz = np.where(mask, g, 0.0).astype(np.float64, copy=False)
    beta = np.zeros((len(g), len(start) + 1))
    beta[:, 1:] = start
    return gz, mask.astype(np.float64), bool(mask.all()), beta


def _fit_state(
    gr: np.ndarray,
    mr: np.ndarray,
    b: np.ndarray,
    y: np.ndarray,
    cov: np.ndarray,
    cc: np.ndarray,
    *,
    complete: bool,
    loglik: bool,
) -> tuple[np.ndarray, ...]:
    """The fits' state at coefficients ``b`` (rows, k) for genotype rows ``gr``.

    Returns the log-likelihood (zeros unless ``loglik``: it costs a ``log``
    per genotype), ``mu``, the weights ``mu (1 - mu)``, the information
    ``X'WX``, whether it is usable, and its log determinant. ``mr`` masks
    missing calls (unused when ``complete``).
    """
    eta = b[:, 1:] @ cov.T
    eta += gr * b[:, :1]
    mu = _expit(eta)
    if loglik:
        lae = _softplus(eta, mu)
        eta *= y
        eta -= lae
        if not complete:
            eta *= mr
        ll = eta.sum(axis=1)
    else:
        ll = np.zeros(len(b))
    w = 1.0 - mu
    w *= mu
    if not complete:
        w *= mr
    info = _weighted_information(w, gr, cov, cc)
    ok, logdet = _usable(info)
    return ll, mu, w, info, ok, logdet


def _newton_block(
    g: np.ndarray,
    y: np.ndarray,
    cov: np.ndarray,
    cc: np.ndarray,
    start: np.ndarray,
    *,
    line_search: bool,
    max_iter: int,
    tol: float,
    loglik: bool = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One block of ordinary fits of :func:`_newton` (``cc``: covariate outer products).

    Returns ``beta``, ``se``, converged and the log-likelihood at the estimate
    (NaN unless ``loglik``).
    """
    v = g.shape[0]
    kc = cov.shape[1]
    k = kc + 1
    gz, m, complete, beta = _block_arrays(g, start)  # complete: skip the masking products

    def take(a: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """``a[rows]``, without the copy when ``rows`` is every row (the usual case)."""
        return a if len(rows) == v else a[rows]

    def state(rows: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, ...]:
        """Log-likelihood (only for step halving), mu, information and whether it is usable."""
        ll, mu, _, info, ok, _ = _fit_state(
            take(gz, rows), take(m, rows), b, y, cov, cc, complete=complete, loglik=line_search
        )
        return ll, mu, info, ok

    def start_state() -> tuple[np.ndarray, ...]:
        """:func:`state` at the start, where every row has the same linear predictor.

        With the genotype coefficient 0 all rows share ``mu`` and the weights
        (up to their missing calls): one ``expit`` over the samples instead of
        one per row, and the rows share a read-only ``mu`` until a row moves.
        """
        eta = cov @ start
        mu0 = _expit(eta)
        w0 = (1.0 - mu0) * mu0
        ll = np.zeros(v)
        if line_search:
            per_sample = y * eta - _softplus(eta, mu0)
            ll = m @ per_sample if not complete else np.full(v, per_sample.sum())
        mu = np.broadcast_to(mu0, (v, len(y)))
        info = _information(  # gz is 0 where a call is missing
            (gz * gz) @ w0,
            gz @ (w0[:, None] * cov),
            np.broadcast_to(w0 @ cc, (v, kc * kc)) if complete else m @ (w0[:, None] * cc),
        )
        return ll, mu, info, _usable(info)[0]

    lik, mu, info, ok = start_state()
    converged = np.zeros(v, dtype=bool)
    failed = ~ok
    active = ok.copy()
    for _ in range(max_iter):
        idx = np.flatnonzero(active)
        if not len(idx):
            break
        inv = np.linalg.inv(take(info, idx))
        gr, mr, mu_a = take(gz, idx), take(m, idx), take(mu, idx)
        resid = y[None, :] - mu_a
        if not complete:
            resid *= mr
        score = np.empty((len(idx), k))
        score[:, 0] = _row_dots(resid, gr)
        score[:, 1:] = resid @ cov
        delta = np.einsum("vij,vj->vi", inv, score)
        biggest = np.abs(delta).max(axis=1)
        delta *= np.minimum(1.0, 5.0 / np.maximum(biggest, 1e-300))[:, None]
        old = lik[idx]
        new_lik, new_mu, new_info, new_ok = state(idx, take(beta, idx) + delta)
        worse = ~new_ok | (new_lik < old) if line_search else ~new_ok
        for _half in range(25):  # step halving, only for the rows that got worse
            if not worse.any():
                break
            wi = np.flatnonzero(worse)
            delta[wi] /= 2
            sub = state(idx[wi], beta[idx[wi]] + delta[wi])
            new_lik[wi], new_mu[wi], new_info[wi], new_ok[wi] = sub
            worse[wi] = ~sub[3] | (sub[0] < old[wi]) if line_search else ~sub[3]
        beta[idx] += delta
        if len(idx) == v:
            lik, mu, info = new_lik, new_mu, new_info
        else:
            if not mu.flags.writeable:  # still the shared start: give each row its own
                mu = np.array(mu)
            lik[idx], mu[idx], info[idx] = new_lik, new_mu, new_info
        step = np.abs(delta).max(axis=1)
        done = step < tol
        converged[idx[done & new_ok]] = True
        failed[idx[~new_ok]] = True
        active[idx[done | ~new_ok]] = False
    se = np.full(v, np.nan)
    good = ~failed
    if good.any():
        se[good] = np.sqrt(np.maximum(np.linalg.inv(info[good])[:, 0, 0], 0.0))
    converged &= good & np.isfinite(beta[:, 0])
    ll = np.full(v, np.nan)
    if loglik and converged.any():
        rows = np.flatnonzero(converged)
        ll[rows] = _fit_loglik(take(gz, rows), take(m, rows), beta[rows], y, cov, complete=complete)
    return beta[:, 0], se, converged, ll


def _fit_loglik(
    gr: np.ndarray, mr: np.ndarray, b: np.ndarray, y: np.ndarray, cov: np.ndarray, *, complete: bool
) -> np.ndarray:
    """Log-likelihood of ``logit P(y) = b0*g + cov @ b[1:]`` per row (``mr``: 0 = missing)."""
    eta = b[:, 1:] @ cov.T
    eta += gr * b[:, :1]
    per = y * eta - _softplus(eta, _expit(eta))
    if not complete:
        per *= mr
    return np.asarray(per.sum(axis=1))
