"""Allele frequencies of an ad-hoc cohort vs ``plink2 --freq --keep``.

Usage (after ``bench_load.py`` with the same sizes)::

    .venv/bin/python benchmarks/bench_freq.py [N_SAMPLES] [N_VARIANTS]

The ad-hoc cohort is every other sample (half the cohort), all variants.
"""

from __future__ import annotations

import sys
import time

from _common import WORK, pfile, sample_names, store_path, timed

from biobank.stats import allele_frequencies
from biobank.store import Store


def main(n_samples: int = 3000, n_variants: int = 45_000) -> None:
    keep = sample_names(n_samples)[::2]
    keep_file = WORK / "keep.txt"
    keep_file.write_text("\n".join(keep) + "\n")
    prefix = pfile(n_samples, n_variants)
    t_plink = timed(
        [
            "plink2",
            "--pfile",
            str(prefix),
            "--keep",
            str(keep_file),
            "--freq",
            "--out",
            str(WORK / "freq"),
            "--threads",
            "2",
        ]
    )
    with Store(store_path(n_samples, n_variants), read_only=True) as store:
        ids = ["P-" + s for s in keep]
        t = time.perf_counter()
        freq = allele_frequencies(store.con, ids, hwe=False)
        t_ours = time.perf_counter() - t
        t = time.perf_counter()
        allele_frequencies(store.con, ids, hwe=False)
        t_warm = time.perf_counter() - t
        t = time.perf_counter()
        allele_frequencies(store.con, ids, hwe=True)
        t_hwe = time.perf_counter() - t
    print(f"ad-hoc cohort: {len(keep)} samples x {freq.height} variants")
    print(f"plink2 --freq --keep: {t_plink:.2f} s")
    print(f"allele_frequencies:   {t_ours:.2f} s cold, {t_warm:.2f} s warm")
    print(f"  with HWE exact test (warm): {t_hwe:.2f} s")
    print(f"ratio (cold): {t_ours / t_plink:.2f}x, (warm): {t_warm / t_plink:.2f}x (target <= 2x)")


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:3]))
