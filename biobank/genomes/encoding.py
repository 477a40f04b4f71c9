"""The stored genotype encoding: call flags, htslib GT decoding and packed bit planes.

The loader (:mod:`biobank.genomes.load`) writes with this module; the readers
(:mod:`biobank.genomes.packed`, :mod:`biobank.genomes.reader`) read with it.

Genotype encoding in ``genotype_call`` (one row per variant row and sample):

* ``dosage``: copies of this ALT allele (0, 1 or 2);
* ``flags`` (bits, see :data:`FLAG_MISSING` ...): missing, haploid, phased,
  carries another ALT allele of the record, half-call, first allele is this ALT.

Variants with many plain calls are stored instead as two bit planes per batch
(``genotype_packed``, see ``biobank/core/schema/050_packed_calls.sql``): code
``lo + 2 hi`` per sample, 0 hom-ref, 1 ``0/1``, 2 ``1/1``, 3 ``./.``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

__all__ = [
    "CALL_FIELDS",
    "FLAG_FIRST_ALLELE",
    "FLAG_HALF_CALL",
    "FLAG_HAPLOID",
    "FLAG_MISSING",
    "FLAG_OTHER_ALT",
    "FLAG_PHASED",
    "GT_VECTOR_END",
    "PACKED_FLAGS",
    "PACK_MIN_FRACTION_INV",
    "Chunk",
    "decode_alleles",
    "not_hom_ref",
    "pack_calls",
    "pack_records",
    "split_chunk",
    "unpack_bits",
    "word_lists",
]

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


@dataclass
class Chunk:
    """Records of one chunk, before splitting into variant rows."""

    gt: np.ndarray  # (records, samples, 2) int32: htslib's GT encoding (see decode_alleles)
    dp: np.ndarray | None  # (records, samples) int32, <0 missing
    gq: np.ndarray | None
    meta: list[tuple[Any, ...]] = field(default_factory=list)  # one tuple per variant row
    row_record: list[int] = field(default_factory=list)
    row_allele: list[int] = field(default_factory=list)
    #: per record: its line in the file (None if not known), CHROM and POS
    record_where: list[tuple[int | None, str, int]] = field(default_factory=list)
    n: int = 0

    def call_pairs(self) -> np.ndarray:
        """Each call's two int32 GT values read as one int64 (records x samples, a view)."""
        return self.gt[: self.n].view(np.int64)[:, :, 0]

    def record_rows(self) -> tuple[np.ndarray, np.ndarray]:
        """Per record: how many variant rows (ALT alleles) it has, and its first row."""
        n_alts = np.bincount(np.asarray(self.row_record, dtype=np.int64), minlength=self.n)
        return n_alts, np.cumsum(n_alts) - n_alts


#: htslib's ``bcf_int32_vector_end``: the absent second allele of a haploid call
GT_VECTOR_END = -(2**31) + 1
#: ``0/0`` and ``0|0`` in htslib's encoding, each call's two int32 read as one int64
_HOM_REF = np.array([[2, 2], [2, 3]], dtype=np.int32).view(np.int64)[:, 0]


def decode_alleles(raw0: np.ndarray, raw1: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
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
    absent = raw1 == GT_VECTOR_END
    a0 = np.maximum((raw0 >> 1) - 1, -1).astype(np.int16)
    a1 = np.where(absent, -2, np.maximum((raw1 >> 1) - 1, -1)).astype(np.int16)
    return a0, a1, (raw1 & 1) == 1


def not_hom_ref(chunk: Chunk) -> np.ndarray:
    """Which calls (records x samples) are stored: all but ``0/0`` and ``0|0``.

    A call's two int32 are compared as one int64 (contiguous, a third of the
    work of four strided passes).
    """
    pair = chunk.call_pairs()
    return (pair != _HOM_REF[0]) & (pair != _HOM_REF[1])


def split_chunk(
    chunk: Chunk,
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
    ``stored`` is :func:`not_hom_ref` of the chunk, without the records
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
    a0, a1, phased = decode_alleles(raw0[rec_i, si], raw1[rec_i, si])
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


def word_lists(bits: np.ndarray, n_words: int) -> Any:
    """Arrow ``list<uint64>`` of each row of ``bits``: bit i = bit i % 64 of word i // 64."""
    import pyarrow as pa

    words = np.packbits(bits, axis=1, bitorder="little").view("<u8").reshape(-1)
    offsets = np.arange(0, len(words) + 1, n_words, dtype=np.int32)
    return pa.ListArray.from_arrays(pa.array(offsets), pa.array(words, type=pa.uint64()))


#: the plain calls of a packed variant in htslib's encoding, each call's two
#: int32 read as one int64: ``0/1``, ``1/1`` and ``./.``
_HET, _HOM_ALT, _NO_CALL = np.array([[2, 4], [4, 4], [0, 0]], dtype=np.int32).view(np.int64)[:, 0]


def pack_records(
    chunk: Chunk, stored: np.ndarray, keys: np.ndarray, col_pos: np.ndarray, n_samples: int
) -> tuple[Any, int]:
    """Pack the chunk's biallelic records whose calls are all plain, from the GT array.

    The same choice and bit planes as :func:`pack_calls` makes from sparse
    rows, without making the rows: a record with one ALT is packed when every
    call is ``0/0``, ``0|0``, ``0/1``, ``1/1`` or ``./.`` and at least
    ``n_samples / PACK_MIN_FRACTION_INV`` of them are not hom-ref.

    Parameters
    ----------
    chunk
        The chunk's records.
    stored
        :func:`not_hom_ref` of the chunk; the packed records' rows are set
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
        The bit planes as for :func:`pack_calls` (``None`` if no record is
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
        planes.append(word_lists(full, n_words))
    table = pa.table(
        {
            "variant_key": pa.array(keys[first_row[records]].astype(np.int32)),
            "lo": planes[0],
            "hi": planes[1],
        }
    )
    return table, int(n_stored[records].sum())


def pack_calls(
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
        Sparse rows from :func:`split_chunk` (``variant_key, sample_key,
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
            "lo": word_lists(lo, n_words),
            "hi": word_lists(hi, n_words),
        }
    )
    return table.filter(pl.Series(~row_pack)), packed


# --------------------------------------------------------------------------- reading
def unpack_bits(words: np.ndarray, n: int) -> np.ndarray:
    """(v, n) uint8 bits of packed planes (v, words) uint64."""
    return np.unpackbits(
        words.astype("<u8", copy=False).view(np.uint8), axis=1, count=n, bitorder="little"
    )


#: flags of the packed codes 0 (hom-ref), 1 (0/1), 2 (1/1), 3 (./.)
PACKED_FLAGS = np.array([0, 0, FLAG_FIRST_ALLELE, FLAG_MISSING], dtype=np.uint8)
