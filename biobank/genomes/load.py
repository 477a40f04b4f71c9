"""Loading VCF/BCF genotypes into the store, and verifying a load against the file.

:func:`load_vcf` streams a (bgzipped) VCF or BCF with :mod:`cyvcf2` in chunks of
records, splits multi-allelic records into biallelic variant rows and appends
the *sparse* calls (everything that is not a diploid homozygous-reference call)
through Arrow to a scratch DuckDB database beside the store (one autocommitted
insert per chunk and table, so memory does not grow with the records). After
the last record the rows are checked for duplicate variants and copied into the
store in one transaction: a bad record, a duplicate or a kill leaves the store as
it was (a killed load's scratch file is removed when the store is next opened
for writing). Each load is a *batch*: its samples
and the variants it covered are recorded, so that "no row" means hom-ref only
where the sample's batch covered the variant. The table layout is described in
``biobank/core/schema/020_genotypes.sql`` and ``docs/store.md``.

Speed: when ``bcftools`` is on ``PATH`` the VCF text is parsed by ``bcftools
view -Ou`` in its own process and read by cyvcf2 as an uncompressed BCF stream,
and each chunk's calls are split and inserted by a writer thread while the next
chunk is read. If bcftools is missing or fails, or the file is rejected, the
file is read directly with cyvcf2 (after the rollback), so error messages name
the file's own line numbers. Measured figures: ``docs/store.md``.

:func:`verify_vcf` re-reads the file with a different reader (``bcftools
query``) and compares every genotype with the store.

Genotype encoding in ``genotype_call`` (one row per variant row and sample):

* ``dosage``: copies of this ALT allele (0, 1 or 2);
* ``flags`` (bits, see :data:`FLAG_MISSING` ...): missing, haploid, phased,
  carries another ALT allele of the record, half-call, first allele is this ALT.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import numpy as np
import polars as pl

from biobank.core import audit
from biobank.core.access import Permission, Principal, require
from biobank.core.errors import (
    ConflictError,
    ExternalToolError,
    NotFoundError,
    StoreError,
    ValidationError,
)
from biobank.core.store import Store, file_checksum
from biobank.core.tools import require_tool

if TYPE_CHECKING:
    import duckdb

__all__ = [
    "CALL_FIELDS",
    "FLAG_FIRST_ALLELE",
    "FLAG_HALF_CALL",
    "FLAG_HAPLOID",
    "FLAG_MISSING",
    "FLAG_OTHER_ALT",
    "FLAG_PHASED",
    "LoadReport",
    "VerifyReport",
    "load_vcf",
    "parse_bcsq",
    "verify_vcf",
]

logger = logging.getLogger(__name__)

#: Call is missing: a no-call (``./.``, ``.``) or a half-call (``0/.``).
FLAG_MISSING = 1
#: Call is haploid (e.g. a male's chrX ``1`` or ``0``).
FLAG_HAPLOID = 2
#: Call is phased (``|``).
FLAG_PHASED = 4
#: The sample carries another ALT allele of the same VCF record (e.g. ``0/2`` at ALT 1's row).
FLAG_OTHER_ALT = 8
#: One allele of the call is missing (``0/.``); always together with :data:`FLAG_MISSING`.
FLAG_HALF_CALL = 16
#: The first allele of the call is this ALT (keeps ``1|0`` apart from ``0|1``).
FLAG_FIRST_ALLELE = 32

#: Per-call FORMAT fields that can be stored.
CALL_FIELDS = ("DP", "GQ")

#: bcftools csq consequences from most to least severe (for choosing a variant's gene).
_SEVERITY = [
    "stop_gained",
    "frameshift",
    "splice_acceptor",
    "splice_donor",
    "start_lost",
    "stop_lost",
    "missense",
    "inframe_deletion",
    "inframe_insertion",
    "inframe_altering",
    "start_retained",
    "stop_retained",
    "splice_region",
    "synonymous",
    "coding_sequence",
    "5_prime_utr",
    "3_prime_utr",
    "non_coding",
    "intron",
    "intergenic",
]
_RANK = {name: i for i, name in enumerate(_SEVERITY)}

# Target number of genotype cells (records x samples) held in memory per chunk.
_CHUNK_CELLS = 8_000_000


@dataclass(frozen=True)
class LoadReport:
    """What :func:`load_vcf` did.

    Attributes
    ----------
    source
        The input path.
    batch_id
        The batch of this load (of the earlier load when ``already_loaded``).
    load_id
        The provenance id.
    already_loaded
        The same file (by checksum) was loaded before: nothing was written.
    n_samples, n_records, n_variants, n_new_variants, n_calls, n_packed
        Samples; VCF records; biallelic variant rows; rows new to the store;
        calls stored (not diploid hom-ref: sparse rows plus the calls in packed
        rows); variant rows stored packed (``genotype_packed``).
    seconds
        Wall time of the load.
    """

    source: str
    batch_id: int
    load_id: int
    already_loaded: bool
    n_samples: int = 0
    n_records: int = 0
    n_variants: int = 0
    n_new_variants: int = 0
    n_calls: int = 0
    n_packed: int = 0
    seconds: float = 0.0


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


# --------------------------------------------------------------------------- BCSQ
def parse_bcsq(
    value: str | None, alt: str, *, n_alts: int = 1
) -> tuple[str | None, str | None, str | None]:
    """Return ``(gene, consequence, bcsq)`` of the most severe BCSQ entry for one ALT allele.

    BCSQ entries (``bcftools csq``) have the format
    ``consequence|gene|transcript|biotype|strand|aa_change|dna_change``;
    entries starting with ``@`` refer to another record and are skipped; a
    leading ``*`` (consequence inherited from a downstream variant) is removed.
    In a multi-allelic record, the entries whose ``dna_change`` ends in
    ``>ALT`` belong to that ALT; if none does, all entries are used.

    Parameters
    ----------
    value
        The INFO/BCSQ value (comma-separated entries) or ``None``.
    alt
        The ALT allele of the variant row.
    n_alts
        Number of ALT alleles of the record.

    Returns
    -------
    tuple
        Gene, consequence (e.g. ``"missense"`` or ``"missense&splice_region"``)
        and the BCSQ entries used (comma-joined); all ``None`` without BCSQ.

    Examples
    --------
    >>> bcsq = "synonymous|G1|T1|protein_coding|+|5L|5T>C,missense|G2|T2|protein_coding|+|7K>E|7A>G"
    >>> parse_bcsq(bcsq, "G")[:2]
    ('G2', 'missense')
    """
    if not value:
        return None, None, None
    entries = [e.lstrip("*") for e in value.split(",") if e and not e.startswith("@")]
    if n_alts > 1:
        mine = [e for e in entries if e.split("|")[-1].endswith(f">{alt}")]
        entries = mine or entries
    best: tuple[int, str | None, str] | None = None
    for entry in entries:
        parts = entry.split("|")
        csq = parts[0]
        gene = parts[1] if len(parts) > 1 and parts[1] else None
        rank = min((_RANK.get(c, len(_RANK)) for c in csq.split("&")), default=len(_RANK))
        if best is None or rank < best[0]:
            best = (rank, gene, csq)
    if best is None:
        return None, None, None
    return best[1], best[2], ",".join(entries)


# --------------------------------------------------------------------------- loading
def _resolve_samples(
    con: duckdb.DuckDBPyConnection, path: Path, names: Sequence[str]
) -> tuple[list[str], int | None, np.ndarray | None]:
    """Resolve VCF sample names; raise naming unknown or already loaded ones.

    Returns the participant id of each sample and, when the file holds exactly
    the samples of an earlier batch, that batch and the samples' keys.
    """
    dupes = (
        sorted({n for n in names if names.count(n) > 1}) if len(set(names)) != len(names) else []
    )
    if dupes:
        raise ValidationError(
            f"sample names appear twice in the header: {', '.join(dupes)}; "
            "each VCF sample column must have a unique name",
            file=path,
            field="#CHROM header",
        )
    names_df = pl.DataFrame(
        {"sample_id": pl.Series(list(names), dtype=pl.String), "col": np.arange(len(names))}
    )
    con.register("_vcf_names_df", names_df)
    con.execute("CREATE OR REPLACE TEMP TABLE _vcf_names AS SELECT * FROM _vcf_names_df")
    con.unregister("_vcf_names_df")
    rows = con.execute(
        "SELECT n.sample_id, s.participant_id FROM _vcf_names n"
        " LEFT JOIN sequencing_sample s USING (sample_id) ORDER BY n.col"
    ).fetchall()
    unknown = [r[0] for r in rows if r[1] is None]
    if unknown:
        shown = ", ".join(unknown[:20]) + (
            f" ... ({len(unknown)} in all)" if len(unknown) > 20 else ""
        )
        raise ValidationError(
            f"{len(unknown)} VCF sample(s) are not registered sequencing samples: {shown}; "
            "register them (specimens.csv column sequencing_sample_id) before loading",
            file=path,
            field="#CHROM header",
        )
    loaded = con.execute(
        "SELECT g.sample_id, g.sample_key, g.batch_id, b.n_samples,"
        " (SELECT string_agg(l.source, ', ') FROM genotype_load l WHERE l.batch_id = g.batch_id)"
        " FROM genotype_sample g JOIN genotype_batch b USING (batch_id)"
        " JOIN _vcf_names n USING (sample_id) ORDER BY n.col"
    ).fetchall()
    con.execute("DROP TABLE _vcf_names")
    participants = [str(r[1]) for r in rows]
    if not loaded:
        return participants, None, None
    batches = {int(r[2]) for r in loaded}
    if len(loaded) == len(names) and len(batches) == 1 and int(loaded[0][3]) == len(names):
        # exactly the samples of one batch (e.g. another chromosome): extend that batch
        return participants, int(loaded[0][2]), np.array([r[1] for r in loaded], dtype=np.int32)
    shown = ", ".join(f"{r[0]} (from {r[4]})" for r in loaded[:20])
    raise ConflictError(
        f"{path}: {len(loaded)} of its {len(names)} sample(s) were already loaded from another "
        f"file: {shown}; a file must hold only new samples, or exactly the samples of one "
        "earlier batch (to add variants, e.g. another chromosome): remove the loaded samples "
        "(bcftools view -s ^NAME) or load the new ones from a separate file"
    )


def _info_value(rec: Any, name: str, number: str, allele: int) -> Any:
    """Return INFO ``name`` of ``rec`` for ALT ``allele`` (1-based), JSON-ready."""
    try:
        value = rec.INFO.get(name)
    except KeyError:
        return None
    if value is None:
        return None
    if isinstance(value, tuple):
        if number == "A":
            value = value[allele - 1] if allele - 1 < len(value) else None
        elif number == "R":
            value = [value[0], value[allele]] if allele < len(value) else list(value)
        else:
            value = list(value)
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


@dataclass
class _Chunk:
    """Records of one chunk, before splitting into variant rows."""

    gt: np.ndarray  # (records, samples, 2) int32: htslib's GT encoding (see _decode_alleles)
    dp: np.ndarray | None  # (records, samples) int32, <0 missing
    gq: np.ndarray | None
    meta: list[tuple[Any, ...]] = field(default_factory=list)  # one tuple per variant row
    row_record: list[int] = field(default_factory=list)
    row_allele: list[int] = field(default_factory=list)
    n: int = 0

    def call_pairs(self) -> np.ndarray:
        """Each call's two int32 GT values read as one int64 (records x samples, a view)."""
        return self.gt[: self.n].view(np.int64)[:, :, 0]

    def record_rows(self) -> tuple[np.ndarray, np.ndarray]:
        """Per record: how many variant rows (ALT alleles) it has, and its first row."""
        n_alts = np.bincount(np.asarray(self.row_record, dtype=np.int64), minlength=self.n)
        return n_alts, np.cumsum(n_alts) - n_alts


def _format_array(rec: Any, name: str, n_samples: int) -> np.ndarray:
    values = rec.format(name)
    if values is None:
        return np.full(n_samples, -1, dtype=np.int64)
    arr = np.asarray(values)[:, 0].astype(np.int64)
    arr[arr < -(2**30)] = -1
    return arr


def _raw_line(path: Path, line: int) -> str | None:
    """Return line ``line`` (1-based) of a plain or bgzipped text VCF, or ``None``."""
    import gzip

    try:
        with open(path, "rb") as fh:
            magic = fh.read(2)
        opener = gzip.open if magic == b"\x1f\x8b" else open
        with opener(path, "rt", encoding="utf-8", errors="replace") as fh:
            for i, text in enumerate(fh, start=1):
                if i == line:
                    return str(text.rstrip("\n"))
    except (OSError, EOFError):
        return None
    return None


def _iter_records(vcf: Any, path: Path, header_lines: int) -> Iterator[tuple[int, Any]]:
    """Yield ``(line, record)``; translate reader errors into ValidationError naming the record."""
    line = header_lines
    last = "the header"
    it = iter(vcf)
    while True:
        try:
            rec = next(it)
        except StopIteration:
            return
        except Exception as exc:  # cyvcf2 raises plain Exceptions for bad records
            raw = None if path.suffix == ".bcf" else _raw_line(path, line + 1)
            if raw is not None and raw.count("\t") >= 1:
                fields = raw.split("\t")
                where = f"record {fields[0]}:{fields[1]}"
            else:
                where = f"the record after {last}"
            raise ValidationError(
                f"cannot parse {where} (htslib: {exc}); the columns must follow VCF 4.x, "
                "with one genotype column per sample: fix or remove that record",
                file=path,
                line=line + 1,
            ) from exc
        line += 1
        last = f"{rec.CHROM}:{rec.POS}"
        yield line, rec


def _check_record(rec: Any, path: Path, line: int) -> None:
    where = f"record {rec.CHROM}:{rec.POS}"
    if rec.POS < 1:
        raise ValidationError(f"{where}: position must be >= 1", file=path, line=line, field="POS")
    ref = rec.REF
    if not ref or ref == ".":
        raise ValidationError(
            f"{where}: REF is empty", file=path, line=line, field="REF", value=ref
        )
    for alt in rec.ALT:
        if not alt or alt == ".":
            raise ValidationError(
                f"{where}: ALT is missing", file=path, line=line, field="ALT", value=alt
            )
    if len(rec.ALT) > 254:
        raise ValidationError(
            f"{where}: more than 254 ALT alleles", file=path, line=line, field="ALT"
        )


#: htslib's ``bcf_int32_vector_end``: the absent second allele of a haploid call
_GT_VECTOR_END = -(2**31) + 1
#: ``0/0`` and ``0|0`` in htslib's encoding, each call's two int32 read as one int64
_HOM_REF = np.array([[2, 2], [2, 3]], dtype=np.int32).view(np.int64)[:, 0]


def _decode_alleles(
    raw0: np.ndarray, raw1: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Allele indices and phase of htslib-encoded GT values (``bcf_gt_allele``).

    Each allele is stored as ``(index + 1) << 1 | phased`` (0 or 1 when
    missing), the phase bit on the second allele; a haploid call's second
    allele is ``bcf_int32_vector_end``.

    Returns
    -------
    tuple of numpy.ndarray
        First and second allele (int16; -1 missing, -2 absent) and whether the
        call is phased: a haploid call counts as phased (its one allele is its
        haplotype; ``bcf_int32_vector_end`` has the phase bit set).
    """
    absent = raw1 == _GT_VECTOR_END
    a0 = np.maximum((raw0 >> 1) - 1, -1).astype(np.int16)
    a1 = np.where(absent, -2, np.maximum((raw1 >> 1) - 1, -1)).astype(np.int16)
    return a0, a1, (raw1 & 1) == 1


def _not_hom_ref(chunk: _Chunk) -> np.ndarray:
    """Which calls (records x samples) are stored: all but ``0/0`` and ``0|0``.

    A call's two int32 are compared as one int64 (contiguous, a third of the
    work of four strided passes).
    """
    pair = chunk.call_pairs()
    return (pair != _HOM_REF[0]) & (pair != _HOM_REF[1])


def _split_chunk(
    chunk: _Chunk,
    keys: np.ndarray,
    sample_keys: np.ndarray,
    want_dp: bool,
    want_gq: bool,
    stored: np.ndarray,
) -> pl.DataFrame:
    """Turn the chunk's genotypes into sparse ``genotype_call`` rows.

    Only calls with an allele other than REF (ALT, missing, or the absent second
    allele of a haploid call) are looked at; multi-allelic records give one
    row per ALT allele. Rows come out ordered by variant row, then sample.
    ``stored`` is :func:`_not_hom_ref` of the chunk, without the records
    packed already.
    """
    m = chunk.n
    raw0, raw1 = chunk.gt[:m, :, 0], chunk.gt[:m, :, 1]
    rec_i, si = np.nonzero(stored)
    n_alts, first_row = chunk.record_rows()
    if (n_alts == 1).all():
        ri = first_row[rec_i]
        allele = np.ones(len(ri), dtype=np.int16)
    else:
        reps = n_alts[rec_i]
        pair = np.repeat(np.arange(len(rec_i)), reps)
        offset = np.arange(len(pair)) - np.repeat(np.cumsum(reps) - reps, reps)
        rec_i, si = rec_i[pair], si[pair]
        ri = first_row[rec_i] + offset
        order = np.argsort(ri, kind="stable")
        rec_i, si, ri = rec_i[order], si[order], ri[order]
        allele = (offset[order] + 1).astype(np.int16)
    a0, a1, phased = _decode_alleles(raw0[rec_i, si], raw1[rec_i, si])
    haploid = a1 == -2
    half = ((a0 >= 0) & (a1 == -1)) | ((a0 == -1) & (a1 >= 0))
    missing = (a0 < 0) | (a1 == -1)
    dosage = (a0 == allele).astype(np.uint8) + (a1 == allele).astype(np.uint8)
    dosage[missing] = 0
    other = (((a0 > 0) & (a0 != allele)) | ((a1 > 0) & (a1 != allele))) & ~missing
    flags = (
        missing.astype(np.uint8) * FLAG_MISSING
        | haploid.astype(np.uint8) * FLAG_HAPLOID
        | phased.astype(np.uint8) * FLAG_PHASED
        | other.astype(np.uint8) * FLAG_OTHER_ALT
        | half.astype(np.uint8) * FLAG_HALF_CALL
        | ((a0 == allele) & ~missing).astype(np.uint8) * FLAG_FIRST_ALLELE
    )
    cols: dict[str, pl.Series] = {
        "variant_key": pl.Series("variant_key", keys[ri].astype(np.int32)),
        "sample_key": pl.Series("sample_key", sample_keys[si]),
        "dosage": pl.Series("dosage", dosage),
        "flags": pl.Series("flags", flags.astype(np.uint8)),
    }
    for name, want, arr, cap, typ in (
        ("dp", want_dp, chunk.dp, 65535, np.uint16),
        ("gq", want_gq, chunk.gq, 255, np.uint8),
    ):
        if want and arr is not None:
            vals = arr[rec_i, si]
            series = pl.Series(name, np.clip(vals, 0, cap).astype(typ))
            cols[name] = series.set(pl.Series(vals < 0), None)
    return pl.DataFrame(cols)


#: pack a (batch, variant) when at least 1 in PACK_MIN_FRACTION_INV samples has a stored call
PACK_MIN_FRACTION_INV = 16


def _word_lists(bits: np.ndarray, n_words: int) -> Any:
    """Arrow ``list<uint64>`` of each row of ``bits``: bit i = bit i % 64 of word i // 64."""
    import pyarrow as pa

    words = np.packbits(bits, axis=1, bitorder="little").view("<u8").reshape(-1)
    offsets = np.arange(0, len(words) + 1, n_words, dtype=np.int32)
    return pa.ListArray.from_arrays(pa.array(offsets), pa.array(words, type=pa.uint64()))


#: the plain calls of a packed variant in htslib's encoding, each call's two
#: int32 read as one int64: ``0/1``, ``1/1`` and ``./.``
_HET, _HOM_ALT, _NO_CALL = np.array([[2, 4], [4, 4], [0, 0]], dtype=np.int32).view(np.int64)[:, 0]


def _pack_records(
    chunk: _Chunk, stored: np.ndarray, keys: np.ndarray, col_pos: np.ndarray, n_samples: int
) -> tuple[Any, int]:
    """Pack the chunk's biallelic records whose calls are all plain, from the GT array.

    The same choice and bit planes as :func:`_pack_calls` makes from sparse
    rows, without making the rows: a record with one ALT is packed when every
    call is ``0/0``, ``0|0``, ``0/1``, ``1/1`` or ``./.`` and at least
    ``n_samples / PACK_MIN_FRACTION_INV`` of them are not hom-ref.

    Parameters
    ----------
    chunk
        The chunk's records.
    stored
        :func:`_not_hom_ref` of the chunk; the packed records' rows are set
        to False in it.
    keys
        Variant key of each of the chunk's variant rows.
    col_pos
        Position of each VCF sample column in the batch's ``sample_key`` order.
    n_samples
        Samples in the batch.

    Returns
    -------
    tuple
        The bit planes as for :func:`_pack_calls` (``None`` if no record is
        packed), and the packed records' stored (not hom-ref) call count.
    """
    import pyarrow as pa

    n_alts, first_row = chunk.record_rows()
    n_stored = stored.sum(axis=1)
    candidates = np.flatnonzero((n_alts == 1) & (n_stored * PACK_MIN_FRACTION_INV >= n_samples))
    if not len(candidates):
        return None, 0
    pair = chunk.call_pairs()[candidates]
    het, hom_alt, no_call = pair == _HET, pair == _HOM_ALT, pair == _NO_CALL
    take = (het | hom_alt | no_call).sum(axis=1) == n_stored[candidates]
    if not take.any():
        return None, 0
    records = candidates[take]
    stored[records] = False
    n_words = (n_samples + 63) // 64
    planes = []
    for bits in (het[take] | no_call[take], hom_alt[take] | no_call[take]):
        full = np.zeros((len(bits), n_words * 64), dtype=bool)
        full[:, col_pos] = bits
        planes.append(_word_lists(full, n_words))
    table = pa.table(
        {
            "variant_key": pa.array(keys[first_row[records]].astype(np.int32)),
            "lo": planes[0],
            "hi": planes[1],
        }
    )
    return table, int(n_stored[records].sum())


def _pack_calls(
    table: pl.DataFrame, pos_of_key: np.ndarray, n_samples: int
) -> tuple[pl.DataFrame, Any]:
    """Split a chunk's sparse calls into rows kept sparse and packed bit planes.

    A variant is packed when all its calls are plain (``0/1``, ``1/1`` or
    ``./.``, unphased, no other ALT, no half-call, not haploid) and they are at
    least ``n_samples / PACK_MIN_FRACTION_INV``: then two bits a sample cost
    less than its sparse rows (~3.5 bytes each after compression).

    Parameters
    ----------
    table
        Sparse rows from :func:`_split_chunk` (``variant_key, sample_key,
        dosage, flags``), ordered by variant.
    pos_of_key
        Position of each sample key in the batch's ``sample_key`` order.
    n_samples
        Samples in the batch.

    Returns
    -------
    tuple
        The rows to keep sparse (polars), and a pyarrow table ``variant_key,
        lo, hi`` of bit planes (lists of 64-bit words, see
        ``biobank/core/schema/050_packed_calls.sql``), ``None`` if nothing is packed.
    """
    import pyarrow as pa

    if not table.height:
        return table, None
    vk = table["variant_key"].to_numpy()
    dosage = table["dosage"].to_numpy()
    flags = table["flags"].to_numpy()
    missing = flags == FLAG_MISSING
    plain = (
        missing | ((dosage == 1) & (flags == 0)) | ((dosage == 2) & (flags == FLAG_FIRST_ALLELE))
    )
    change = np.flatnonzero(np.diff(vk)) + 1
    starts = np.concatenate([[0], change])
    counts = np.diff(np.concatenate([starts, [len(vk)]]))
    n_plain = np.add.reduceat(plain.astype(np.int64), starts)
    pack = (n_plain == counts) & (counts * PACK_MIN_FRACTION_INV >= n_samples)
    row_pack = np.repeat(pack, counts)
    if not row_pack.any():
        return table, None
    packed_row = np.cumsum(pack) - 1  # row of each packed variant in the planes
    r = np.repeat(packed_row, counts)[row_pack]
    c = pos_of_key[table["sample_key"].to_numpy()[row_pack]]
    code = np.where(missing, 3, dosage)[row_pack]
    n_words = (n_samples + 63) // 64
    lo = np.zeros((int(pack.sum()), n_words * 64), dtype=bool)
    hi = np.zeros_like(lo)
    lo[r, c] = (code & 1) > 0
    hi[r, c] = (code & 2) > 0
    packed = pa.table(
        {
            "variant_key": pa.array(vk[starts[pack]].astype(np.int32)),
            "lo": _word_lists(lo, n_words),
            "hi": _word_lists(hi, n_words),
        }
    )
    return table.filter(pl.Series(~row_pack)), packed


def load_vcf(
    store: Store,
    path: str | Path,
    *,
    principal: Principal,
    info_fields: Sequence[str] = (),
    call_fields: Sequence[str] = (),
    chunk_records: int | None = None,
    progress: bool = False,
    threads: int = 1,
    pack: bool = True,
) -> LoadReport:
    """Load a VCF/BCF (plain or bgzipped) as one batch of samples, all or nothing.

    Parameters
    ----------
    store
        The store to write to.
    path
        The VCF or BCF file. Its sample names must be registered sequencing
        samples (table ``sequencing_sample``).
    principal
        Who loads (needs ``LOAD_DATA``); recorded in provenance and the audit log.
    info_fields
        INFO fields to keep per variant (stored in ``variant.info`` as JSON;
        ``Number=A`` fields are split per ALT allele).
    call_fields
        FORMAT fields to keep per stored call: any of ``"DP"``, ``"GQ"``.
    chunk_records
        Records per chunk (default: about 8 million genotypes per chunk); memory
        use is bounded by the chunk, not the file.
    progress
        Show a progress bar with the rate in variants per second.
    threads
        Threads for reading: bgzip decompression threads for htslib (with the
        bcftools stream, ``threads - 1`` extra bcftools threads; the stream
        always runs in its own process).
    pack
        Store variants with many plain calls as bit planes (``genotype_packed``,
        see :func:`_pack_calls`) instead of one ``genotype_call`` row per call.
        Never done when ``call_fields`` are kept. ``False`` keeps every call
        sparse (the layout of stores loaded before packing existed).

    Returns
    -------
    LoadReport
        What was loaded; ``already_loaded`` if the same file (by checksum)
        was loaded before, in which case nothing is written.

    Raises
    ------
    AccessDenied
        If the principal may not load data.
    ValidationError
        If the file cannot be read, names unregistered samples, asks for an
        INFO/FORMAT field the header does not define, or has a bad record (the
        message names the line and ``contig:pos``); nothing is written.
    ConflictError
        If a sample was already loaded from another file, or another load
        changed the store while this file was read (nothing is written: run
        it again).
    StoreError
        If called inside :meth:`Store.transaction` (a load commits its own), or
        the scratch database beside the store cannot be created.
    """
    import duckdb

    require(principal, Permission.LOAD_DATA)
    path = Path(path)
    try:
        return _load_file(
            store,
            path,
            principal=principal,
            info_fields=info_fields,
            call_fields=call_fields,
            chunk_records=chunk_records,
            progress=progress,
            threads=threads,
            pack=pack,
        )
    except duckdb.Error as exc:
        raise StoreError(
            f"loading {path} failed in DuckDB ({type(exc).__name__}: {exc}); nothing was "
            "written to the store. Out of memory: raise DuckDB's memory_limit or load with "
            f"smaller chunks (chunk_records). Disk full: free space in {store.path.parent} "
            "(the load prepares its rows in a scratch file there)."
        ) from exc


def _load_file(
    store: Store,
    path: Path,
    *,
    principal: Principal,
    info_fields: Sequence[str],
    call_fields: Sequence[str],
    chunk_records: int | None,
    progress: bool,
    threads: int,
    pack: bool,
) -> LoadReport:
    import cyvcf2

    if not path.is_file():
        raise ValidationError(f"VCF file {path} does not exist", file=path)
    bad = [f for f in call_fields if f not in CALL_FIELDS]
    if bad:
        raise ValidationError(
            f"call field(s) {', '.join(bad)} cannot be stored: "
            f"choose from {', '.join(CALL_FIELDS)}",
            field="call_fields",
        )
    if store.in_transaction:
        raise StoreError(
            "load_vcf commits its own transaction: call it outside Store.transaction()"
        )
    t0 = time.perf_counter()
    checksum = file_checksum(path)
    earlier = store.find_load(kind="vcf", checksum=checksum)
    if earlier is not None:
        row = store.con.execute(
            "SELECT batch_id FROM genotype_load WHERE load_id = ?", [earlier]
        ).fetchone()
        logger.info("%s was already loaded (load %d): nothing to do", path, earlier)
        return LoadReport(
            source=str(path),
            batch_id=int(row[0]) if row else 0,
            load_id=earlier,
            already_loaded=True,
        )
    stream = _BcfStream.open(path, threads)
    if stream is not None:
        try:
            return _load(
                store,
                stream.vcf,
                path,
                checksum=checksum,
                principal=principal,
                info_fields=list(info_fields),
                call_fields=list(call_fields),
                chunk_records=chunk_records,
                progress=progress,
                pack=pack,
                t0=t0,
                end_of_input=stream.finish,
            )
        except ValidationError as exc:
            # Nothing was written (the scratch database is gone). Read the file
            # directly to report the problem with its exact line and field.
            logger.debug("bcftools stream of %s failed (%s): reading it directly", path, exc)
        finally:
            stream.close()
    try:
        vcf = cyvcf2.VCF(str(path), threads=threads, lazy=True)
    except (OSError, Exception) as exc:
        raise ValidationError(
            f"cannot open {path} as VCF/BCF: {exc}; is it a (bgzipped) VCF or a BCF?", file=path
        ) from exc
    try:
        return _load(
            store,
            vcf,
            path,
            checksum=checksum,
            principal=principal,
            info_fields=list(info_fields),
            call_fields=list(call_fields),
            chunk_records=chunk_records,
            progress=progress,
            pack=pack,
            t0=t0,
        )
    finally:
        vcf.close()


class _BcfStream:
    """``bcftools view -Ou`` of a VCF piped into :mod:`cyvcf2`.

    htslib's text parsing then runs in the bcftools process, in parallel with
    the splitting and inserting done here (cyvcf2 reads the uncompressed BCF
    stream at almost no cost). The records are the same ``bcf1_t`` values
    cyvcf2 would parse from the file itself.
    """

    def __init__(self, proc: subprocess.Popen[bytes], vcf: Any, stderr: Any, path: Path) -> None:
        self.proc, self.vcf, self.stderr, self.path = proc, vcf, stderr, path

    @classmethod
    def open(cls, path: Path, threads: int) -> _BcfStream | None:
        """Start the stream, or return ``None`` (bcftools missing or unusable)."""
        import shutil

        import cyvcf2

        exe = shutil.which("bcftools")
        if exe is None:
            return None
        args = [exe, "view", "-Ou", "--no-version"]
        if threads > 1:
            args += ["--threads", str(threads - 1)]
        stderr = tempfile.TemporaryFile()  # noqa: SIM115 (closed by close())
        proc = subprocess.Popen([*args, str(path)], stdout=subprocess.PIPE, stderr=stderr)
        assert proc.stdout is not None
        try:
            vcf = cyvcf2.VCF(proc.stdout.fileno(), lazy=True)
        except Exception as exc:  # cyvcf2 raises plain Exceptions for unreadable input
            logger.debug("cannot read bcftools view of %s: %s", path, exc)
            stream = cls(proc, None, stderr, path)
            stream.close()
            return None
        return cls(proc, vcf, stderr, path)

    def finish(self) -> None:
        """After the last record: raise ValidationError if bcftools failed."""
        code = self.proc.wait()
        if code != 0:
            self.stderr.seek(0)
            text = self.stderr.read().decode(errors="replace").strip()
            raise ValidationError(f"bcftools view failed ({code}): {text}", file=self.path)

    def close(self) -> None:
        """Stop bcftools (if still running) and release the pipe."""
        if self.vcf is not None:
            self.vcf.close()
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self.stderr.close()


def _header_numbers(vcf: Any, kind: str) -> dict[str, str]:
    out = {}
    for h in vcf.header_iter():
        info = h.info()
        if info.get("HeaderType") == kind and "ID" in info:
            out[info["ID"]] = info.get("Number", ".")
    return out


def _load(
    store: Store,
    vcf: Any,
    path: Path,
    *,
    checksum: str,
    principal: Principal,
    info_fields: list[str],
    call_fields: list[str],
    chunk_records: int | None,
    progress: bool,
    pack: bool,
    t0: float,
    end_of_input: Callable[[], None] | None = None,
) -> LoadReport:
    from concurrent.futures import Future, ThreadPoolExecutor

    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

    names = list(vcf.samples)
    if not names:
        raise ValidationError(
            "the VCF has no sample columns: there are no genotypes to load", file=path
        )
    info_numbers = _header_numbers(vcf, "INFO")
    format_ids = set(_header_numbers(vcf, "FORMAT"))
    missing_info = [f for f in info_fields if f not in info_numbers]
    if missing_info:
        raise ValidationError(
            f"INFO field(s) {', '.join(missing_info)} are not defined in the header; "
            f"defined: {', '.join(sorted(info_numbers)) or 'none'}",
            file=path,
            field="--info",
        )
    missing_fmt = [f for f in call_fields if f not in format_ids]
    if missing_fmt:
        raise ValidationError(
            f"FORMAT field(s) {', '.join(missing_fmt)} are not defined in the header",
            file=path,
            field="call_fields",
        )
    if "GT" not in format_ids:
        raise ValidationError("the VCF header defines no FORMAT/GT", file=path, field="FORMAT")
    has_bcsq = "BCSQ" in info_numbers
    want_dp, want_gq = "DP" in call_fields, "GQ" in call_fields
    n = len(names)
    per_chunk = chunk_records or max(1, min(20_000, _CHUNK_CELLS // n))
    header_lines = len(vcf.raw_header.rstrip("\n").split("\n"))

    # Phase 1: every row is prepared in a scratch database, one autocommitted
    # statement at a time, so memory stays flat however long the file (rows
    # appended inside one open transaction are partly held until it ends).
    # Phase 2 copies them into the store in one transaction (see _publish).
    con = store.con
    with store.scratch() as stage:
        participants, batch_id_, keys_ = _resolve_samples(con, path, names)
        plan = _Plan.of(con, batch_id_, keys_, n)
        for table in _STAGED_TABLES:
            con.execute(f"CREATE TABLE {stage}.{table} AS SELECT * FROM {table} LIMIT 0")
        batch_id, sample_keys = plan.batch_id, plan.sample_keys
        if not plan.new_batch:
            logger.info("%s has the samples of batch %d: adding its variants", path, batch_id)
        counts = {"records": 0, "variants": 0, "new": 0, "calls": 0, "packed": 0}
        bar = Progress(
            TextColumn("[progress.description]{task.description}"),
            BarColumn(),
            TaskProgressColumn(show_speed=True),
            TextColumn("variants/s"),
            TimeElapsedColumn(),
            disable=not progress,
            transient=False,
        )
        task = bar.add_task(f"loading {path.name}", total=None)
        bar.start()

        # The calls of a chunk are split and inserted by a writer thread while
        # the next chunk is read (DuckDB and most numpy work release the GIL);
        # the connection is only ever used by one thread at a time.
        writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="load-vcf")
        pending: list[Future[tuple[int, int]]] = []

        # position of each sample key in the batch's sample_key order (packed bits)
        batch_keys = np.sort(sample_keys)
        pack_pos = np.full(int(batch_keys[-1]) + 1 if n else 1, -1, dtype=np.int64)
        pack_pos[batch_keys] = np.arange(n)
        do_pack = pack and not (want_dp or want_gq)

        def write_calls(chunk: _Chunk, keys: np.ndarray) -> tuple[int, int]:
            import pyarrow as pa

            stored = _not_hom_ref(chunk)
            direct, n_calls = None, 0
            if do_pack:  # plain biallelic records straight from the GT array
                direct, n_calls = _pack_records(chunk, stored, keys, pack_pos[sample_keys], n)
            table = _split_chunk(chunk, keys, sample_keys, want_dp, want_gq, stored)
            n_calls, n_packed = n_calls + table.height, 0
            if do_pack:
                table, packed = _pack_calls(table, pack_pos, n)
                if direct is not None:
                    packed = direct if packed is None else pa.concat_tables([direct, packed])
                    packed = packed.sort_by("variant_key")
                if packed is not None:
                    n_packed = packed.num_rows
                    con.register("_packed_tbl", packed)
                    con.execute(
                        f"INSERT INTO {stage}.genotype_packed"
                        " SELECT ?, variant_key, lo, hi FROM _packed_tbl",
                        [batch_id],
                    )
                    con.unregister("_packed_tbl")
            con.register("_calls_tbl", table)
            con.execute(
                f"INSERT INTO {stage}.genotype_call ({', '.join(table.columns)})"
                f" SELECT {', '.join(table.columns)} FROM _calls_tbl"
            )
            con.unregister("_calls_tbl")
            return n_calls, n_packed

        def wait_writer() -> None:
            while pending:
                n_calls, n_packed = pending.pop().result()
                counts["calls"] += n_calls
                counts["packed"] += n_packed

        def flush(chunk: _Chunk) -> None:
            wait_writer()
            if not chunk.meta:
                return
            keys, n_new = _assign_keys(
                con, path, chunk.meta, batch_id, stage, plan.first_variant_key + counts["new"]
            )
            pending.append(writer.submit(write_calls, chunk, keys))
            counts["variants"] += len(chunk.meta)
            counts["new"] += n_new
            bar.update(task, advance=len(chunk.meta))
            logger.debug(
                "loaded chunk: %d records, %d variant rows so far",
                counts["records"],
                counts["variants"],
            )

        def new_chunk() -> _Chunk:
            return _Chunk(
                gt=np.empty((per_chunk, n, 2), dtype=np.int32),
                dp=np.empty((per_chunk, n), dtype=np.int64) if want_dp else None,
                gq=np.empty((per_chunk, n), dtype=np.int64) if want_gq else None,
            )

        chunk = new_chunk()
        try:
            for line, rec in _iter_records(vcf, path, header_lines):
                _check_record(rec, path, line)
                i = chunk.n
                try:  # htslib's integer GT encoding, decoded per chunk in numpy
                    raw = rec.format("GT", int)
                    if raw is None:
                        raise ValueError("no GT values")
                except Exception as exc:
                    raise ValidationError(
                        f"record {rec.CHROM}:{rec.POS}: cannot read GT: {exc}",
                        file=path,
                        line=line,
                        field="GT",
                    ) from exc
                if raw.shape[1] == 2:
                    chunk.gt[i] = raw
                elif raw.shape[1] == 1:  # every call haploid
                    chunk.gt[i, :, 0] = raw[:, 0]
                    chunk.gt[i, :, 1] = _GT_VECTOR_END
                else:
                    raise ValidationError(
                        f"record {rec.CHROM}:{rec.POS}: ploidy {raw.shape[1]} is not supported"
                        " (haploid and diploid calls only)",
                        file=path,
                        line=line,
                        field="GT",
                    )
                if chunk.dp is not None:
                    chunk.dp[i] = _format_array(rec, "DP", n)
                if chunk.gq is not None:
                    chunk.gq[i] = _format_array(rec, "GQ", n)
                alts = rec.ALT
                qual = rec.QUAL
                filt = rec.FILTER
                filt_s = "PASS" if filt is None else filt
                vid = rec.ID
                bcsq = rec.INFO.get("BCSQ") if has_bcsq else None
                if isinstance(bcsq, tuple):
                    bcsq = ",".join(bcsq)
                for a, alt in enumerate(alts, start=1):
                    gene, csq, bc = parse_bcsq(bcsq, alt, n_alts=len(alts))
                    info = (
                        json.dumps(
                            {f: _info_value(rec, f, info_numbers[f], a) for f in info_fields},
                            default=str,
                        )
                        if info_fields
                        else None
                    )
                    chunk.meta.append(
                        (
                            len(chunk.meta),
                            rec.CHROM,
                            rec.POS,
                            rec.REF,
                            alt,
                            a,
                            len(alts),
                            vid,
                            qual,
                            filt_s,
                            gene,
                            csq,
                            bc,
                            info,
                        )
                    )
                    chunk.row_record.append(i)
                    chunk.row_allele.append(a)
                chunk.n += 1
                counts["records"] += 1
                if chunk.n == per_chunk:
                    flush(chunk)
                    chunk = new_chunk()
            flush(chunk)
            wait_writer()
            if end_of_input is not None:
                end_of_input()
        finally:
            for fut in pending:  # never leave the writer using the connection
                if not fut.cancel():
                    fut.exception()
            writer.shutdown(wait=True)
            bar.stop()
        if counts["records"] == 0:
            raise ValidationError("the VCF has no records: there is nothing to load", file=path)
        _check_no_duplicates(con, stage, path, batch_id, extends=not plan.new_batch)
        with store.transaction() as con:
            plan.check_unchanged(store, path, checksum)
            load_id = store.record_provenance(
                con,
                kind="vcf",
                source=str(path),
                checksum=checksum,
                parameters={"info_fields": info_fields, "call_fields": call_fields},
                tool_version=f"cyvcf2 {_cyvcf2_version()}",
                user=principal.user,
            )
            plan.write_batch(con, names, participants)
            _publish(con, stage)
            con.execute(
                "INSERT INTO genotype_load VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    load_id,
                    batch_id,
                    str(path),
                    checksum,
                    counts["records"],
                    counts["variants"],
                    counts["calls"],
                    dt.datetime.now(dt.UTC).replace(tzinfo=None),
                ],
            )
            audit.record(
                con,
                principal,
                "genotype.load",
                str(path),
                {
                    "batch_id": batch_id,
                    "load_id": load_id,
                    "checksum": checksum,
                    "samples": n,
                    "records": counts["records"],
                    "variants": counts["variants"],
                    "calls": counts["calls"],
                    "packed_variants": counts["packed"],
                },
            )
    seconds = time.perf_counter() - t0
    logger.info(
        "loaded %s: %d samples, %d records, %d variant rows (%d new), %d calls in %.1f s",
        path,
        n,
        counts["records"],
        counts["variants"],
        counts["new"],
        counts["calls"],
        seconds,
    )
    return LoadReport(
        source=str(path),
        batch_id=batch_id,
        load_id=load_id,
        already_loaded=False,
        n_samples=n,
        n_records=counts["records"],
        n_variants=counts["variants"],
        n_new_variants=counts["new"],
        n_calls=counts["calls"],
        n_packed=counts["packed"],
        seconds=seconds,
    )


def _cyvcf2_version() -> str:
    import cyvcf2

    return str(getattr(cyvcf2, "__version__", "unknown"))


def _next(con: duckdb.DuckDBPyConnection, table: str, column: str) -> int:
    row = con.execute(f"SELECT coalesce(max({column}), 0) + 1 FROM {table}").fetchone()
    assert row is not None
    return int(row[0])


#: the tables a load prepares in its scratch database, in publishing order
_STAGED_TABLES = ("variant", "batch_variant", "genotype_packed", "genotype_call")


@dataclass
class _Plan:
    """Where a load's rows go: decided before reading, checked again before publishing."""

    batch_id: int
    sample_keys: np.ndarray
    new_batch: bool
    snapshot: tuple[int, int, int]

    @property
    def first_variant_key(self) -> int:
        """The key the load's first new variant gets."""
        return self.snapshot[2]

    @staticmethod
    def _snapshot(con: duckdb.DuckDBPyConnection) -> tuple[int, int, int]:
        return (
            _next(con, "genotype_batch", "batch_id"),
            _next(con, "genotype_sample", "sample_key"),
            _next(con, "variant", "variant_key"),
        )

    @classmethod
    def of(
        cls,
        con: duckdb.DuckDBPyConnection,
        batch_id: int | None,
        sample_keys: np.ndarray | None,
        n: int,
    ) -> _Plan:
        """Extend the batch of ``sample_keys``, or plan a new batch of ``n`` samples."""
        snap = cls._snapshot(con)
        if batch_id is not None and sample_keys is not None:
            return cls(batch_id, sample_keys, False, snap)
        keys = np.arange(snap[1], snap[1] + n, dtype=np.int32)
        return cls(snap[0], keys, True, snap)

    def check_unchanged(self, store: Store, path: Path, checksum: str) -> None:
        """Raise ConflictError if another load changed the store since :meth:`of`."""
        loaded = store.find_load(kind="vcf", checksum=checksum) is not None
        if loaded or self._snapshot(store.con) != self.snapshot:
            raise ConflictError(
                f"{path}: the store changed while the file was read (another load finished "
                "meanwhile); nothing was written: run the load again"
            )

    def write_batch(
        self, con: duckdb.DuckDBPyConnection, names: Sequence[str], participants: Sequence[str]
    ) -> None:
        """Record a new batch and its samples (nothing to do when extending one)."""
        if not self.new_batch:
            return
        n = len(names)
        con.execute(
            "INSERT INTO genotype_batch VALUES (?, ?, ?)",
            [self.batch_id, n, dt.datetime.now(dt.UTC).replace(tzinfo=None)],
        )
        samples_tbl = pl.DataFrame(
            {
                "sample_key": self.sample_keys,
                "sample_id": pl.Series(list(names), dtype=pl.String),
                "participant_id": pl.Series(list(participants), dtype=pl.String),
                "batch_id": np.full(n, self.batch_id, dtype=np.int32),
                "vcf_column": np.arange(n, dtype=np.int32),
            }
        )
        con.register("_samples_tbl", samples_tbl)
        con.execute("INSERT INTO genotype_sample SELECT * FROM _samples_tbl")
        con.unregister("_samples_tbl")


def _publish(con: duckdb.DuckDBPyConnection, stage: str) -> None:
    """Copy a load's prepared rows from the scratch database into the store.

    One ``INSERT ... SELECT`` per table, inside the load's transaction: DuckDB
    writes such bulk inserts out as it goes, so memory does not follow the
    number of rows (rows added by many small inserts in one transaction would
    be partly held until the commit).
    """
    for table in _STAGED_TABLES:
        con.execute(f"INSERT INTO {table} SELECT * FROM {stage}.{table}")


def _check_no_duplicates(
    con: duckdb.DuckDBPyConnection, stage: str, path: Path, batch_id: int, extends: bool
) -> None:
    """Raise ValidationError if a staged variant appears twice for the batch's samples.

    Twice in one chunk is caught by :func:`_assign_keys`; here: in two chunks
    (the same key staged twice), or in a file loaded before for the same
    samples. Both compare integer keys only.
    """
    row = con.execute(
        f"SELECT variant_key FROM {stage}.batch_variant"
        " GROUP BY variant_key HAVING count(*) > 1 LIMIT 1"
    ).fetchone()
    if row is None and extends:
        row = con.execute(
            f"SELECT s.variant_key FROM {stage}.batch_variant s"
            " SEMI JOIN (SELECT variant_key FROM batch_variant WHERE batch_id = ?) b"
            " USING (variant_key) LIMIT 1",
            [batch_id],
        ).fetchone()
    if row is None:
        return
    dup = con.execute(
        f"SELECT contig, position, ref, alt FROM (FROM variant UNION ALL FROM {stage}.variant)"
        " WHERE variant_key = ? LIMIT 1",
        [row[0]],
    ).fetchone()
    assert dup is not None
    _duplicate_variant(path, dup)


def _duplicate_variant(path: Path, dup: Sequence[Any]) -> NoReturn:
    raise ValidationError(
        f"variant {dup[0]}:{dup[1]} {dup[2]}>{dup[3]} appears twice for these samples "
        "(twice in this file, or also in a file loaded before for the same samples); "
        "merge duplicate records (bcftools norm -d exact) before loading",
        file=path,
    )


def _assign_keys(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    meta: list[tuple[Any, ...]],
    batch_id: int,
    stage: str,
    next_key: int,
) -> tuple[np.ndarray, int]:
    """Stage the chunk's new variants; return the key of each row and how many were new.

    A variant already in the store, or staged by an earlier chunk of this
    load, keeps its key; new ones get the next free keys (from ``next_key``)
    in file order.
    """
    table = pl.DataFrame(
        meta,
        schema={
            "row_no": pl.Int32,
            "contig": pl.String,
            "position": pl.Int32,
            "ref": pl.String,
            "alt": pl.String,
            "allele_index": pl.UInt8,
            "n_alt_alleles": pl.UInt8,
            "variant_id": pl.String,
            "qual": pl.Float32,
            "filter": pl.String,
            "gene": pl.String,
            "consequence": pl.String,
            "bcsq": pl.String,
            "info": pl.String,
        },
        orient="row",
    )
    twice = table.select("contig", "position", "ref", "alt").is_duplicated()
    if twice.any():
        _duplicate_variant(path, table.filter(twice).row(0)[1:5])
    con.register("_chunk_variant", table)
    keys_tbl = con.execute(
        "WITH m AS (SELECT c.row_no, coalesce(v.variant_key, s.variant_key) AS variant_key"
        " FROM _chunk_variant c"
        " LEFT JOIN variant v ON v.contig = c.contig AND v.position = c.position"
        " AND v.ref = c.ref AND v.alt = c.alt"
        f" LEFT JOIN {stage}.variant s ON s.contig = c.contig AND s.position = c.position"
        " AND s.ref = c.ref AND s.alt = c.alt)"
        " SELECT m.row_no, coalesce(m.variant_key, ? - 1 + row_number() OVER"
        " (PARTITION BY m.variant_key IS NULL ORDER BY m.row_no)) AS variant_key,"
        " m.variant_key IS NULL AS is_new FROM m ORDER BY m.row_no",
        [next_key],
    ).pl()
    keys = keys_tbl["variant_key"].to_numpy().astype(np.int64)
    is_new = keys_tbl["is_new"].to_numpy().astype(bool)
    new_tbl = pl.DataFrame(
        {
            "row_no": np.flatnonzero(is_new).astype(np.int32),
            "variant_key": keys[is_new].astype(np.int32),
        }
    )
    con.register("_new_keys", new_tbl)
    con.execute(
        f"INSERT INTO {stage}.variant SELECT k.variant_key, c.contig, c.position, c.ref, c.alt,"
        " c.allele_index, c.n_alt_alleles, c.variant_id, c.qual, c.filter, c.gene,"
        " c.consequence, c.bcsq, c.info FROM _new_keys k JOIN _chunk_variant c USING (row_no)"
        " ORDER BY k.variant_key"
    )
    con.unregister("_chunk_variant")
    con.unregister("_new_keys")
    bv = pl.DataFrame(
        {
            "batch_id": np.full(len(keys), batch_id, dtype=np.int32),
            "variant_key": keys.astype(np.int32),
        }
    )
    con.register("_bv_tbl", bv)
    con.execute(f"INSERT INTO {stage}.batch_variant SELECT * FROM _bv_tbl")
    con.unregister("_bv_tbl")
    return keys, int(is_new.sum())


# --------------------------------------------------------------------------- verify
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
    batch_id, load_id = int(row[0]), int(row[1])
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
    n_stored = con.execute(
        "SELECT n_variants FROM genotype_load WHERE load_id = ?", [load_id]
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
