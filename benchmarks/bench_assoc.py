"""Logistic and linear association over all variants vs ``plink2 --glm`` (same covariates).

Usage (after ``bench_load.py`` with the same sizes)::

    .venv/bin/python benchmarks/bench_assoc.py [N_SAMPLES] [N_VARIANTS]

Case status, a quantitative trait and two covariates (one standard normal,
one 0/1 'sex') are simulated with a fixed seed; both tools fit ``status ~ ALT
dosage + covariates`` with Firth fallback (plink2's default
``firth-fallback``), and ``trait ~ ALT dosage + covariates`` by least squares
(plink2's ``.glm.linear``). Our likelihood-ratio and score tests are timed
too (plink2 has neither for logistic regression; hail has both).
"""

from __future__ import annotations

import sys
import time

import numpy as np
import polars as pl
from _common import WORK, pfile, sample_names, store_path, timed

from biobank.core.store import Store
from biobank.stats.assoc import association
from biobank.stats.linear import linear_association


def main(n_samples: int = 3000, n_variants: int = 45_000) -> None:
    rng = np.random.default_rng(1)
    names = sample_names(n_samples)
    pheno = pl.DataFrame(
        {
            "#IID": names,
            "status": (rng.random(n_samples) < 0.3).astype(int),
            "cov1": rng.normal(size=n_samples),
            "sex": rng.integers(0, 2, n_samples),
            "trait": rng.normal(5.0, 1.2, n_samples),
        }
    )
    pheno_file = WORK / "pheno.tsv"
    pheno.write_csv(pheno_file, separator="\t")
    t_plink = timed(
        [
            "plink2",
            "--pfile",
            str(pfile(n_samples, n_variants)),
            "--pheno",
            str(pheno_file),
            "--pheno-name",
            "status",
            "--1",
            "--covar",
            str(pheno_file),
            "--covar-name",
            "cov1,sex",
            "--glm",
            "hide-covar",
            "--out",
            str(WORK / "glm"),
            "--threads",
            "2",
        ]
    )
    t_plink_linear = timed(
        [
            *("plink2", "--pfile", str(pfile(n_samples, n_variants))),
            *("--pheno", str(pheno_file), "--pheno-name", "trait"),
            *("--covar", str(pheno_file), "--covar-name", "cov1,sex"),
            *("--glm", "hide-covar", "--out", str(WORK / "glm"), "--threads", "2"),
        ]
    )
    ids = pheno.with_columns(participant_id="P-" + pl.col("#IID"))
    cases = ids.filter(pl.col("status") == 1)["participant_id"].to_list()
    controls = ids.filter(pl.col("status") == 0)["participant_id"].to_list()
    cov = ids.select("participant_id", "cov1", "sex")
    t = time.perf_counter()
    import pandas  # noqa: F401  (DuckDB imports it on its first scan of a Python object)
    import scipy.special
    import scipy.stats  # noqa: F401  (imported before timing, as in a notebook session)

    t_import = time.perf_counter() - t
    with Store(store_path(n_samples, n_variants), read_only=True) as store:
        t = time.perf_counter()
        res = association(store.con, cases, controls, covariates=cov, tests=["logistic"])
        t_ours = time.perf_counter() - t
        t = time.perf_counter()
        association(store.con, cases, controls, tests=["fisher"])
        t_fisher = time.perf_counter() - t
        extra = {}
        for tests in (["score"], ["logistic", "lrt"], ["logistic", "lrt", "score"]):
            t = time.perf_counter()
            association(store.con, cases, controls, covariates=cov, tests=tests)
            extra["+".join(tests)] = time.perf_counter() - t
        t = time.perf_counter()
        lin = linear_association(
            store.con,
            ids["participant_id"].to_list(),
            ids.select("participant_id", "trait"),
            covariates=cov,
        )
        t_linear = time.perf_counter() - t
    print(
        f"{len(cases)} cases, {len(controls)} controls, {res.height} variants, "
        f"{int(res['variant_firth'].sum())} Firth fits"
    )
    glm = pl.read_csv(WORK / "glm.status.glm.logistic.hybrid", separator="\t")
    same = res.join(
        glm.select(
            pl.col("POS").alias("variant_position"),
            pl.col("A1").alias("variant_alt"),
            (pl.col("FIRTH?") == "Y").alias("plink_firth"),
            pl.col("OR").cast(pl.Float64, strict=False).log().alias("plink_beta"),
            pl.col("LOG(OR)_SE").cast(pl.Float64, strict=False).alias("plink_se"),
        ),
        on=["variant_position", "variant_alt"],
    )
    agree = int((same["variant_firth"] == same["plink_firth"]).sum())
    diff = (same["variant_beta"] - same["plink_beta"]).abs()
    se_rel = (same["variant_standard_error"] / same["plink_se"] - 1).abs()
    only_plink = same.filter(pl.col("variant_beta").is_null() & pl.col("plink_beta").is_not_null())
    only_ours = same.filter(pl.col("variant_beta").is_not_null() & pl.col("plink_beta").is_null())
    print(
        f"agreement with plink2: Firth fallback on the same variant for {agree} of "
        f"{same.height}; max |beta - plink2 beta| {diff.max():.2e}, "
        f"max relative SE difference {se_rel.max():.2e}; a beta from plink2 only: "
        f"{only_plink.height}, from us only: {only_ours.height}"
    )
    glm_lin = pl.read_csv(WORK / "glm.trait.glm.linear", separator="\t", null_values="NA")
    both = lin.join(
        glm_lin.select(
            pl.col("POS").alias("variant_position"),
            pl.col("A1").alias("variant_alt"),
            pl.col("BETA").cast(pl.Float64).alias("plink_beta"),
            pl.col("SE").cast(pl.Float64).alias("plink_se"),
        ),
        on=["variant_position", "variant_alt"],
    ).drop_nulls(["variant_beta", "plink_beta"])
    beta_diff = ((both["variant_beta"] - both["plink_beta"]).abs() / both["plink_se"]).max()
    se_diff = (both["variant_standard_error"] / both["plink_se"] - 1).abs().max()
    print(
        f"linear, agreement with plink2 on {both.height} variants: max |beta - plink2 beta| "
        f"{beta_diff:.2e} SEs, max relative SE difference {se_diff:.2e}"
    )
    print(f"plink2 --glm:               {t_plink:.1f} s")
    print(f"(scipy, pandas imports, not timed:  {t_import:.1f} s)")
    print(f"association (logistic):     {t_ours:.1f} s")
    print(f"association (Fisher only):  {t_fisher:.1f} s")
    print(f"ratio logistic: {t_ours / t_plink:.2f}x (target <= 3x)")
    for name, secs in extra.items():
        print(f"association ({name}): {secs:.1f} s ({secs / t_plink:.2f}x plink2 --glm Wald)")
    print(f"plink2 --glm (linear):      {t_plink_linear:.1f} s")
    print(f"linear_association:         {t_linear:.1f} s")
    print(f"ratio linear: {t_linear / t_plink_linear:.2f}x")


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:3]))
