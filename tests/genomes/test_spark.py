"""Spark (PySpark local mode) on the partitioned store: allele counts and frequencies
equal DuckDB's and plink2's on the same data (biobank.genomes.spark)."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
from genomes_support import REGISTRAR
from store_support import random_vcf, sample_store

from biobank.core.store import Store
from biobank.genomes.counts import allele_counts_in
from biobank.genomes.filters import VariantFilter
from biobank.genomes.reader import sample_table
from biobank.genomes.regions import Region, load_regions

pytestmark = pytest.mark.slow


@pytest.fixture(scope="session")
def spark() -> Iterator[Any]:
    """One local Spark session for the test session (2 cores, small driver memory)."""
    from biobank.genomes.spark import local_session

    if shutil.which("java") is None:  # a failure, not a skip: Spark is part of the product
        pytest.fail("Spark needs Java: './run test' installs Debian's default-jre-headless")

    session = local_session(cores=2, memory="512m")
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


def _duckdb_counts(store: Store, participants: list[str] | None) -> pl.DataFrame:
    with sample_table(store.con, participants) as tbl:
        df = allele_counts_in(store.con, tbl, VariantFilter())
    names = {
        "variant_n_called": "n_called",
        "variant_n_het": "n_het",
        "variant_n_hom_alt": "n_hom_alt",
        "variant_n_haploid_ref": "n_haploid_ref",
        "variant_n_haploid_alt": "n_haploid_alt",
        "variant_allele_total": "allele_total",
        "variant_alt_allele_count": "alt_allele_count",
        "variant_alt_allele_frequency": "alt_allele_frequency",
    }
    return (
        df.select("variant_key", *names)
        .rename(names)
        .with_columns(pl.exclude("alt_allele_frequency").cast(pl.Int64))
        .sort("variant_key")
    )


def _keys(store: Store, participants: list[str]) -> list[int]:
    with sample_table(store.con, participants) as tbl:
        return [int(r[0]) for r in store.con.execute(f"SELECT sample_key FROM {tbl}").fetchall()]


def _store(tmp_path: Path, name: str, *, odd: bool) -> tuple[Store, Path, list[str]]:
    vcf = tmp_path / f"{name}.vcf.gz"
    names = random_vcf(vcf, 70, 160, seed=21, odd=odd)  # > 64 samples: two words a plane
    s = sample_store(tmp_path / f"{name}.duckdb", names)
    load_regions(s, vcf, principal=REGISTRAR, regions=[Region("chr1"), Region("chr2")])
    return s, vcf, names


def test_spark_counts_equal_duckdb_every_call_kind(spark: Any, tmp_path: Path) -> None:
    from biobank.genomes.spark import allele_counts, register_views

    s, _, names = _store(tmp_path, "odd", odd=True)
    with s:
        register_views(spark, s)
        packed = s.con.execute("SELECT count(*) FROM genotype_packed").fetchone()
        assert packed is not None
        assert packed[0] > 0
        subset = [f"P-{n}" for n in names[::3]]
        for participants, keys in ((None, None), (subset, _keys(s, subset))):
            got = allele_counts(spark, keys)
            want = _duckdb_counts(s, participants)
            assert got.equals(want)


def test_spark_frequencies_equal_duckdb_and_plink2(spark: Any, tmp_path: Path) -> None:
    from biobank.genomes.spark import allele_counts, register_views

    s, vcf, _ = _store(tmp_path, "plain", odd=False)
    with s:
        register_views(spark, s)
        got = allele_counts(spark)
        assert got.equals(_duckdb_counts(s, None))
        order = s.con.execute(
            "SELECT variant_key FROM variant ORDER BY contig, position"
        ).fetchall()
    out = tmp_path / "plink"
    subprocess.run(
        ["plink2", "--vcf", str(vcf), "--freq", "--allow-extra-chr", "--out", str(out)],
        check=True,
        capture_output=True,
    )
    plink = pl.read_csv(f"{out}.afreq", separator="\t")
    by_key = got.join(
        pl.DataFrame({"variant_key": [int(r[0]) for r in order], "row": range(len(order))}),
        on="variant_key",
    ).sort("row")
    assert np.array_equal(by_key["allele_total"].to_numpy(), plink["OBS_CT"].to_numpy())
    assert np.allclose(by_key["alt_allele_frequency"].to_numpy(), plink["ALT_FREQS"].to_numpy())
