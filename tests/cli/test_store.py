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


def test_store_reference_sets_shows_and_guards_loads(
    store: Store, tmp_path: Path, run: Run
) -> None:
    vcf = tmp_path / "c.vcf.gz"
    names = random_vcf(vcf, 4, 20, seed=3)
    store.con.execute(
        "INSERT INTO sequencing_sample SELECT unnest(?::VARCHAR[]) AS s, 'L', 'P-' || s", [names]
    )
    db = str(store.path)
    store.close()
    contigs = sorted({ln.split("\t")[0] for ln in _records(vcf)})
    fai = tmp_path / "other.fa.fai"  # the same names, one of them 1 bp longer than declared
    fai.write_text(
        "".join(f"{c}\t{_length(vcf, c) + (i == 0)}\t0\t60\t61\n" for i, c in enumerate(contigs))
    )
    base = ["--store", db, "--user", "ada"]
    shown = run(*base, "store", "reference", cwd=tmp_path)
    assert "no reference is configured" in shown.stdout, shown.stderr
    proc = run(*base, "store", "reference", str(fai), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert f"{len(contigs)} contigs" in proc.stdout
    shown = run(*base, "store", "reference", "--format", "tsv", cwd=tmp_path)
    assert shown.stdout.splitlines()[1].split("\t")[0] == contigs[0], shown.stderr
    proc = run(*base, "load-vcf", str(vcf), "--no-progress", cwd=tmp_path)
    assert proc.returncode == 1
    assert "another assembly" in proc.stderr
    assert contigs[0] in proc.stderr
    with Store(db) as s:
        assert s.con.execute("SELECT count(*) FROM variant").fetchone() == (0,)


def _records(vcf: Path) -> list[str]:
    import gzip

    with gzip.open(vcf, "rt") as fh:
        return [ln for ln in fh if not ln.startswith("#")]


def _length(vcf: Path, contig: str) -> int:
    import gzip
    import re

    with gzip.open(vcf, "rt") as fh:
        for ln in fh:
            m = re.match(rf"##contig=<ID={contig},length=(\d+)", ln)
            if m:
                return int(m.group(1))
    raise AssertionError(f"{contig} has no length in {vcf}")
