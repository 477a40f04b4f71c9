"""Paired-end reads for sequenced participants, simulated with ``wgsim``.

Each participant's two haplotype sequences are built from the reference and
their alleles (a male's first haplotype carries chrX and his second chrY), and
``wgsim`` (samtools package) draws read pairs from each with no extra
mutations (``-r 0 -R 0``): 150 bp reads, insert 350 +/- 50 bp, base error
rate 0.003. Half of the pairs come from each haplotype. Read names start with
``<sample>:<unit>:h<haplotype>:`` followed by wgsim's name
``<contig>_<start>_<end>_...`` (1-based positions on the *haplotype*, which
differ from reference positions by the net length of indels before them).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from biobank.core.tools import run_tool
from biobank.testing.genome import Genome
from biobank.testing.population import Variants

__all__ = ["READ_LENGTH", "ReadUnit", "haplotype_sequences", "simulate_reads"]

logger = logging.getLogger(__name__)

READ_LENGTH = 150
INSERT_MEAN = 350
INSERT_SD = 50
ERROR_RATE = 0.003


@dataclass(frozen=True)
class ReadUnit:
    """One sequencing unit (a FASTQ pair) of a sample."""

    sample_id: str
    unit: str
    library: str
    platform: str
    flowcell: str
    lane: str
    fq1: Path
    fq2: Path


def haplotype_sequences(
    genome: Genome, variants: Variants, individual: int, sex: str
) -> list[dict[str, bytes]]:
    """Return the individual's two haplotypes as ``{contig: sequence}``.

    Haplotype 0 holds the autosomes and chrX; haplotype 1 the autosomes and
    (for a woman) her second chrX, or (for a man) chrY.
    """
    haps: list[dict[str, bytes]] = [{}, {}]
    for h in (0, 1):
        col = variants.hap[:, 2 * individual + h]
        for contig, seq in genome.sequences.items():
            if contig == "chrY" and (sex != "male" or h == 0):
                continue
            if contig == "chrX" and sex == "male" and h == 1:
                continue
            raw = seq.tobytes()
            sites = np.flatnonzero((variants.contig == contig) & (col == 1))
            pieces, last = [], 0
            for s in sites:
                p = int(variants.pos[s])
                pieces.append(raw[last:p])
                pieces.append(variants.alt[s].encode())
                last = p + len(variants.ref[s])
            pieces.append(raw[last:])
            haps[h][contig] = b"".join(pieces)
    return haps


def _write_fasta(path: Path, seqs: dict[str, bytes]) -> int:
    with open(path, "wb") as fh:
        for name, seq in seqs.items():
            fh.write(b">" + name.encode() + b"\n")
            fh.write(b"\n".join(seq[i : i + 60] for i in range(0, len(seq), 60)) + b"\n")
    return sum(len(s) - s.count(b"N") for s in seqs.values())


def simulate_reads(
    genome: Genome,
    variants: Variants,
    samples: Sequence[tuple[int, str, str]],
    *,
    out_dir: Path,
    sheet_dir: str,
    work_dir: Path,
    depth: float,
    seed: int,
    two_unit_samples: int = 1,
    threads: int = 2,
) -> list[ReadUnit]:
    """Simulate gzipped FASTQ pairs for ``samples`` = ``(individual, sample_id, sex)``.

    Parameters
    ----------
    genome, variants
        Reference and alleles.
    samples
        Individuals to sequence, their sample ids and sexes.
    out_dir
        Folder for ``<sample>_<unit>_R{1,2}.fastq.gz``.
    sheet_dir
        The folder as written in the sample sheet (e.g. ``demo/fastq``).
    work_dir
        Scratch folder for haplotype FASTAs and raw wgsim output.
    depth
        Mean depth over the diploid genome (each haplotype gets half).
    seed
        Base seed for ``wgsim -S``.
    two_unit_samples
        The first this many samples are split into two units (lanes).
    threads
        wgsim processes run at once.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    jobs: list[tuple[list[str], Path, Path]] = []
    units: list[ReadUnit] = []
    parts: dict[tuple[str, str], list[tuple[int, Path, Path]]] = {}
    for k, (ind, sid, sex) in enumerate(samples):
        haps = haplotype_sequences(genome, variants, ind, sex)
        n_units = 2 if k < two_unit_samples else 1
        platform = "ILLUMINA" if k % 2 == 0 else "DNBSEQ"
        flowcell = f"HDMO{k + 1:02d}DSXY" if platform == "ILLUMINA" else f"V3500{k + 1:05d}"
        for u in range(n_units):
            unit = f"L{u + 1}"
            units.append(
                ReadUnit(
                    sid,
                    unit,
                    f"LIB-{sid}",
                    platform,
                    flowcell,
                    str(u + 1),
                    Path(sheet_dir) / f"{sid}_{unit}_R1.fastq.gz",
                    Path(sheet_dir) / f"{sid}_{unit}_R2.fastq.gz",
                )
            )
        for h, seqs in enumerate(haps):
            fa = work_dir / f"{sid}.h{h}.fa"
            bases = _write_fasta(fa, seqs)
            pairs = round(depth / 2 * bases / (2 * READ_LENGTH) / n_units)
            for u in range(n_units):
                unit = f"L{u + 1}"
                r1, r2 = work_dir / f"{sid}.{unit}.h{h}.1.fq", work_dir / f"{sid}.{unit}.h{h}.2.fq"
                cmd = [
                    "wgsim",
                    "-e", str(ERROR_RATE),
                    "-d", str(INSERT_MEAN),
                    "-s", str(INSERT_SD),
                    "-N", str(pairs),
                    "-1", str(READ_LENGTH),
                    "-2", str(READ_LENGTH),
                    "-r", "0",
                    "-R", "0",
                    "-X", "0",
                    "-S", str(seed * 1000 + k * 10 + u * 2 + h + 1),
                    str(fa), str(r1), str(r2),
                ]  # fmt: skip
                jobs.append((cmd, r1, r2))
                parts.setdefault((sid, unit), []).append((h, r1, r2))
    logger.info("reads: %d wgsim runs for %d samples at %.0fx", len(jobs), len(samples), depth)
    with ThreadPoolExecutor(max_workers=threads) as pool:
        list(pool.map(lambda j: run_tool(j[0], stdout=j[1].with_suffix(".log")), jobs))

    def merge(key: tuple[str, str]) -> None:
        sid, unit = key
        for end in (1, 2):
            data = []
            for h, r1, r2 in parts[key]:
                raw = (r1 if end == 1 else r2).read_bytes()
                tag = f"@{sid}:{unit}:h{h}:".encode()
                data.append(tag + raw[1:].replace(b"\n@", b"\n" + tag))
            run_tool(
                ["bgzip", "-c", "-l", "1"],
                input_bytes=b"".join(data),
                stdout=out_dir / f"{sid}_{unit}_R{end}.fastq.gz",
            )

    with ThreadPoolExecutor(max_workers=threads) as pool:
        list(pool.map(merge, list(parts)))
    return units
