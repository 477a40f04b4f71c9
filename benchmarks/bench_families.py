"""Time every family analysis over a store with many trios (run by hand, not in CI).

    .venv/bin/python benchmarks/bench_families.py --samples 10000 --trios 1000 --variants 20000

Simulates founders (independent sites, a skewed allele-frequency spectrum) and one
child per trio by transmission with a few crossovers, writes the registry (participants
with consistent ages), a ``GT:AD:DP`` VCF (bgzipped, indexed) and a PED file, loads
them with the real parts (registry import, ``load_vcf``, ``import_pedigree``), then
times, for all families: Mendelian errors, KING relatedness of the registered pairs,
the candidate search over every variant (no consequence filter: no annotation in this
VCF), the de novo read evidence (AD/DP of the trio from the VCF; against ``bcftools
query`` of the same sites and samples), and ranking. The
numbers are wall-clock seconds; the ratio to the load time is printed too.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np
from _common import WORK


def _simulate(n_samples: int, n_trios: int, n_variants: int, seed: int) -> np.ndarray:
    """Haplotypes ``(n_variants, 2 * n_samples)``: founders first, then one child per trio."""
    rng = np.random.default_rng(seed)
    n_founders = n_samples - n_trios
    p = np.clip(rng.beta(0.15, 1.5, size=n_variants), 0.0005, 0.95)
    hap = np.zeros((n_variants, 2 * n_samples), dtype=np.int8)
    hap[:, : 2 * n_founders] = rng.random((n_variants, 2 * n_founders)) < p[:, None]
    for t in range(n_trios):
        f, m, c = 2 * t, 2 * t + 1, n_founders + t
        for parent, slot in ((f, 0), (m, 1)):
            switch = np.sort(rng.choice(n_variants, size=3, replace=False))
            which = np.cumsum(np.isin(np.arange(n_variants), switch)) % 2
            hap[:, 2 * c + slot] = np.where(which == 0, hap[:, 2 * parent], hap[:, 2 * parent + 1])
    kids = slice(2 * n_founders, 2 * n_samples, 2)
    hap[:, kids] |= rng.random((n_variants, n_trios)) < 2e-4  # de novo-like calls
    return hap


def _write_vcf(path: Path, hap: np.ndarray, names: list[str], seed: int) -> Path:
    """``GT:AD:DP`` (depth 30, ALT reads binomial for a het call), bgzipped and indexed."""
    import subprocess

    rng = np.random.default_rng([seed, 11])
    depth = 30
    codes = (hap[:, 0::2] + hap[:, 1::2]).astype(np.int64)
    alt = np.where(codes == 1, rng.binomial(depth, 0.5, size=codes.shape), codes * depth // 2)
    table = np.array(
        [f"{g}:{depth - a},{a}:{depth}" for g in ("0/0", "0/1", "1/1") for a in range(depth + 1)],
        dtype=object,
    )
    cells = table[codes * (depth + 1) + alt]
    with open(path, "w", encoding="ascii") as fh:
        fh.write("##fileformat=VCFv4.2\n##contig=<ID=chr1,length=100000000>\n")
        fh.write('##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">\n')
        fh.write('##FORMAT=<ID=AD,Number=R,Type=Integer,Description="Reads per allele">\n')
        fh.write('##FORMAT=<ID=DP,Number=1,Type=Integer,Description="Read depth">\n')
        fh.write(
            "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\t" + "\t".join(names) + "\n"
        )
        for i in range(len(hap)):
            fh.write(f"chr1\t{100 * (i + 1)}\t.\tA\tG\t50\tPASS\t.\tGT:AD:DP\t")
            fh.write("\t".join(cells[i]) + "\n")
    gz = path.with_name(path.name + ".gz")
    subprocess.run(["bgzip", "-f", "-@", "2", str(path)], check=True)
    subprocess.run(["bcftools", "index", "-t", str(gz)], check=True)
    return gz


def _build(root: Path, n_samples: int, n_trios: int, n_variants: int, seed: int) -> Path:
    from biobank.core.access import Principal, Role, add_user, map_login, os_login
    from biobank.core.ids import center_key
    from biobank.core.store import Store
    from biobank.genomes.load import load_vcf
    from biobank.registry.imports import import_all
    from biobank.registry.pedigree import import_pedigree
    from biobank.testing import people as ppl

    root.mkdir(parents=True, exist_ok=True)
    n_founders = n_samples - n_trios
    rng = np.random.default_rng([seed, 5])
    sexes = ["male" if (i < 2 * n_trios and i % 2 == 0) else "female" for i in range(n_founders)]
    sexes = [s if i < 2 * n_trios else ("male" if rng.random() < 0.5 else "female")
             for i, s in enumerate(sexes)]  # fmt: skip
    sexes += ["male" if rng.random() < 0.5 else "female" for _ in range(n_trios)]
    parents: list[tuple[int, int] | None] = [None] * n_founders
    parents += [(2 * t, 2 * t + 1) for t in range(n_trios)]
    names = [f"S{i + 1:06d}" for i in range(n_samples)]
    people = ppl.make_people(
        rng, sexes=sexes, ancestries=["Han-North"] * n_samples, parents=parents,
        sample_ids=names, min_father_gap=20,
    )  # fmt: skip
    ppl.write_registry(root / "registry", ppl.registry_rows(rng, people))
    t = time.perf_counter()
    hap = _simulate(n_samples, n_trios, n_variants, seed)
    vcf = _write_vcf(root / "bench.vcf", hap, names, seed)
    print(f"simulated {n_samples} x {n_variants} in {time.perf_counter() - t:.1f} s")
    lines = []
    for t_ in range(n_trios):
        f, m, c = people[2 * t_], people[2 * t_ + 1], people[n_founders + t_]
        fam = f"T{t_ + 1:05d}"
        lines += [f"{fam} {f.national_id} 0 0 1 1", f"{fam} {m.national_id} 0 0 2 1"]
        lines.append(f"{fam} {c.national_id} {f.national_id} {m.national_id} 0 2")
    (root / "bench.ped").write_text("\n".join(lines) + "\n")
    path = root / "bench.duckdb"
    with Store(path) as store:
        center_key(store.path, create=True)
        with store.transaction() as con:
            admin = add_user(con, None, "admin", Role.ADMIN)
            add_user(con, admin, "registrar", Role.REGISTRAR)
            map_login(con, admin, os_login(), "registrar")
        reg = Principal("registrar", Role.REGISTRAR)
        t = time.perf_counter()
        import_all(store, reg, root / "registry")
        print(f"registry import: {time.perf_counter() - t:.1f} s")
        t = time.perf_counter()
        load_vcf(store, vcf, principal=reg, call_fields=["DP"])
        print(f"load_vcf: {time.perf_counter() - t:.1f} s")
        t = time.perf_counter()
        import_pedigree(store, reg, root / "bench.ped")
        print(f"import_pedigree ({n_trios} trios): {time.perf_counter() - t:.1f} s")
    return path


def _bcftools_reads(vcf: Path, cands: Any, store: Any, work: Path) -> float:
    """Seconds of ``bcftools query`` for AD/DP of the de novo trios at their sites."""
    import subprocess

    import polars as pl

    dn = cands.filter(pl.col("mode") == "de_novo")
    sites = work / "dn_sites.tsv"
    sites.write_text(
        "".join(
            f"{c}\t{p}\n"
            for c, p in dn.select("variant_contig", "variant_position").unique().iter_rows()
        )
    )
    samples = set(dn["proband_sample"])
    rows = store.con.execute(
        "SELECT f.sample_id, mo.sample_id FROM family_member m"
        " JOIN genotype_sample c USING (participant_id)"
        " JOIN genotype_sample f ON f.participant_id = m.father_id"
        " JOIN genotype_sample mo ON mo.participant_id = m.mother_id"
        " WHERE c.sample_id IN (SELECT unnest(?))",
        [sorted(samples)],
    ).fetchall()
    samples |= {s for r in rows for s in r}
    t = time.perf_counter()
    subprocess.run(
        ["bcftools", "query", "-R", str(sites), "-s", ",".join(sorted(samples)),
         "-f", "%POS[\t%AD\t%DP]\n", str(vcf)],
        check=True, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--samples", type=int, default=10_000)
    ap.add_argument("--trios", type=int, default=1_000)
    ap.add_argument("--variants", type=int, default=20_000)
    ap.add_argument("--seed", type=int, default=3)
    args = ap.parse_args()

    from biobank.core.access import Principal, Role
    from biobank.core.store import Store
    from biobank.families.evidence import ReadEvidence, add_read_evidence
    from biobank.families.inheritance import CandidateFilter, find_candidates
    from biobank.families.mendel import mendel_errors
    from biobank.families.ranking import rank_candidates
    from biobank.families.relatedness import check_relatedness

    root = WORK / f"families_{args.samples}_{args.trios}_{args.variants}"
    path = root / "bench.duckdb"
    if not path.exists():
        path = _build(root, args.samples, args.trios, args.variants, args.seed)
    reg = Principal("registrar", Role.REGISTRAR)
    timings: dict[str, float] = {}
    with Store(path) as store:
        t = time.perf_counter()
        me = mendel_errors(store.con, principal=reg)
        timings["mendel_errors"] = time.perf_counter() - t
        t = time.perf_counter()
        rel = check_relatedness(store.con, principal=reg)
        timings["relatedness (registered pairs)"] = time.perf_counter() - t
        cf = CandidateFilter(consequences=None, min_quality=0)
        t = time.perf_counter()
        plain = find_candidates(store.con, principal=reg, candidate_filter=cf, read_evidence=None)
        timings["find_candidates (all modes)"] = time.perf_counter() - t
        parents = {
            (f, c): (p, m)
            for f, c, p, m in store.con.execute(
                "SELECT m.family_id, c.sample_id, f.sample_id, mo.sample_id FROM family_member m"
                " JOIN genotype_sample c USING (participant_id)"
                " JOIN genotype_sample f ON f.participant_id = m.father_id"
                " JOIN genotype_sample mo ON mo.participant_id = m.mother_id"
            ).fetchall()
        }
        t = time.perf_counter()
        cands = add_read_evidence(store.con, plain, parents, ReadEvidence(keep_failing=True))
        timings["de novo read evidence (AD/DP from the VCF)"] = reads = time.perf_counter() - t
        t_ref = _bcftools_reads(path.parent / "bench.vcf.gz", cands, store, path.parent)
        t = time.perf_counter()
        import polars as pl

        empty = pl.DataFrame(
            schema={"participant_id": pl.String, "hpo_id": pl.String, "observed": pl.Boolean}
        )
        rank_candidates(cands, empty)
        timings["rank_candidates"] = time.perf_counter() - t
    total = sum(timings.values())
    print(f"{args.samples} samples, {args.trios} trios, {args.variants} variants")
    for name, sec in timings.items():
        print(f"  {name:42s} {sec:8.1f} s")
    print(
        f"  {'all analyses, every family':42s} {total:8.1f} s"
        f"  ({1000 * total / args.trios:.0f} ms per trio)"
    )
    print(f"  trios {me.trios.height}, pairs {rel.height}, candidates {cands.height}")
    dn = cands.filter(pl.col("mode") == "de_novo")
    n_dn = dn.height
    assert plain.height == cands.height  # keep_failing: the reads drop nothing here
    print(
        f"  read evidence of {n_dn} de novo calls: {reads:.1f} s; bcftools query of the same "
        f"sites and trio samples: {t_ref:.1f} s ({reads / t_ref:.2f}x); "
        f"{dn.filter(pl.col('read_evidence') == 'fail').height} of them fail the read filter"
    )


if __name__ == "__main__":
    main()
