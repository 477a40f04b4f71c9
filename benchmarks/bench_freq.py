"""Allele frequencies of an ad-hoc cohort vs ``plink2 --freq --keep``.

Usage (after ``bench_load.py`` with the same sizes)::

    .venv/bin/python benchmarks/bench_freq.py [N_SAMPLES] [N_VARIANTS]

The ad-hoc cohort is every other sample (half the cohort), all variants.
Both sides are timed as the median of several runs, alternating one plink2
run and one of ours so that both see the same load on a shared host: plink2
as separate processes (reading the pgen from the page cache),
``allele_frequencies`` as calls in one open session (as in a notebook); the
first call of the process, which also pays for imports, is printed apart.
"""

from __future__ import annotations

import statistics
import sys
import time

from _common import WORK, pfile, sample_names, store_path, timed

from biobank.core.store import Store
from biobank.stats.frequencies import allele_frequencies

REPEATS = 11


def main(n_samples: int = 3000, n_variants: int = 45_000) -> None:
    keep = sample_names(n_samples)[::2]
    keep_file = WORK / "keep.txt"
    keep_file.write_text("\n".join(keep) + "\n")
    prefix = pfile(n_samples, n_variants)
    plink_cmd = [
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
    with Store(store_path(n_samples, n_variants), read_only=True) as store:
        ids = ["P-" + s for s in keep]
        t = time.perf_counter()
        freq = allele_frequencies(store.con, ids, hwe=False)
        t_first = time.perf_counter() - t
        plink, warm = [], []
        for _ in range(REPEATS):  # alternate, so that both see the same load on the host
            plink.append(timed(plink_cmd))
            t = time.perf_counter()
            allele_frequencies(store.con, ids, hwe=False)
            warm.append(time.perf_counter() - t)
        t_plink, t_warm = statistics.median(plink), statistics.median(warm)
        t = time.perf_counter()
        allele_frequencies(store.con, ids, hwe=True)
        t_hwe = time.perf_counter() - t
    print(f"ad-hoc cohort: {len(keep)} samples x {freq.height} variants")
    print(f"plink2 --freq --keep: {t_plink:.3f} s (median of {REPEATS} runs)")
    print(f"allele_frequencies:   {t_warm:.3f} s (median of {REPEATS} calls in one session)")
    print(f"  first call in the process (imports, store blocks): {t_first:.2f} s")
    print(f"  with HWE exact test: {t_hwe:.3f} s")
    print(f"ratio: {t_warm / t_plink:.2f}x (target <= 2x)")


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:3]))
