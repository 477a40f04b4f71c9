"""Logistic and linear association over all variants vs ``plink2 --glm`` (same covariates).

Usage (after ``bench_load.py`` with the same sizes)::

    .venv/bin/python benchmarks/bench_assoc.py [N_SAMPLES] [N_VARIANTS] [--partitioned]
        [--logistic-only] [--repeat N]

Case status, a quantitative trait and two covariates (one standard normal,
one 0/1 'sex') are simulated with a fixed seed; both tools fit ``status ~ ALT
dosage + covariates`` with Firth fallback (plink2's default
``firth-fallback``), and ``trait ~ ALT dosage + covariates`` by least squares
(plink2's ``.glm.linear``). Our likelihood-ratio and score tests are timed
too (plink2 has neither for logistic regression; hail has both).

``--partitioned`` also times the logistic association on a partitioned copy
of the same cohort (Parquet call partitions + DuckDB catalog, issue 18),
built once beside the single-file store with ``load_vcf(..., partitioned=True)``
from the same VCF.gz, and checks that both layouts give identical results.
``--repeat N`` times plink2 ``--glm`` and the logistic association on each
layout N times, alternating them (the host is shared: compare ratios within
one run), and reports each run's ratio of wall and of CPU time (all
threads; plink2's from ``getrusage`` of the child). ``--logistic-only`` skips the Fisher,
score, likelihood-ratio and linear timings.
"""

from __future__ import annotations

import resource
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl
from _common import WORK, cohort_vcf, pfile, sample_names, store_path, timed

from biobank.core.access import Principal, Role
from biobank.core.store import Store
from biobank.stats.assoc import association
from biobank.stats.linear import linear_association


def _cpu(who: int) -> float:
    """User + system CPU seconds of this process (all threads) or of its ended children."""
    r = resource.getrusage(who)
    return r.ru_utime + r.ru_stime


def partitioned_store(n_samples: int, n_variants: int) -> Path:
    """The partitioned copy of the benchmark cohort (built once, from the same VCF.gz)."""
    from biobank.genomes.load import load_vcf

    db = WORK / f"store_part_{n_samples}x{n_variants}.duckdb"
    if db.exists():
        return db
    for f in db.parent.glob(db.name + "*"):
        shutil.rmtree(f) if f.is_dir() else f.unlink()
    t = time.perf_counter()
    with Store(db) as store:
        store.con.execute(
            "INSERT INTO sequencing_sample SELECT unnest(?::VARCHAR[]) AS s, 'L-' || s, 'P-' || s",
            [sample_names(n_samples)],
        )
        load_vcf(
            store,
            cohort_vcf(n_samples, n_variants),
            principal=Principal("bench", Role.ADMIN),
            partitioned=True,
        )
        store.con.execute("CHECKPOINT")
    print(f"built the partitioned store {db} in {time.perf_counter() - t:.1f} s")
    return db


def main(
    n_samples: int = 3000,
    n_variants: int = 45_000,
    *,
    partitioned: bool = False,
    logistic_only: bool = False,
    repeat: int = 1,
) -> None:
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
    glm_cmd = [
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
    ids = pheno.with_columns(participant_id="P-" + pl.col("#IID"))
    cases = ids.filter(pl.col("status") == 1)["participant_id"].to_list()
    controls = ids.filter(pl.col("status") == 0)["participant_id"].to_list()
    cov = ids.select("participant_id", "cov1", "sex")
    t = time.perf_counter()
    import pandas  # noqa: F401  (DuckDB imports it on its first scan of a Python object)
    import scipy.special
    import scipy.stats  # noqa: F401  (imported before timing, as in a notebook session)

    t_import = time.perf_counter() - t
    layouts = {"single-file": store_path(n_samples, n_variants)}
    if partitioned:
        layouts["partitioned"] = partitioned_store(n_samples, n_variants)
    runs: dict[str, list[float]] = {"plink2": [], **{k: [] for k in layouts}}
    cpu: dict[str, list[float]] = {k: [] for k in runs}  # CPU seconds, all threads
    results: dict[str, pl.DataFrame] = {}
    for _ in range(repeat):  # alternating, so that all see the same load on a shared host
        c = _cpu(resource.RUSAGE_CHILDREN)
        runs["plink2"].append(timed(glm_cmd))
        cpu["plink2"].append(_cpu(resource.RUSAGE_CHILDREN) - c)
        for name, db in layouts.items():
            with Store(db, read_only=True) as store:
                c = _cpu(resource.RUSAGE_SELF)
                t = time.perf_counter()
                results[name] = association(
                    store.con, cases, controls, covariates=cov, tests=["logistic"]
                )
                runs[name].append(time.perf_counter() - t)
                cpu[name].append(_cpu(resource.RUSAGE_SELF) - c)
    res = results["single-file"]
    if partitioned:
        assert res.equals(results["partitioned"]), "the two layouts disagree"
    t_plink = min(runs["plink2"])
    t_ours = min(runs["single-file"])
    extra: dict[str, float] = {}
    t_fisher = t_linear = t_plink_linear = float("nan")
    if not logistic_only:
        t_plink_linear = timed(
            [
                *("plink2", "--pfile", str(pfile(n_samples, n_variants))),
                *("--pheno", str(pheno_file), "--pheno-name", "trait"),
                *("--covar", str(pheno_file), "--covar-name", "cov1,sex"),
                *("--glm", "hide-covar", "--out", str(WORK / "glm"), "--threads", "2"),
            ]
        )
        with Store(store_path(n_samples, n_variants), read_only=True) as store:
            t = time.perf_counter()
            association(store.con, cases, controls, tests=["fisher"])
            t_fisher = time.perf_counter() - t
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
    if not logistic_only:
        _compare_linear(lin)
    print(f"plink2 --glm:               {t_plink:.1f} s (best of {repeat})")
    print(f"(scipy, pandas imports, not timed:  {t_import:.1f} s)")
    print(f"association (logistic):     {t_ours:.1f} s (single-file store, best of {repeat})")
    print(f"ratio logistic: {t_ours / t_plink:.2f}x (target <= 2x)")
    if partitioned:
        t_part = min(runs["partitioned"])
        print(f"association (logistic):     {t_part:.1f} s (partitioned store, best of {repeat})")
        print(f"ratio logistic, partitioned: {t_part / t_plink:.2f}x (target <= 2x)")
    for name in layouts:
        each = ", ".join(
            f"{ours:.1f}/{theirs:.1f} s = {ours / theirs:.2f}x"
            for ours, theirs in zip(runs[name], runs["plink2"], strict=True)
        )
        print(f"  {name:>12} store, each run (ours/plink2): {each}")
        each = ", ".join(
            f"{ours:.1f}/{theirs:.1f} s = {ours / theirs:.2f}x"
            for ours, theirs in zip(cpu[name], cpu["plink2"], strict=True)
        )
        print(f"  {name:>12} store, CPU of each run (ours/plink2): {each}")
    if logistic_only:
        return
    print(f"association (Fisher only):  {t_fisher:.1f} s")
    for name, secs in extra.items():
        print(f"association ({name}): {secs:.1f} s ({secs / t_plink:.2f}x plink2 --glm Wald)")
    print(f"plink2 --glm (linear):      {t_plink_linear:.1f} s")
    print(f"linear_association:         {t_linear:.1f} s")
    print(f"ratio linear: {t_linear / t_plink_linear:.2f}x")


def _compare_linear(lin: pl.DataFrame) -> None:
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


if __name__ == "__main__":
    args = sys.argv[1:]
    flags = {a for a in args if a.startswith("--") and a != "--repeat"}
    n_repeat = 1
    if "--repeat" in args:
        i = args.index("--repeat")
        n_repeat = int(args[i + 1])
        del args[i : i + 2]
    unknown = flags - {"--partitioned", "--logistic-only"}
    if unknown:
        raise SystemExit(f"unknown option(s): {', '.join(sorted(unknown))}")
    main(
        *(int(a) for a in args if not a.startswith("--")),
        partitioned="--partitioned" in flags,
        logistic_only="--logistic-only" in flags,
        repeat=n_repeat,
    )
