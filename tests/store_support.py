"""Helpers of the partitioned-store tests (tests/genomes/test_partitions.py, Spark, arrays):
a random bgzipped, indexed VCF over two contigs and stores with its samples registered.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np

from biobank.core.store import Store

__all__ = ["random_vcf", "sample_store"]


def random_vcf(
    path: Path,
    n_samples: int,
    n_records: int,
    *,
    seed: int,
    prefix: str = "P",
    contigs: tuple[str, ...] = ("chr1", "chr2"),
    odd: bool = True,
) -> list[str]:
    """Write a bgzipped, indexed VCF of random genotypes; return its sample names.

    Records alternate between ``contigs`` blocks, positions 1,000 bp apart. With
    ``odd`` some records are multi-allelic, and in every third record some calls
    are haploid, phased, missing or half-calls (every kind of stored call; the
    other records are plain, so that some variants are stored packed); otherwise
    plain unphased diploid SNVs.
    """
    rng = np.random.default_rng(seed)
    names = [f"{prefix}{i:04d}" for i in range(n_samples)]
    lines = [
        "##fileformat=VCFv4.2",
        *[f"##contig=<ID={c},length=1000000>" for c in contigs],
        '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">',
        "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\t" + "\t".join(names),
    ]
    per = n_records // len(contigs)
    for c, contig in enumerate(contigs):
        for j in range(per if c < len(contigs) - 1 else n_records - per * c):
            n_alt = 2 if odd and j % 7 == 3 else 1
            af = rng.uniform(0.02, 0.5)
            g = (rng.random((n_samples, 2)) < af).astype(int)
            if n_alt == 2:
                g[rng.random((n_samples, 2)) < 0.1] = 2
            cells = []
            for i in range(n_samples):
                a, b = g[i]
                r = rng.random() if odd and j % 3 == 0 else 1.0
                if r < 0.03:
                    cells.append("./.")
                elif r < 0.05:
                    cells.append(f"{a}/.")
                elif r < 0.08:
                    cells.append(str(a))
                elif r < 0.15:
                    cells.append(f"{a}|{b}")
                else:
                    lo, hi = (a, b) if odd and j % 3 == 0 else sorted((a, b))  # 1/0 is not plain
                    cells.append(f"{lo}/{hi}" if rng.random() < 0.99 else "./.")
            alts = ",".join(["G", "T"][:n_alt])
            lines.append(
                f"{contig}\t{1000 * (j + 1)}\t.\tA\t{alts}\t.\tPASS\t.\tGT\t" + "\t".join(cells)
            )
    plain = path.with_suffix("")
    plain.write_text("\n".join(lines) + "\n")
    subprocess.run(["bgzip", "-f", str(plain)], check=True)
    subprocess.run(["bcftools", "index", "-f", str(path)], check=True)
    return names


def sample_store(path: Path, names: list[str]) -> Store:
    """A new store with ``names`` registered as sequencing samples (one participant each)."""
    s = Store(path)
    s.con.execute(
        "INSERT INTO sequencing_sample SELECT unnest(?::VARCHAR[]) AS s, 'L', 'P-' || s",
        [names],
    )
    return s
