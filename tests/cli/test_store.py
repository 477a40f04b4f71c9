"""Tests for the partitioned-store commands: load-region, load-vcf --region, store verify,
store compact (real ``biobank`` processes)."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from genomes_support import store  # noqa: F401 (the store fixture)
from store_support import random_vcf

from biobank.core.store import Store

Run = Callable[..., subprocess.CompletedProcess[str]]


@pytest.mark.slow
def test_load_region_verify_compact(store: Store, tmp_path: Path, run: Run) -> None:
    vcf = tmp_path / "c.vcf.gz"
    names = random_vcf(vcf, 8, 60, seed=2)
    store.con.execute(
        "INSERT INTO sequencing_sample SELECT unnest(?::VARCHAR[]) AS s, 'L', 'P-' || s", [names]
    )
    db = str(store.path)
    store.close()
    bed = tmp_path / "chunk.bed"
    bed.write_text("chr1\t0\t15000\nchr1\t15000\t1000000\n")
    base = ["--store", db, "--user", "reg"]
    proc = run(*base, "load-region", str(vcf), "--regions-file", str(bed), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "2 region chunks" in proc.stdout
    again = run(*base, "load-region", str(vcf), "--regions-file", str(bed), cwd=tmp_path)
    assert "already loaded" in again.stdout, again.stderr
    proc = run(*base, "load-vcf", str(vcf), "--region", "chr2", "--no-progress", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    proc = run(*base, "store", "verify", "--format", "json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert '"problems": 0' in proc.stdout
    proc = run(*base, "store", "compact", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "merged 4 files into 2" in proc.stdout  # chr1: two calls and two packed files
    proc = run(*base, "verify", str(vcf), cwd=tmp_path)  # every genotype against bcftools
    assert proc.returncode == 0, proc.stderr + proc.stdout
    with Store(db) as s:
        parts = s.con.execute("SELECT path FROM genotype_partition WHERE kind = 'calls'").fetchall()
    (Path(f"{db}.parts") / parts[0][0]).write_bytes(b"not parquet")
    proc = run(*base, "store", "verify", cwd=tmp_path)
    assert proc.returncode == 1
    assert "SHA-256 differs" in proc.stderr
