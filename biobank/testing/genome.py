"""A small synthetic reference genome with real-looking structure and genes.

The genome is built in layers, each seeded from one :class:`numpy.random.Generator`:

1. background sequence with 40 % GC and CpG depletion (random bases, then most
   CpG dinucleotides "deaminated" to TpG/CpA, as in mammalian genomes);
2. interspersed repeats: copies of three repeat families (an Alu-like SINE with
   a poly-A tail, 5'-truncated L1-like LINE fragments, old MIR-like copies),
   each copy diverged from its consensus by substitutions, on either strand;
3. tandem repeats (1-6 bp units) and homopolymer runs;
4. protein-coding genes written into the sequence: every transcript is a real
   open reading frame (ATG ... stop, no internal stop), split into exons by
   GT...AG introns, with 5' and 3' UTRs, on both strands;
5. runs of N (assembly gaps) between genes.

Coordinates: :class:`Exon` and :class:`Gene` store 0-based half-open intervals;
the GFF3 written by :func:`write_gff3` is 1-based inclusive, as GFF3 requires.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from biobank.core.errors import ConfigError

__all__ = [
    "CODON_TABLE",
    "Exon",
    "Gene",
    "Genome",
    "GenomeSpec",
    "build_genome",
    "reverse_complement",
    "translate",
    "write_fasta",
    "write_gff3",
]

logger = logging.getLogger(__name__)

BASES = np.frombuffer(b"ACGT", dtype=np.uint8)
_COMP = bytes.maketrans(b"ACGTNacgtn", b"TGCANtgcan")

#: The standard genetic code (NCBI table 1), DNA codons to one-letter amino acids.
CODON_TABLE: dict[str, str] = {
    a + b + c: aa
    for (a, b, c), aa in zip(
        ((x, y, z) for x in "TCAG" for y in "TCAG" for z in "TCAG"),
        "FFLLSSSSYY**CC*WLLLLPPPPHHQQRRRRIIIMTTTTNNKKSSRRVVVVAAAADDEEGGGG",
        strict=True,
    )
}
STOP_CODONS = ("TAA", "TAG", "TGA")
SENSE_CODONS = tuple(sorted(c for c, aa in CODON_TABLE.items() if aa != "*"))


def reverse_complement(seq: str) -> str:
    """Return the reverse complement of a DNA string (N stays N)."""
    return seq.encode("ascii").translate(_COMP)[::-1].decode("ascii")


def translate(cds: str) -> str:
    """Translate a coding sequence (length a multiple of 3) codon by codon.

    Examples
    --------
    >>> translate("ATGGCCTGA")
    'MA*'
    """
    return "".join(CODON_TABLE.get(cds[i : i + 3], "X") for i in range(0, len(cds) - 2, 3))


@dataclass(frozen=True)
class Exon:
    """One exon: 0-based half-open genomic interval and the coding part of it.

    ``cds_start``/``cds_end`` (0-based half-open) are ``None`` for a non-coding exon.
    """

    start: int
    end: int
    cds_start: int | None
    cds_end: int | None


@dataclass
class Gene:
    """A protein-coding gene with one transcript.

    ``start``/``end`` are 0-based half-open; exons are in genomic order.
    """

    name: str
    gene_id: str
    transcript_id: str
    contig: str
    strand: str
    start: int
    end: int
    exons: list[Exon] = field(default_factory=list)

    def cds_positions(self) -> np.ndarray:
        """Return the genomic 0-based positions of the CDS in transcript (5'->3') order."""
        parts = [np.arange(e.cds_start, e.cds_end) for e in self.exons if e.cds_start is not None]
        pos = np.concatenate(parts)
        return pos if self.strand == "+" else pos[::-1]

    def introns(self) -> list[tuple[int, int]]:
        """Return the introns as 0-based half-open genomic intervals."""
        return [(a.end, b.start) for a, b in zip(self.exons, self.exons[1:], strict=False)]


@dataclass(frozen=True)
class GenomeSpec:
    """Sizes of the demo genome.

    Parameters
    ----------
    contig_lengths
        Contig name to length in bp (include ``chrX`` and ``chrY``).
    genes
        ``(name, contig, strand, n_exons)`` of the protein-coding genes to plant.
    intron_range
        Minimum and maximum intron length (bp).
    codons_range
        Minimum and maximum number of codons of a CDS.
    gap_range
        Minimum and maximum length of an N run (gap).
    gaps_per_contig
        Number of internal N runs per contig.
    repeat_fraction
        Target fraction of the genome covered by interspersed repeats.
    """

    contig_lengths: dict[str, int]
    genes: tuple[tuple[str, str, str, int], ...]
    intron_range: tuple[int, int] = (250, 1800)
    codons_range: tuple[int, int] = (250, 600)
    gap_range: tuple[int, int] = (500, 3000)
    gaps_per_contig: int = 2
    repeat_fraction: float = 0.25


@dataclass
class Genome:
    """The built genome: sequences (uint8 ASCII arrays) and genes."""

    sequences: dict[str, np.ndarray]
    genes: list[Gene]
    gaps: list[tuple[str, int, int]]
    repeats: list[tuple[str, int, int, str]]

    def seq(self, contig: str, start: int, end: int) -> str:
        """Return the sequence of a 0-based half-open interval."""
        return self.sequences[contig][start:end].tobytes().decode("ascii")

    @property
    def lengths(self) -> dict[str, int]:
        """Contig lengths in bp."""
        return {name: len(s) for name, s in self.sequences.items()}


def _background(rng: np.random.Generator, n: int) -> np.ndarray:
    """Random sequence with 40 % GC, then CpG depletion by deamination."""
    seq = BASES[rng.choice(4, size=n, p=[0.3, 0.2, 0.2, 0.3])]
    for _ in range(2):
        cpg = np.flatnonzero((seq[:-1] == ord("C")) & (seq[1:] == ord("G")))
        hit = cpg[rng.random(cpg.size) < 0.8]
        top = rng.random(hit.size) < 0.5
        seq[hit[top]] = ord("T")  # CG -> TG
        seq[hit[~top] + 1] = ord("A")  # CG -> CA (the deamination on the other strand)
    return seq


def _random_seq(rng: np.random.Generator, n: int, gc: float = 0.4) -> np.ndarray:
    at = (1 - gc) / 2
    return BASES[rng.choice(4, size=n, p=[at, gc / 2, gc / 2, at])]


def _mutate(rng: np.random.Generator, seq: np.ndarray, divergence: float) -> np.ndarray:
    out = seq.copy()
    hit = np.flatnonzero(rng.random(out.size) < divergence)
    out[hit] = BASES[(np.searchsorted(BASES, out[hit]) + rng.integers(1, 4, hit.size)) % 4]
    return out


def _revcomp_arr(seq: np.ndarray) -> np.ndarray:
    return np.frombuffer(seq.tobytes().translate(_COMP)[::-1], dtype=np.uint8).copy()


def _add_repeats(
    rng: np.random.Generator, seqs: dict[str, np.ndarray], fraction: float
) -> list[tuple[str, int, int, str]]:
    """Overwrite the background with interspersed and tandem repeats."""
    families = {
        # name: (consensus, copy-length sampler, divergence range, share of repeat bp)
        "AluY_like": (
            np.concatenate([_random_seq(rng, 282, gc=0.56), np.full(20, ord("A"), np.uint8)]),
            0.10,
            (0.02, 0.15),
        ),
        "L1_like": (_random_seq(rng, 6000, gc=0.38), 0.70, (0.04, 0.20)),
        "MIR_like": (_random_seq(rng, 262, gc=0.45), 0.20, (0.20, 0.30)),
    }
    placed: list[tuple[str, int, int, str]] = []
    for contig, seq in seqs.items():
        budget = fraction * len(seq)
        for fam, (consensus, share, (dmin, dmax)) in families.items():
            covered = 0.0
            while covered < budget * share:
                if fam == "L1_like":  # 5'-truncated: keep a 3' part, mostly short
                    length = int(min(len(consensus), 300 + rng.exponential(900)))
                    unit = consensus[len(consensus) - length :]
                else:
                    length = int(len(consensus) - rng.integers(0, 40))
                    unit = consensus[:length]
                copy = _mutate(rng, unit, rng.uniform(dmin, dmax))
                if rng.random() < 0.5:
                    copy = _revcomp_arr(copy)
                start = int(rng.integers(0, len(seq) - len(copy)))
                seq[start : start + len(copy)] = copy
                placed.append((contig, start, start + len(copy), fam))
                covered += len(copy)
        # microsatellites (1-6 bp units) and homopolymers, about one per 2.5 kb
        for _ in range(len(seq) // 2500):
            k = int(rng.integers(1, 7))
            unit = _random_seq(rng, k)
            copies = int(rng.integers(max(3, 12 // k), max(6, 60 // k)))
            tr = np.tile(unit, copies)
            start = int(rng.integers(0, len(seq) - len(tr)))
            seq[start : start + len(tr)] = tr
            placed.append((contig, start, start + len(tr), f"({unit.tobytes().decode()})n"))
    return placed


def _make_orf(rng: np.random.Generator, n_codons: int) -> str:
    body = rng.choice(len(SENSE_CODONS), size=n_codons - 2)
    stop = STOP_CODONS[int(rng.integers(0, 3))]
    return "ATG" + "".join(SENSE_CODONS[i] for i in body) + stop


def _intron(rng: np.random.Generator, length: int) -> str:
    """An intron: GT donor (GTRAGT), random middle, branch-ish pyrimidine tract, AG."""
    donor = "GT" + "AG"[int(rng.integers(0, 2))] + "AGT"
    acceptor = "".join("CT"[i] for i in rng.integers(0, 2, 12)) + "CAG"
    middle = _random_seq(rng, length - len(donor) - len(acceptor), gc=0.38)
    return donor + middle.tobytes().decode() + acceptor


def _build_gene(
    rng: np.random.Generator, spec: GenomeSpec, n_exons: int
) -> tuple[str, list[tuple[int, int, int | None, int | None]]]:
    """Return a gene's sequence (transcript orientation) and its exons.

    Exons are ``(start, end, cds_start, cds_end)`` offsets within the returned
    sequence, 0-based half-open, in transcript order.
    """
    cds = _make_orf(rng, int(rng.integers(*spec.codons_range)))
    utr5 = _random_seq(rng, int(rng.integers(60, 200)), gc=0.55).tobytes().decode()
    utr3 = _random_seq(rng, int(rng.integers(150, 500)), gc=0.38).tobytes().decode()
    # avoid an upstream ATG in frame trouble: the 5'UTR must not contain ATG
    utr5 = utr5.replace("ATG", "ACG")
    mrna = utr5 + cds + utr3
    cds_lo, cds_hi = len(utr5), len(utr5) + len(cds)
    # exon lengths: at least 60 bp each, the rest spread at random
    spare = len(mrna) - 60 * n_exons
    if spare < 0:
        raise ConfigError(f"a {len(mrna)} bp transcript cannot have {n_exons} exons")
    sizes = 60 + rng.multinomial(spare, rng.dirichlet(np.full(n_exons, 2.0)))
    cuts = np.cumsum(sizes)[:-1]
    bounds = [0, *[int(c) for c in cuts], len(mrna)]
    pieces: list[str] = []
    exons: list[tuple[int, int, int | None, int | None]] = []
    offset = 0
    for i in range(n_exons):
        a, b = bounds[i], bounds[i + 1]
        if i > 0:
            intron = _intron(rng, int(rng.integers(*spec.intron_range)))
            pieces.append(intron)
            offset += len(intron)
        lo, hi = max(a, cds_lo), min(b, cds_hi)
        cds_part = (offset + lo - a, offset + hi - a) if lo < hi else (None, None)
        exons.append((offset, offset + b - a, cds_part[0], cds_part[1]))
        pieces.append(mrna[a:b])
        offset += b - a
    return "".join(pieces), exons


def build_genome(spec: GenomeSpec, rng: np.random.Generator) -> Genome:
    """Build the genome described by ``spec``.

    Parameters
    ----------
    spec
        Contig sizes, genes and repeat settings.
    rng
        The random generator (the only source of randomness).
    """
    seqs = {name: _background(rng, n) for name, n in spec.contig_lengths.items()}
    repeats = _add_repeats(rng, seqs, spec.repeat_fraction)
    genes: list[Gene] = []
    gaps: list[tuple[str, int, int]] = []
    for contig, length in spec.contig_lengths.items():
        todo = [g for g in spec.genes if g[1] == contig]
        built = [(g, *_build_gene(rng, spec, g[3])) for g in todo]
        n_slots = len(built) + spec.gaps_per_contig
        slot = length // max(n_slots, 1)
        # interleave genes and gaps in slots, in a random order
        kinds = ["gene"] * len(built) + ["gap"] * spec.gaps_per_contig
        order = rng.permutation(len(kinds))
        gi = 0
        for s, k in enumerate(order):
            lo = s * slot
            if kinds[k] == "gap":
                glen = int(rng.integers(*spec.gap_range))
                start = lo + int(rng.integers(0, max(1, slot - glen)))
                seqs[contig][start : start + glen] = ord("N")
                gaps.append((contig, start, start + glen))
                continue
            (name, _, strand, _), gseq, exons = built[gi]
            gi += 1
            if len(gseq) + 2000 > slot:
                raise ConfigError(
                    f"gene {name} ({len(gseq)} bp) does not fit on {contig}: make the contig "
                    "longer or the introns shorter"
                )
            start = lo + 1000 + int(rng.integers(0, slot - len(gseq) - 2000 + 1))
            end = start + len(gseq)
            glen = len(gseq)
            if strand == "-":
                gseq = reverse_complement(gseq)
                exons = [
                    (
                        glen - e,
                        glen - s_,
                        None if ce is None else glen - ce,
                        None if cs is None else glen - cs,
                    )
                    for s_, e, cs, ce in exons
                ][::-1]
            seqs[contig][start:end] = np.frombuffer(gseq.encode(), dtype=np.uint8)
            n = len(genes) + 1
            genes.append(
                Gene(
                    name=name,
                    gene_id=f"DEMOG{n:05d}",
                    transcript_id=f"DEMOT{n:05d}",
                    contig=contig,
                    strand=strand,
                    start=start,
                    end=end,
                    exons=[
                        Exon(
                            start + s_,
                            start + e,
                            None if cs is None else start + cs,
                            None if ce is None else start + ce,
                        )
                        for s_, e, cs, ce in exons
                    ],
                )
            )
    gaps.sort()
    genes.sort(key=lambda g: (list(spec.contig_lengths).index(g.contig), g.start))
    logger.info(
        "genome: %d contigs, %d bp, %d genes, %d gaps, %d repeat copies",
        len(seqs),
        sum(spec.contig_lengths.values()),
        len(genes),
        len(gaps),
        len(repeats),
    )
    return Genome(sequences=seqs, genes=genes, gaps=gaps, repeats=repeats)


def write_fasta(genome: Genome, path: Path, *, width: int = 60) -> None:
    """Write the genome as FASTA (upper case, ``width`` bases a line)."""
    with open(path, "wb") as fh:
        for name, seq in genome.sequences.items():
            fh.write(f">{name}\n".encode())
            raw = seq.tobytes()
            fh.write(b"\n".join(raw[i : i + width] for i in range(0, len(raw), width)))
            fh.write(b"\n")


def write_gff3(genome: Genome, path: Path) -> None:
    """Write the genes as Ensembl-style GFF3, as ``bcftools csq`` reads it.

    ``gene`` lines carry ``ID=gene:..;Name=..;biotype=protein_coding``, ``mRNA``
    lines ``ID=transcript:..;Parent=gene:..;biotype=protein_coding``, and the
    ``exon``, ``CDS``, ``five_prime_UTR``, ``three_prime_UTR`` lines
    ``Parent=transcript:..``. CDS phases follow the GFF3 definition.
    """
    lines = ["##gff-version 3"]
    lines += [f"##sequence-region {c} 1 {n}" for c, n in genome.lengths.items()]
    for g in genome.genes:
        tid, s = g.transcript_id, g.strand
        lines.append("###")
        lines.append(
            f"{g.contig}\tdemo\tgene\t{g.start + 1}\t{g.end}\t.\t{s}\t.\t"
            f"ID=gene:{g.gene_id};Name={g.name};biotype=protein_coding;gene_id={g.gene_id}"
        )
        lines.append(
            f"{g.contig}\tdemo\tmRNA\t{g.start + 1}\t{g.end}\t.\t{s}\t.\t"
            f"ID=transcript:{tid};Parent=gene:{g.gene_id};Name={g.name}-201;"
            f"biotype=protein_coding;transcript_id={tid};tag=Ensembl_canonical"
        )
        # phases in transcript order
        coding = [e for e in g.exons if e.cds_start is not None]
        ordered = coding if s == "+" else coding[::-1]
        phase: dict[int, int] = {}
        done = 0
        for e in ordered:
            assert e.cds_start is not None
            assert e.cds_end is not None
            phase[e.cds_start] = (3 - done % 3) % 3
            done += e.cds_end - e.cds_start
        five, three = ("five_prime_UTR", "three_prime_UTR")
        for i, e in enumerate(g.exons):
            rank = i + 1 if s == "+" else len(g.exons) - i
            lines.append(
                f"{g.contig}\tdemo\texon\t{e.start + 1}\t{e.end}\t.\t{s}\t.\t"
                f"Parent=transcript:{tid};Name={tid}.e{rank};exon_id={tid}.e{rank};rank={rank}"
            )
            if e.cds_start is None or e.cds_end is None:
                left, right = (five, three) if _before_cds(g, e) else (three, five)
                utr = left if s == "+" else right
                lines.append(
                    f"{g.contig}\tdemo\t{utr}\t{e.start + 1}\t{e.end}\t.\t{s}\t.\t"
                    f"Parent=transcript:{tid}"
                )
                continue
            if e.start < e.cds_start:
                utr = five if s == "+" else three
                lines.append(
                    f"{g.contig}\tdemo\t{utr}\t{e.start + 1}\t{e.cds_start}\t.\t{s}\t.\t"
                    f"Parent=transcript:{tid}"
                )
            lines.append(
                f"{g.contig}\tdemo\tCDS\t{e.cds_start + 1}\t{e.cds_end}\t.\t{s}\t"
                f"{phase[e.cds_start]}\tID=CDS:DEMOP{g.gene_id[5:]};Parent=transcript:{tid};"
                f"protein_id=DEMOP{g.gene_id[5:]}"
            )
            if e.cds_end < e.end:
                utr = three if s == "+" else five
                lines.append(
                    f"{g.contig}\tdemo\t{utr}\t{e.cds_end + 1}\t{e.end}\t.\t{s}\t.\t"
                    f"Parent=transcript:{tid}"
                )
    path.write_text("\n".join(lines) + "\n", encoding="ascii")


def _before_cds(g: Gene, e: Exon) -> bool:
    """Whether a non-coding exon lies left (lower coordinates) of the CDS."""
    first = min(x.cds_start for x in g.exons if x.cds_start is not None)
    return e.end <= first
