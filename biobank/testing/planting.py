"""Planting variants with a chosen consequence into the demo genome's genes.

The demo's truth (causal variants of T2D, breast cancer and others) is made by
moving simulated sites into genes and rewriting their alleles so that bcftools
csq calls the consequence we want: missense, stop-gained, frameshift, splice
donor. ``pos`` values are 0-based.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from biobank.core.errors import ConfigError
from biobank.testing.genome import CODON_TABLE, Gene, Genome, reverse_complement
from biobank.testing.population import Population, Variants, _sort_order

__all__ = ["PlantedVariant", "plant_variant"]


@dataclass(frozen=True)
class PlantedVariant:
    """A variant moved into a gene with a chosen consequence.

    ``pos`` is 0-based; ``consequence`` uses bcftools csq / Sequence Ontology names.
    """

    site: int
    contig: str
    pos: int
    ref: str
    alt: str
    gene: str
    consequence: str


def _codon_change(cds: str, i: int, new: str) -> tuple[str, str]:
    c0 = i - i % 3
    old_codon = cds[c0 : c0 + 3]
    new_codon = old_codon[: i % 3] + new + old_codon[i % 3 + 1 :]
    return CODON_TABLE[old_codon], CODON_TABLE[new_codon]


def _plant_site(
    v: Variants,
    g: Gene,
    af_range: tuple[float, float],
    individuals: np.ndarray,
    exclude: set[tuple[str, int]] | None,
) -> int:
    """The autosomal SNV with a frequency in ``af_range`` nearest the gene (its contig first)."""
    ac, an = v.allele_counts(individuals)
    af = ac / np.maximum(an, 1)
    snv = np.array([len(r) == 1 and len(a) == 1 for r, a in zip(v.ref, v.alt, strict=True)])
    for c, p in exclude or ():
        snv &= ~((v.contig == c) & (v.pos == p))
    cand = np.flatnonzero(
        (af >= af_range[0])
        & (af <= af_range[1])
        & snv
        & (v.contig != "chrX")
        & (v.contig == g.contig)
    )
    if cand.size == 0:
        cand = np.flatnonzero(
            (af >= af_range[0]) & (af <= af_range[1]) & snv & (v.contig != "chrX")
        )
    if cand.size == 0:
        raise ConfigError(
            f"no simulated site with allele frequency in {af_range} to plant in {g.name}"
        )
    return int(cand[np.argmin(np.abs(v.pos[cand] - g.start))])


def _place_codon_change(
    rng: np.random.Generator,
    consequence: str,
    g: Gene,
    seq: np.ndarray,
    cds_pos: np.ndarray,
    cds: str,
    taken: set[int],
) -> tuple[int, str, str] | None:
    """(position, ref, alt) of an SNV giving a missense change or a stop codon."""
    for i in rng.permutation(np.arange(30, len(cds) - 30)):
        i = int(i)
        for new in rng.permutation(list("ACGT")):
            new = str(new)
            if new == cds[i]:
                continue
            a0, a1 = _codon_change(cds, i, new)
            ok = (
                (a0 != a1 and "*" not in (a0, a1))
                if consequence == "missense_variant"
                else (a1 == "*" and a0 != "*")
            )
            gp = int(cds_pos[i])
            if ok and gp not in taken and gp - 1 not in taken and gp + 1 not in taken:
                base = new if g.strand == "+" else reverse_complement(new)
                return (gp, chr(seq[gp]), base)
    return None


def _place_frameshift(
    rng: np.random.Generator, g: Gene, seq: np.ndarray, cds_pos: np.ndarray, taken: set[int]
) -> tuple[int, str, str] | None:
    """(position, ref, alt) of a 1 bp coding deletion."""
    for i in rng.permutation(np.arange(30, len(cds_pos) - 30)):
        gp = int(cds_pos[int(i)])
        if g.strand == "+" and int(cds_pos[int(i) + 1]) != gp + 1:
            continue
        if g.strand == "-" and int(cds_pos[int(i) - 1]) != gp + 1:
            continue
        if seq[gp] != seq[gp + 1] and not ({gp, gp + 1, gp + 2} & taken):
            return (gp, chr(seq[gp]) + chr(seq[gp + 1]), chr(seq[gp]))
    return None


def _place_splice_donor(rng: np.random.Generator, g: Gene, seq: np.ndarray) -> tuple[int, str, str]:
    """(position, ref, alt) breaking the GT of a random intron's donor site."""
    introns = g.introns()
    a, b = introns[int(rng.integers(0, len(introns)))]
    if g.strand == "+":
        gp = a  # the G of GT
        return (gp, chr(seq[gp]), "A")
    gp = b - 1  # the C of AC (GT on the minus strand)
    return (gp, chr(seq[gp]), "T")


def _move_site(
    v: Variants, genome: Genome, site: int, contig: str, gp: int, ref: str, alt: str
) -> tuple[Variants, int]:
    """Move ``site`` to ``contig:gp`` with new alleles, drop the sites it overlaps, re-sort;
    return the new variants and the site's new index."""
    same = np.flatnonzero(v.contig == contig)
    ref_len = np.array([len(v.ref[j]) for j in same])
    overlaps = (v.pos[same] < gp + len(ref)) & (v.pos[same] + ref_len > gp)
    clash = [int(j) for j in same[overlaps] if j != site]
    v.contig[site] = contig
    v.pos[site] = gp
    v.ref[site] = ref
    v.alt[site] = alt
    keep = np.ones(len(v), dtype=bool)
    keep[clash] = False
    order = _sort_order(v, genome, keep)
    return v.subset(order), int(np.flatnonzero(order == site)[0])


def plant_variant(
    pop: Population,
    genome: Genome,
    *,
    gene: str,
    consequence: str,
    af_range: tuple[float, float],
    rng: np.random.Generator,
    individuals: np.ndarray,
    exclude: set[tuple[str, int]] | None = None,
) -> PlantedVariant:
    """Move a simulated SNV with a frequency in ``af_range`` into ``gene``.

    The genotypes (and so the LD with neighbours on the same contig) are those
    of a real simulated site; only its position and alleles change so that it
    has the wanted consequence: ``missense_variant``, ``stop_gained``,
    ``frameshift_variant`` (1 bp deletion) or ``splice_donor_variant``.

    Raises
    ------
    ConfigError
        If no site has a frequency in ``af_range`` (use a larger population) or
        the consequence cannot be placed in the gene.
    """
    v = pop.variants
    g: Gene = next(x for x in genome.genes if x.name == gene)
    site = _plant_site(v, g, af_range, individuals, exclude)
    seq = genome.sequences[g.contig]
    cds_pos = g.cds_positions()
    cds = "".join(chr(seq[p]) for p in cds_pos)
    if g.strand == "-":
        cds = "".join(reverse_complement(c) for c in cds)
    taken = set(v.pos[v.contig == g.contig].tolist())
    choice: tuple[int, str, str] | None = None
    if consequence in ("missense_variant", "stop_gained"):
        choice = _place_codon_change(rng, consequence, g, seq, cds_pos, cds, taken)
    elif consequence == "frameshift_variant":
        choice = _place_frameshift(rng, g, seq, cds_pos, taken)
    elif consequence == "splice_donor_variant":
        choice = _place_splice_donor(rng, g, seq)
    if choice is None:
        raise ConfigError(f"could not place a {consequence} in {gene}")
    gp, ref, alt = choice
    pop.variants, new_site = _move_site(v, genome, site, g.contig, gp, ref, alt)
    return PlantedVariant(new_site, g.contig, gp, ref, alt, gene, consequence)
