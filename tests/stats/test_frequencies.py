"""Tests for biobank.stats.frequencies vs plink2 (--freq/--missing/--hardy)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest
from stats_support import (
    Cohort,
    keyed,
    plink,
    split_alts,
)

from biobank.genomes.filters import VariantFilter
from biobank.stats import SMALL_COUNT_THRESHOLD
from biobank.stats.frequencies import allele_frequencies


def _check_freq_missing_hardy(c: Cohort) -> int:
    ours = keyed(allele_frequencies(c.store.con))
    freq = split_alts(c.freq, "ALT_FREQS")
    j = ours.join(
        freq, left_on=["key", "variant_ref", "variant_alt"], right_on=["key", "REF", "ALT"]
    )
    assert j.height == ours.height  # every variant row, multi-allelic ALTs included
    assert np.allclose(j["variant_alt_allele_frequency"], j["ALT_FREQS"], rtol=1e-5, atol=1e-8)
    assert (j["variant_allele_total"] == j["OBS_CT"].cast(pl.Int64)).all()
    vm = ours.join(c.vmiss, on="key")
    vm = vm.filter(
        pl.col("key").is_in(freq.group_by("key").len().filter(pl.col("len") == 1)["key"].to_list())
    )
    assert (vm["variant_n_missing"] == vm["MISSING_CT"].cast(pl.Int64)).all()
    assert np.allclose(1 - vm["variant_call_rate"], vm["F_MISS"].cast(pl.Float64), atol=1e-6)
    hw = ours.join(
        c.hardy.filter(~pl.col("AX").str.contains(",")),
        left_on=["key", "variant_ref", "variant_alt"],
        right_on=["key", "A1", "AX"],
    )
    assert hw.height > 0.9 * ours.height
    assert (hw["variant_n_het"] == hw["HET_A1_CT"].cast(pl.Int64)).all()
    assert np.allclose(hw["variant_hwe_p_value"], hw["P"].cast(pl.Float64), rtol=1e-4, atol=1e-300)
    return hw.height


@pytest.mark.shared
def test_allele_frequencies__match_plink2_freq_missing_hardy_on_1000_genomes(kg: Cohort) -> None:
    assert _check_freq_missing_hardy(kg) > 2000


def test_allele_frequencies__two_batches_match_plink2_on_the_merged_vcf(sim: Cohort) -> None:
    n = _check_freq_missing_hardy(sim)
    assert n > 1000
    ours = allele_frequencies(sim.store.con)
    # variants missing from batch B are missing (not hom-ref) for its 150 samples
    assert ours["variant_n_missing"].max() >= 150


def test_allele_frequencies__ad_hoc_cohort_matches_plink2_keep(sim: Cohort, tmp_path: Path) -> None:
    keep = sim.pheno["#IID"].to_list()[::3]
    (tmp_path / "keep.txt").write_text("\n".join(keep) + "\n")
    plink(
        [
            "--vcf",
            str(sim.vcfs[0]),
            "--set-all-var-ids",
            "@:#:$r:$a",
            "--keep",
            str(tmp_path / "keep.txt"),
            "--freq",
        ],
        tmp_path / "k",
    )
    ref = pl.read_csv(tmp_path / "k.afreq", separator="\t", infer_schema_length=0).with_columns(
        key=pl.col("ID").str.strip_prefix("chr").str.split(":").list.slice(0, 2).list.join(":")
    )
    ours = keyed(allele_frequencies(sim.store.con, ["P-" + k for k in keep], hwe=False))
    j = ours.join(ref, on="key")
    assert j.height == ours.height
    assert np.allclose(
        j["variant_alt_allele_frequency"], j["ALT_FREQS"].cast(pl.Float64), rtol=1e-5
    )


def test_allele_frequencies__min_count_suppresses_small_counts(sim: Cohort) -> None:
    plain = allele_frequencies(sim.store.con, hwe=False)
    sup = allele_frequencies(sim.store.con, hwe=False, min_count=SMALL_COUNT_THRESHOLD)
    counts = ["variant_alt_allele_count", "variant_n_het", "variant_n_hom_alt"]
    small = plain.select(
        pl.any_horizontal(pl.col(c).is_between(1, SMALL_COUNT_THRESHOLD - 1) for c in counts)
    ).to_series()
    assert 0 < small.sum() < plain.height
    assert (sup["variant_suppressed"] == small).all()
    hidden = sup.filter(pl.col("variant_suppressed"))
    for c in [*counts, "variant_alt_allele_frequency"]:
        assert hidden[c].null_count() == small.sum()
    assert sup.filter(~pl.col("variant_suppressed"))["variant_alt_allele_count"].equals(
        plain.filter(~small)["variant_alt_allele_count"]
    )


def test_allele_frequencies__frequency_filter_selects_rare(sim: Cohort) -> None:
    rare = allele_frequencies(
        sim.store.con, variant_filter=VariantFilter(max_frequency=0.01), hwe=False
    )
    assert rare.height > 0
    assert (rare["variant_alt_allele_frequency"] <= 0.01).all()
