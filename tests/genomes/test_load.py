"""Tests for biobank.genomes.load: loading VCFs into the genotype store."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from genomes_support import (
    ADMIN,
    REGISTRAR,
    RESEARCHER,
    VCF,
    store,  # noqa: F401 (the store fixture)
    table_counts,
    write_many_records,
)

from biobank.core.errors import (
    AccessDenied,
    NotFoundError,
    StoreError,
    ValidationError,
)
from biobank.core.store import Store
from biobank.genomes import records
from biobank.genomes.load import load_vcf
from biobank.genomes.verify import verify_vcf


def test_load_vcf__splits_multiallelic_and_keeps_annotation(store: Store) -> None:
    report = load_vcf(store, VCF / "tiny.vcf", principal=REGISTRAR, info_fields=["AF", "DP"])
    assert (report.n_samples, report.n_records, report.n_variants) == (4, 4, 5)
    rows = store.con.execute(
        "SELECT contig, position, ref, alt, allele_index, n_alt_alleles, variant_id, qual,"
        " filter, gene, consequence, CAST(info AS VARCHAR) FROM variant ORDER BY variant_key"
    ).fetchall()
    assert [(r[0], r[1], r[2], r[3], r[4]) for r in rows] == [
        ("chr1", 100, "A", "G", 1),
        ("chr1", 200, "C", "T", 1),
        ("chr1", 200, "C", "CA", 2),
        ("chr1", 300, "G", "A", 1),
        ("chrX", 5000, "T", "C", 1),
    ]
    assert rows[0][6:11] == ("rs1", 50.0, "PASS", "GENE1", "missense")
    assert rows[1][7:9] == (30.0, "LowQual")
    assert rows[3][7] is None  # QUAL '.'
    assert rows[3][9:11] == ("GENE1", "stop_gained")
    assert json.loads(rows[1][11]) == {"AF": 0.25, "DP": 35}
    assert json.loads(rows[2][11]) == {"AF": 0.125, "DP": 35}


def test_load_vcf__records_provenance_and_audit(store: Store) -> None:
    report = load_vcf(store, VCF / "tiny.vcf", principal=REGISTRAR)
    prov = store.con.execute("SELECT kind, source, user_name FROM provenance").fetchall()
    assert prov == [("vcf", str(VCF / "tiny.vcf"), "reg")]
    entry = store.con.execute(
        "SELECT user_name, action, CAST(detail AS VARCHAR) FROM audit_log"
        " WHERE action = 'genotype.load'"
    ).fetchone()
    assert entry is not None
    assert entry[0] == "reg"
    assert json.loads(entry[2])["calls"] == report.n_calls == 14


def test_load_vcf__inside_a_transaction_is_refused(store: Store) -> None:
    """A load commits its own transaction (it prepares rows outside any)."""
    before = table_counts(store)
    with store.transaction(), pytest.raises(StoreError, match="its own transaction"):
        load_vcf(store, VCF / "tiny.vcf", principal=REGISTRAR)
    assert table_counts(store) == before


def test_load_vcf__same_file_twice_is_a_noop(store: Store) -> None:
    first = load_vcf(store, VCF / "tiny.vcf", principal=REGISTRAR)
    before = table_counts(store)
    again = load_vcf(store, VCF / "tiny.vcf", principal=REGISTRAR)
    assert again.already_loaded
    assert again.load_id == first.load_id
    assert table_counts(store) == before


def test_load_vcf__rejects_unknown_sample(store: Store) -> None:
    before = table_counts(store)
    with pytest.raises(NotFoundError, match=r"2 sample ids are not linked.*S9999, S9998"):
        load_vcf(store, VCF / "tiny_unknown.vcf", principal=REGISTRAR)
    assert table_counts(store) == before


def test_load_vcf__bad_record_names_line_and_position_and_writes_nothing(store: Store) -> None:
    load_vcf(store, VCF / "tiny.vcf", principal=REGISTRAR)
    before = table_counts(store)
    with pytest.raises(ValidationError, match=r"line 9: cannot parse record chr1:140"):
        load_vcf(store, VCF / "tiny_bad_record.vcf", principal=REGISTRAR, chunk_records=1)
    assert table_counts(store) == before


def test_load_vcf__record_without_gt_names_its_line(store: Store, tmp_path: Path) -> None:
    """A record whose FORMAT lacks GT fails the load at that line; nothing is stored."""
    lines = (VCF / "tiny.vcf").read_text().splitlines()
    body = [ln for ln in lines if not ln.startswith("#")]
    fields = body[1].split("\t")
    fields[8:] = ["DP", *["7"] * (len(fields) - 9)]  # the second record: DP only
    body[1] = "\t".join(fields)
    path = tmp_path / "no_gt.vcf"
    path.write_text("\n".join([*[ln for ln in lines if ln.startswith("#")], *body]) + "\n")
    line = lines.index(body[0]) + 2
    before = table_counts(store)
    with pytest.raises(ValidationError, match=rf"line {line}.*cannot read GT: no GT values"):
        load_vcf(store, path, principal=REGISTRAR)
    assert table_counts(store) == before


def test_load_vcf__unknown_info_field_is_rejected(store: Store) -> None:
    with pytest.raises(ValidationError, match=r"INFO field.*XYZ are not defined"):
        load_vcf(store, VCF / "tiny.vcf", principal=REGISTRAR, info_fields=["XYZ"])


def test_load_vcf__researcher_may_not_load(store: Store) -> None:
    with pytest.raises(AccessDenied, match="may not load_data"):
        load_vcf(store, VCF / "tiny.vcf", principal=RESEARCHER)


@pytest.mark.slow
def test_load_vcf__kill_9_during_load_leaves_store_as_it_was(tmp_path: Path) -> None:
    from biobank.testing.population import simulate_cohort_vcf

    vcf = simulate_cohort_vcf(tmp_path / "big.vcf.gz", n_samples=100, n_variants=3000, seed=3)
    db = tmp_path / "k.duckdb"
    with Store(db) as s:
        s.con.execute(
            "INSERT INTO sequencing_sample SELECT 'S' || lpad(i::VARCHAR, 6, '0'), 'L' || i,"
            " 'P-' || i FROM range(1, 101) t(i)"
        )
        before = table_counts(s)
    script = textwrap.dedent(
        f"""
        import logging, sys
        from biobank.core.access import Principal, Role
        from biobank.core.store import Store
        from biobank.genomes.load import load_vcf
        logging.basicConfig(level=logging.DEBUG, stream=sys.stderr)
        with Store({str(db)!r}) as s:
            load_vcf(s, {str(vcf)!r}, principal=Principal("reg", Role.REGISTRAR), chunk_records=50)
        print("FINISHED", flush=True)
        """
    )
    with subprocess.Popen(
        [sys.executable, "-c", script], stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True
    ) as proc:
        assert proc.stderr is not None
        chunks = 0
        for line in proc.stderr:
            if "loaded chunk" in line:
                chunks += 1
                if chunks == 5:
                    os.kill(proc.pid, signal.SIGKILL)
                    break
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the load finished before it could be killed"
    left = list(tmp_path.glob(".k.duckdb.scratch-*"))
    assert left, "the killed load staged its rows in a scratch database"
    with Store(db) as s:
        assert not [f for f in left if f.exists()], "opening the store removes stale scratch"
        assert table_counts(s) == before
        report = load_vcf(s, vcf, principal=REGISTRAR)  # and a clean re-run loads it all
        assert report.n_variants > 500
        assert verify_vcf(s, vcf).ok


def test_load_vcf__random_genotypes_round_trip(tmp_path: Path) -> None:
    """Random diploid/haploid/missing/multi-allelic genotypes come back as written."""
    import allel

    from biobank.genomes.reader import genotype_matrix

    rng = np.random.default_rng(11)
    n, m = 7, 40
    names = [f"R{i:03d}" for i in range(n)]
    lines = [
        "##fileformat=VCFv4.2",
        "##contig=<ID=chr1,length=1000000>",
        '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">',
        "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\t" + "\t".join(names),
    ]
    for j in range(m):
        n_alt = 1 if j % 5 else 2
        cells = []
        for _ in range(n):
            kind = rng.random()
            if kind < 0.1:
                cells.append("./.")
            elif kind < 0.2:
                cells.append(str(rng.integers(0, n_alt + 1)))  # haploid
            else:
                a, b = rng.integers(0, n_alt + 1, size=2)
                cells.append(f"{a}{'|' if rng.random() < 0.5 else '/'}{b}")
        alts = ",".join(["G", "T"][:n_alt])
        lines.append(f"chr1\t{100 + 10 * j}\t.\tA\t{alts}\t.\tPASS\t.\tGT\t" + "\t".join(cells))
    path = tmp_path / "r.vcf"
    path.write_text("\n".join(lines) + "\n")
    with Store(tmp_path / "r.duckdb") as s:
        s.con.execute(
            "INSERT INTO sequencing_sample SELECT unnest(?::VARCHAR[]) AS s, 'L', 'P-' || s",
            [names],
        )
        load_vcf(s, path, principal=REGISTRAR)
        assert verify_vcf(s, path).ok
        got = genotype_matrix(s.con, principal=ADMIN)
    want = allel.read_vcf(str(path), fields=["calldata/GT", "variants/ALT"], alt_number=2)
    gt = want["calldata/GT"]
    # split the reference genotypes per ALT allele: other ALTs read as REF
    rows = []
    for j in range(m):
        for a in (1, 2):
            if a == 2 and want["variants/ALT"][j][1] == "":
                continue
            g = gt[j].copy()
            miss = (g < 0).any(axis=1) & ~((g[:, 1] == -1) & (g[:, 0] >= 0) & _haploid(lines, j))
            g = np.where(g == a, 1, np.where(g < 0, -1, 0))
            g[miss] = -1
            rows.append(g)
    assert np.array_equal(got.genotypes.values, np.array(rows))


def _haploid(lines: list[str], j: int) -> np.ndarray:
    cells = lines[4 + j].split("\t")[9:]
    return np.array([("/" not in c and "|" not in c) for c in cells])


def test_load_vcf__bcftools_stream_and_direct_read_store_the_same(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The default path (bcftools view -Ou piped into cyvcf2) matches reading the file directly."""
    opened: list[object] = []
    real_open = records.BcfStream.open

    def spy(path: Path, threads: int) -> object:
        stream = real_open(path, threads)
        opened.append(stream)
        return stream

    def load(db: Path) -> dict[str, list[tuple[object, ...]]]:
        with Store(db) as s:
            s.con.execute(
                "INSERT INTO sequencing_sample SELECT unnest(?::VARCHAR[]) AS s, 'L', 'P-' || s",
                [["S0001", "S0002", "S0003", "S0004"]],
            )
            load_vcf(s, VCF / "tiny.vcf", principal=REGISTRAR, call_fields=["DP", "GQ"])
            return {
                t: s.con.execute(f"SELECT * FROM {t} ORDER BY ALL").fetchall()
                for t in ("variant", "batch_variant", "genotype_call", "genotype_sample")
            }

    monkeypatch.setattr(records.BcfStream, "open", staticmethod(spy))
    streamed = load(tmp_path / "a.duckdb")
    assert len(opened) == 1
    assert opened[0] is not None  # bcftools was used
    monkeypatch.setattr(records.BcfStream, "open", staticmethod(lambda path, threads: None))
    direct = load(tmp_path / "b.duckdb")
    assert streamed == direct
    assert len(streamed["genotype_call"]) > 0


_PEAK_MEMORY_LOAD = """
import sys
from pathlib import Path
import cyvcf2
from biobank.core.access import Principal, Role
from biobank.core.store import Store
from biobank.genomes.load import load_vcf
vcf, db, limit = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
names = list(cyvcf2.VCF(str(vcf)).samples)
with Store(db) as store:
    store.con.execute(f"SET memory_limit = '{limit}'")
    store.con.execute(
        "INSERT INTO sequencing_sample SELECT unnest(?::VARCHAR[]) AS s, 'L', 'P-' || s", [names]
    )
    load_vcf(store, vcf, principal=Principal("t", Role.ADMIN), chunk_records=500)
"""


def _peak_rss_of_load(vcf: Path, db: Path, memory_limit: str) -> int:
    """Load ``vcf`` into a new store in a child process; return its peak RSS in bytes."""
    proc = subprocess.Popen(
        [sys.executable, "-c", _PEAK_MEMORY_LOAD, str(vcf), str(db), memory_limit]
    )
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    assert proc.returncode == 0
    assert not list(db.parent.glob(f".{db.name}.scratch-*")), "the scratch database was left"
    return usage.ru_maxrss * 1024  # kB on Linux


@pytest.mark.slow
def test_load_vcf__streams_peak_memory_does_not_follow_the_genotypes(tmp_path: Path) -> None:
    """Eight times the records of 1,000 samples: the peak memory of the load barely moves.

    Each load runs in its own process (peak RSS from ``wait4``). Holding the
    extra records' GT arrays would take 168 MB more; streaming in chunks
    keeps the difference small.
    """
    import gzip

    from biobank.testing.population import simulate_cohort_vcf

    full = simulate_cohort_vcf(tmp_path / "full.vcf.gz", n_samples=1000, n_variants=24_000)
    with gzip.open(full, "rt") as fh:
        lines = fh.read().splitlines()
    header = [ln for ln in lines if ln.startswith("#")]
    body = [ln for ln in lines if not ln.startswith("#")]
    assert len(body) == 24_000
    small = tmp_path / "small.vcf.gz"
    with gzip.open(small, "wt") as out:  # gzip is enough for htslib here (no index needed)
        out.write("\n".join([*header, *body[:3000]]) + "\n")
    peak = {
        name: _peak_rss_of_load(path, tmp_path / f"{name}.duckdb", "100MB")
        for name, path in (("small", small), ("full", full))
    }
    held = (len(body) - 3000) * 1000 * 2 * 4  # the extra records' int32 GT arrays
    assert peak["full"] - peak["small"] < held / 4, (peak, held)


@pytest.mark.slow
def test_load_vcf__memory_does_not_grow_with_the_number_of_records(tmp_path: Path) -> None:
    """Ten times the records (200,000 of 64 samples): the load's peak memory barely moves.

    Each load runs in its own process under a 30 MB DuckDB memory limit.
    Appending each chunk's rows to the store inside the load's one open
    transaction held part of every row until the commit: measured with that
    loader, the full load peaked 119 MB above the small one (1 GB limit) and
    ran out of memory under this limit. Loads now prepare their rows in a
    scratch database and publish them with one bulk insert per table
    (measured: +18 MB here, +34 MB under a 1 GB limit, where DuckDB may cache
    more blocks). See docs/store.md.
    """
    n_small, n_full = 20_000, 200_000
    full, small = tmp_path / "full.vcf.gz", tmp_path / "small.vcf.gz"
    write_many_records(full, 64, n_full, seed=5)
    write_many_records(small, 64, n_small, seed=5)
    peak = {
        name: _peak_rss_of_load(path, tmp_path / f"{name}.duckdb", "30MB")
        for name, path in (("small", small), ("full", full))
    }
    assert peak["full"] - peak["small"] < 40 * 2**20, peak
