"""The Shringarpure-Bustamante membership attack on a demo centre's Beacon, with and without
the defences (``biobank.research.beacon.attack``).

The Beacon answers for the participants whose consent permits HMB; the other
genotyped participants (POA, DS consents) are the non-members. For every
member (target) and a set of non-member controls, the attacker asks the
target's alleles, rarest first, as an anonymous client, and makes a confident
membership call when the likelihood ratio is at least 20 and above every
control's after as many queries. Prints, per setting, the share of members
called and the queries needed (median, max), and how many queries the budget
allowed.

    .venv/bin/python benchmarks/bench_beacon_attack.py [preset] [max_queries] [n_targets]

(the first ``n_targets`` members in pseudonym order, a random choice).
"""

from __future__ import annotations

import statistics
import sys
import time

from _common import WORK


def main(preset: str = "tiny", max_queries: int = 40, n_targets: int = 30) -> None:
    from biobank.core.store import Store
    from biobank.registry.consent import permitted_participants_sql
    from biobank.research.beacon.attack import queries_to_call, simulate_attack, target_alleles
    from biobank.research.beacon.config import BeaconConfig
    from biobank.testing import build_centre_store

    root = WORK / f"attack_{preset}"
    path = root / "centre.duckdb"
    if not path.exists():
        build_centre_store(root, seed=11, preset=preset)
    settings = {
        "no defence": (BeaconConfig(min_allele_frequency=0.0, anonymous_budget=None), 0.0),
        "defence (AF >= 0.05 shown, 1,000 queries/day)": (BeaconConfig(), 0.05),
    }
    with Store(path) as store:
        store.con.execute("DELETE FROM beacon_query_budget")  # a fresh day for the run
        sql = permitted_participants_sql("HMB")
        members = [
            r[0]
            for r in store.con.execute(
                "SELECT participant_id FROM genotype_sample"
                f" WHERE participant_id IN ({sql}) ORDER BY 1"
            ).fetchall()
        ]
        others = [
            r[0]
            for r in store.con.execute(
                "SELECT participant_id FROM genotype_sample"
                f" WHERE participant_id NOT IN ({sql}) ORDER BY 1"
            ).fetchall()
        ]
        alleles = {p: target_alleles(store, p) for p in members + others}
        print(
            f"{preset}: {len(members)} members, {len(others)} non-members; median "
            f"{statistics.median(len(a) for a in alleles.values()):.0f} ALT alleles a person"
        )
        for label, (config, skip) in settings.items():
            t = time.perf_counter()
            controls = [
                simulate_attack(
                    store,
                    alleles[p],
                    config=config,
                    n_beacon=len(members),
                    client=f"c-{p}-{label}",
                    skip_below=skip,
                    max_queries=max_queries,
                )
                for p in others
            ]
            calls, budget_hits = [], 0
            for p in members[:n_targets]:
                r = simulate_attack(
                    store,
                    alleles[p],
                    config=config,
                    n_beacon=len(members),
                    client=f"m-{p}-{label}",
                    skip_below=skip,
                    max_queries=max_queries,
                )
                budget_hits += r.stopped_by_budget
                calls.append(queries_to_call(r, [c for c in controls]))
            called = [k for k in calls if k is not None]
            false_calls = sum(
                queries_to_call(c, [d for d in controls if d is not c]) is not None
                for c in controls
            )
            print(
                f"  {label}: {len(called)}/{len(calls)} members called within {max_queries}"
                f" queries"
                + (
                    f"; queries needed median {statistics.median(called):.0f}, max {max(called)}"
                    if called
                    else ""
                )
                + f"; non-members called: {false_calls}/{len(controls)};"
                f" stopped by the budget: {budget_hits}; {time.perf_counter() - t:.0f} s"
            )


if __name__ == "__main__":
    args = sys.argv[1:]
    main(
        args[0] if args else "tiny",
        int(args[1]) if len(args) > 1 else 40,
        int(args[2]) if len(args) > 2 else 30,
    )
