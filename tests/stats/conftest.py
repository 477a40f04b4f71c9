"""Fixtures of the statistics tests: the 1000 Genomes and simulated cohorts.

Session-scoped: several test modules read them, none writes to them.
"""

from __future__ import annotations

import gzip
import subprocess
from collections.abc import Iterator

import numpy as np
import polars as pl
import pytest
from stats_support import LOADER, SHARED, Cohort, bgzip, cases_controls, plink_all

from biobank.core.store import Store
from biobank.genomes.load import load_vcf
from biobank.stats.assoc import association


@pytest.fixture(scope="session")
def kg(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cohort]:
    """1000 Genomes chr21+chr22 loaded as one batch, and plink2 on the same VCFs."""
    if not SHARED.is_dir():
        pytest.skip("../shared/data is absent")
    tmp = tmp_path_factory.mktemp("kg")
    annot = pl.read_csv(SHARED / "1KG_phase3_subset_annot.tsv", separator="\t")
    pheno = annot.select(
        pl.col("sample.id").alias("#IID"),
        pl.col("status"),
        (pl.col("sex") == "M").cast(pl.Int64).alias("sexcov"),
        pl.col("outcome"),
    )
    pheno.write_csv(tmp / "pheno.tsv", separator="\t")
    store = Store(tmp / "kg.duckdb")
    store.con.register("_a", annot.select(pl.col("sample.id").alias("s")))
    store.con.execute("INSERT INTO sequencing_sample SELECT s, 'L-' || s, 'P-' || s FROM _a")
    vcfs = [SHARED / f"1KG_phase3_subset_chr{c}.vcf.gz" for c in ("21", "22")]
    parts: dict[str, list[pl.DataFrame]] = {}
    for i, vcf in enumerate(vcfs):
        load_vcf(store, vcf, principal=LOADER)
        for name, df in plink_all(
            vcf, tmp / "pheno.tsv", ["sexcov", "outcome"], tmp / f"p{i}"
        ).items():
            parts.setdefault(name, []).append(df)
    merged = {k: pl.concat(v) for k, v in parts.items()}
    yield Cohort(
        store=store,
        pheno=pheno.with_columns(participant_id="P-" + pl.col("#IID")),
        covariates=["sexcov", "outcome"],
        vcfs=vcfs,
        **merged,
    )
    store.close()


@pytest.fixture(scope="session")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cohort]:
    """An msprime cohort in two batches; batch B lacks 10 % of variants and 3 % of calls."""
    from biobank.testing.population import simulate_cohort_vcf

    tmp = tmp_path_factory.mktemp("sim")
    full = simulate_cohort_vcf(tmp / "full.vcf.gz", n_samples=400, n_variants=1200, seed=5)
    rng = np.random.default_rng(5)
    with gzip.open(full, "rt") as fh:
        lines = fh.read().splitlines()
    header = [ln for ln in lines if ln.startswith("##")]
    cols = next(ln for ln in lines if ln.startswith("#CHROM")).split("\t")
    records = [ln.split("\t") for ln in lines if not ln.startswith("#")]
    names = cols[9:]
    a_idx, b_idx = range(0, 250), range(250, 400)
    files = []
    for label, idx, drop, miss in (("A", a_idx, 0.0, 0.0), ("B", b_idx, 0.1, 0.03)):
        path = tmp / f"{label}.vcf"
        with open(path, "w") as out:
            out.write("\n".join(header) + "\n")
            out.write("\t".join(cols[:9] + [names[i] for i in idx]) + "\n")
            for rec in records:
                if rng.random() < drop:
                    continue
                gts = [rec[9 + i] if rng.random() >= miss else "./." for i in idx]
                out.write("\t".join([*rec[:7], ".", "GT", *gts]) + "\n")
        files.append(bgzip(path))
    merged = tmp / "merged.vcf.gz"
    subprocess.run(["bcftools", "merge", "-Oz", "-o", str(merged), *map(str, files)], check=True)
    # phenotype: a covariate and one causal common variant
    with gzip.open(merged, "rt") as fh:
        rows = [ln.split("\t") for ln in fh if not ln.startswith("#")]
    dos = np.array([[g.count("1") if "." not in g else 0 for g in r[9:]] for r in rows])
    complete = np.array([not any("." in g for g in r[9:]) for r in rows])
    common = np.flatnonzero((dos.mean(axis=1) > 0.3) & (dos.mean(axis=1) < 0.7) & complete)
    x = rng.normal(size=len(names))
    eta = -0.8 + 1.5 * dos[common[0]] + 0.7 * x
    status = (rng.random(len(names)) < 1 / (1 + np.exp(-eta))).astype(int)
    pheno = pl.DataFrame({"#IID": names, "status": status, "cov1": x})
    pheno.write_csv(tmp / "pheno.tsv", separator="\t")
    store = Store(tmp / "sim.duckdb")
    store.con.execute(
        "INSERT INTO sequencing_sample SELECT unnest(?::VARCHAR[]) AS s, 'L', 'P-' || s",
        [names],
    )
    for f in files:
        load_vcf(store, f, principal=LOADER)
    out = plink_all(merged, tmp / "pheno.tsv", ["cov1"], tmp / "pm")
    yield Cohort(
        store=store,
        pheno=pheno.with_columns(participant_id="P-" + pl.col("#IID")),
        covariates=["cov1"],
        vcfs=[merged],
        **out,
    )
    store.close()


@pytest.fixture(scope="session")
def sim_assoc(sim: Cohort) -> pl.DataFrame:
    """association() on the simulated cohort with its covariate (computed once)."""
    cases, controls, cov = cases_controls(sim.pheno, sim.covariates)
    return association(sim.store.con, cases, controls, covariates=cov)
