"""A simulated population on the demo genome: msprime ancestry, relatives, alleles, VCFs.

* Founders are simulated with :mod:`msprime` under a three-group model
  (``Han-North``, ``Han-South``, ``Tibetan``) with population splits, migration
  and recent exponential growth, so the site frequency spectrum has the excess
  of rare variants of a growing population.
* Mutations come from msprime on a discrete genome (binary model). The
  *reference base is the ancestral state*: allele 0 of every site is the base of
  the demo genome at that position, so REF always matches ``genome.fa``. The
  derived base is a transition with probability 2/3 (Ti/Tv about 2). About 10 %
  of sites become 1-10 bp insertions or deletions, kept only where they are
  already left-aligned and parsimonious (``bcftools norm`` leaves them alone).
* Relatives are made by transmitting recombined parental haplotypes
  (parent-offspring pairs and sibling pairs).
* Males are hemizygous on chrX: their chrX genotypes are written **haploid**
  (``0`` / ``1``), in the cohort VCF and in truth VCFs alike. chrY carries no
  variants (every male has the reference chrY).

Haplotype matrices are ``int8`` with shape ``(n_sites, 2 * n_individuals)``:
columns ``2i`` and ``2i + 1`` are individual ``i``'s two haplotypes (0 = REF,
1 = ALT, -1 = absent: a male's second chrX).
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from biobank.core.errors import ValidationError
from biobank.testing.genome import Genome

__all__ = [
    "POPULATIONS",
    "Population",
    "Variants",
    "simulate_cohort_vcf",
    "simulate_population",
    "write_vcf",
]

logger = logging.getLogger(__name__)

#: Ancestry groups: label, msprime name.
POPULATIONS = {"Han-North": "Han_North", "Han-South": "Han_South", "Tibetan": "Tibetan"}
MUTATION_RATE = 1.25e-8
#: Five times the human rate: the short demo contigs then hold enough independent
#: genealogies that KING kinship of unrelated pairs stays near 0 (at 1e-8 many
#: unrelated pairs looked second-degree related).
RECOMBINATION_RATE = 5e-8
#: The benchmark VCF (:func:`simulate_cohort_vcf`) uses the human rate.
BENCHMARK_RECOMBINATION_RATE = 1e-8
#: Crossovers per bp when transmitting a haplotype to a child (a compressed genetic
#: map, so that a chromosome of a few hundred kb still recombines).
TRANSMISSION_CROSSOVER_RATE = 1e-6
_TRANSITION = {"A": "G", "G": "A", "C": "T", "T": "C"}


@dataclass
class Variants:
    """Biallelic sites of all contigs, sorted by contig then position.

    ``pos`` is 0-based; ``hap`` is ``(n_sites, 2 * n_individuals)`` int8.
    """

    contig: np.ndarray
    pos: np.ndarray
    ref: list[str]
    alt: list[str]
    hap: np.ndarray

    def __len__(self) -> int:
        return len(self.ref)

    def subset(self, keep: np.ndarray) -> Variants:
        """Return the sites where ``keep`` (bool mask or index array) selects."""
        idx = np.flatnonzero(keep) if keep.dtype == bool else keep
        return Variants(
            self.contig[idx],
            self.pos[idx],
            [self.ref[i] for i in idx],
            [self.alt[i] for i in idx],
            self.hap[idx],
        )

    def allele_counts(self, individuals: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Return (alt allele count, called allele number) per site."""
        h = self.hap if individuals is None else self.hap[:, _hap_cols(individuals)]
        return (h == 1).sum(axis=1), (h >= 0).sum(axis=1)

    def dosage(self, site: int) -> np.ndarray:
        """ALT allele count per individual at one site (0, 1 or 2)."""
        h = self.hap[site].reshape(-1, 2)
        return (h == 1).sum(axis=1)


@dataclass
class Population:
    """Individuals of the simulated population and their variants."""

    ancestry: list[str]
    sex: list[str]
    #: (father, mother) indices for children, ``None`` for founders.
    parents: list[tuple[int, int] | None]
    variants: Variants


def _hap_cols(individuals: np.ndarray) -> np.ndarray:
    return np.stack([2 * individuals, 2 * individuals + 1], axis=1).ravel()


#: Demographic model (sizes in diploid individuals, times in generations ago).
DEMOGRAPHY = {
    "han_size_now": 200_000,
    "han_size_at_split": 15_000,
    "tibetan_size_now": 40_000,
    "tibetan_size_at_split": 6_000,
    "han_split": 400,
    "tibetan_split": 1_500,
    "ancestral_size": 12_000,
    "han_migration": 2e-4,
}


def _demography() -> object:
    import msprime

    p = DEMOGRAPHY
    han_growth = np.log(p["han_size_now"] / p["han_size_at_split"]) / p["han_split"]
    tib_growth = np.log(p["tibetan_size_now"] / p["tibetan_size_at_split"]) / p["tibetan_split"]
    d = msprime.Demography()
    for name in ("Han_North", "Han_South"):
        d.add_population(name=name, initial_size=p["han_size_now"], growth_rate=han_growth)
    d.add_population(name="Tibetan", initial_size=p["tibetan_size_now"], growth_rate=tib_growth)
    d.add_population(name="Han", initial_size=p["han_size_at_split"] * 2)
    d.add_population(name="Ancestral", initial_size=p["ancestral_size"])
    d.set_symmetric_migration_rate(["Han_North", "Han_South"], p["han_migration"])
    d.add_population_split(time=p["han_split"], derived=["Han_North", "Han_South"], ancestral="Han")
    d.add_population_split(
        time=p["tibetan_split"], derived=["Han", "Tibetan"], ancestral="Ancestral"
    )
    return d


def _sim_tree_sequence(
    samples: int | dict[str, int],
    demography: object,
    length: int,
    recombination_rate: float,
    seed: int,
) -> object:
    """Simulate ancestry (seed ``seed``) and binary mutations (seed ``seed + 1``) with msprime."""
    import msprime

    ts = msprime.sim_ancestry(
        samples=samples,
        demography=demography,
        sequence_length=length,
        recombination_rate=recombination_rate,
        random_seed=seed,
    )
    return msprime.sim_mutations(
        ts, rate=MUTATION_RATE, model=msprime.BinaryMutationModel(), random_seed=seed + 1
    )


def _simulate_contig(
    length: int, counts: dict[str, int], seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Return (0-based positions, haplotype matrix) of founders on one contig."""
    ts: Any = _sim_tree_sequence(
        {POPULATIONS[k]: n for k, n in counts.items() if n > 0},
        _demography(),
        length,
        RECOMBINATION_RATE,
        seed,
    )
    pos = ts.tables.sites.position.astype(np.int64)
    hap = ts.genotype_matrix().astype(np.int8) if ts.num_sites else np.zeros((0, 0), np.int8)
    return pos, hap


def _recombine(
    rng: np.random.Generator, pos: np.ndarray, h0: np.ndarray, h1: np.ndarray, length: int
) -> np.ndarray:
    """Transmit one haplotype: switch between ``h0`` and ``h1`` at random crossovers."""
    n_co = rng.poisson(TRANSMISSION_CROSSOVER_RATE * length)
    breaks = np.sort(rng.integers(0, length, n_co))
    which = (np.searchsorted(breaks, pos, side="right") + int(rng.integers(0, 2))) % 2
    return np.where(which == 0, h0, h1)


def _random_snv_alt(rng: np.random.Generator, base: str) -> str:
    """A derived base: a transition with probability 2/3, else one of the two transversions."""
    if rng.random() < 2 / 3:
        return _TRANSITION[base]
    return "AT"[int(rng.integers(0, 2))] if base in "CG" else "CG"[int(rng.integers(0, 2))]


def _choose_alleles(
    rng: np.random.Generator, genome: Genome, contig: str, pos: np.ndarray, indel_fraction: float
) -> tuple[np.ndarray, list[str], list[str]]:
    """Pick REF/ALT for each site; return (kept mask, ref, alt)."""
    seq = genome.sequences[contig]
    n = len(seq)
    keep = np.zeros(len(pos), dtype=bool)
    ref: list[str] = []
    alt: list[str] = []
    blocked_until = -1
    kinds = rng.random(len(pos))
    ins_or_del = rng.random(len(pos))
    lengths = np.minimum(rng.geometric(0.45, len(pos)), 10)
    for i, p in enumerate(pos):
        p = int(p)
        if p <= blocked_until or p + 12 >= n or p < 1:
            continue
        base = chr(seq[p])
        if base not in "ACGT":
            continue
        nxt = int(pos[i + 1]) if i + 1 < len(pos) else n
        k = int(lengths[i])
        if kinds[i] < indel_fraction and ins_or_del[i] < 0.5 and p + k < nxt:
            span = seq[p : p + k + 1].tobytes().decode()
            # a deletion is left-aligned iff the anchor differs from the last deleted base
            if "N" not in span and span[0] != span[-1]:
                keep[i] = True
                ref.append(span)
                alt.append(base)
                blocked_until = p + k
                continue
        if kinds[i] < indel_fraction and ins_or_del[i] >= 0.5:
            ins = "".join("ACGT"[j] for j in rng.integers(0, 4, k))
            if ins[-1] != base and chr(seq[p + 1]) in "ACGT":
                # left-aligned iff the inserted sequence's last base differs from the anchor
                keep[i] = True
                ref.append(base)
                alt.append(base + ins)
                blocked_until = p
                continue
        keep[i] = True
        ref.append(base)
        alt.append(_random_snv_alt(rng, base))
        blocked_until = p
    return keep, ref, alt


def _pick_families(
    rng: np.random.Generator,
    labels: list[str],
    counts: np.ndarray,
    ancestry: list[str],
    sex: list[str],
    n_families: int,
) -> list[tuple[int, int, int]]:
    """Pick (father, mother, number of children) of the same ancestry, each founder once."""
    n_founders = len(ancestry)
    used: set[int] = set()
    families: list[tuple[int, int, int]] = []
    for _ in range(n_families):
        lab = labels[int(rng.choice(len(labels), p=counts / counts.sum()))]
        men = [
            i
            for i in range(n_founders)
            if ancestry[i] == lab and sex[i] == "male" and i not in used
        ]
        women = [
            i
            for i in range(n_founders)
            if ancestry[i] == lab and sex[i] == "female" and i not in used
        ]
        if not men or not women:
            continue
        f, m = int(rng.choice(men)), int(rng.choice(women))
        used |= {f, m}
        families.append((f, m, 1 + int(rng.random() < 0.5)))
    return families


def _transmit(
    rng: np.random.Generator,
    hap: np.ndarray,
    pos: np.ndarray,
    *,
    contig: str,
    length: int,
    families: list[tuple[int, int, int]],
    sex: list[str],
    first_child: int,
) -> None:
    """Fill the children's haplotypes in ``hap`` from their parents' (a father gives no chrX
    to a son)."""
    child = first_child
    for f, m, c in families:
        for _ in range(c):
            mat = _recombine(rng, pos, hap[:, 2 * m], hap[:, 2 * m + 1], length)
            if contig == "chrX":
                pat = hap[:, 2 * f] if sex[child] == "female" else np.full(len(pos), -1, np.int8)
            else:
                pat = _recombine(rng, pos, hap[:, 2 * f], hap[:, 2 * f + 1], length)
            hap[:, 2 * child] = mat
            hap[:, 2 * child + 1] = pat
            child += 1


def _contig_variants(
    rng: np.random.Generator,
    genome: Genome,
    contig: str,
    founders: tuple[np.ndarray, np.ndarray],
    order: np.ndarray,
    families: list[tuple[int, int, int]],
    sex: list[str],
    indel_fraction: float,
) -> Variants:
    """The polymorphic sites of one contig for founders (``founders``: positions and
    haplotypes, columns in ``order``) and their children."""
    pos, founders_hap = founders
    n_total = len(sex)
    hap = np.full((len(pos), 2 * n_total), -1, dtype=np.int8)
    hap[:, _hap_cols(order)] = founders_hap
    _transmit(
        rng,
        hap,
        pos,
        contig=contig,
        length=genome.lengths[contig],
        families=families,
        sex=sex,
        first_child=len(order),
    )
    if contig == "chrX":
        males = np.array([i for i in range(n_total) if sex[i] == "male"], dtype=np.int64)
        hap[:, 2 * males + 1] = -1
    keep, ref, alt = _choose_alleles(rng, genome, contig, pos, indel_fraction)
    hap = hap[keep]
    poly = (hap == 1).any(axis=1) & (hap == 0).any(axis=1)
    idx = np.flatnonzero(poly)
    logger.info("population: %s: %d variant sites", contig, len(idx))
    return Variants(
        np.full(len(idx), contig, dtype=object),
        pos[keep][idx],
        [ref[i] for i in idx],
        [alt[i] for i in idx],
        hap[idx],
    )


def _concatenate(parts: Sequence[Variants]) -> Variants:
    """The sites of ``parts`` one after another."""
    return Variants(
        np.concatenate([v.contig for v in parts]),
        np.concatenate([v.pos for v in parts]),
        [r for v in parts for r in v.ref],
        [a for v in parts for a in v.alt],
        np.concatenate([v.hap for v in parts]),
    )


def simulate_population(
    genome: Genome,
    *,
    n_founders: int,
    n_families: int,
    ancestry_shares: dict[str, float],
    seed: int,
    indel_fraction: float = 0.1,
) -> Population:
    """Simulate founders with msprime and add families of relatives.

    Parameters
    ----------
    genome
        The reference genome (REF bases are taken from it).
    n_founders
        Unrelated individuals simulated by msprime.
    n_families
        Families of a father and a mother (founders of the same ancestry) with
        one or two children (two children make a sibling pair).
    ancestry_shares
        Share of founders per ancestry group (keys of :data:`POPULATIONS`).
    seed
        Random seed (msprime and numpy).
    indel_fraction
        Share of sites turned into insertions/deletions.
    """
    rng = np.random.default_rng([seed, 2])
    labels = list(ancestry_shares)
    counts = rng.multinomial(n_founders, [ancestry_shares[k] for k in labels])
    ancestry = [lab for lab, c in zip(labels, counts, strict=True) for _ in range(c)]
    sex = ["male" if x < 0.5 else "female" for x in rng.random(n_founders)]
    parents: list[tuple[int, int] | None] = [None] * n_founders
    families = _pick_families(rng, labels, counts, ancestry, sex, n_families)
    for f, m, c in families:
        for _ in range(c):
            ancestry.append(ancestry[f])
            sex.append("male" if rng.random() < 0.5 else "female")
            parents.append((f, m))
    by_pop = {lab: [i for i in range(n_founders) if ancestry[i] == lab] for lab in labels}
    # msprime returns samples population by population; founder i has column order[k]
    order = np.concatenate([np.array(by_pop[lab], dtype=np.int64) for lab in labels])
    contig_parts = []
    for ci, (contig, length) in enumerate(genome.lengths.items()):
        if contig == "chrY":
            continue
        founders = _simulate_contig(
            length, {lab: len(by_pop[lab]) for lab in labels}, seed * 100 + ci
        )
        contig_parts.append(
            _contig_variants(rng, genome, contig, founders, order, families, sex, indel_fraction)
        )
    variants = _concatenate(contig_parts)
    return Population(ancestry=ancestry, sex=sex, parents=parents, variants=variants)


def _sort_order(v: Variants, genome: Genome, keep: np.ndarray) -> np.ndarray:
    rank = {c: i for i, c in enumerate(genome.lengths)}
    idx = np.flatnonzero(keep)
    key = np.array([rank[c] for c in v.contig[idx]], dtype=np.int64) * 10**10 + v.pos[idx]
    return idx[np.argsort(key, kind="stable")]


# ---------------------------------------------------------------- VCF writing
_GT = np.array(["0/0", "0/1", "1/1", "0", "1", "./."], dtype=object)


def _gt_codes(hap: np.ndarray) -> np.ndarray:
    h = hap.reshape(hap.shape[0], -1, 2)
    a, b = h[..., 0], h[..., 1]
    return np.where(b < 0, 3 + a, a + b).astype(np.int8)


def write_vcf(
    path: Path,
    genome: Genome,
    variants: Variants,
    individuals: np.ndarray,
    sample_names: Sequence[str],
    *,
    only_carried: bool = False,
    source: str = "biobank.testing",
) -> Path:
    """Write a bgzipped, tabix-indexed VCF of ``individuals`` (columns in that order).

    Parameters
    ----------
    path
        Output ``.vcf.gz`` path (``.tbi`` is written next to it).
    genome
        For the ``##contig`` header lines.
    variants
        Sites and haplotypes.
    individuals
        Indices of the individuals to write.
    sample_names
        Their VCF sample names.
    only_carried
        Write only sites where some written individual carries the ALT allele
        (always true in effect for the cohort VCF; used for truth VCFs).
    source
        Value of the ``##source`` header line.
    """
    hap = variants.hap[:, _hap_cols(np.asarray(individuals, dtype=np.int64))]
    carried = (hap == 1).any(axis=1)
    idx = np.flatnonzero(carried) if only_carried else np.arange(len(hap))
    header = [
        "##fileformat=VCFv4.2",
        '##FILTER=<ID=PASS,Description="All filters passed">',
        f"##source={source}",
        "##reference=genome.fa",
        *[f"##contig=<ID={c},length={n}>" for c, n in genome.lengths.items()],
        '##INFO=<ID=AC,Number=A,Type=Integer,Description="Allele count in genotypes">',
        '##INFO=<ID=AN,Number=1,Type=Integer,Description="Number of alleles in called genotypes">',
        '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">',
        "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\t" + "\t".join(sample_names),
    ]
    plain = Path(str(path).removesuffix(".gz"))
    fixed = np.frombuffer(b"0/0\t0/1\t1/1\t", np.uint8).reshape(3, 4)
    with open(plain, "wb") as fh:
        fh.write(("\n".join(header) + "\n").encode("ascii"))
        for start in range(0, len(idx), 2000):
            block = idx[start : start + 2000]
            h = hap[block]
            codes = _gt_codes(h)
            ac = (h == 1).sum(axis=1)
            an = (h >= 0).sum(axis=1)
            diploid = bool((codes < 3).all())
            cells = fixed[codes] if diploid else None
            if cells is not None:
                cells[:, -1, 3] = ord("\n")
            gts = None if diploid else _GT[codes]
            for j, s in enumerate(block):
                fh.write(
                    f"{variants.contig[s]}\t{variants.pos[s] + 1}\t.\t{variants.ref[s]}\t"
                    f"{variants.alt[s]}\t.\tPASS\tAC={ac[j]};AN={an[j]}\tGT\t".encode("ascii")
                )
                if cells is not None:  # all diploid: fixed-width cells, one memory copy
                    fh.write(cells[j].tobytes())
                else:
                    assert gts is not None
                    fh.write(("\t".join(gts[j]) + "\n").encode("ascii"))
    _bgzip_and_index(plain)
    return Path(str(plain) + ".gz")


def _bgzip_and_index(plain: Path) -> None:
    """``bgzip`` a VCF in place (two threads) and write its ``.tbi``."""
    import pysam

    from biobank.core.tools import run_tool

    run_tool(["bgzip", "-f", "-@", "2", plain])
    pysam.tabix_index(str(plain) + ".gz", preset="vcf", force=True)


# ---------------------------------------------------------------- benchmarks
def _benchmark_tree_sequence(n_samples: int, n_variants: int, seed: int) -> tuple[Any, int]:
    """One growing population on a contig sized for about ``n_variants`` sites; (ts, length)."""
    import msprime

    theta = 4 * 10_000 * MUTATION_RATE
    a_n = float(np.log(2 * n_samples) + 0.58)
    length = int(1.4 * n_variants / (theta * a_n * 1.3)) + 10_000
    demography = msprime.Demography.isolated_model([10_000], growth_rate=[0.0])
    demography.populations[0].initial_size = 30_000
    demography.populations[0].growth_rate = 0.004
    demography.add_population_parameters_change(time=300, growth_rate=0, population=0)
    logger.info("simulating %d samples on %d bp", n_samples, length)
    ts = _sim_tree_sequence(n_samples, demography, length, BENCHMARK_RECOMBINATION_RATE, seed)
    return ts, length


def _write_fasta_contig(fasta: str | os.PathLike[str], contig: str, seq: np.ndarray) -> None:
    """Write one contig (60 bases a line) and its ``.fai``."""
    import pysam

    with open(fasta, "wb") as fh:
        raw = seq.tobytes()
        fh.write(f">{contig}\n".encode())
        fh.write(b"\n".join(raw[i : i + 60] for i in range(0, len(raw), 60)) + b"\n")
    pysam.faidx(str(fasta))


def _benchmark_header(contig: str, length: int, names: Sequence[str]) -> bytes:
    return (
        "##fileformat=VCFv4.2\n"
        '##FILTER=<ID=PASS,Description="All filters passed">\n'
        "##source=biobank.testing.simulate_cohort_vcf (msprime)\n"
        f"##contig=<ID={contig},length={length}>\n"
        '##INFO=<ID=AC,Number=A,Type=Integer,Description="Allele count">\n'
        '##INFO=<ID=AN,Number=1,Type=Integer,Description="Allele number">\n'
        '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">\n'
        "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\t" + "\t".join(names) + "\n"
    ).encode()


def _write_benchmark_sites(
    fh: BinaryIO,
    ts: Any,
    wanted: set[int],
    genome_seq: np.ndarray,
    rng: np.random.Generator,
    *,
    contig: str,
    n_samples: int,
    n_variants: int,
) -> None:
    """Write the first ``n_variants`` polymorphic sites among ``wanted`` (unphased GT)."""
    lut = np.frombuffer(b"0/0\t0/1\t1/1\t", np.uint8).reshape(3, 4)
    written = 0
    for var in ts.variants():
        if var.site.id not in wanted:
            continue
        p = int(var.site.position)
        g = var.genotypes.reshape(-1, 2).sum(axis=1)
        if not 0 < int(g.sum()) < 2 * n_samples:
            continue  # polymorphic sites only
        written += 1
        if written > n_variants:
            break
        ref = chr(genome_seq[p])
        alt = _random_snv_alt(rng, ref)
        cells = lut[g].copy()
        cells[-1, 3] = ord("\n")
        fh.write(
            f"{contig}\t{p + 1}\t.\t{ref}\t{alt}\t.\tPASS\tAC={int(g.sum())};"
            f"AN={2 * n_samples}\tGT\t".encode()
        )
        fh.write(cells.tobytes())


def simulate_cohort_vcf(
    path: str | os.PathLike[str],
    *,
    n_samples: int,
    n_variants: int,
    seed: int = 42,
    contig: str = "chr1",
    sample_prefix: str = "S",
    sample_digits: int = 6,
    fasta: str | os.PathLike[str] | None = None,
) -> Path:
    """Write a population VCF (bgzipped + ``.tbi``) for benchmarks, fast.

    Founders of one growing population are simulated with msprime on one contig
    sized to give about ``n_variants`` segregating sites; exactly ``n_variants``
    polymorphic sites are kept (a random subset, in position order; fewer only
    if the simulation has fewer).
    Genotypes are unphased diploid ``GT`` only; REF is the base of a random
    genome (40 % GC), written to ``fasta`` if given.

    Parameters
    ----------
    path
        Output path, ending in ``.vcf.gz``.
    n_samples
        Number of diploid samples, named ``S000001``, ``S000002`` ... (see
        ``sample_prefix`` and ``sample_digits``).
    n_variants
        Number of biallelic SNV sites wanted (e.g. 45_000).
    seed
        Random seed; the same arguments give a byte-identical file.
    contig
        Contig name.
    sample_prefix, sample_digits
        Sample names are ``f"{sample_prefix}{i:0{sample_digits}d}"``, i from 1.
    fasta
        Also write the reference FASTA here (then ``bcftools norm -c e`` passes).

    Returns
    -------
    Path
        The ``.vcf.gz`` written.

    Raises
    ------
    ValidationError
        If the name does not end in ``.vcf.gz`` or a count is not positive.

    Examples
    --------
    >>> simulate_cohort_vcf("bench.vcf.gz", n_samples=3000, n_variants=45_000)  # doctest: +SKIP
    """
    out = Path(path)
    if not out.name.endswith(".vcf.gz"):
        raise ValidationError("the output name must end in .vcf.gz", field="path", value=str(out))
    for name, value in (("n_samples", n_samples), ("n_variants", n_variants)):
        if value < 1:
            raise ValidationError(f"{name} must be at least 1", field=name, value=str(value))
    rng = np.random.default_rng([seed, 7])
    ts, length = _benchmark_tree_sequence(n_samples, n_variants, seed)
    positions = ts.tables.sites.position.astype(np.int64)
    # a few spare sites: back mutations can leave a site monomorphic; stop at n_variants
    spare = min(len(positions), n_variants + n_variants // 50 + 10)
    keep_sites = np.sort(rng.choice(len(positions), size=spare, replace=False))
    genome_seq = np.frombuffer(b"ACGT", np.uint8)[
        rng.choice(4, size=length, p=[0.3, 0.2, 0.2, 0.3])
    ]
    if fasta is not None:
        _write_fasta_contig(fasta, contig, genome_seq)
    names = [f"{sample_prefix}{i:0{sample_digits}d}" for i in range(1, n_samples + 1)]
    tmpdir = tempfile.mkdtemp(prefix="simvcf", dir=out.parent)
    try:
        plain = Path(tmpdir) / out.name.removesuffix(".gz")
        with open(plain, "wb") as fh:
            fh.write(_benchmark_header(contig, length, names))
            _write_benchmark_sites(
                fh,
                ts,
                set(keep_sites.tolist()),
                genome_seq,
                rng,
                contig=contig,
                n_samples=n_samples,
                n_variants=n_variants,
            )
        _bgzip_and_index(plain)
        shutil.move(str(plain) + ".gz", out)
        shutil.move(str(plain) + ".gz.tbi", str(out) + ".tbi")
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)
    return out
