"""Soft filters of the called variants: FILTER for sites, FORMAT/FT for genotypes.

The workflow's ``filter_variants`` rule calls :func:`apply_soft_filters`; nothing
is removed, failing sites and genotypes are only flagged.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["SITE_FILTERS", "apply_soft_filters"]

#: Site filters: FILTER name, description template and the bcftools expression
#: that *fails* a site. Thresholds come from the config's ``filters`` section.
SITE_FILTERS: tuple[tuple[str, str, str], ...] = (
    ("LowQual", "min_qual", "QUAL<{min_qual}"),
    ("LowDP", "min_site_dp", "INFO/DP<{min_site_dp}"),
    ("HighDP", "max_site_dp", "INFO/DP>{max_site_dp}"),
    ("LowMQ", "min_mq", "INFO/MQ<{min_mq}"),
)


def apply_soft_filters(
    src: str | Path,
    dst: str | Path,
    *,
    thresholds: Mapping[str, float],
) -> None:
    """Flag failing sites in FILTER and failing genotypes in FORMAT/FT.

    Nothing is removed. Site filters (``bcftools filter --soft-filter``, one
    pass per filter, names added with ``--mode +``): ``LowQual`` (QUAL below
    ``min_qual``), ``LowDP``/``HighDP`` (INFO/DP outside ``min_site_dp`` ..
    ``max_site_dp``), ``LowMQ`` (INFO/MQ below ``min_mq``); passing sites get
    ``PASS``. Genotype filters in FORMAT/FT: ``LowGQ`` (GQ below ``min_gq``;
    a missing GQ, as on a hom-ref genotype from a gVCF reference block, is not
    a failure) and ``LowGtDP`` (DP below ``min_dp``); ``PASS`` otherwise and
    missing (``.``) for a no-call.

    Parameters
    ----------
    src
        Input VCF/BCF.
    dst
        Output (BCF when it ends in ``.bcf``, else bgzipped VCF).
    thresholds
        The config's ``filters`` section.

    Raises
    ------
    ExternalToolError
        If bcftools fails.
    """
    import tempfile

    import cyvcf2

    from biobank.core.tools import run_tool

    with tempfile.TemporaryDirectory(prefix="soft-filter-") as tmp:
        current = Path(src)
        for i, (name, key, expr) in enumerate(SITE_FILTERS):
            out = Path(tmp) / f"step{i}.bcf"
            run_tool(
                [
                    "bcftools",
                    "filter",
                    "--soft-filter",
                    name,
                    "--mode",
                    "+",
                    "--exclude",
                    expr.format(**{key: thresholds[key]}),
                    "--output-type",
                    "u",
                    "--output",
                    out,
                    current,
                ]
            )
            current = out
        reader = cyvcf2.VCF(str(current))
        reader.add_format_to_header(
            {
                "ID": "FT",
                "Number": "1",
                "Type": "String",
                "Description": (
                    f"Genotype filter: PASS, or LowGQ (GQ<{thresholds['min_gq']}) and/or "
                    f"LowGtDP (DP<{thresholds['min_dp']}), ';'-separated"
                ),
            }
        )
        mode = "wb" if str(dst).endswith(".bcf") else "wz"
        writer = cyvcf2.Writer(str(dst), reader, mode=mode)
        n = len(reader.samples)
        try:
            for variant in reader:
                variant.set_format("FT", _genotype_filter_flags(variant, n, thresholds))
                writer.write_record(variant)
        finally:
            writer.close()
            reader.close()


def _genotype_filter_flags(variant: Any, n: int, thresholds: Mapping[str, float]) -> Any:
    """FORMAT/FT of one record: ``PASS``, ``LowGQ`` and/or ``LowGtDP``, ``.`` for a no-call."""
    import numpy as np

    int_missing = np.iinfo(np.int32).min
    called = np.array([g[0] >= 0 for g in variant.genotypes], dtype=bool)
    low_gq = np.zeros(n, dtype=bool)
    low_dp = np.zeros(n, dtype=bool)
    gq = variant.format("GQ")
    if gq is not None:
        vals = gq[:, 0]
        low_gq = (vals > int_missing) & (vals < thresholds["min_gq"])
    dp = variant.format("DP")
    if dp is not None:
        vals = dp[:, 0]
        low_dp = (vals > int_missing) & (vals < thresholds["min_dp"])
    ft = []
    for i in range(n):
        if not called[i]:
            ft.append(b".")
            continue
        flags = [f for f, bad in (("LowGQ", low_gq[i]), ("LowGtDP", low_dp[i])) if bad]
        ft.append(";".join(flags).encode() if flags else b"PASS")
    return np.array(ft)
