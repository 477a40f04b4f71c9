"""The partitioned store against the single-file store, plink2 and bcftools, in one run.

Usage::

    .venv/bin/python benchmarks/bench_store.py [N_SAMPLES] [N_VARIANTS] [--json FILE]

(default 3000 x 45000). On the same simulated cohort (``_common.cohort_vcf``),
timed in the same run:

* loads: ``plink2 --make-pgen`` of the VCF.gz (2 threads); ``load_vcf`` of the
  VCF.gz into a single-file store; the workflow's BCF (``bcftools view -Ob`` of
  the VCF.gz, indexed) loaded as partitions by ``load_regions`` in 4 region
  chunks with 1 and with 2 worker processes (the 1 -> 2 speed-up);
* bytes: the pgen fileset, the single-file store, the partitioned store
  (DuckDB catalog + Parquet files);
* queries (median of 7, alternating the tools so that all see the same load on
  a shared host): cohort allele frequencies of every other sample on both
  stores, ``plink2 --freq --keep`` and ``bcftools view -S | +fill-tags -t AC,AN``;
  carriers of the variants in the first 1 % of the contig on both stores.

Ratios are printed against plink2 (and bcftools) of the same run. ``--json``
appends one JSON line of the figures (used for the growth table, docs/store.md).
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from _common import WORK, cohort_vcf, pfile, sample_names, timed

from biobank.core.access import Principal, Role
from biobank.core.store import Store
from biobank.genomes.filters import VariantFilter
from biobank.genomes.load import load_vcf
from biobank.genomes.partitions import parts_root
from biobank.genomes.reader import carriers
from biobank.genomes.regions import Region, load_regions
from biobank.stats.frequencies import allele_frequencies

ADMIN = Principal("bench", Role.ADMIN)
REPEATS = 7


def _fresh(db: Path, names: list[str]) -> Store:
    for f in db.parent.glob(db.name + "*"):
        shutil.rmtree(f) if f.is_dir() else f.unlink()
    s = Store(db)
    s.con.execute(
        "INSERT INTO sequencing_sample SELECT unnest(?::VARCHAR[]) AS s, 'L-' || s, 'P-' || s",
        [names],
    )
    return s


def _size(db: Path) -> int:
    parts = parts_root(db)
    extra = sum(f.stat().st_size for f in parts.rglob("*.parquet")) if parts.is_dir() else 0
    return db.stat().st_size + extra


def _chunks(vcf: Path, n: int) -> list[Region]:
    import cyvcf2

    reader = cyvcf2.VCF(str(vcf))
    contig, length = reader.seqnames[0], reader.seqlens[0]
    reader.close()
    step = -(-length // n)
    return [Region(contig, 1 + i * step, min((i + 1) * step, length)) for i in range(n)]


def _cpu() -> tuple[float, float]:
    """CPU seconds (user + system) of this process and of its ended child processes."""
    own, kids = (resource.getrusage(w) for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    return own.ru_utime + own.ru_stime, kids.ru_utime + kids.ru_stime


def _median_alternating(fns: dict[str, Callable[[], object]]) -> dict[str, float]:
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(REPEATS):
        for name, fn in fns.items():
            t = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t)
    return {k: statistics.median(v) for k, v in times.items()}


def main(n_samples: int = 3000, n_variants: int = 45_000, json_out: Path | None = None) -> None:
    vcf = cohort_vcf(n_samples, n_variants)
    names = sample_names(n_samples)
    prefix = pfile(n_samples, n_variants)
    tag = f"{n_samples}x{n_variants}"
    bcf = WORK / f"cohort_{tag}.bcf"
    if not bcf.exists():
        subprocess.run(["bcftools", "view", "-Ob", "-o", str(bcf), str(vcf)], check=True)
        subprocess.run(["bcftools", "index", "-f", str(bcf)], check=True)
    t_plink = timed(
        ["plink2", "--vcf", str(vcf), "--make-pgen", "--out", str(prefix), "--threads", "2"]
    )
    regions = _chunks(vcf, 4)
    single, part1, part2 = (WORK / f"{k}_{tag}.duckdb" for k in ("single", "part1", "part2"))
    with _fresh(single, names) as s:
        t = time.perf_counter()
        load_vcf(s, vcf, principal=ADMIN, threads=2)
        t_single = time.perf_counter() - t
    loads, cpu = {}, {}
    for db, workers in ((part1, 1), (part2, 2)):
        with _fresh(db, names) as s:
            c = _cpu()
            t = time.perf_counter()
            report = load_regions(s, bcf, principal=ADMIN, regions=regions, workers=workers)
            loads[workers] = time.perf_counter() - t
            cpu[workers] = tuple(b - a for a, b in zip(c, _cpu(), strict=True))
            s.con.execute("CHECKPOINT")
    pgen_bytes = sum(prefix.with_suffix(x).stat().st_size for x in (".pgen", ".pvar", ".psam"))
    sizes = {"pgen": pgen_bytes, "single": _size(single), "partitioned": _size(part2)}

    keep = names[::2]
    keep_file = WORK / f"keep_{tag}.txt"
    keep_file.write_text("\n".join(keep) + "\n")
    ids = ["P-" + s for s in keep]
    plink_cmd = ["plink2", "--pfile", str(prefix), "--keep", str(keep_file), "--freq",
                 "--out", str(WORK / f"freq_{tag}"), "--threads", "2"]  # fmt: skip
    bcftools_sh = (
        f"bcftools view -S {keep_file} -Ou {bcf} | bcftools +fill-tags -Ou -o /dev/null -- -t AC,AN"
    )
    region = VariantFilter(region=f"{regions[0].contig}:1-{regions[-1].end // 100}")
    with Store(single, read_only=True) as a, Store(part2) as b:
        for st in (a, b):  # first calls (imports, file metadata) apart
            allele_frequencies(st.con, ids, hwe=False)
        freq = _median_alternating(
            {
                "plink2": lambda: timed(plink_cmd),
                "bcftools": lambda: subprocess.run(bcftools_sh, shell=True, check=True),
                "single": lambda: allele_frequencies(a.con, ids, hwe=False),
                "partitioned": lambda: allele_frequencies(b.con, ids, hwe=False),
            }
        )
        fa = allele_frequencies(a.con, ids, hwe=False)
        fb = allele_frequencies(b.con, ids, hwe=False)
        assert fa.equals(fb), "the two layouts disagree"
    with Store(single) as a, Store(part2) as b:
        carry = _median_alternating(
            {
                "single": lambda: carriers(a.con, principal=ADMIN, variant_filter=region),
                "partitioned": lambda: carriers(b.con, principal=ADMIN, variant_filter=region),
            }
        )
    n_geno = n_samples * report.n_variants
    print(f"cohort {tag}: {report.n_variants} variant rows, {n_geno:,} genotypes")
    print(f"plink2 --make-pgen (VCF.gz, 2 threads): {t_plink:6.1f} s")
    print(f"load_vcf single-file (VCF.gz):          {t_single:6.1f} s = {t_single / t_plink:.2f}x")
    for w, t in loads.items():
        print(f"load_regions BCF, {w} worker(s), 4 chunks: {t:6.1f} s = {t / t_plink:.2f}x plink2")
    print(f"speed-up 1 -> 2 workers: {loads[1] / loads[2]:.2f}x wall (target >= 1.7x)")
    for w, (own, kids) in cpu.items():
        print(f"  CPU, {w} worker(s): parent {own:5.1f} s + worker processes {kids:5.1f} s")
    # on two free cores: the parent stages beside one worker process, so the longer of the two
    ideal = max(cpu[2][0], cpu[2][1])
    print(
        f"  expected on 2 free cores: {ideal:.1f} s = {loads[1] / ideal:.2f}x speed-up,"
        f" {ideal / t_plink:.2f}x plink2 (load average now {os.getloadavg()[0]:.1f})"
    )
    for k, v in sizes.items():
        print(f"bytes {k:>12}: {v / 1e6:8.1f} MB {v / n_geno:6.3f} B/genotype "
              f"{v / pgen_bytes:5.2f}x pgen")  # fmt: skip
    for k, v in freq.items():
        print(f"frequencies {k:>12}: {v:.3f} s = {v / freq['plink2']:.2f}x plink2")
    for k, v in carry.items():
        print(f"carriers (1% of the contig) {k:>12}: {v:.3f} s")
    if json_out is not None:
        row = {
            "samples": n_samples, "variants": report.n_variants, "plink2_make_pgen": t_plink,
            "load_single": t_single, "load_part_1": loads[1], "load_part_2": loads[2],
            "cpu_part_1": cpu[1], "cpu_part_2": cpu[2], "loadavg": os.getloadavg()[0],
            "bytes": sizes, "freq": freq, "carriers": carry,
        }  # fmt: skip
        with open(json_out, "a") as fh:
            fh.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    args = sys.argv[1:]
    out = None
    if "--json" in args:
        i = args.index("--json")
        out = Path(args[i + 1])
        del args[i : i + 2]
    main(*(int(a) for a in args[:2]), json_out=out)
