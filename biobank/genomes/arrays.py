"""Genotyping-array data: importing a PLINK 2 fileset (``.pgen``/``.pvar``/``.psam``).

Centers hold array batches as well as sequenced genomes. :func:`load_pgen`
reads a PLINK 2 fileset with :mod:`pgenlib` (the genotypes) and the ``.pvar`` and
``.psam`` text files, and loads it as one batch through the VCF loader's own
machinery (:mod:`biobank.genomes.load`): the same checks (contigs, the REF/ALT
alphabet, allele indices), the same encoding (sparse and packed calls), the
same all-or-nothing publish and provenance (kind ``pgen``). Sample names are
the ``.psam`` IIDs (registered sequencing/array sample ids).

PLINK 2 keeps hardcalls only: every call is diploid (haploid calls of a VCF
are stored by plink2 as homozygous), phase is kept where the ``.pgen`` has it.
Dosages and FORMAT fields are not imported.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from biobank.core.access import Permission, Principal, require
from biobank.core.errors import StoreError, ValidationError
from biobank.core.store import Store, file_checksum
from biobank.genomes.load import LoadReport, _check_sample_names, _load
from biobank.genomes.partitions import is_partitioned
from biobank.genomes.records import Header

__all__ = ["load_pgen", "read_psam", "read_pvar"]

_BLOCK = 4096  # variants read from the .pgen at a time


def _fileset(path: Path) -> tuple[Path, Path, Path]:
    stem = path.with_suffix("") if path.suffix in {".pgen", ".pvar", ".psam"} else path
    files = tuple(stem.with_name(stem.name + ext) for ext in (".pgen", ".pvar", ".psam"))
    for f in files:
        if not f.is_file():
            raise ValidationError(
                f"PLINK 2 fileset {stem}: {f.name} is missing (need .pgen, .pvar and .psam; "
                "make them with plink2 --make-pgen)",
                file=f,
            )
    return files  # type: ignore[return-value]


def read_psam(path: Path) -> list[str]:
    """The sample IDs (IID column) of a ``.psam`` (or ``.fam``-like file without header)."""
    lines = [ln for ln in path.read_text().splitlines() if ln.strip()]
    head = [ln for ln in lines if ln.startswith("#")]
    body = [ln for ln in lines if not ln.startswith("#")]
    col = 1
    if head:
        cols = head[-1].lstrip("#").split()
        if "IID" not in cols:
            raise ValidationError("the .psam header has no IID column", file=path, line=1)
        col = cols.index("IID")
    elif body and len(body[0].split()) < 2:
        col = 0
    return [ln.split()[col] for ln in body]


@dataclass
class Pvar:
    """The variant lines of a ``.pvar``."""

    header_lines: int
    contigs: frozenset[str]  # declared by ##contig lines, or else those used
    rows: list[list[str]] = field(default_factory=list)  # CHROM POS ID REF ALT [QUAL FILTER]
    columns: list[str] = field(default_factory=list)


def read_pvar(path: Path) -> Pvar:
    """Read a ``.pvar`` (a ``#CHROM`` header line is required; no ``.bim`` files)."""
    declared, rows, header, columns = set(), [], 0, []
    with open(path, encoding="utf-8") as fh:
        for text in fh:
            if text.startswith("##"):
                header += 1
                if text.startswith("##contig=<ID="):
                    declared.add(text[len("##contig=<ID=") :].split(",")[0].rstrip(">\n"))
                continue
            if text.startswith("#CHROM"):
                header += 1
                columns = text.lstrip("#").split()
                continue
            if not columns:
                raise ValidationError(
                    "the .pvar has no #CHROM header line (a .bim file? convert it with "
                    "plink2 --bfile X --make-pgen)",
                    file=path,
                    line=header + 1,
                )
            rows.append(text.rstrip("\n").split("\t"))
    used = {r[0] for r in rows}
    # plink2 writes chromosome codes without 'chr' (1, X) under ##contig=<ID=chr1>
    # lines unless --output-chr chrM: name them as declared, as sequenced batches do
    rename = {c: f"chr{c}" for c in used if c not in declared and f"chr{c}" in declared}
    if rename:
        for r in rows:
            r[0] = rename.get(r[0], r[0])
    return Pvar(header, frozenset(declared or used), rows, columns)


class _Record:
    """A ``.pvar`` line and its calls, with the attributes the VCF loader reads."""

    __slots__ = ("ALT", "CHROM", "FILTER", "ID", "INFO", "POS", "QUAL", "REF", "_gt")

    def __init__(
        self, row: list[str], columns: list[str], gt: np.ndarray, path: Path, line: int
    ) -> None:
        get = dict(zip(columns, row, strict=False))
        try:
            self.POS = int(get["POS"])
        except (KeyError, ValueError) as exc:
            raise ValidationError(
                f"POS {get.get('POS')!r} is not a number", file=path, line=line, field="POS"
            ) from exc
        self.CHROM, self.REF = get.get("CHROM", ""), get.get("REF", "")
        self.ALT = [a for a in get.get("ALT", ".").split(",") if a != "."] or ["."]
        vid = get.get("ID", ".")
        self.ID = None if vid == "." else vid
        qual = get.get("QUAL", ".")
        self.QUAL = None if qual == "." else float(qual)
        filt = get.get("FILTER", ".")
        self.FILTER = None if filt in {".", "PASS"} else filt
        self.INFO: dict[str, Any] = {}
        self._gt = gt

    def format(self, name: str, kind: Any = None) -> np.ndarray | None:
        """``GT`` in htslib's integer encoding (as cyvcf2's ``format("GT", int)``)."""
        return self._gt if name == "GT" else None


def _records(pgen: Path, pvar_path: Path, pvar: Pvar, n: int) -> Iterator[tuple[int | None, Any]]:
    """Each variant of the fileset as ``(pvar line, record)``, read in blocks."""
    import pgenlib  # type: ignore[import-untyped]

    n_alts = np.array([len(r[4].split(",")) if len(r) > 4 else 1 for r in pvar.rows])
    offsets = None
    if (n_alts > 1).any():
        offsets = np.concatenate([[0], np.cumsum(n_alts + 1)]).astype(np.uintp)
    reader = pgenlib.PgenReader(
        bytes(pgen), raw_sample_ct=n, variant_ct=len(pvar.rows), allele_idx_offsets=offsets
    )
    try:
        for start in range(0, len(pvar.rows), _BLOCK):
            end = min(start + _BLOCK, len(pvar.rows))
            alleles = np.empty((end - start, 2 * n), dtype=np.int32)
            phased = np.empty((end - start, n), dtype=np.uint8)
            reader.read_alleles_and_phasepresent_range(start, end, alleles, phased)
            a = alleles.reshape(end - start, n, 2)
            gt = np.where(a < 0, 0, (a + 1) << 1).astype(np.int32)
            # pgenlib's phase flags mean something for heterozygous calls only
            het = (a[:, :, 0] != a[:, :, 1]) & (a[:, :, 0] >= 0) & (a[:, :, 1] >= 0)
            gt[:, :, 1] |= (phased.astype(bool) & het).astype(np.int32)
            for i in range(end - start):
                line = pvar.header_lines + start + i + 1
                yield line, _Record(pvar.rows[start + i], pvar.columns, gt[i], pvar_path, line)
    finally:
        reader.close()


def load_pgen(
    store: Store,
    path: str | Path,
    *,
    principal: Principal,
    pack: bool = True,
    chunk_records: int | None = None,
) -> LoadReport:
    """Load a PLINK 2 fileset (e.g. a genotyping-array batch) as one batch, all or nothing.

    Parameters
    ----------
    store
        A single-file store (partitioned stores load VCF/BCF only, for now).
    path
        The ``.pgen`` (or the fileset's prefix); ``.pvar`` and ``.psam`` beside it.
    principal
        Who loads (needs ``LOAD_DATA``).
    pack, chunk_records
        As for :func:`biobank.genomes.load.load_vcf`.

    Returns
    -------
    LoadReport
        What was loaded; ``already_loaded`` if the same ``.pgen`` (by checksum) was.

    Raises
    ------
    ValidationError
        A missing file, unregistered or repeated sample, or a bad variant (the
        message names the ``.pvar`` line); nothing is written.
    """
    import pgenlib

    require(principal, Permission.LOAD_DATA)
    pgen, pvar_path, psam = _fileset(Path(path))
    if store.in_transaction:
        raise StoreError("load_pgen commits its own transaction")
    if is_partitioned(store.con):
        raise StoreError(
            f"{store.path} is partitioned: load the array batch as a VCF/BCF "
            f"(plink2 --pfile {pgen.with_suffix('')} --export bcf) with load-vcf"
        )
    t0 = time.perf_counter()
    checksum = file_checksum(pgen)
    earlier = store.find_load(kind="pgen", checksum=checksum)
    if earlier is not None:
        return LoadReport(str(pgen), 0, earlier, already_loaded=True)
    names = read_psam(psam)
    _check_sample_names(psam, names)
    pvar = read_pvar(pvar_path)
    if not pvar.rows:
        raise ValidationError("the .pvar lists no variants: nothing to load", file=pvar_path)
    header = Header(
        names=names,
        info_numbers={},
        has_bcsq=False,
        want_dp=False,
        want_gq=False,
        lines=pvar.header_lines,
        contigs=pvar.contigs,
    )
    records = _records(pgen, pvar_path, pvar, len(names))
    tool = f"pgenlib {getattr(pgenlib, '__version__', 'unknown')}"
    try:
        return _load(
            store, None, pvar_path, checksum=checksum, principal=principal, info_fields=[],
            call_fields=[], chunk_records=chunk_records, progress=False, pack=pack, t0=t0,
            source=(header, records, "pgen", tool),
        )  # fmt: skip
    except RuntimeError as exc:  # pgenlib's errors: a corrupt or mismatched .pgen
        raise ValidationError(f"cannot read {pgen}: {exc}", file=pgen) from exc
