"""Reference panel figures: load the 1000 Genomes subset as a panel into a copy of the
demo store and project the demo cohort onto it; and a demo-made panel for comparison.

Run by hand (not in CI), after ``./run demo``::

    .venv/bin/python benchmarks/bench_panel.py [--demo /work/main/demo] [--kg ../shared/...]

The demo store is copied (with its key file) to ``$BIOBANK_BENCH_DIR`` and never
written. Figures printed:

1. ``load_panel`` of the 1000 Genomes subset (1,126 samples, 23 VCFs): wall time,
   variants, PCA SNPs.
2. Projection of the demo cohort onto it: how many of the panel's PCA SNPs the demo
   store has (the demo is simulated on its own synthetic genome, so none are
   expected), and the time of the audited read + projection + ancestry call
   (run with ``min_overlap=0`` so that it completes).
3. A panel made from half of the demo's own cohort VCF (truth ancestry from
   ``truth/ancestry.tsv``; Han-North/Han-South = Han): load time, projection
   time of the whole demo cohort, and the share of the other half assigned its
   true group.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import polars as pl
from _common import WORK

from biobank.core.access import Principal, Role
from biobank.core.store import Store
from biobank.genomes.ancestry import infer_ancestry, project_onto_panel
from biobank.genomes.panels import load_panel, read_populations

HERE = Path(__file__).resolve().parent
KG = HERE.parents[1] / "shared" / "data" / "1kg-phase3-subset"


def _copy_store(demo: Path) -> Path:
    WORK.mkdir(parents=True, exist_ok=True)
    dst = WORK / "panel_demo.duckdb"
    for suffix in ("", ".key", ".wal", ".audit-head"):
        src = Path(f"{demo / 'biobank.duckdb'}{suffix}")
        target = Path(f"{dst}{suffix}")
        target.unlink(missing_ok=True)
        if src.exists():
            shutil.copy2(src, target)
    return dst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--demo", type=Path, default=HERE.parent.parent / "main" / "demo")
    parser.add_argument("--kg", type=Path, default=KG)
    args = parser.parse_args()
    path = _copy_store(args.demo)
    registrar = Principal("demo-registrar", Role.REGISTRAR)
    vcfs = [args.kg / f"1KG_phase3_subset_chr{c}.vcf.gz" for c in [*range(1, 23), "X"]]
    with Store(path) as store:
        n_part = store.con.execute("SELECT count(*) FROM genotype_sample").fetchone()
        n_var = store.con.execute("SELECT count(*) FROM variant").fetchone()
        print(f"demo store copy: {path} ({n_part[0] if n_part else 0} genotyped participants,"
              f" {n_var[0] if n_var else 0} variants)")  # fmt: skip
        t = time.perf_counter()
        report = load_panel(
            store,
            vcfs,
            populations=args.kg / "1KG_phase3_subset_annot.tsv",
            name="1kg",
            principal=registrar,
        )
        t_load = time.perf_counter() - t
        print(
            f"1. 1kg panel load: {t_load:.1f} s for {report.n_samples} samples x "
            f"{report.n_variants} variants; PCA on {report.n_pca_snps} SNPs, "
            f"{report.n_components} components"
        )
        t = time.perf_counter()
        projected, found = project_onto_panel(
            store.con, panel="1kg", principal=registrar, min_overlap=0.0
        )
        result = infer_ancestry(store.con, projected, panel="1kg")
        t_proj = time.perf_counter() - t
        print(
            f"2. demo cohort on the 1kg panel: {found} of {report.n_pca_snps} PCA SNPs in the "
            f"demo store; read + projection + ancestry of {projected.height} participants in "
            f"{t_proj:.2f} s; assigned {result['ancestry'].drop_nulls().len()}"
            " (no shared sites: the demo genome is synthetic)"
        )
        # 3. a panel from the demo's own population
        demo_vcf = args.demo / "population" / "cohort.vcf.gz"
        truth = pl.read_csv(args.demo / "truth" / "ancestry.tsv", separator="\t")
        names = subprocess.run(
            ["bcftools", "query", "-l", str(demo_vcf)], check=True, capture_output=True, text=True
        ).stdout.split()
        in_panel = set(names[::2])
        table = truth.filter(pl.col("sample_id").is_in(list(in_panel))).select(
            "sample_id",
            pl.col("ancestry").alias("population"),
            pl.col("ancestry").str.replace(r"-.*", "").alias("superpopulation"),
        )
        table.write_csv(WORK / "demo_panel.tsv", separator="\t")
        t = time.perf_counter()
        rep2 = load_panel(
            store,
            demo_vcf,
            populations=read_populations(WORK / "demo_panel.tsv"),
            name="demo-half",
            principal=registrar,
        )
        t_load2 = time.perf_counter() - t
        t = time.perf_counter()
        projected2, found2 = project_onto_panel(store.con, panel="demo-half", principal=registrar)
        result2 = infer_ancestry(store.con, projected2, panel="demo-half")
        t_proj2 = time.perf_counter() - t
        held = result2.filter(~pl.col("sample_id").is_in(list(in_panel))).join(
            truth.select("sample_id", pl.col("ancestry").str.replace(r"-.*", "").alias("truth")),
            on="sample_id",
        )
        acc = float(np.mean(held["ancestry"].to_numpy() == held["truth"].to_numpy()))
        print(
            f"3. demo-half panel ({rep2.n_samples} samples, {rep2.n_pca_snps} PCA SNPs): load "
            f"{t_load2:.1f} s; projection + ancestry of {projected2.height} participants "
            f"({found2} SNPs matched) {t_proj2:.2f} s; {acc:.1%} of {held.height} held-out "
            f"participants assigned their true group ({held['ancestry'].null_count()} unassigned)"
        )


if __name__ == "__main__":
    main()
