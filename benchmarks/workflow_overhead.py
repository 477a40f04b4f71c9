"""Benchmark: the workflow's wall time against a plain shell script, and 1 vs 2 cores.

Runs on a demo folder (``biobank demo-data DEMO``, default preset):

1. ``benchmarks/workflow_plain.sh``: the same tools and options as the
   workflow's rules, one after the other (threaded tools get 2 threads);
2. the Snakemake workflow with ``--cores 2``;
3. the Snakemake workflow with ``--cores 1``.

Each run starts from an empty directory. Prints the wall times, the overhead
ratio (Snakemake at 2 cores / plain script; target < 1.15), the speed-up from
1 to 2 cores and the accuracy of the 2-core run against the demo's truth VCFs
(``biobank compare-calls`` per sample; target: SNP precision and recall >= 0.99),
and writes them as JSON.

    .venv/bin/python benchmarks/workflow_overhead.py DEMO [--out DIR] [--skip-one-core]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def _timed(cmd: list[str], *, cwd: Path, log: Path) -> float:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    start = time.perf_counter()
    with open(log, "w", encoding="utf-8") as fh:
        proc = subprocess.run(
            cmd, cwd=cwd, stdout=fh, stderr=subprocess.STDOUT, env=env, check=False
        )
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed (exit {proc.returncode}); see {log}")
    return elapsed


def _snakemake_run(demo: Path, run: Path, cores: int) -> float:
    if run.exists():
        shutil.rmtree(run)
    run.mkdir(parents=True)
    with open(REPO / "config" / "config.yaml", encoding="utf-8") as fh:
        config: dict[str, Any] = yaml.safe_load(fh)
    config["samples"] = str(demo / "samples.tsv")
    config["sample_metadata"] = str(demo / "truth" / "ancestry.tsv")
    config["reference"]["fasta"] = str(demo / "reference" / "genome.fa")
    config["reference"]["gff3"] = str(demo / "reference" / "genes.gff3")
    (run / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    cmd = [
        str(BIN / "snakemake"),
        "--snakefile", str(REPO / "workflow" / "Snakefile"),
        "--directory", str(run),
        "--configfile", str(run / "config.yaml"),
        "--cores", str(cores),
        "--quiet",
    ]  # fmt: skip
    return _timed(cmd, cwd=run, log=run.parent / f"{run.name}.log")


def _accuracy(demo: Path, run: Path) -> dict[str, dict[str, Any]]:
    """SNP and INDEL precision/recall per sample of a finished run."""
    from biobank.sequencing.accuracy import compare_calls

    samples = [line.split("\t")[0] for line in (demo / "samples.tsv").read_text().splitlines()[1:]]
    out: dict[str, dict[str, Any]] = {}
    for sample in dict.fromkeys(samples):
        rows = compare_calls(
            demo / "truth" / f"{sample}.vcf.gz",
            run / "results" / "vcf" / "cohort.vcf.gz",
            reference=demo / "reference" / "genome.fa",
            sample=sample,
        )
        out[sample] = {
            r.variant_type: {k: r.as_dict()[k] for k in ("tp", "fp", "fn", "precision", "recall")}
            for r in rows
        }
    return out


def main() -> None:
    """Run the benchmark and print the figures."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("demo", type=Path, help="demo folder (biobank demo-data DEMO)")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "workflow")
    parser.add_argument("--skip-one-core", action="store_true", help="skip the 1-core run")
    args = parser.parse_args()
    demo = args.demo.resolve()
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    chunks = 4  # config/config.yaml scatter.chunks
    plain_dir = out / "plain"
    if plain_dir.exists():
        shutil.rmtree(plain_dir)
    figures: dict[str, Any] = {"demo": str(demo), "cpu_count": os.cpu_count()}
    figures["plain_2_threads_s"] = _timed(
        [
            "bash",
            str(REPO / "benchmarks" / "workflow_plain.sh"),
            str(demo),
            str(plain_dir),
            "2",
            str(chunks),
        ],
        cwd=out,
        log=out / "plain.log",
    )
    figures["snakemake_2_cores_s"] = _snakemake_run(demo, out / "snakemake_2", 2)
    figures["overhead_ratio"] = figures["snakemake_2_cores_s"] / figures["plain_2_threads_s"]
    accuracy = _accuracy(demo, out / "snakemake_2")
    figures["snp_precision_min"] = min(a["SNP"]["precision"] for a in accuracy.values())
    figures["snp_recall_min"] = min(a["SNP"]["recall"] for a in accuracy.values())
    figures["accuracy"] = accuracy
    if not args.skip_one_core:
        figures["snakemake_1_core_s"] = _snakemake_run(demo, out / "snakemake_1", 1)
        figures["speedup_1_to_2_cores"] = (
            figures["snakemake_1_core_s"] / figures["snakemake_2_cores_s"]
        )
    (out / "figures.json").write_text(json.dumps(figures, indent=1))
    for key, value in figures.items():
        if key == "accuracy":
            continue
        shown = f"{value:.2f}" if isinstance(value, float) else value
        print(f"{key:>24}: {shown}")


if __name__ == "__main__":
    main()
