"""Variant filters: which variants a query or a statistic looks at, and the
(sgkit-style) names of the variant columns in results.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import polars as pl

from biobank.core.errors import ValidationError

__all__ = [
    "DAMAGING_CONSEQUENCES",
    "VARIANT_COLUMNS",
    "VariantFilter",
    "canonical_contig_sql",
    "rename_variant_columns",
]

#: bcftools csq consequences counted as damaging (missense and loss of function).
DAMAGING_CONSEQUENCES = (
    "missense",
    "stop_gained",
    "frameshift",
    "splice_acceptor",
    "splice_donor",
    "start_lost",
    "stop_lost",
)

#: How store columns are named in results (sgkit style).
VARIANT_COLUMNS = {
    "variant_key": "variant_key",
    "contig": "variant_contig",
    "position": "variant_position",
    "ref": "variant_ref",
    "alt": "variant_alt",
    "variant_id": "variant_id",
    "gene": "variant_gene",
    "consequence": "variant_consequence",
    "filter": "variant_filter",
    "qual": "variant_qual",
}


def canonical_contig_sql(expr: str) -> str:
    """SQL of a contig name in canonical form: ``chr1``, ``1`` -> ``1``; ``chrM``, ``MT`` -> ``M``.

    Reference panels (:mod:`biobank.genomes.panels`) store canonical contigs and
    match the store's variants through this expression, so a panel named
    ``1``..``22``, ``X`` (1000 Genomes, GRCh37) matches a cohort named ``chr1`` ...
    """
    bare = f"regexp_replace({expr}, '^(?i)chr', '')"
    return f"(CASE WHEN upper({bare}) IN ('M', 'MT') THEN 'M' ELSE {bare} END)"


_REGION = re.compile(r"^(?P<contig>[^:\s]+)(:(?P<start>[\d,]+)(-(?P<end>[\d,]+))?)?$")


@dataclass(frozen=True)
class VariantFilter:
    """Which variants a query looks at; all given conditions must hold.

    Parameters
    ----------
    genes
        Gene names (from BCSQ annotation).
    region
        ``"chr1"``, ``"chr1:1000"`` or ``"chr1:1000-2000"``: 1-based, inclusive.
    consequences
        BCSQ consequences, e.g. ``["missense", "stop_gained"]``; a variant
        matches if any ``&``-part of its consequence is listed.
    variant_ids
        VCF IDs (e.g. rs numbers).
    pass_only
        Only variants whose FILTER is PASS (or missing).
    min_frequency, max_frequency
        Bounds on the ALT allele frequency *in the queried sample set*
        (inclusive); e.g. ``max_frequency=0.01`` for rare variants.
    panel_max_frequency
        ``(panel, population, max_frequency)``: only variants whose ALT frequency
        in that population of a loaded reference panel
        (:mod:`biobank.genomes.panels`) is at most ``max_frequency``; variants the
        panel does not have count as rare (frequency 0). E.g.
        ``("1kg", "CHB", 0.01)``.
    variant_keys
        Store keys of the variants (``variant.variant_key``), e.g. those a Beacon
        query matched.
    """

    genes: Sequence[str] | None = None
    region: str | None = None
    consequences: Sequence[str] | None = None
    variant_ids: Sequence[str] | None = None
    pass_only: bool = False
    min_frequency: float | None = None
    max_frequency: float | None = None
    panel_max_frequency: tuple[str, str, float] | None = None
    variant_keys: Sequence[int] | None = None

    def where(self, alias: str = "v") -> tuple[str, list[Any]]:
        """Return a SQL condition on table ``variant`` (as ``alias``) and its parameters.

        Raises
        ------
        ValidationError
            If the region cannot be parsed.
        """
        conds: list[str] = []
        params: list[Any] = []
        if self.genes is not None:
            conds.append(f"{alias}.gene IN (SELECT unnest(?::VARCHAR[]))")
            params.append(list(self.genes))
        if self.region is not None:
            m = _REGION.match(self.region.strip())
            if m is None:
                raise ValidationError(
                    f"region {self.region!r} is not 'contig', 'contig:pos' or 'contig:start-end'"
                    " (1-based, inclusive)",
                    field="region",
                    value=self.region,
                )
            conds.append(f"{alias}.contig = ?")
            params.append(m["contig"])
            if m["start"]:
                start = int(m["start"].replace(",", ""))
                end = int(m["end"].replace(",", "")) if m["end"] else start
                if end < start:
                    raise ValidationError(
                        f"region {self.region!r} ends before it starts",
                        field="region",
                        value=self.region,
                    )
                conds.append(f"{alias}.position BETWEEN ? AND ?")
                params.extend([start, end])
        if self.consequences is not None:
            conds.append(
                f"len(list_intersect(string_split({alias}.consequence, '&'), ?::VARCHAR[])) > 0"
            )
            params.append(list(self.consequences))
        if self.variant_ids is not None:
            conds.append(f"{alias}.variant_id IN (SELECT unnest(?::VARCHAR[]))")
            params.append(list(self.variant_ids))
        if self.variant_keys is not None:
            conds.append(f"{alias}.variant_key IN (SELECT unnest(?::INTEGER[]))")
            params.append([int(k) for k in self.variant_keys])
        if self.pass_only:
            conds.append(f"coalesce({alias}.filter, 'PASS') = 'PASS'")
        if self.panel_max_frequency is not None:
            panel, population, max_af = self.panel_max_frequency
            conds.append(
                "NOT EXISTS (SELECT 1 FROM panel_frequency pf JOIN panel pp USING (panel_id)"
                " WHERE pp.name = ? AND pf.population = ? AND pf.frequency > ?"
                f" AND pf.contig = {canonical_contig_sql(alias + '.contig')}"
                f" AND pf.position = {alias}.position AND pf.ref = {alias}.ref"
                f" AND pf.alt = {alias}.alt)"
            )
            params.extend([panel, population, float(max_af)])
        return (" AND ".join(conds) or "TRUE"), params

    @property
    def by_frequency(self) -> bool:
        """Whether the filter needs allele frequencies in the sample set."""
        return self.min_frequency is not None or self.max_frequency is not None

    def describe(self) -> dict[str, Any]:
        """The filter as a JSON-ready dict (for audit entries)."""
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items() if v}


def rename_variant_columns(df: pl.DataFrame) -> pl.DataFrame:
    """Rename the store's variant columns of ``df`` as in results (:data:`VARIANT_COLUMNS`)."""
    return df.rename({k: v for k, v in VARIANT_COLUMNS.items() if k in df.columns})
