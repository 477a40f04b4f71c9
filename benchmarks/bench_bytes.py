"""Where the bytes of a partitioned store go: catalog tables, free blocks, Parquet columns.

Usage::

    .venv/bin/python benchmarks/bench_bytes.py [N_SAMPLES] [N_VARIANTS] [--store DB]

Loads the benchmark cohort's BCF (as ``bench_store.py`` does: 4 region chunks,
one worker) into a fresh partitioned store, or with ``--store`` reads an
existing one, and prints: the pgen fileset's bytes; the DuckDB file (used and
free blocks, ``PRAGMA database_size``) and each table's share of its blocks
(``PRAGMA storage_info``: distinct blocks touched by the table's segments);
the Parquet files by kind and, within them, by column (compressed bytes from
the Parquet footer, ``pyarrow.parquet``).
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

from _common import WORK, cohort_vcf, pfile, sample_names
from bench_store import ADMIN, _chunks, _fresh

from biobank.core.store import Store
from biobank.genomes.partitions import parts_root
from biobank.genomes.regions import load_regions


def _catalog(db: Path) -> int:
    import duckdb

    con = duckdb.connect(str(db), read_only=True)
    size = con.execute("PRAGMA database_size").fetchone()
    assert size is not None
    block = int(size[2])
    total, used, free = int(size[3]), int(size[4]), int(size[5])
    file_bytes = db.stat().st_size
    print(f"catalog {db.name}: {file_bytes / 1e6:.2f} MB on disk; block {block} B,")
    print(f"  blocks {total} = used {used} + free {free} ({free * block / 1e6:.2f} MB free)")
    tables = [
        r[0]
        for r in con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database()"
        ).fetchall()
    ]
    rows = []
    for t in tables:
        info = con.execute(
            "SELECT count(DISTINCT block_id) FROM pragma_storage_info(?) WHERE block_id >= 0",
            [t],
        ).fetchone()
        n = con.execute(f'SELECT count(*) FROM "{t}"').fetchone()
        assert info is not None
        assert n is not None
        rows.append((int(info[0]), t, int(n[0])))
    for blocks, t, n in sorted(rows, reverse=True)[:12]:
        if blocks:
            print(f"  {t:>28}: {n:>9,} rows, {blocks:4d} blocks ({blocks * block / 1e6:5.2f} MB)")
    in_tables = sum(r[0] for r in rows)
    print(f"  the rest (metadata, the ART indexes of keys): {used - in_tables} blocks")
    con.close()
    return file_bytes


def _parquet(root: Path) -> int:
    import pyarrow.parquet as pq

    by_kind: dict[str, int] = defaultdict(int)
    by_col: dict[tuple[str, str], int] = defaultdict(int)
    footers: dict[str, int] = defaultdict(int)
    n_files: dict[str, int] = defaultdict(int)
    for f in sorted(root.rglob("*.parquet")):
        kind = f.name.split("-")[0]
        size = f.stat().st_size
        by_kind[kind] += size
        n_files[kind] += 1
        meta = pq.ParquetFile(f).metadata
        footers[kind] += meta.serialized_size
        for g in range(meta.num_row_groups):
            rg = meta.row_group(g)
            for c in range(rg.num_columns):
                col = rg.column(c)
                by_col[(kind, col.path_in_schema)] += col.total_compressed_size
    for kind, size in sorted(by_kind.items()):
        print(f"parquet {kind}: {n_files[kind]} files, {size / 1e6:.2f} MB"
              f" (footers {footers[kind] / 1e3:.1f} kB)")  # fmt: skip
        for (k, col), b in sorted(by_col.items()):
            if k == kind:
                print(f"  {col:>24}: {b / 1e6:6.2f} MB")
    return sum(by_kind.values())


def main(n_samples: int = 3000, n_variants: int = 45_000, store: Path | None = None) -> None:
    tag = f"{n_samples}x{n_variants}"
    prefix = pfile(n_samples, n_variants)
    vcf = cohort_vcf(n_samples, n_variants)
    if not prefix.with_suffix(".pgen").exists():
        subprocess.run(
            ["plink2", "--vcf", str(vcf), "--make-pgen", "--out", str(prefix), "--threads", "2"],
            check=True,
            capture_output=True,
        )
    if store is None:
        bcf = WORK / f"cohort_{tag}.bcf"
        if not bcf.exists():
            subprocess.run(["bcftools", "view", "-Ob", "-o", str(bcf), str(vcf)], check=True)
            subprocess.run(["bcftools", "index", "-f", str(bcf)], check=True)
        store = WORK / f"bytes_{tag}.duckdb"
        with _fresh(store, sample_names(n_samples)) as s:
            t = time.perf_counter()
            load_regions(s, bcf, principal=ADMIN, regions=_chunks(vcf, 4), workers=1)
            print(f"loaded in {time.perf_counter() - t:.1f} s")
        with Store(store) as s:  # as bench_store measures: after a read-write open
            s.con.execute("CHECKPOINT")
    pgen = sum(prefix.with_suffix(x).stat().st_size for x in (".pgen", ".pvar", ".psam"))
    print(f"pgen fileset: {pgen / 1e6:.2f} MB")
    cat = _catalog(store)
    par = _parquet(parts_root(store))
    total = cat + par
    print(f"total {total / 1e6:.2f} MB = {total / pgen:.3f}x pgen"
          f" (catalog {cat / pgen:.3f}x, parquet {par / pgen:.3f}x)")  # fmt: skip


if __name__ == "__main__":
    args = sys.argv[1:]
    db = None
    if "--store" in args:
        i = args.index("--store")
        db = Path(args[i + 1])
        del args[i : i + 2]
    main(*(int(a) for a in args[:2]), store=db)
