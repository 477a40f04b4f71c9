"""Tests for biobank.genomes.arrays: a PLINK 2 fileset (an array batch) loaded as a batch,
checked against the same genotypes loaded from the VCF and against plink2's frequencies."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from genomes_support import REGISTRAR, stored_calls, table_counts
from store_support import random_vcf, sample_store

from biobank.core.errors import StoreError, ValidationError
from biobank.genomes.arrays import load_pgen
from biobank.genomes.load import load_vcf
from biobank.stats.frequencies import allele_frequencies


@pytest.fixture(scope="module")
def fileset(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, list[str]]:
    """A random VCF (plain calls, some phased by plink2's reading) and plink2's pgen of it."""
    root = tmp_path_factory.mktemp("array")
    vcf = root / "a.vcf.gz"
    names = random_vcf(vcf, 80, 150, seed=13, odd=False)
    subprocess.run(
        ["plink2", "--vcf", str(vcf), "--make-pgen", "--out", str(root / "a")],
        check=True,
        capture_output=True,
    )
    return root / "a.pgen", vcf, names


def test_load_pgen__same_calls_as_the_vcf_and_plink2_frequencies(
    tmp_path: Path, fileset: tuple[Path, Path, list[str]]
) -> None:
    pgen, vcf, names = fileset
    with (
        sample_store(tmp_path / "p.duckdb", names) as a,
        sample_store(tmp_path / "v.duckdb", names) as b,
    ):
        report = load_pgen(a, pgen, principal=REGISTRAR)
        assert report.n_records == 150
        assert report.n_packed > 0
        assert load_pgen(a, pgen, principal=REGISTRAR).already_loaded
        load_vcf(b, vcf, principal=REGISTRAR)
        assert stored_calls(a) == stored_calls(b)
        freq = allele_frequencies(a.con).sort("variant_contig", "variant_position")
        kind = a.con.execute("SELECT DISTINCT kind FROM provenance").fetchall()
        assert ("pgen",) in kind
    out = tmp_path / "f"
    subprocess.run(
        ["plink2", "--pfile", str(pgen.with_suffix("")), "--freq", "--out", str(out)],
        check=True,
        capture_output=True,
    )
    plink = pl.read_csv(f"{out}.afreq", separator="\t")
    assert np.array_equal(freq["variant_allele_total"].to_numpy(), plink["OBS_CT"].to_numpy())
    assert np.allclose(
        freq["variant_alt_allele_frequency"].to_numpy(), plink["ALT_FREQS"].to_numpy()
    )


def test_load_pgen__bad_variant_names_the_pvar_line_and_writes_nothing(
    tmp_path: Path, fileset: tuple[Path, Path, list[str]]
) -> None:
    pgen, _, names = fileset
    for ext in (".pgen", ".psam"):
        (tmp_path / f"b{ext}").write_bytes(pgen.with_suffix(ext).read_bytes())
    lines = pgen.with_suffix(".pvar").read_text().splitlines()
    at = next(i for i, ln in enumerate(lines) if not ln.startswith("#")) + 7
    f = lines[at].split("\t")
    f[3] = "Q"
    lines[at] = "\t".join(f)
    (tmp_path / "b.pvar").write_text("\n".join(lines) + "\n")
    with sample_store(tmp_path / "p.duckdb", names) as s:
        before = table_counts(s)
        with pytest.raises(ValidationError, match="REF 'Q'") as err:
            load_pgen(s, tmp_path / "b.pgen", principal=REGISTRAR)
        assert err.value.line == at + 1
        assert err.value.file == str(tmp_path / "b.pvar")
        assert table_counts(s) == before
        (tmp_path / "b.psam").unlink()
        with pytest.raises(ValidationError, match=r"b\.psam is missing"):
            load_pgen(s, tmp_path / "b", principal=REGISTRAR)


def test_load_pgen__partitioned_store_is_refused(
    tmp_path: Path, fileset: tuple[Path, Path, list[str]]
) -> None:
    pgen, vcf, names = fileset
    with sample_store(tmp_path / "p.duckdb", names) as s:
        load_vcf(s, vcf, principal=REGISTRAR, partitioned=True)
        with pytest.raises(StoreError, match="--export bcf"):
            load_pgen(s, pgen, principal=REGISTRAR)
