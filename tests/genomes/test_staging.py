"""Tests for biobank.genomes.staging: batch and key planning, duplicate checks, publishing."""

from __future__ import annotations

import traceback
from pathlib import Path

import pytest
from genomes_support import (
    REGISTRAR,
    VCF,
    store,  # noqa: F401 (the store fixture)
    stored_calls,
    table_counts,
    tiny_records,
    tiny_with,
    write_many_records,
)

from biobank.core.errors import (
    ConflictError,
    StoreError,
    ValidationError,
)
from biobank.core.store import Store
from biobank.genomes import staging
from biobank.genomes.load import LoadReport, load_vcf
from biobank.genomes.verify import verify_vcf


@pytest.mark.parametrize("chunk_records", [None, 1], ids=["same-chunk", "other-chunk"])
def test_load_vcf__variant_twice_in_the_file_fails_naming_it(
    store: Store, tmp_path: Path, chunk_records: int | None
) -> None:
    """A record repeated in one chunk, or in a later chunk, fails before anything is written."""
    body = tiny_records()
    dup = tiny_with(tmp_path, "dup.vcf", [*body[:3], body[2], body[3]])
    before = table_counts(store)
    with pytest.raises(ValidationError, match=r"chr1:300 G>A appears twice") as err:
        load_vcf(store, dup, principal=REGISTRAR, chunk_records=chunk_records)
    assert "bcftools norm -d exact" in str(err.value)
    assert table_counts(store) == before
    assert not list(tmp_path.glob(".g.duckdb.scratch-*"))


def test_load_vcf__variant_also_in_an_earlier_file_of_the_same_samples_fails(
    store: Store, tmp_path: Path
) -> None:
    """A second file for the same samples may add variants, not repeat one."""
    body = tiny_records()
    load_vcf(store, tiny_with(tmp_path, "a.vcf", body[:2]), principal=REGISTRAR)
    ok = load_vcf(store, tiny_with(tmp_path, "b.vcf", body[2:3]), principal=REGISTRAR)
    assert ok.n_variants == 1
    assert ok.batch_id == 1
    before = table_counts(store)
    with pytest.raises(ValidationError, match=r"chr1:100 A>G appears twice"):
        load_vcf(store, tiny_with(tmp_path, "c.vcf", [body[0], body[3]]), principal=REGISTRAR)
    assert table_counts(store) == before


def test_load_vcf__another_load_finishing_meanwhile_is_a_conflict(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Keys are planned before reading: if another load lands first, nothing is written."""
    body = tiny_records()
    first, second = (
        tiny_with(tmp_path, f"{n}.vcf", [r]) for n, r in (("f", body[0]), ("s", body[3]))
    )
    check = staging.check_no_duplicates
    landed: list[object] = []

    def meanwhile(*args: object, **kwargs: object) -> None:
        if not landed:  # the other load runs while the first file's rows are staged
            landed.append(None)
            landed[0] = load_vcf(store, second, principal=REGISTRAR)
        check(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(staging, "check_no_duplicates", meanwhile)
    with pytest.raises(ConflictError, match="changed while the file was read"):
        load_vcf(store, first, principal=REGISTRAR)
    assert isinstance(landed[0], LoadReport)
    assert landed[0].n_variants == 1
    assert table_counts(store)["genotype_load"] == 1
    monkeypatch.setattr(staging, "check_no_duplicates", check)
    again = load_vcf(store, first, principal=REGISTRAR)  # run again: it loads
    assert again.n_variants == 1
    assert not again.already_loaded
    assert verify_vcf(store, first).ok
    assert verify_vcf(store, second).ok


def _try_memory_limit(store: Store, limit: str) -> bool:
    import duckdb

    try:
        store.con.execute(f"SET memory_limit = '{limit}'")
    except duckdb.OutOfMemoryException:
        return False
    return True


def test_load_vcf__duckdb_out_of_memory_is_a_store_error_and_writes_nothing(
    store: Store, tmp_path: Path
) -> None:
    """DuckDB's own failures (here: memory) come back as StoreError saying what to do."""
    big = tmp_path / "many.vcf.gz"
    write_many_records(big, 64, 5000, seed=2)
    names = [f"M{i:04d}" for i in range(64)]
    store.con.execute(
        "INSERT INTO sequencing_sample SELECT unnest(?::VARCHAR[]) AS s, 'L', 'P-' || s", [names]
    )
    before = table_counts(store)
    limit = store.con.execute("SELECT current_setting('memory_limit')").fetchone()
    assert limit is not None
    smallest = next(mb for mb in range(1, 256) if _try_memory_limit(store, f"{mb}MB"))
    where: list[str] = []
    try:
        # raise the limit until the load gets past its first queries and fails
        # once rows are staged (while staging or publishing them)
        for mb in range(smallest, smallest + 64):
            store.con.execute(f"SET memory_limit = '{mb}MB'")
            with pytest.raises(StoreError, match="memory_limit") as err:
                load_vcf(store, big, principal=REGISTRAR)
            assert "OutOfMemoryException" in str(err.value)
            assert "nothing was written" in str(err.value)
            assert table_counts(store) == before
            where = [f.name for f in traceback.extract_tb(err.value.__cause__.__traceback__)]
            if {"assign_keys", "write_calls", "publish"} & set(where):
                break
    finally:
        store.con.execute(f"SET memory_limit = '{limit[0]}'")
    assert {"assign_keys", "write_calls", "publish"} & set(where), where
    assert not list(tmp_path.glob(".g.duckdb.scratch-*"))
    assert load_vcf(store, big, principal=REGISTRAR).n_records == 5000


def test_load_vcf__refuses_sample_already_loaded_from_another_file(store: Store) -> None:
    load_vcf(store, VCF / "tiny.vcf", principal=REGISTRAR)
    before = table_counts(store)
    with pytest.raises(
        ConflictError, match=r"1 of its 2 sample\(s\) were already loaded.*S0001 \(from"
    ):
        load_vcf(store, VCF / "tiny_mixed.vcf", principal=REGISTRAR)
    assert table_counts(store) == before


def test_load_vcf__new_batch_keeps_variant_keys_and_coverage(store: Store) -> None:
    first = load_vcf(store, VCF / "tiny.vcf", principal=REGISTRAR)
    second = load_vcf(store, VCF / "tiny_batch2.vcf", principal=REGISTRAR)
    assert second.batch_id == first.batch_id + 1
    assert (second.n_variants, second.n_new_variants) == (2, 1)
    cov = store.con.execute(
        "SELECT b.batch_id, v.position FROM batch_variant b JOIN variant v USING (variant_key)"
        " ORDER BY 1, 2"
    ).fetchall()
    assert [r for r in cov if r[0] == second.batch_id] == [
        (second.batch_id, 100),
        (second.batch_id, 150),
    ]
    assert store.con.execute("SELECT count(*) FROM variant WHERE position = 100").fetchone() == (1,)


def test_load_vcf__chunk_size_changes_no_key_and_no_call(tmp_path: Path) -> None:
    """Keys of new variants continue across chunks, also between variants already stored."""
    body = tiny_records()
    names = ["S0001", "S0002", "S0003", "S0004", "S0005", "S0006"]
    # the second batch has a known variant (chr1:100) between two new ones
    extra = "chr1\t120\t.\tT\tA\t.\tPASS\t.\tGT\t0/1\t1/1"
    second = tmp_path / "second.vcf"
    second.write_text(
        (VCF / "tiny_batch2.vcf").read_text().replace("chr1\t150", extra + "\nchr1\t150", 1)
    )

    def load(chunk_records: int | None) -> dict[str, list[tuple[object, ...]]]:
        with Store(tmp_path / f"c{chunk_records}.duckdb") as s:
            s.con.execute(
                "INSERT INTO sequencing_sample SELECT unnest(?::VARCHAR[]) AS s, 'L', 'P-' || s",
                [names],
            )
            for f in (tiny_with(tmp_path, "first.vcf", body), second):
                load_vcf(s, f, principal=REGISTRAR, chunk_records=chunk_records)
                assert verify_vcf(s, f).ok
            return {
                t: s.con.execute(f"SELECT * FROM {t} ORDER BY ALL").fetchall()
                for t in ("variant", "batch_variant", "genotype_call", "genotype_packed")
            }

    whole = load(None)
    assert [r[0] for r in whole["variant"]] == list(range(1, 8))  # 5 + chr1:120 + chr1:150
    assert load(1) == whole
    assert load(2) == whole


def test_load_vcf__same_samples_other_contig_extends_their_batch(store: Store) -> None:
    first = load_vcf(store, VCF / "tiny.vcf", principal=REGISTRAR)
    more = load_vcf(store, VCF / "tiny_chr2.vcf", principal=REGISTRAR)
    assert more.batch_id == first.batch_id
    assert store.con.execute("SELECT count(*) FROM genotype_sample").fetchone() == (4,)
    calls = stored_calls(store)
    assert calls[("S0002", "chr2:500:C")][0] == 1  # columns are matched by name, not order
    assert calls[("S0004", "chr2:500:C")][0] == 2
    assert ("S0001", "chr2:500:C") not in calls
    assert verify_vcf(store, VCF / "tiny_chr2.vcf").ok
