"""Reference contigs, scatter regions that avoid N gaps, and the sex chromosome ploidy file.

Rule scripts of the workflow call :func:`write_region_chunks` (one BED file per
scatter chunk) and :func:`write_ploidy_file` (for ``bcftools call``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from biobank.core.errors import ConfigError

__all__ = [
    "plan_region_chunks",
    "reference_contigs",
    "write_ploidy_file",
    "write_region_chunks",
]


def reference_contigs(fasta: str | Path) -> dict[str, int]:
    """Contig names and lengths of a FASTA (from its ``.fai`` when present).

    Raises
    ------
    ConfigError
        If the FASTA does not exist or holds no sequence.
    """
    fasta = Path(fasta)
    if not fasta.is_file():
        raise ConfigError(
            f"reference FASTA {fasta} does not exist: fix 'reference.fasta' in the config "
            "(demo: run `biobank demo-data demo` first)"
        )
    fai = Path(f"{fasta}.fai")
    contigs: dict[str, int] = {}
    if fai.is_file() and fai.stat().st_mtime >= fasta.stat().st_mtime:
        with open(fai, encoding="utf-8") as fh:
            for line in fh:
                name, length = line.split("\t")[:2]
                contigs[name] = int(length)
    else:
        import pysam

        try:
            with pysam.FastxFile(str(fasta)) as fx:
                for rec in fx:
                    contigs[str(rec.name)] = len(rec.sequence or "")
        except (OSError, ValueError) as exc:
            raise ConfigError(f"reference FASTA {fasta} cannot be read: {exc}") from exc
    if not contigs:
        raise ConfigError(f"reference FASTA {fasta} holds no sequence: give a FASTA file")
    return contigs


def _gaps(fasta: Path, min_gap: int) -> dict[str, list[tuple[int, int]]]:
    """Runs of at least ``min_gap`` N per contig, 0-based half-open."""
    import pysam

    gaps: dict[str, list[tuple[int, int]]] = {}
    pattern = re.compile(f"[Nn]{{{min_gap},}}")
    with pysam.FastaFile(str(fasta)) as fa:
        for name in fa.references:
            seq = fa.fetch(name)
            gaps[name] = [(m.start(), m.end()) for m in pattern.finditer(seq)]
    return gaps


def plan_region_chunks(
    contigs: Mapping[str, int],
    gaps: Mapping[str, Sequence[tuple[int, int]]],
    n_chunks: int,
) -> list[list[tuple[str, int, int]]]:
    """Split a genome into ``n_chunks`` lists of intervals with about equal sequence.

    Intervals are 0-based half-open, in genome order, cover every non-gap base
    exactly once and never include a gap; a chunk is contiguous in genome
    order, so gathering chunk results in chunk order keeps the genome sorted.

    Raises
    ------
    ConfigError
        If there are fewer non-gap bases than chunks.

    Examples
    --------
    >>> plan_region_chunks({"a": 100, "b": 50}, {"a": [(40, 60)]}, 2)
    [[('a', 0, 40), ('a', 60, 85)], [('a', 85, 100), ('b', 0, 50)]]
    """
    segments: list[tuple[str, int, int]] = []
    for name, length in contigs.items():
        start = 0
        for g0, g1 in sorted(gaps.get(name, ())):
            if g0 > start:
                segments.append((name, start, g0))
            start = max(start, g1)
        if start < length:
            segments.append((name, start, length))
    total = sum(e - s for _, s, e in segments)
    if total < n_chunks:
        raise ConfigError(
            f"the reference has {total} bases outside N gaps, fewer than the "
            f"{n_chunks} scatter chunks: lower 'scatter.chunks' in the config"
        )
    chunks: list[list[tuple[str, int, int]]] = [[] for _ in range(n_chunks)]
    # Cut points are at k * total / n_chunks bases of the non-gap sequence.
    target = [round(total * (k + 1) / n_chunks) for k in range(n_chunks)]
    done = 0
    k = 0
    for name, s, e in segments:
        while s < e:
            take = min(e - s, target[k] - done) if k < n_chunks - 1 else e - s
            if take > 0:
                chunks[k].append((name, s, s + take))
                s += take
                done += take
            if k < n_chunks - 1 and done >= target[k]:
                k += 1
    return chunks


def write_region_chunks(fasta: str | Path, out: Sequence[str | Path], *, min_gap: int) -> None:
    """Write one BED file (0-based half-open) per chunk for the reference.

    Parameters
    ----------
    fasta
        Reference FASTA (indexed).
    out
        The BED files to write; their number is the number of chunks.
    min_gap
        Runs of at least this many N are not part of any chunk.
    """
    contigs = reference_contigs(fasta)
    chunks = plan_region_chunks(contigs, _gaps(Path(fasta), min_gap), len(out))
    for path, intervals in zip(out, chunks, strict=True):
        with open(path, "w", encoding="utf-8") as fh:
            for name, s, e in intervals:
                fh.write(f"{name}\t{s}\t{e}\n")


def write_ploidy_file(
    path: str | Path,
    *,
    contigs: Mapping[str, int],
    chrx: str,
    chry: str,
    par: Sequence[Mapping[str, Any]],
) -> None:
    """Write a ``bcftools call --ploidy-file`` for the sex chromosomes.

    Males (``M``) are haploid on X outside the pseudo-autosomal regions and
    on Y; females (``F``) have no Y. Samples of unknown sex (``U``) are
    treated as diploid everywhere. Coordinates are 1-based inclusive. An
    empty ``chrx`` or ``chry`` means the reference has no such chromosome.
    """
    lines: list[str] = []
    if chrx:
        pars = sorted((int(p["start"]), int(p["end"])) for p in par if p["contig"] == chrx)
        start = 1
        for p0, p1 in pars:
            if p0 > start:
                lines.append(f"{chrx}\t{start}\t{p0 - 1}\tM\t1")
            start = max(start, p1 + 1)
        if start <= contigs[chrx]:
            lines.append(f"{chrx}\t{start}\t{contigs[chrx]}\tM\t1")
    if chry:
        y_len = contigs[chry]
        lines.append(f"{chry}\t1\t{y_len}\tM\t1")
        lines.append(f"{chry}\t1\t{y_len}\tF\t0")
    lines += ["*\t*\t*\tM\t2", "*\t*\t*\tF\t2", "*\t*\t*\tU\t2"]
    Path(path).write_text("\n".join(lines) + "\n", encoding="utf-8")
