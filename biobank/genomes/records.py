"""Reading VCF/BCF records for the loader: the ``bcftools view`` stream, the
header checks, record iteration with error positions, per-record checks and
turning a record into a chunk row (:class:`biobank.genomes.encoding.Chunk`).
"""

from __future__ import annotations

import json
import logging
import re
import subprocess
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from biobank.core.errors import ValidationError
from biobank.genomes.bcsq import parse_bcsq
from biobank.genomes.encoding import GT_VECTOR_END, Chunk
from biobank.genomes.reference import check_header_contigs, check_record_contigs

__all__ = [
    "BcfStream",
    "Header",
    "add_record",
    "check_allele_indices",
    "check_alleles",
    "check_record",
    "contig_lengths",
    "iter_records",
    "read_header",
]

logger = logging.getLogger(__name__)


def info_value(rec: Any, name: str, number: str, allele: int) -> Any:
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


def format_array(rec: Any, name: str, n_samples: int) -> np.ndarray:
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


def iter_records(vcf: Any, path: Path, header_lines: int) -> Iterator[tuple[int, Any]]:
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


_CONTIG_LINE = re.compile(r"^##contig=<(.*)>\s*$", re.MULTILINE)
_CONTIG_ID = re.compile(r"(?:^|,)ID=([^,>]+)")
_CONTIG_LENGTH = re.compile(r"(?:^|,)length=(\d+)")


def contig_lengths(raw_header: str) -> dict[str, int | None]:
    """The ``##contig`` lines of a header: ID -> length (``None`` where not given)."""
    out: dict[str, int | None] = {}
    for body in _CONTIG_LINE.findall(raw_header):
        m = _CONTIG_ID.search(body)
        if m is None:
            continue
        n = _CONTIG_LENGTH.search(body)
        out[m.group(1)] = int(n.group(1)) if n else None
    return out


#: REF: bases and N (VCF 4.x, case-insensitive)
_REF = re.compile(r"[ACGTNacgtn]+")
#: ALT: bases and N, a symbolic allele <...>, the deletion allele *, or a breakend
_ALT = re.compile(
    r"[ACGTNacgtn]+|\*|<[^<>\s]+>"
    r"|[ACGTNacgtn]*[\[\]][^\[\]\s]+[\[\]][ACGTNacgtn]*|\.[ACGTNacgtn]+|[ACGTNacgtn]+\."
)


def check_alleles(rec: Any, path: Path, line: int | None, header: Header) -> None:
    """Check the contig against the header and REF/ALT against the VCF alphabet.

    Raises
    ------
    ValidationError
        Naming the line, ``contig:pos``, the field and what is allowed.
    """
    where = f"record {rec.CHROM}:{rec.POS}"
    if header.reference is not None and rec.CHROM not in header.reference:
        check_record_contigs(
            path, [(rec.CHROM, rec.POS)], header.reference, line_of={(rec.CHROM, rec.POS): line}
        )
    if rec.CHROM not in header.contigs:
        declared = ", ".join(sorted(header.contigs)[:10]) or "none"
        raise ValidationError(
            f"{where}: contig {rec.CHROM!r} is not declared in the header (##contig lines: "
            f"{declared}); declare it (bcftools reheader) or remove the record",
            file=path,
            line=line,
            field="CHROM",
            value=rec.CHROM,
        )
    if _REF.fullmatch(rec.REF) is None:
        raise ValidationError(
            f"{where}: REF {rec.REF!r} is not a VCF reference allele (bases A, C, G, T or N only)",
            file=path,
            line=line,
            field="REF",
            value=rec.REF,
        )
    for alt in rec.ALT:
        if _ALT.fullmatch(alt) is None:
            raise ValidationError(
                f"{where}: ALT {alt!r} is not a VCF allele (bases A, C, G, T, N; a symbolic "
                "allele <...>; * for a deletion; or a breakend)",
                file=path,
                line=line,
                field="ALT",
                value=alt,
            )


def check_record(rec: Any, path: Path, line: int | None) -> None:
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


class BcfStream:
    """``bcftools view -Ou`` of a VCF piped into :mod:`cyvcf2`.

    htslib's text parsing then runs in the bcftools process, in parallel with
    the splitting and inserting done here (cyvcf2 reads the uncompressed BCF
    stream at almost no cost). The records are the same ``bcf1_t`` values
    cyvcf2 would parse from the file itself.
    """

    def __init__(self, proc: subprocess.Popen[bytes], vcf: Any, stderr: Any, path: Path) -> None:
        self.proc, self.vcf, self.stderr, self.path = proc, vcf, stderr, path

    @classmethod
    def open(cls, path: Path, threads: int) -> BcfStream | None:
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


def header_numbers(vcf: Any, kind: str) -> dict[str, str]:
    out = {}
    for h in vcf.header_iter():
        info = h.info()
        if info.get("HeaderType") == kind and "ID" in info:
            out[info["ID"]] = info.get("Number", ".")
    return out


@dataclass(frozen=True)
class Header:
    """What a VCF header says, checked against the fields a load asks for."""

    names: list[str]  # sample columns
    info_numbers: dict[str, str]  # INFO id -> Number
    has_bcsq: bool
    want_dp: bool
    want_gq: bool
    lines: int  # header lines (records start after them)
    contigs: frozenset[str] = frozenset()  # the contigs the header declares (##contig)
    contig_lengths: Mapping[str, int | None] = field(default_factory=dict)  # ##contig length=
    reference: Mapping[str, int] | None = None  # the center's reference contigs, if configured


def _header_lines(path: Path, vcf: Any) -> int:
    """Header lines of the file itself (htslib may add lines, e.g. ``##FILTER=<ID=PASS>``)."""
    import gzip

    if path.suffix != ".bcf":
        try:
            with open(path, "rb") as fh:
                gz = fh.read(2) == b"\x1f\x8b"
            with (gzip.open if gz else open)(path, "rb") as fh:
                n = 0
                for text in fh:
                    if not text.startswith(b"#"):
                        break
                    n += 1
                return n
        except (OSError, EOFError):
            pass
    return len(vcf.raw_header.rstrip("\n").split("\n"))


def read_header(
    vcf: Any,
    path: Path,
    info_fields: Sequence[str],
    call_fields: Sequence[str],
    *,
    reference: Mapping[str, int] | None = None,
) -> Header:
    """Check the header (samples, GT, the asked-for INFO/FORMAT fields); describe it.

    ``reference``: the center's reference contigs (:mod:`biobank.genomes.reference`);
    a ``##contig`` of another length is refused, and records are then checked
    against it too (:func:`check_alleles`).
    """
    names = list(vcf.samples)
    if not names:
        raise ValidationError(
            "the VCF has no sample columns: there are no genotypes to load", file=path
        )
    info_numbers = header_numbers(vcf, "INFO")
    format_ids = set(header_numbers(vcf, "FORMAT"))
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
    lengths = contig_lengths(vcf.raw_header)
    if reference is not None:
        check_header_contigs(path, lengths, reference)
    return Header(
        names=names,
        info_numbers=info_numbers,
        has_bcsq="BCSQ" in info_numbers,
        want_dp="DP" in call_fields,
        want_gq="GQ" in call_fields,
        lines=_header_lines(path, vcf),
        contigs=frozenset(lengths),
        contig_lengths=lengths,
        reference=reference,
    )


def check_allele_indices(chunk: Chunk, path: Path) -> None:
    """Check every call's allele indices against its record's ALTs, for a chunk at once.

    Called before the chunk's calls are written (one numpy pass over the chunk
    instead of one per record).

    Raises
    ------
    ValidationError
        For the first record of the chunk with a GT allele index beyond its ALTs
        (e.g. ``0/5`` with one ALT), naming its line, ``contig:pos`` and GT.
    """
    n = chunk.n
    if n == 0 or chunk.gt.shape[1] == 0:
        return
    # htslib's encoding: (allele + 1) << 1 | phased, so the highest value has the
    # highest allele index (missing is 0, vector_end < 0)
    top = chunk.gt[:n].reshape(n, -1).max(axis=1)
    n_alts, first = chunk.record_rows()
    bad = np.flatnonzero((top >> 1) - 1 > n_alts)
    if bad.size == 0:
        return
    i = int(bad[0])
    line, chrom, pos = chunk.record_where[i]
    k, allele = int(n_alts[i]), int(top[i] >> 1) - 1
    alts = ",".join(str(m[4]) for m in chunk.meta[int(first[i]) : int(first[i]) + k])
    raise ValidationError(
        f"record {chrom}:{pos}: a genotype calls allele {allele} but the record has {k} "
        f"ALT allele(s) ({alts}); GT allele indices must be 0..{k}",
        file=path,
        line=line,
        field="GT",
    )


def add_record(
    chunk: Chunk, rec: Any, path: Path, line: int | None, header: Header, info_fields: list[str]
) -> None:
    """Put a record's calls in the chunk's next row and its variant rows' columns in ``meta``."""
    i = chunk.n
    n = len(header.names)
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
    alts = rec.ALT
    # the allele indices are checked against the ALTs per chunk (check_allele_indices)
    chunk.record_where.append((line, rec.CHROM, rec.POS))
    if raw.shape[1] == 2:
        chunk.gt[i] = raw
    elif raw.shape[1] == 1:  # every call haploid
        chunk.gt[i, :, 0] = raw[:, 0]
        chunk.gt[i, :, 1] = GT_VECTOR_END
    else:
        raise ValidationError(
            f"record {rec.CHROM}:{rec.POS}: ploidy {raw.shape[1]} is not supported"
            " (haploid and diploid calls only)",
            file=path,
            line=line,
            field="GT",
        )
    if chunk.dp is not None:
        chunk.dp[i] = format_array(rec, "DP", n)
    if chunk.gq is not None:
        chunk.gq[i] = format_array(rec, "GQ", n)
    qual = rec.QUAL
    filt = rec.FILTER
    filt_s = "PASS" if filt is None else filt
    vid = rec.ID
    bcsq = rec.INFO.get("BCSQ") if header.has_bcsq else None
    if isinstance(bcsq, tuple):
        bcsq = ",".join(bcsq)
    for a, alt in enumerate(alts, start=1):
        gene, csq, bc = parse_bcsq(bcsq, alt, n_alts=len(alts))
        info = (
            json.dumps(
                {f: info_value(rec, f, header.info_numbers[f], a) for f in info_fields},
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
