"""Shared helpers of the benchmark scripts (run by hand, not in CI)."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

WORK = Path(os.environ.get("BIOBANK_BENCH_DIR", "/tmp/biobank-bench"))


def cohort_vcf(n_samples: int, n_variants: int, *, seed: int = 7) -> Path:
    """Return (simulating once with msprime) the benchmark cohort VCF."""
    from biobank.testing.population import simulate_cohort_vcf

    WORK.mkdir(parents=True, exist_ok=True)
    path = WORK / f"cohort_{n_samples}x{n_variants}.vcf.gz"
    if not path.exists():
        t = time.perf_counter()
        simulate_cohort_vcf(path, n_samples=n_samples, n_variants=n_variants, seed=seed)
        print(f"simulated {path} in {time.perf_counter() - t:.1f} s")
    return path


def sample_names(n_samples: int) -> list[str]:
    """Sample names written by ``simulate_cohort_vcf``."""
    return [f"S{i:06d}" for i in range(1, n_samples + 1)]


def timed(cmd: list[str]) -> float:
    """Run a command, return its wall time in seconds."""
    t = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True)
    return time.perf_counter() - t


def store_path(n_samples: int, n_variants: int) -> Path:
    """The benchmark store loaded by bench_load.py."""
    return WORK / f"store_{n_samples}x{n_variants}.duckdb"


def pfile(n_samples: int, n_variants: int) -> Path:
    """The plink2 fileset prefix written by bench_load.py."""
    return WORK / f"pgen_{n_samples}x{n_variants}"
