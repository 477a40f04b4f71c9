"""A federated logistic regression over three centres against the pooled local fit.

Three demo centres (``biobank.testing.build_centre_store``, seeds 31-33, preset
``demo`` by default: about 1,000 participants each), each served by its own
``biobank serve`` on loopback; the coordinator fits ``E11 ~ sex + age`` by
Newton-Raphson on the summed per-centre statistics
(:func:`biobank.research.federation.federated_logistic`). The reference is the
pooled fit on one machine: each store's design rows read locally, stacked, and
``statsmodels`` ``Logit`` (Newton). Both are timed as the median of 5 runs,
and the coefficients compared.

    .venv/bin/python benchmarks/bench_federation.py [preset]
"""

from __future__ import annotations

import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from _common import WORK

SEEDS = (31, 32, 33)
QUESTION = {"outcome": "E11", "covariates": ["sex", "age"], "reference_year": 2026}


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main(preset: str = "demo") -> None:
    import httpx
    import statsmodels.api as sm

    from biobank.core.access import Principal, Role
    from biobank.core.store import Store
    from biobank.research.federation import Centre, Federation, federated_logistic
    from biobank.research.federation.centre import design_matrix
    from biobank.research.partners import add_partner
    from biobank.testing import build_centre_store

    stores, tokens = [], []
    for seed in SEEDS:
        root = WORK / f"federation_{preset}_{seed}"
        path = root / "centre.duckdb"
        if not path.exists():
            t = time.perf_counter()
            build_centre_store(root, seed=seed, preset=preset)
            print(f"built {path} in {time.perf_counter() - t:.1f} s")
        with Store(path) as store:
            tokens.append(
                add_partner(
                    store, Principal("admin", Role.ADMIN), f"coord-{os.getpid()}", purpose="HMB"
                )
            )
        stores.append(path)

    def pooled() -> tuple[np.ndarray, object]:
        parts = []
        for path in stores:
            with Store(path, read_only=True) as store:
                parts.append(design_matrix(store.con, QUESTION, "HMB")[1:])
        x = np.vstack([p[0] for p in parts])
        y = np.concatenate([p[1] for p in parts])
        fit = sm.Logit(y, x).fit(method="newton", tol=1e-12, disp=False)
        return np.asarray(fit.params), fit

    t_local = []
    for _ in range(5):
        t = time.perf_counter()
        local_beta, local = pooled()
        t_local.append(time.perf_counter() - t)

    biobank = Path(sys.executable).parent / "biobank"
    env = {**os.environ, "BIOBANK_SECRET_KEY": "f" * 40}
    procs, centres = [], []
    for i, (path, token) in enumerate(zip(stores, tokens, strict=True), start=1):
        port = _port()
        procs.append(
            subprocess.Popen(
                [str(biobank), "--store", str(path), "serve", "--port", str(port)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                env=env,
            )
        )
        centres.append(Centre(f"centre-{i}", f"http://127.0.0.1:{port}", token))
    try:
        for c in centres:
            for _ in range(300):
                try:
                    if httpx.get(c.url + "/api/beacon/info", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.2)
        federation = Federation(centres, timeout=60)
        t_fed = []
        for _ in range(5):
            t = time.perf_counter()
            fit = federated_logistic(federation, "E11", ["sex", "age"], reference_year=2026)
            t_fed.append(time.perf_counter() - t)
    finally:
        for p in procs:
            p.terminate()
            p.wait(timeout=30)
    rel = np.max(np.abs(fit.beta - local_beta) / np.abs(local_beta))
    rel_se = np.max(np.abs(fit.standard_error - np.asarray(local.bse)) / np.asarray(local.bse))  # type: ignore[attr-defined]
    f_med, l_med = statistics.median(t_fed), statistics.median(t_local)
    print(
        f"three centres ({preset}), n = {fit.n} ({fit.n_cases} cases), {fit.iterations} iterations"
    )
    print(f"  federated over HTTP: median {f_med:.3f} s; pooled local fit: median {l_med:.3f} s")
    print(f"  ratio federated / pooled: {f_med / l_med:.2f}")
    print(f"  max relative difference: beta {rel:.2e}, standard error {rel_se:.2e}")


if __name__ == "__main__":
    main(*sys.argv[1:])
