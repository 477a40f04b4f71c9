"""Beacon allele queries on a 10,000-sample store: p50 / p95 over HTTP, against bcftools.

Builds (once, under ``$BIOBANK_BENCH_DIR``) a store of the simulated cohort
(``biobank.testing.simulate_cohort_vcf``, registry from
``write_registry_for_samples``: GRU/HMB consents), then asks the Beacon
``/api/beacon/g_variants`` sequence queries (one allele each, random sites of
the store, half of them alleles that are not there) through the service
(in-process ASGI, as a partner centre: count granularity, consent filter,
rare-allele hiding and the budget all on), and times them. The reference is
``bcftools view -H -r chr1:POS -i 'AC>0'`` on the same VCF for the same
alleles (one process per query, as a lookup tool would run), timed in the
same run, interleaved.

    .venv/bin/python benchmarks/bench_beacon.py 10000 20000 [n_queries]
"""

from __future__ import annotations

import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import WORK, cohort_vcf, sample_names


def build_store(n_samples: int, n_variants: int) -> Path:
    """The store of the benchmark cohort with its registry (built once)."""
    from biobank.core.access import Principal, Role, add_user
    from biobank.core.ids import center_key
    from biobank.core.store import Store
    from biobank.genomes.load import load_vcf
    from biobank.registry.imports import import_all
    from biobank.testing.people import write_registry_for_samples

    path = WORK / f"beacon_{n_samples}x{n_variants}.duckdb"
    if path.exists():
        return path
    vcf = cohort_vcf(n_samples, n_variants)
    t = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        write_registry_for_samples(tmp, sample_names(n_samples))
        with Store(path) as store:
            center_key(store.path, create=True)
            with store.transaction() as con:
                admin = add_user(con, None, "admin", Role.ADMIN)
                add_user(con, admin, "registrar", Role.REGISTRAR)
            registrar = Principal("registrar", Role.REGISTRAR)
            import_all(store, registrar, Path(tmp))
            load_vcf(store, vcf, principal=registrar)
    for f in (path, Path(str(path) + ".key")):
        f.chmod(0o600)
    print(f"built {path} in {time.perf_counter() - t:.1f} s")
    return path


def main(n_samples: int = 10_000, n_variants: int = 20_000, n_queries: int = 200) -> None:
    import anyio
    import httpx

    from biobank.core.access import Principal, Role
    from biobank.core.store import Store
    from biobank.research.beacon.config import BeaconConfig
    from biobank.research.partners import add_partner, list_partners
    from biobank.service import create_app

    path = build_store(n_samples, n_variants)
    vcf = cohort_vcf(n_samples, n_variants)
    with Store(path) as store:
        name = f"bench-{os.getpid()}"
        token = add_partner(store, Principal("admin", Role.ADMIN), name, purpose="HMB")
        sites = store.con.execute("SELECT contig, position, ref, alt FROM variant").fetchall()
        print(f"{len(list_partners(store.con))} partners; {len(sites):,} variants")
    rng = random.Random(1)
    queries = []
    for contig, pos, ref, alt in rng.sample(sites, n_queries):
        other = next(b for b in "ACGT" if b not in (ref, alt))
        queries.append((contig, pos, ref, alt if rng.random() < 0.5 else other))
    app = create_app(path, secret_key="b" * 40, beacon=BeaconConfig(partner_budget=None))
    transport = httpx.ASGITransport(app=app)
    headers = {"Authorization": f"Bearer {token}"}

    async def ask(client: httpx.AsyncClient, q: tuple[str, int, str, str]) -> tuple[float, bool]:
        contig, pos, ref, alt = q
        t = time.perf_counter()
        r = await client.get(
            "/api/beacon/g_variants",
            params={
                "referenceName": contig,
                "start": pos - 1,
                "referenceBases": ref,
                "alternateBases": alt,
                "requestedGranularity": "count",
            },
            headers=headers,
        )
        r.raise_for_status()
        return time.perf_counter() - t, bool(r.json()["responseSummary"]["exists"])

    async def run() -> list[tuple[float, bool]]:
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            await ask(client, queries[0])  # first call: imports, caches
            return [await ask(client, q) for q in queries]

    t_ref: list[float] = []
    for contig, pos, _ref, alt in queries[: min(50, n_queries)]:
        t = time.perf_counter()
        subprocess.run(
            [
                "bcftools",
                "view",
                "-H",
                "-r",
                f"{contig}:{pos}",
                "-i",
                f'ALT="{alt}" && AC>0',
                str(vcf),
            ],
            check=True,
            capture_output=True,
        )
        t_ref.append(time.perf_counter() - t)
    ours = anyio.run(run)
    app.state.service.store.close()
    times = sorted(t for t, _ in ours)
    p50 = statistics.median(times)
    p95 = times[int(0.95 * (len(times) - 1))]
    ref50 = statistics.median(t_ref)
    print(f"{n_samples:,} samples x {len(sites):,} variants, {n_queries} allele queries")
    print(f"  found: {sum(e for _, e in ours)} of {n_queries} (half ask an allele not there)")
    print(f"  beacon over HTTP (in process): p50 {p50 * 1000:.1f} ms, p95 {p95 * 1000:.1f} ms")
    print(f"  bcftools view -r (one process per query): median {ref50 * 1000:.1f} ms")
    print(f"  ratio p50 beacon / bcftools: {p50 / ref50:.2f}")


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:]))
