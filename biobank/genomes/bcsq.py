"""bcftools csq (INFO/BCSQ) annotations: the consequence severity order and
the choice of a variant row's gene and consequence.
"""

from __future__ import annotations

__all__ = ["SEVERITY", "consequence_rank", "parse_bcsq"]

#: bcftools csq consequences from most to least severe (for choosing a variant's gene).
SEVERITY = [
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
_RANK = {name: i for i, name in enumerate(SEVERITY)}


def consequence_rank(consequence: str) -> int:
    """Severity rank of a consequence (0 most severe; ``&``-joined: its most severe part).

    Unknown consequences rank after every known one.

    Examples
    --------
    >>> consequence_rank("missense&splice_region") == SEVERITY.index("missense")
    True
    """
    return min((_RANK.get(c, len(_RANK)) for c in consequence.split("&")), default=len(_RANK))


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
        rank = consequence_rank(csq)
        if best is None or rank < best[0]:
            best = (rank, gene, csq)
    if best is None:
        return None, None, None
    return best[1], best[2], ",".join(entries)
