"""Load time of ``biobank load-vcf`` vs ``plink2 --make-pgen``, and storage per genotype.

Usage::

    .venv/bin/python benchmarks/bench_load.py [N_SAMPLES] [N_VARIANTS]

(default 3000 x 45000). Also times ``bcftools view -Ou`` of the same file:
htslib's VCF parsing, which load-vcf reads through (cyvcf2), and so the
floor of its time; once in one process, and once split in two halves of the
records (by region, through the index) parsed at the same time, which is the
floor on the two cores plink2 uses. Then the CPU time cyvcf2 takes to hand
over each record's GT array (``Variant.format("GT", int)``, timed on a BCF
copy so that no text is parsed): parse + hand-over CPU, shared by two cores,
is a floor of load-vcf's wall time however fast everything after it is.

Simulates the cohort once with msprime
(``biobank.testing.simulate_cohort_vcf``) under ``$BIOBANK_BENCH_DIR``
(default ``/tmp/biobank-bench``), times both loads in the same run, and reports
sizes: VCF.gz, pgen+pvar+psam, the DuckDB store, and ``genotype_call`` exported
to Parquet (zstd), per stored call and per (sample x variant) genotype.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from _common import cohort_vcf, pfile, sample_names, store_path, timed

from biobank.core.access import Principal, Role
from biobank.core.store import Store
from biobank.genomes.load import load_vcf


def parse_on_two_cores(vcf: Path) -> float:
    """Wall time of two ``bcftools view -Ou`` processes, each parsing half the records."""
    import cyvcf2

    sites = [(rec.CHROM, rec.POS) for rec in cyvcf2.VCF(str(vcf), samples=[])]
    chrom, mid = sites[len(sites) // 2]
    if any(c != chrom for c, _ in sites):
        raise SystemExit("parse_on_two_cores expects a one-contig VCF (as simulated here)")
    base = ["bcftools", "view", "-Ou", "-o", "/dev/null", "--regions-overlap", "pos", "-r"]
    halves = [f"{chrom}:1-{mid - 1}", f"{chrom}:{mid}-"]
    t = time.perf_counter()
    procs = [subprocess.Popen([*base, region, str(vcf)]) for region in halves]
    if any(p.wait() != 0 for p in procs):
        raise SystemExit("bcftools view -r failed")
    return time.perf_counter() - t


def gt_handover_cpu(vcf: Path) -> float:
    """CPU seconds cyvcf2 spends handing over every record's GT array (from a BCF copy)."""
    import resource
    import tempfile

    import cyvcf2

    def cpu() -> float:
        r = resource.getrusage(resource.RUSAGE_SELF)
        return r.ru_utime + r.ru_stime

    with tempfile.TemporaryDirectory() as tmp:
        bcf = Path(tmp) / "copy.bcf"
        subprocess.run(["bcftools", "view", "-Ob", "-l", "1", "-o", str(bcf), str(vcf)], check=True)
        c = cpu()
        for _ in cyvcf2.VCF(str(bcf), lazy=True):
            pass
        reading = cpu() - c
        c = cpu()
        for rec in cyvcf2.VCF(str(bcf), lazy=True):
            rec.format("GT", int)
        return cpu() - c - reading


def main(n_samples: int = 3000, n_variants: int = 45_000) -> None:
    vcf = cohort_vcf(n_samples, n_variants)
    prefix = pfile(n_samples, n_variants)
    t_plink = timed(
        ["plink2", "--vcf", str(vcf), "--make-pgen", "--out", str(prefix), "--threads", "2"]
    )
    # htslib's text parsing alone (what load-vcf reads through, via cyvcf2):
    # the floor of our load time, however fast everything after it is
    t_parse = timed(["bcftools", "view", "-Ou", "-o", "/dev/null", str(vcf)])
    t_parse2 = parse_on_two_cores(vcf)
    t_gt = gt_handover_cpu(vcf)
    db = store_path(n_samples, n_variants)
    for f in (db, db.with_suffix(".duckdb.wal")):
        f.unlink(missing_ok=True)
    with Store(db) as store:
        store.con.execute(
            "INSERT INTO sequencing_sample SELECT unnest(?::VARCHAR[]) AS s, 'L-' || s, 'P-' || s",
            [sample_names(n_samples)],
        )
        t = time.perf_counter()
        report = load_vcf(store, vcf, principal=Principal("bench", Role.ADMIN), threads=2)
        t_ours = time.perf_counter() - t
        store.con.execute("CHECKPOINT")
        # the two call tables as zstd Parquet (a possible archive/partition format)
        parquets = [db.with_suffix(f".{t}.parquet") for t in ("genotype_call", "genotype_packed")]
        for path in parquets:
            table = path.suffixes[-2].lstrip(".")
            store.con.execute(f"COPY {table} TO '{path}' (FORMAT parquet, COMPRESSION zstd)")
    n_geno = report.n_samples * report.n_variants
    sizes = {
        "vcf.gz": vcf.stat().st_size,
        "pgen+pvar+psam": sum(
            prefix.with_suffix(s).stat().st_size for s in (".pgen", ".pvar", ".psam")
        ),
        "duckdb store": db.stat().st_size,
        "call tables as parquet": sum(p.stat().st_size for p in parquets),
    }
    print(
        f"cohort: {report.n_samples} samples x {report.n_variants} variants, "
        f"{report.n_calls} stored calls ({report.n_calls / n_geno:.1%} of genotypes), "
        f"{report.n_packed} variants packed"
    )
    print(f"plink2 --make-pgen: {t_plink:.1f} s")
    print(f"biobank load-vcf:   {t_ours:.1f} s  ({report.n_variants / t_ours:,.0f} variants/s)")
    print(f"ratio load-vcf / plink2: {t_ours / t_plink:.2f}x (target <= 2x)")
    print(
        f"htslib parse alone (bcftools view -Ou): {t_parse:.1f} s = "
        f"{t_parse / t_plink:.2f}x plink2's whole load"
    )
    print(
        f"htslib parse on two cores (two halves at once): {t_parse2:.1f} s = "
        f"{t_parse2 / t_plink:.2f}x plink2's whole load"
    )
    floor = (t_parse + t_gt) / 2
    print(
        f"cyvcf2 GT hand-over: {t_gt:.1f} s CPU; (parse + hand-over) / 2 cores = {floor:.1f} s"
        f" = {floor / t_plink:.2f}x plink2: the floor of load-vcf on this machine"
    )
    for name, size in sizes.items():
        print(
            f"{name:>22}: {size / 1e6:8.1f} MB  {size / n_geno:6.3f} B/genotype"
            f"  {size / report.n_calls:6.2f} B/stored call"
        )


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:3]))
