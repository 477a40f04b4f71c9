"""Tests for biobank.genomes.verify: re-reading a loaded VCF and comparing every call."""

from __future__ import annotations

import json

import pytest
from genomes_support import (
    REGISTRAR,
    VCF,
    store,  # noqa: F401 (the store fixture)
)

from biobank.core.store import Store
from biobank.genomes.load import load_vcf
from biobank.genomes.verify import verify_vcf


@pytest.mark.parametrize("pack", [False, True], ids=["sparse", "packed"])
def test_verify__passes_after_load_and_reports_edited_calls(store: Store, pack: bool) -> None:
    load_vcf(store, VCF / "tiny.vcf", principal=REGISTRAR, pack=pack)
    report = verify_vcf(store, VCF / "tiny.vcf")
    assert report.ok
    assert (report.n_variants, report.n_genotypes) == (5, 20)
    packed = store.con.execute("SELECT variant_key FROM genotype_packed").fetchall()
    assert packed == ([(1,)] if pack else [])  # chr1:100 has 3 plain calls of 4 samples
    if pack:  # 0/1 -> 0/0 and 1/1 -> ./.; ./. stays
        store.con.execute("UPDATE genotype_packed SET lo = hi WHERE variant_key = 1")
    else:
        store.con.execute(
            "UPDATE genotype_call SET dosage = 2 WHERE variant_key = 1 AND dosage = 1"
        )
        store.con.execute("DELETE FROM genotype_call WHERE flags & 1 = 1 AND variant_key = 1")
    bad = verify_vcf(store, VCF / "tiny.vcf")
    assert not bad.ok
    assert bad.n_mismatches == 2
    assert bad.mismatches[0].startswith("chr1:100 A>G: 2 genotype(s) differ")


def test_verify__unloaded_file_is_not_found(store: Store) -> None:
    from biobank.core.errors import NotFoundError

    with pytest.raises(NotFoundError, match="was not loaded"):
        verify_vcf(store, VCF / "tiny_batch2.vcf")


def test_cli__load_vcf_then_verify_exit_codes(
    store: Store, capsys: pytest.CaptureFixture[str]
) -> None:
    from biobank.cli import main

    path = str(store.path)
    store.close()
    args = ["--store", path, "--user", "reg"]
    assert (
        main([*args, "load-vcf", str(VCF / "tiny.vcf"), "--no-progress", "--call-fields", "DP,GQ"])
        == 0
    )
    assert "4 samples, 4 records, 5 variants" in capsys.readouterr().out
    assert main([*args, "load-vcf", str(VCF / "tiny.vcf"), "--no-progress"]) == 0
    assert "already loaded" in capsys.readouterr().out
    assert main([*args, "verify", str(VCF / "tiny.vcf"), "-f", "json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["mismatches"] == 0
    with Store(path) as s:
        s.con.execute("DELETE FROM genotype_call WHERE dosage = 2")
    assert main([*args, "verify", str(VCF / "tiny.vcf")]) == 1
    assert "mismatch: chr1:100 A>G" in capsys.readouterr().err
    assert main([*args, "load-vcf", str(VCF / "tiny_unknown.vcf"), "--no-progress"]) == 1
    assert "S9999" in capsys.readouterr().err
