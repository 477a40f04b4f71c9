"""Tests for the partitioned store (biobank.genomes.partitions, biobank.genomes.regions):
the same answers as the single-file store, all-or-nothing publishing, re-runs,
kills, new batches, verification and compaction."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import polars as pl
import pytest
from genomes_support import ADMIN, REGISTRAR, stored_calls, table_counts
from store_support import random_vcf, sample_store

from biobank.core import audit
from biobank.core.errors import ValidationError
from biobank.core.store import Store
from biobank.genomes import regions as regions_mod
from biobank.genomes.load import load_vcf
from biobank.genomes.partitions import (
    CALL_COLUMNS,
    PACKED_COLUMNS,
    compact,
    is_partitioned,
    make_partitioned,
    partition_files,
    parts_root,
    verify_partitions,
)
from biobank.genomes.reader import carriers, genotype_matrix
from biobank.genomes.regions import Region, load_regions, plan_regions
from biobank.genomes.verify import verify_vcf
from biobank.stats.frequencies import allele_frequencies


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """A random indexed VCF.gz: 24 samples, 300 records on chr1 and chr2 (every call kind)."""
    path = tmp_path_factory.mktemp("cohort") / "c.vcf.gz"
    return path, random_vcf(path, 24, 300, seed=5)


@pytest.fixture(scope="module")
def single(tmp_path_factory: pytest.TempPathFactory, cohort: tuple[Path, list[str]]) -> Store:
    """The cohort loaded into a single-file store (the reference)."""
    vcf, names = cohort
    s = sample_store(tmp_path_factory.mktemp("single") / "s.duckdb", names)
    load_vcf(s, vcf, principal=REGISTRAR)
    return s


def _regions(vcf: Path) -> list[Region]:
    return [*plan_regions(vcf, chunk_bp=60000)[:4], Region("chr2")]


def _answers(s: Store) -> dict[str, object]:
    """Everything a query gives: calls, frequencies, carriers, the genotype matrix."""
    m = genotype_matrix(s.con, principal=ADMIN)
    return {
        "calls": stored_calls(s),
        "freq": allele_frequencies(s.con),
        "carriers": carriers(s.con, principal=ADMIN).sort(pl.all()),
        "matrix": m.genotypes.values.tolist(),
    }


def _same(a: dict[str, object], b: dict[str, object]) -> None:
    assert a["calls"] == b["calls"]
    assert a["matrix"] == b["matrix"]
    for name in ("freq", "carriers"):
        x, y = a[name], b[name]
        assert isinstance(x, pl.DataFrame)
        assert isinstance(y, pl.DataFrame)
        assert x.equals(y), name


def test_plan_regions__chunks_cover_the_contigs_with_records(
    cohort: tuple[Path, list[str]],
) -> None:
    vcf, _ = cohort
    regs = plan_regions(vcf, chunk_bp=400_000)
    assert [str(r) for r in regs] == [
        "chr1:1-400000",
        "chr1:400001-800000",
        "chr1:800001-2147483647",
        "chr2:1-400000",
        "chr2:400001-800000",
        "chr2:800001-2147483647",
    ]


def test_region_parse() -> None:
    assert Region.parse("chr1:1,000-2,000") == Region("chr1", 1000, 2000)
    assert Region.parse("chrX") == Region("chrX")
    with pytest.raises(ValidationError, match="START <= END"):
        Region.parse("chr1:5-4")


def test_partitioned_load__answers_equal_the_single_file_store(
    tmp_path: Path, cohort: tuple[Path, list[str]], single: Store
) -> None:
    vcf, names = cohort
    with sample_store(tmp_path / "p.duckdb", names) as s:
        report = load_regions(s, vcf, principal=REGISTRAR, regions=_regions(vcf), workers=2)
        assert report.n_records == 300
        assert not report.already_loaded
        assert is_partitioned(s.con)
        assert s.con.execute("SELECT count(*) FROM genotype_partition").fetchone()[0] > 5
        _same(_answers(s), _answers(single))
        assert verify_vcf(s, vcf).ok  # every genotype against bcftools' reading
        check = verify_partitions(s)
        assert check.ok
        assert not check.unlisted
        assert check.n_rows > 1000


def test_partitioned_load__rerun_and_partial_rerun_add_no_duplicates(
    tmp_path: Path, cohort: tuple[Path, list[str]], single: Store
) -> None:
    vcf, names = cohort
    regs = _regions(vcf)
    with sample_store(tmp_path / "p.duckdb", names) as s:
        load_regions(s, vcf, principal=REGISTRAR, regions=regs[:2])  # a job that stopped half way
        half = table_counts(s)
        load_regions(s, vcf, principal=REGISTRAR, regions=regs)  # the re-run finishes it
        full = table_counts(s)
        assert full["variant"] > half["variant"]
        again = load_regions(s, vcf, principal=REGISTRAR, regions=regs)
        assert again.already_loaded
        assert table_counts(s) == full
        with pytest.raises(ValidationError, match="appears twice for these samples"):
            load_regions(s, vcf, principal=REGISTRAR, regions=[Region("chr1", 1, 100_000)])
        assert table_counts(s) == full
        _same(_answers(s), _answers(single))


def test_partitioned_load__failure_in_publish_leaves_store_and_files_as_they_were(
    tmp_path: Path, cohort: tuple[Path, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    vcf, names = cohort
    with sample_store(tmp_path / "p.duckdb", names) as s:
        load_regions(s, vcf, principal=REGISTRAR, regions=[Region("chr1")])
        before, files = table_counts(s), sorted(parts_root(s.path).rglob("*"))

        def boom(*args: object, **kwargs: object) -> None:
            raise RuntimeError("disk full")

        monkeypatch.setattr(audit, "record", boom)  # after the files are written
        with pytest.raises(RuntimeError, match="disk full"):
            load_regions(s, vcf, principal=REGISTRAR, regions=[Region("chr2")])
        assert table_counts(s) == before
        assert sorted(f for f in parts_root(s.path).rglob("*") if f.is_file()) == [
            f for f in files if f.is_file()
        ]
        assert not list(tmp_path.glob(".p.duckdb.region-*"))
        monkeypatch.undo()
        load_regions(s, vcf, principal=REGISTRAR, regions=[Region("chr2")])
        assert verify_vcf(s, vcf).ok


def test_partitioned_load__bad_record_in_a_region_names_file_line_and_writes_nothing(
    tmp_path: Path, cohort: tuple[Path, list[str]]
) -> None:
    vcf, names = cohort
    text = subprocess.run(["bgzip", "-dc", str(vcf)], capture_output=True, text=True).stdout
    lines = text.splitlines()
    bad_at = next(i for i, ln in enumerate(lines) if ln.startswith("chr2\t5000\t"))
    fields = lines[bad_at].split("\t")
    fields[9] = "0/5"  # one ALT only
    lines[bad_at] = "\t".join(fields)
    bad = tmp_path / "bad.vcf"
    bad.write_text("\n".join(lines) + "\n")
    subprocess.run(["bgzip", "-f", str(bad)], check=True)
    subprocess.run(["bcftools", "index", "-f", f"{bad}.gz"], check=True)
    with sample_store(tmp_path / "p.duckdb", names) as s:
        before = table_counts(s)
        with pytest.raises(ValidationError, match="allele 5 but the record has 1 ALT") as err:
            load_regions(
                s, Path(f"{bad}.gz"), principal=REGISTRAR, regions=_regions(vcf), workers=2
            )
        assert err.value.line == bad_at + 1
        assert err.value.field == "GT"
        assert err.value.file == f"{bad}.gz"
        assert table_counts(s) == before
        assert not is_partitioned(s.con)
        assert not [f for f in parts_root(s.path).rglob("*") if f.is_file()]
        assert not list(tmp_path.glob(".p.duckdb.region-*"))


def test_partitioned_load__kill_9_while_publishing_leaves_store_as_it_was(
    tmp_path: Path, cohort: tuple[Path, list[str]], single: Store
) -> None:
    vcf, names = cohort
    db = tmp_path / "k.duckdb"
    sample_store(db, names).close()
    with Store(db) as s:
        before = table_counts(s)
    script = textwrap.dedent(
        f"""
        import logging, sys
        from biobank.core.access import Principal, Role
        from biobank.core.store import Store
        from biobank.genomes.regions import Region, load_regions
        logging.basicConfig(level=logging.DEBUG, stream=sys.stderr)
        with Store({str(db)!r}) as s:
            load_regions(s, {str(vcf)!r}, principal=Principal("reg", Role.REGISTRAR),
                         regions=[Region("chr1"), Region("chr2")])
        print("FINISHED", flush=True)
        """
    )
    with subprocess.Popen(
        [sys.executable, "-c", script], stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True
    ) as proc:
        assert proc.stderr is not None
        for line in proc.stderr:
            if "wrote partition file batch=1/contig=chr2" in line:  # the publish is half done
                os.kill(proc.pid, signal.SIGKILL)
                break
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the load finished before it could be killed"
    with Store(db) as s:
        assert table_counts(s) == before
        check = verify_partitions(s)
        assert check.ok
        assert check.unlisted, "the killed publish left unlisted files only"
        load_regions(s, vcf, principal=REGISTRAR, regions=[Region("chr1"), Region("chr2")])
        assert compact(s, REGISTRAR).removed_unlisted == len(check.unlisted)
        check = verify_partitions(s)
        assert check.ok
        assert not check.unlisted
        _same(_answers(s), _answers(single))


def test_partitioned_load__a_new_batch_never_rewrites_another_batchs_files(
    tmp_path: Path, cohort: tuple[Path, list[str]]
) -> None:
    vcf, names = cohort
    vcf2 = tmp_path / "b2.vcf.gz"
    names2 = random_vcf(vcf2, 10, 120, seed=9, prefix="Q")
    with (
        sample_store(tmp_path / "p.duckdb", names + names2) as p,
        sample_store(tmp_path / "s.duckdb", names + names2) as s,
    ):
        load_regions(p, vcf, principal=REGISTRAR, regions=_regions(vcf))
        first = partition_files(p.con)
        sums = {f: f.read_bytes() for f in parts_root(p.path).rglob("*.parquet")}
        load_regions(p, vcf2, principal=REGISTRAR)  # planned regions of an indexed file
        assert set(partition_files(p.con)) >= set(first)
        assert all(f.read_bytes() == b for f, b in sums.items())
        for v in (vcf, vcf2):
            load_vcf(s, v, principal=REGISTRAR)
        _same(_answers(p), _answers(s))
        assert verify_vcf(p, vcf2).ok


def test_make_partitioned__moves_the_calls_out_and_answers_stay(
    tmp_path: Path, cohort: tuple[Path, list[str]], single: Store
) -> None:
    vcf, names = cohort
    with sample_store(tmp_path / "p.duckdb", names) as s:
        load_vcf(s, vcf, principal=REGISTRAR)  # single-file first
        n_files = make_partitioned(s, REGISTRAR)  # calls (and packed, if any) per contig
        assert n_files == len(partition_files(s.con)) >= 3
        assert is_partitioned(s.con)
        assert verify_partitions(s).ok
        _same(_answers(s), _answers(single))
        before = table_counts(s)
        assert load_regions(s, vcf, principal=REGISTRAR, regions=_regions(vcf)).already_loaded
        assert table_counts(s) == before


def test_load_vcf__on_a_partitioned_store_loads_partitions_once(
    tmp_path: Path, cohort: tuple[Path, list[str]], single: Store
) -> None:
    vcf, names = cohort
    with sample_store(tmp_path / "p.duckdb", names) as s:
        report = load_vcf(s, vcf, principal=REGISTRAR, partitioned=True)
        assert report.n_records == 300
        counts = table_counts(s)
        assert load_vcf(s, vcf, principal=REGISTRAR).already_loaded
        assert load_regions(s, vcf, principal=REGISTRAR, regions=[Region("chr2")]).already_loaded
        assert table_counts(s) == counts
        _same(_answers(s), _answers(single))


def test_compact__merges_small_files_atomically(
    tmp_path: Path,
    cohort: tuple[Path, list[str]],
    single: Store,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    vcf, names = cohort
    with sample_store(tmp_path / "p.duckdb", names) as s:
        load_regions(s, vcf, principal=REGISTRAR, regions=_regions(vcf))
        n_before = len(partition_files(s.con))
        listed = {str(r[6]) for r in partition_files(s.con)}

        def boom(*args: object, **kwargs: object) -> None:
            raise RuntimeError("killed")

        from biobank.genomes import partitions

        monkeypatch.setattr(partitions.audit, "record", boom)
        with pytest.raises(RuntimeError):
            compact(s, REGISTRAR)
        assert {str(r[6]) for r in partition_files(s.con)} == listed
        assert not verify_partitions(s).unlisted
        monkeypatch.undo()
        report = compact(s, REGISTRAR)
        after = partition_files(s.con)
        assert report.written >= 2
        assert len(after) == n_before - report.merged + report.written
        groups = [(r[1], r[2], r[3]) for r in after]  # kind, batch, contig
        assert len(groups) == len(set(groups)) < n_before  # one file per group now
        assert verify_partitions(s).ok
        assert not verify_partitions(s).unlisted
        _same(_answers(s), _answers(single))


def _file_layout(s: Store) -> set[tuple[str, tuple[str, ...], str]]:
    """(kind, column names, encodings of sample_key or lo) of every listed file."""
    import pyarrow.parquet as pq

    out = set()
    for row in partition_files(s.con):
        kind, meta = str(row[1]), pq.ParquetFile(parts_root(s.path) / str(row[6])).metadata
        names = tuple(meta.schema.column(i).path.split(".")[0] for i in range(meta.num_columns))
        key = names.index("sample_key" if kind == "calls" else "lo")
        encodings = {
            e for g in range(meta.num_row_groups) for e in meta.row_group(g).column(key).encodings
        }
        out.add((kind, names, ",".join(sorted(encodings))))
    return out


def test_partition_files__hold_the_table_columns_and_delta_encoded_call_keys(
    tmp_path: Path, cohort: tuple[Path, list[str]]
) -> None:
    vcf, names = cohort
    with sample_store(tmp_path / "p.duckdb", names) as s:
        load_regions(s, vcf, principal=REGISTRAR, regions=_regions(vcf))
        loaded = _file_layout(s)
        compact(s, REGISTRAR)
        compacted = _file_layout(s)
    expected = {
        ("calls", tuple(CALL_COLUMNS), "DELTA_BINARY_PACKED"),
        ("packed", tuple(PACKED_COLUMNS), "PLAIN"),
    }
    assert loaded == expected
    assert compacted == expected  # compaction adds no batch=/contig=/region= columns


def test_verify_partitions__finds_changed_missing_and_unlisted_files(
    tmp_path: Path, cohort: tuple[Path, list[str]]
) -> None:
    vcf, names = cohort
    with sample_store(tmp_path / "p.duckdb", names) as s:
        load_regions(s, vcf, principal=REGISTRAR, regions=[Region("chr1"), Region("chr2")])
        rows = partition_files(s.con)
        root = parts_root(s.path)
        (root / rows[0][6]).write_bytes((root / rows[1][6]).read_bytes())
        (root / rows[2][6]).unlink()
        (root / "batch=1" / "stray.parquet").write_bytes(b"x")
        check = verify_partitions(s)
        assert not check.ok
        assert any("changed" in p for p in check.problems)
        assert any("missing" in p for p in check.problems)
        assert check.unlisted == ["batch=1/stray.parquet"]


def test_scratch_of_a_killed_worker_is_removed_only_on_its_host(
    tmp_path: Path, cohort: tuple[Path, list[str]]
) -> None:
    import socket

    _, names = cohort
    db = tmp_path / "p.duckdb"
    sample_store(db, names).close()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # a pid that no longer runs
    mine = tmp_path / f".p.duckdb.region-{socket.gethostname()}-{dead.pid}-abcdef012345.duckdb"
    other = tmp_path / f".p.duckdb.region-node-b7-{dead.pid}-abcdef012345.duckdb"
    live = regions_mod.scratch_path(db)  # this process: alive
    for f in (mine, other, live):
        f.write_bytes(b"")
    with Store(db):
        pass
    assert not mine.exists()
    assert other.exists()  # another host's job may still be writing it
    assert live.exists()


def test_partitioned_store_moved_with_its_parts_still_reads(
    tmp_path: Path, cohort: tuple[Path, list[str]], single: Store
) -> None:
    vcf, names = cohort
    first = tmp_path / "first"
    first.mkdir()
    with sample_store(first / "p.duckdb", names) as s:
        load_regions(s, vcf, principal=REGISTRAR, regions=[Region("chr1"), Region("chr2")])
    moved = tmp_path / "moved"
    first.rename(moved)
    with Store(moved / "p.duckdb", read_only=True) as s:
        assert verify_partitions(s).ok
        assert stored_calls(s) == stored_calls(single)


def test_partitioned_load__same_samples_in_another_column_order_extend_their_batch(
    tmp_path: Path, cohort: tuple[Path, list[str]], single: Store
) -> None:
    vcf, names = cohort
    chr2 = tmp_path / "chr2.vcf.gz"
    order = names[::-1]  # the chr2 file lists the samples backwards
    subprocess.run(
        ["bcftools", "view", "-r", "chr2", "-s", ",".join(order), "-Oz", "-o", str(chr2), str(vcf)],
        check=True,
    )
    with sample_store(tmp_path / "p.duckdb", names) as s:
        load_regions(s, vcf, principal=REGISTRAR, regions=[Region("chr1")])
        report = load_regions(s, chr2, principal=REGISTRAR)
        assert report.batch_id == 1
        assert s.con.execute("SELECT count(*) FROM genotype_batch").fetchone() == (1,)
        assert (
            s.con.execute(
                "SELECT count(*) FROM genotype_packed p JOIN variant v USING (variant_key)"
                " WHERE v.contig = 'chr2'"
            ).fetchone()[0]
            > 0
        )  # packed planes whose bits had to move
        _same(_answers(s), _answers(single))
        assert verify_vcf(s, chr2).ok


def test_packed_counts__from_the_files_equal_the_view_and_refuse_a_foreign_batch(
    tmp_path: Path, cohort: tuple[Path, list[str]]
) -> None:
    """The frequency reader's direct Parquet read of the packed planes (pyarrow, in a
    thread) counts what the ``genotype_packed`` view counts, for a subset of samples."""
    import duckdb

    from biobank.genomes.packed import (
        batch_columns,
        packed_counts,
        packed_counts_later,
        packed_files,
    )
    from biobank.genomes.reader import sample_table

    vcf, names = cohort
    with sample_store(tmp_path / "p.duckdb", names) as s:
        load_vcf(s, vcf, principal=REGISTRAR, partitioned=True)
        files = packed_files(s.con, 1)
        assert files
        assert all(f.is_file() for f in files)
        subset = s.con.execute(
            "SELECT participant_id FROM genotype_sample ORDER BY sample_key"
        ).fetchall()[::3]
        with sample_table(s.con, [r[0] for r in subset]) as tbl:
            layout = batch_columns(s.con, tbl)
            fast = packed_counts_later(s.con, tbl, layout=layout)
            assert fast.__name__ == "result"  # the threaded file read, not the fallback
            keys, counts = fast()
            ref_keys, ref_counts = packed_counts(s.con, tbl, layout=layout)
            assert len(keys) > 10
            assert keys.tolist() == ref_keys.tolist()
            assert counts.tolist() == ref_counts.tolist()
            # a packed file whose rows claim another batch is refused, not counted
            target = files[0]
            raw = duckdb.connect()
            raw.execute(
                f"COPY (SELECT 2 AS batch_id, variant_key, lo, hi FROM read_parquet('{target}'))"
                f" TO '{target}.new' (FORMAT parquet)"
            )
            os.replace(f"{target}.new", target)
            with pytest.raises(ValueError, match="another batch"):
                packed_counts_later(s.con, tbl, layout=layout)()
    # without the store's file_search_path (a bare connection) the view is read
    bare = duckdb.connect(str(tmp_path / "p.duckdb"), read_only=True)
    assert packed_files(bare, 1) is None
