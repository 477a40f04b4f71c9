"""Tests for biobank.genomes.encoding: the stored call flags and packed bit planes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from genomes_support import (
    REGISTRAR,
    VCF,
    store,  # noqa: F401 (the store fixture)
    stored_calls,
)

from biobank.core.store import Store
from biobank.genomes import encoding
from biobank.genomes.encoding import (
    FLAG_FIRST_ALLELE,
    FLAG_HALF_CALL,
    FLAG_HAPLOID,
    FLAG_MISSING,
    FLAG_OTHER_ALT,
    FLAG_PHASED,
)
from biobank.genomes.load import load_vcf
from biobank.genomes.verify import verify_vcf


def test_load_vcf__sparse_calls_keep_missing_haploid_and_other_alt(store: Store) -> None:
    load_vcf(store, VCF / "tiny.vcf", principal=REGISTRAR, call_fields=["DP", "GQ"])
    calls = stored_calls(store)
    # hom-ref diploid calls are not stored
    assert ("S0001", "chr1:100:G") not in calls
    assert calls[("S0002", "chr1:100:G")] == (1, 0, 12, 40)
    assert calls[("S0003", "chr1:100:G")] == (2, FLAG_FIRST_ALLELE, 9, 25)
    # the no-call is kept explicitly, never read as hom-ref
    assert calls[("S0004", "chr1:100:G")] == (0, FLAG_MISSING, None, None)
    # 1/2 splits into one copy of each ALT; 0/2 is REF for ALT 1 but flagged
    assert calls[("S0002", "chr1:200:T")][:2] == (1, FLAG_OTHER_ALT | FLAG_FIRST_ALLELE)
    assert calls[("S0002", "chr1:200:CA")][:2] == (1, FLAG_OTHER_ALT)
    assert calls[("S0004", "chr1:200:T")][:2] == (0, FLAG_OTHER_ALT)
    assert calls[("S0004", "chr1:200:CA")][:2] == (1, 0)
    # phased het
    assert calls[("S0003", "chr1:300:A")][:2] == (1, FLAG_PHASED)
    # male haploid chrX calls: '1', '0' and '.' keep their ploidy
    assert calls[("S0001", "chrX:5000:C")][:2] == (
        1,
        FLAG_HAPLOID | FLAG_PHASED | FLAG_FIRST_ALLELE,
    )
    assert calls[("S0003", "chrX:5000:C")][:2] == (0, FLAG_HAPLOID | FLAG_PHASED)
    assert calls[("S0004", "chrX:5000:C")][1] & (FLAG_HAPLOID | FLAG_MISSING) == (
        FLAG_HAPLOID | FLAG_MISSING
    )
    assert len(calls) == 14


def test_load_vcf__half_call_is_missing_and_flagged(store: Store, tmp_path: Path) -> None:
    text = (
        (VCF / "tiny_batch2.vcf").read_text().replace("0/1\t0/0\nchr1\t150", "0/.\t0/0\nchr1\t150")
    )
    path = tmp_path / "half.vcf"
    path.write_text(text)
    load_vcf(store, path, principal=REGISTRAR)
    calls = stored_calls(store)
    assert calls[("S0005", "chr1:100:G")][:2] == (0, FLAG_MISSING | FLAG_HALF_CALL)


def test_load_vcf__all_haploid_record_keeps_each_call(store: Store, tmp_path: Path) -> None:
    """A record where every call is haploid (ploidy 1 in BCF, e.g. male-only chrY)."""
    lines = (VCF / "tiny.vcf").read_text().splitlines()
    header = [ln for ln in lines if ln.startswith("#")]
    header.insert(1, "##contig=<ID=chrY,length=100000>")
    record = "chrY\t700\t.\tG\tA\t50\tPASS\tDP=20\tGT\t1\t0\t.\t1"
    path = tmp_path / "haploid.vcf"
    path.write_text("\n".join([*header, record]) + "\n")
    load_vcf(store, path, principal=REGISTRAR)
    calls = stored_calls(store)
    hap = FLAG_HAPLOID | FLAG_PHASED  # a haploid call counts as phased
    assert calls[("S0001", "chrY:700:A")][:2] == (1, hap | FLAG_FIRST_ALLELE)
    assert calls[("S0002", "chrY:700:A")][:2] == (0, hap)
    assert calls[("S0003", "chrY:700:A")][:2] == (0, hap | FLAG_MISSING)
    assert calls[("S0004", "chrY:700:A")][:2] == (1, hap | FLAG_FIRST_ALLELE)
    assert len(calls) == 4
    assert verify_vcf(store, path).ok


def test_load_vcf__packing_from_the_gt_array_matches_packing_sparse_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Plain biallelic records packed straight from the GT array: the same store as before.

    Records of every kind (dense plain, dense with one phased, haploid or
    half call, rare, multi-allelic), 130 samples (three 64-bit words), and a
    second file with the same samples in another column order (bit positions
    are the batch's sample order, not the file's). The store must equal the
    one made by splitting every call into sparse rows first, and verify.
    """
    rng = np.random.default_rng(5)
    names = [f"W{i:03d}" for i in range(130)]
    odd = ["0|1", "1", "./1", ".|."]

    def write(path: Path, contig: str, order: list[int]) -> None:
        lines = [
            "##fileformat=VCFv4.2",
            f"##contig=<ID={contig},length=1000000>",
            '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">',
            "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\t"
            + "\t".join(names[i] for i in order),
        ]
        for j in range(120):
            kind = j % 6
            p_alt = 0.005 if kind == 4 else 0.3
            dose = (rng.random((len(names), 2)) < p_alt).sum(axis=1)
            cells = [("0/0", "0/1", "1/1")[d] for d in dose]
            for i in np.flatnonzero(rng.random(len(names)) < 0.05):
                cells[i] = "./."
            if kind in (1, 2, 3):
                cells[int(rng.integers(len(names)))] = odd[kind - 1]
            alts = "G,T" if kind == 5 else "G"
            if kind == 5:
                cells = [c.replace("1/1", "2/2") if k % 3 else c for k, c in enumerate(cells)]
            row = [contig, str(100 + 10 * j), ".", "A", alts, ".", "PASS", ".", "GT"]
            lines.append("\t".join(row + [cells[i] for i in order]))
        path.write_text("\n".join(lines) + "\n")

    files = [tmp_path / "a.vcf", tmp_path / "b.vcf"]
    write(files[0], "chr1", list(range(len(names))))
    write(files[1], "chr2", list(rng.permutation(len(names))))

    def load(db: Path) -> dict[str, list[tuple[object, ...]]]:
        with Store(db) as s:
            s.con.execute(
                "INSERT INTO sequencing_sample SELECT unnest(?::VARCHAR[]) AS s, 'L', 'P-' || s",
                [names],
            )
            for f in files:
                load_vcf(s, f, principal=REGISTRAR)
                assert verify_vcf(s, f).ok
            return {
                t: s.con.execute(f"SELECT * FROM {t} ORDER BY ALL").fetchall()
                for t in ("variant", "genotype_call", "genotype_packed")
            }

    direct = load(tmp_path / "direct.duckdb")
    monkeypatch.setattr(encoding, "pack_records", lambda *args: (None, 0))
    via_rows = load(tmp_path / "rows.duckdb")
    assert direct == via_rows
    # both layouts are there: at least the 2 x 20 dense plain biallelic records are packed
    assert len(direct["genotype_packed"]) >= 40
    assert len(direct["genotype_call"]) > 0
