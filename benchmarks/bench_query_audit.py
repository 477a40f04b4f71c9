"""Cost of the query audit of released counts against the pairwise check alone.

Usage::

    .venv/bin/python benchmarks/bench_query_audit.py [RELEASES] [PARTICIPANTS]

Builds a store under ``$BIOBANK_BENCH_DIR`` whose ``disclosure_release`` holds a
history of RELEASES (default 300) random cohorts of 50 .. PARTICIPANTS/2
members over PARTICIPANTS (default 3000) synthetic ids for one user (random
cohorts make nearly every participant a class of one: the worst case, the
audit eliminates the whole matrix). Then times, as the median of 5 new
cohorts, :func:`biobank.research.output_checks.release_count` (pairwise check
+ audit + record) against the pairwise nearest-release query alone, and
prints both and their ratio, with the matrix shape.
"""

from __future__ import annotations

import datetime as dt
import random
import statistics
import sys
import time

from _common import WORK

from biobank.core.access import Principal, Role
from biobank.core.store import Store
from biobank.research import output_checks
from biobank.research.query_audit import membership_classes


def main(n_releases: int = 300, n_people: int = 3000) -> None:
    """Build the history and print the timings."""
    path = WORK / f"query_audit_{n_releases}x{n_people}.duckdb"
    path.unlink(missing_ok=True)
    rng = random.Random(1)
    people = [f"P{i:06d}" for i in range(n_people)]
    now = dt.datetime(2026, 1, 1)
    who = Principal("bench", Role.RESEARCHER)
    with Store(path) as store:
        rows = [
            ["bench", "HMB", f"c{j}", len(m), sorted(m), now]
            for j in range(n_releases)
            for m in [rng.sample(people, rng.randint(50, n_people // 2))]
        ]
        store.con.executemany(
            "INSERT INTO disclosure_release (user_name, purpose, label, n_members, members,"
            " released_at) VALUES (?, ?, ?, ?, ?, ?)",
            rows,
        )
        full, pairwise = [], []
        for k in range(5):
            new = sorted(rng.sample(people, rng.randint(50, n_people // 2)))
            t0 = time.perf_counter()
            output_checks._nearest(store, ["bench"], new)
            pairwise.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            out = output_checks.release_count(store, who, new, purpose="HMB", label=f"new{k}")
            full.append(time.perf_counter() - t0)
            print(f"  new cohort {k}: {len(new)} members, released={out.n is not None}")
        matrix, _ = membership_classes(store.con, ["bench"], new)
    a, b = statistics.median(full), statistics.median(pairwise)
    print(f"history {n_releases} releases x {n_people} participants; matrix {matrix.shape}")
    print(f"release_count (pairwise + audit) median {a:.3f} s; pairwise alone {b:.3f} s")
    print(f"ratio {a / b:.1f}x")


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:3]))
