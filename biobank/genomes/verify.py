"""Verifying a VCF load: :func:`verify_vcf` re-reads the file with a different
reader (``bcftools query``) and compares every genotype with the store.
"""

from __future__ import annotations

import logging
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from biobank.core.errors import ExternalToolError, NotFoundError, ValidationError
from biobank.core.store import Store, file_checksum
from biobank.core.tools import require_tool
from biobank.genomes.encoding import FLAG_HAPLOID, FLAG_MISSING

if TYPE_CHECKING:
    import duckdb

__all__ = ["VerifyReport", "verify_vcf"]

logger = logging.getLogger(__name__)


@dataclass
class VerifyReport:
    """What :func:`verify_vcf` found.

    Attributes
    ----------
    source
        The VCF that was re-read.
    batch_id
        The batch it was compared with.
    n_records, n_variants, n_genotypes
        VCF records, variant rows and genotypes compared.
    n_mismatches
        Genotypes or variants that differ.
    mismatches
        Descriptions of the first mismatches (at most 50).
    """

    source: str
    batch_id: int
    n_records: int = 0
    n_variants: int = 0
    n_genotypes: int = 0
    n_mismatches: int = 0
    mismatches: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Whether the store matches the file exactly."""
        return self.n_mismatches == 0

    def add(self, message: str, count: int = 1) -> None:
        """Count ``count`` mismatches described by ``message``."""
        self.n_mismatches += count
        if len(self.mismatches) < 50:
            self.mismatches.append(message)


def _parse_gt(gt: str) -> tuple[int, int]:
    """Parse a GT string printed by ``bcftools query`` into two allele indices.

    ``-1`` is a missing allele, ``-2`` the absent second allele of a haploid call.
    """
    parts = gt.replace("|", "/").split("/")
    if len(parts) == 1:
        return (-1 if parts[0] == "." else int(parts[0]), -2)
    if len(parts) != 2:
        raise ValidationError(f"genotype {gt!r} has ploidy {len(parts)}", field="GT", value=gt)
    return tuple(-1 if p == "." else int(p) for p in parts)  # type: ignore[return-value]


def verify_vcf(store: Store, path: str | Path, *, chunk_records: int = 2000) -> VerifyReport:
    """Re-read a loaded VCF with ``bcftools query`` and compare every genotype with the store.

    The comparison is per variant row (multi-allelic records split per ALT) and
    sample: missing or not, haploid or not, and the ALT dosage. Variants of the
    file absent from the store, and stored variants absent from the file, are
    mismatches too.

    Parameters
    ----------
    store
        The store.
    path
        The VCF that was loaded (found by its checksum).
    chunk_records
        Records compared at a time.

    Returns
    -------
    VerifyReport
        Counts and the first mismatches; ``report.ok`` is True when all match.

    Raises
    ------
    NotFoundError
        If this file (by checksum) was never loaded.
    ExternalToolError
        If bcftools cannot read the file.
    """
    path = Path(path)
    if not path.is_file():
        raise ValidationError(f"VCF file {path} does not exist", file=path)
    con = store.cursor()
    row = con.execute(
        "SELECT batch_id, load_id FROM genotype_load WHERE checksum = ?", [file_checksum(path)]
    ).fetchone()
    if row is None:
        raise NotFoundError(
            f"{path} was not loaded into {store.path} (no batch with its checksum); "
            "load it with 'biobank load-vcf'"
        )
    batch_id = int(row[0])
    report = VerifyReport(source=str(path), batch_id=batch_id)
    stored = con.execute(
        "SELECT sample_key, sample_id FROM genotype_sample WHERE batch_id = ?",
        [batch_id],
    ).fetchall()
    sample_keys = np.array([r[0] for r in stored], dtype=np.int64)
    bcftools = require_tool("bcftools")
    listed = subprocess.run(
        [bcftools, "query", "-l", str(path)], capture_output=True, text=True, check=False
    )
    if listed.returncode != 0:
        raise ExternalToolError(
            ["bcftools", "query", "-l", str(path)], listed.returncode, listed.stderr
        )
    names = listed.stdout.split()
    key_of = {str(r[1]): int(r[0]) for r in stored}
    if sorted(names) != sorted(key_of):
        extra = sorted(set(names) - set(key_of))[:5]
        lost = sorted(set(key_of) - set(names))[:5]
        report.add(f"samples differ: in the file only {extra}, in the store's batch only {lost}")
        return report
    col_of = np.full(int(sample_keys.max()) + 1, -1, dtype=np.int64)
    col_of[[key_of[s] for s in names]] = np.arange(len(names))
    cmd = [bcftools, "query", "-f", "%CHROM\t%POS\t%REF\t%ALT[\t%GT]\n", str(path)]
    cache: dict[str, tuple[int, int]] = {}
    lines: list[str] = []
    with (
        tempfile.TemporaryFile() as err,
        subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, text=True) as proc,
    ):
        assert proc.stdout is not None
        for text in proc.stdout:
            lines.append(text)
            if len(lines) == chunk_records:
                _verify_chunk(con, lines, batch_id, col_of, cache, report)
                lines = []
        if lines:
            _verify_chunk(con, lines, batch_id, col_of, cache, report)
        rc = proc.wait()
        err.seek(0)
        stderr = err.read().decode("utf-8", errors="replace")
    if rc != 0:
        raise ExternalToolError(cmd, rc, stderr)
    n_stored = con.execute(  # a region-parallel load has a row per region
        "SELECT sum(n_variants) FROM genotype_load WHERE batch_id = ? AND checksum = ?",
        [batch_id, file_checksum(path)],
    ).fetchone()
    if n_stored is not None and int(n_stored[0]) != report.n_variants:
        report.add(
            f"the store recorded {n_stored[0]} variant rows for this file, the file has "
            f"{report.n_variants}",
            abs(int(n_stored[0]) - report.n_variants),
        )
    return report


def _verify_chunk(
    con: duckdb.DuckDBPyConnection,
    lines: list[str],
    batch_id: int,
    col_of: np.ndarray,
    cache: dict[str, tuple[int, int]],
    report: VerifyReport,
) -> None:
    recs: list[tuple[str, int, str, str, int]] = []  # contig, pos, ref, alt, line index
    expected: list[np.ndarray] = []  # per line: (samples, 2) allele indices
    texts: list[np.ndarray] = []  # per line: the GT strings, for messages
    for li, text in enumerate(lines):
        fields = text.rstrip("\n").split("\t")
        # each distinct GT string of the line is parsed once
        gt_text = np.array(fields[4:])
        distinct, inverse = np.unique(gt_text, return_inverse=True)
        parsed = []
        for g in distinct.tolist():
            value = cache.get(g)
            if value is None:
                value = cache[g] = _parse_gt(g)
            parsed.append(value)
        expected.append(np.array(parsed, dtype=np.int16).reshape(-1, 2)[inverse.ravel()])
        texts.append(gt_text)
        for alt in fields[3].split(","):
            recs.append((fields[0], int(fields[1]), fields[2], alt, li))
    report.n_records += len(lines)
    report.n_variants += len(recs)
    want = pl.DataFrame(
        {
            "row_no": np.arange(len(recs), dtype=np.int32),
            "contig": pl.Series([r[0] for r in recs], dtype=pl.String),
            "position": pl.Series([r[1] for r in recs], dtype=pl.Int32),
            "ref": pl.Series([r[2] for r in recs], dtype=pl.String),
            "alt": pl.Series([r[3] for r in recs], dtype=pl.String),
        }
    )
    con.register("_verify_want", want)
    keys_tbl = con.execute(
        "SELECT w.row_no, v.variant_key FROM _verify_want w LEFT JOIN variant v"
        " ON v.contig = w.contig AND v.position = w.position AND v.ref = w.ref AND v.alt = w.alt"
        " AND EXISTS (SELECT 1 FROM batch_variant b WHERE b.batch_id = ?"
        " AND b.variant_key = v.variant_key) ORDER BY w.row_no",
        [batch_id],
    ).fetchall()
    con.unregister("_verify_want")
    key_of_row = [r[1] for r in keys_tbl]
    known = [k for k in key_of_row if k is not None]
    # the stored calls of these variants, sorted by variant key (a slice per variant)
    c_vk = np.zeros(0, dtype=np.int64)
    c_sk = c_vk
    c_dosage = c_flags = np.zeros(0, dtype=np.uint8)
    if known:
        keys_arrow = pl.DataFrame({"variant_key": pl.Series(known, dtype=pl.Int32)})
        con.register("_verify_keys", keys_arrow)
        got = con.execute(
            "SELECT c.variant_key, c.sample_key, c.dosage, c.flags FROM genotype_call_all c"
            " SEMI JOIN _verify_keys k USING (variant_key)"
            " WHERE c.sample_key IN (SELECT sample_key FROM genotype_sample WHERE batch_id = ?)"
            " ORDER BY c.variant_key",
            [batch_id],
        ).fetchnumpy()
        con.unregister("_verify_keys")
        c_vk = np.asarray(got["variant_key"], dtype=np.int64)
        c_sk = np.asarray(got["sample_key"], dtype=np.int64)
        c_dosage = np.asarray(got["dosage"], dtype=np.uint8)
        c_flags = np.asarray(got["flags"], dtype=np.uint8)
    n = len(expected[0]) if expected else 0
    for (contig, pos, ref, alt, li), key in zip(recs, key_of_row, strict=True):
        where = f"{contig}:{pos} {ref}>{alt}"
        if key is None:
            report.add(f"{where}: variant not in the store for batch {batch_id}")
            continue
        alts = lines[li].split("\t", 4)[3].split(",")
        allele = alts.index(alt) + 1
        alleles = expected[li]
        a0, a1 = alleles[:, 0], alleles[:, 1]
        exp_missing = (a0 == -1) | (a1 == -1)
        exp_haploid = a1 == -2
        exp_dosage = np.where(
            exp_missing, 0, (a0 == allele).astype(int) + (a1 == allele).astype(int)
        )
        got_dosage = np.zeros(n, dtype=np.int64)
        got_missing = np.zeros(n, dtype=bool)
        got_haploid = np.zeros(n, dtype=bool)
        lo, hi = np.searchsorted(c_vk, [int(key), int(key) + 1])
        c = col_of[c_sk[lo:hi]]
        got_dosage[c] = c_dosage[lo:hi]
        got_missing[c] = (c_flags[lo:hi] & FLAG_MISSING) > 0
        got_haploid[c] = (c_flags[lo:hi] & FLAG_HAPLOID) > 0
        report.n_genotypes += n
        bad = (
            (exp_missing != got_missing)
            | (exp_haploid != got_haploid)
            | (~exp_missing & (exp_dosage != got_dosage))
        )
        if bad.any():
            first = int(np.flatnonzero(bad)[0])
            report.add(
                f"{where}: {int(bad.sum())} genotype(s) differ, first in sample column {first}: "
                f"file {texts[li][first]}, store dosage {got_dosage[first]}"
                f"{' missing' if got_missing[first] else ''}"
                f"{' haploid' if got_haploid[first] else ''}",
                int(bad.sum()),
            )
