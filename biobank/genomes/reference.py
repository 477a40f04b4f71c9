"""The center's reference genome: its contigs, against which every load is checked.

A center calls all its genomes against one assembly. Once its FASTA index is
configured (``biobank store reference genome.fa``, which reads ``genome.fa.fai``),
a load is refused when the VCF header declares a contig of that name with
another length (the file was called against another assembly, e.g. GRCh37
instead of GRCh38), or when a record lies on a contig the reference does not
have. Without a configured reference only the header's own ``##contig`` lines
are checked (:func:`biobank.genomes.records.check_alleles`).

The contigs live in the ``reference_contig`` table; setting a new reference
replaces them in one transaction and is refused while stored variants lie on a
contig that the new reference lacks.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from biobank.core import audit
from biobank.core.access import Permission, Principal, require
from biobank.core.errors import ConflictError, ValidationError
from biobank.core.store import Store

__all__ = [
    "check_header_contigs",
    "check_record_contigs",
    "check_staged",
    "read_fai",
    "reference_contigs",
    "set_reference",
]


def _fai_path(path: Path) -> Path:
    if path.suffix == ".fai":
        return path
    fai = path.with_name(path.name + ".fai")
    if not fai.is_file():
        raise ValidationError(
            f"{path} has no FASTA index {fai.name}: index it with 'samtools faidx {path}', "
            "or give the .fai file itself",
            file=path,
        )
    return fai


def read_fai(path: str | Path) -> dict[str, int]:
    """Read the contig names and lengths of a FASTA index (``samtools faidx``).

    Parameters
    ----------
    path
        The ``.fai`` file, or the FASTA file next to which it lies.

    Returns
    -------
    dict
        Contig name -> length in bases, in the index's order.

    Raises
    ------
    ValidationError
        A missing file, a line without a name and a positive integer length (the
        message names the line), or a contig listed twice.
    """
    fai = _fai_path(Path(path))
    if not fai.is_file():
        raise ValidationError(f"FASTA index {fai} does not exist", file=fai)
    out: dict[str, int] = {}
    with open(fai, encoding="utf-8", errors="replace") as fh:
        for line, text in enumerate(fh, start=1):
            cols = text.rstrip("\n").split("\t")
            if not text.strip():
                continue
            if len(cols) < 2 or not cols[0] or not cols[1].isdigit() or int(cols[1]) <= 0:
                raise ValidationError(
                    "not a FASTA index line: expected NAME<TAB>LENGTH<TAB>... "
                    "(as written by samtools faidx)",
                    file=fai,
                    line=line,
                    value=text.strip()[:80],
                )
            if cols[0] in out:
                raise ValidationError(
                    f"contig {cols[0]!r} is listed twice", file=fai, line=line, field="NAME"
                )
            out[cols[0]] = int(cols[1])
    if not out:
        raise ValidationError(f"FASTA index {fai} lists no contigs", file=fai)
    return out


def reference_contigs(con: duckdb.DuckDBPyConnection) -> dict[str, int] | None:
    """The configured reference's contigs (name -> length), or ``None`` when none is set."""
    rows = con.execute("SELECT contig, length FROM reference_contig ORDER BY ordinal").fetchall()
    return {c: int(n) for c, n in rows} or None


def set_reference(store: Store, principal: Principal, path: str | Path) -> dict[str, int]:
    """Configure the center's reference from a FASTA index; replaces an earlier one.

    Returns
    -------
    dict
        The contigs now configured.

    Raises
    ------
    AccessDenied
        The principal may not load data.
    ValidationError
        A bad index (see :func:`read_fai`).
    ConflictError
        Stored variants lie on contigs that the new reference lacks (named).
    """
    require(principal, Permission.LOAD_DATA)
    fai = _fai_path(Path(path))
    contigs = read_fai(fai)
    digest = hashlib.sha256(fai.read_bytes()).hexdigest()
    con = store.con
    stored = [c for (c,) in con.execute("SELECT DISTINCT contig FROM variant").fetchall()]
    lost = sorted(set(stored) - set(contigs))
    if lost:
        raise ConflictError(
            f"the store holds variants on contig(s) {', '.join(lost[:10])} that {fai} does not "
            "have: this is not the reference the genomes were called against"
        )
    now = datetime.now(UTC).replace(tzinfo=None)
    with store.transaction():
        con.execute("DELETE FROM reference_contig")
        con.executemany(
            "INSERT INTO reference_contig VALUES (?, ?, ?, ?, ?, ?)",
            [
                (i, name, n, str(fai), digest, now)
                for i, (name, n) in enumerate(contigs.items(), start=1)
            ],
        )
        audit.record(
            con,
            principal,
            "reference.set",
            str(fai),
            {"contigs": len(contigs), "sha256": digest},
        )
    return contigs


def check_header_contigs(
    path: Path, lengths: Mapping[str, int | None], reference: Mapping[str, int]
) -> None:
    """Refuse a header whose ``##contig`` lengths differ from the reference's.

    Raises
    ------
    ValidationError
        Naming the first contig whose length differs and both lengths.
    """
    for name, n in lengths.items():
        ref = reference.get(name)
        if n is not None and ref is not None and n != ref:
            raise ValidationError(
                f"contig {name!r} is {n:,} bp in the VCF header but {ref:,} bp in the center's "
                "reference: the file was called against another assembly; lift it over or "
                "call it again against the center's reference",
                file=path,
                field="##contig",
                value=name,
            )


def check_record_contigs(
    path: Path,
    contigs: Iterable[tuple[str, int]],
    reference: Mapping[str, int],
    *,
    line_of: Mapping[tuple[str, int], int | None] | None = None,
) -> None:
    """Refuse records on contigs that the reference lacks.

    ``contigs``: (contig, first position) pairs of the records.

    Raises
    ------
    ValidationError
        Naming the contig, the first such record and its line where known.
    """
    for name, pos in contigs:
        if name not in reference:
            known = ", ".join(list(reference)[:10])
            raise ValidationError(
                f"record {name}:{pos}: contig {name!r} is not in the center's reference "
                f"(contigs: {known}{', ...' if len(reference) > 10 else ''}); remove the record "
                "or configure the reference it was called against",
                file=path,
                line=(line_of or {}).get((name, pos)),
                field="CHROM",
                value=name,
            )


def check_staged(
    con: duckdb.DuckDBPyConnection,
    staged: Sequence[tuple[str, Path, Mapping[str, int | None]]],
    line_of: Callable[[Path, str, int], int | None],
) -> None:
    """Check staged regions against the reference (when one is configured) before a publish.

    ``staged``: (attached scratch database, source file, its header's contig
    lengths) of each region; ``line_of`` finds a record's line for the message.
    """
    ref = reference_contigs(con)
    if ref is None:
        return
    for alias, source, lengths in staged:
        check_header_contigs(source, lengths, ref)
        firsts = con.execute(
            f"SELECT contig, min(position) FROM {alias}.stage.variant GROUP BY contig"
            " ORDER BY min(variant_key)"
        ).fetchall()
        bad = [(c, int(p)) for c, p in firsts if c not in ref]
        if bad:
            lines = {bad[0]: line_of(source, *bad[0])}
            check_record_contigs(source, bad, ref, line_of=lines)
