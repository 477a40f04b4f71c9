"""Region chunks of a VCF/BCF for region-parallel loads: :class:`Region`, the
chunks of an indexed file (:func:`plan_regions`) and of a BED file (:func:`read_bed`).
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from biobank.core.errors import ValidationError

__all__ = ["CHUNK_BP", "MAX_POS", "Region", "plan_regions", "read_bed"]

#: the end of an open region (VCF positions are 32-bit)
MAX_POS = 2**31 - 1
#: default region chunk: 5 Mb
CHUNK_BP = 5_000_000


@dataclass(frozen=True, order=True)
class Region:
    """A region chunk ``contig:start-end`` (1-based, inclusive, by record POS)."""

    contig: str
    start: int = 1
    end: int = MAX_POS

    def __str__(self) -> str:
        return f"{self.contig}:{self.start}-{self.end}"

    @classmethod
    def parse(cls, text: str) -> Region:
        """Parse ``chr1``, ``chr1:1000-2000`` (commas allowed in numbers)."""
        m = re.fullmatch(r"(.+?)(?::([\d,]+)-([\d,]+))?", text.strip())
        if not m or not m.group(1):
            raise ValidationError(
                f"region {text!r} is not CONTIG or CONTIG:START-END", field="region", value=text
            )
        if m.group(2) is None:
            return cls(m.group(1))
        start, end = (int(g.replace(",", "")) for g in m.group(2, 3))
        if not 1 <= start <= end <= MAX_POS:
            raise ValidationError(
                f"region {text!r}: need 1 <= START <= END", field="region", value=text
            )
        return cls(m.group(1), start, end)


def plan_regions(path: Path, *, chunk_bp: int = CHUNK_BP) -> list[Region]:
    """Region chunks of ``chunk_bp`` covering every contig with records in an indexed file.

    Uses ``bcftools index --stats`` (contig lengths and record counts from the
    index); a contig without a length in the header is one region.

    Raises
    ------
    ValidationError
        If the file has no index (make one with ``bcftools index`` or ``tabix``).
    """
    proc = subprocess.run(
        ["bcftools", "index", "--stats", str(path)], capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise ValidationError(
            f"{path} has no usable index for a region load ({proc.stderr.strip()}): "
            f"index it with 'bcftools index {path}' (or tabix -p vcf)",
            file=path,
        )
    out = []
    for line in proc.stdout.splitlines():
        contig, length, n = line.split("\t")[:3]
        if n == "0":
            continue
        if not length.isdigit():
            out.append(Region(contig))
            continue
        size = int(length)
        for start in range(1, size + 1, chunk_bp):
            end = min(start + chunk_bp - 1, size)
            out.append(Region(contig, start, MAX_POS if end == size else end))
    return out


def read_bed(path: Path) -> list[Region]:
    """The intervals of a BED file (0-based, half-open) as regions (1-based, inclusive).

    Raises
    ------
    ValidationError
        A line that is not ``contig<TAB>start<TAB>end`` (naming the line).
    """
    out = []
    for n, text in enumerate(Path(path).read_text().splitlines(), start=1):
        if not text.strip() or text.startswith(("#", "track", "browser")):
            continue
        f = text.split("\t")
        if len(f) < 3 or not f[1].isdigit() or not f[2].isdigit() or int(f[2]) <= int(f[1]):
            raise ValidationError(
                "a BED line must be CONTIG<TAB>START<TAB>END with START < END",
                file=path,
                line=n,
                value=text,
            )
        out.append(Region(f[0], int(f[1]) + 1, int(f[2])))
    return out
