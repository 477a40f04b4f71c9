"""Tests for biobank.stats.assoc vs plink2 (--freq/--missing/--hardy/--glm), scipy, statsmodels.

Two data sets: real 1000 Genomes chr21+chr22 (``../shared/data``, marked ``shared``)
and a small msprime cohort split into two batches (the second batch misses some
variants and some calls), compared with plink2 on the ``bcftools merge`` of both.
"""

from __future__ import annotations

import gzip
import math
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from biobank.core.access import Principal, Role
from biobank.core.store import Store
from biobank.genomes.load import load_vcf
from biobank.genomes.reader import VariantFilter
from biobank.stats.assoc import (
    SMALL_COUNT_THRESHOLD,
    allele_frequencies,
    association,
    burden,
    hwe_exact,
    hwe_exact_x,
)

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data" / "1kg-phase3-subset"
LOADER = Principal("reg", Role.REGISTRAR)


def _plink(args: list[str], out: Path) -> None:
    subprocess.run(
        ["plink2", *args, "--allow-extra-chr", "--threads", "1", "--out", str(out)],
        check=True,
        capture_output=True,
    )


def _split_alts(df: pl.DataFrame, value: str) -> pl.DataFrame:
    """One row per ALT allele of plink2 .afreq output (multi-allelic rows list them)."""
    return (
        df.with_columns(pl.col("ALT").str.split(","), pl.col(value).cast(pl.String).str.split(","))
        .explode("ALT", value)
        .with_columns(pl.col(value).cast(pl.Float64))
    )


def _key(df: pl.DataFrame) -> pl.DataFrame:
    return df.with_columns(
        key=pl.format(
            "{}:{}", pl.col("variant_contig").str.strip_prefix("chr"), pl.col("variant_position")
        )
    )


@dataclass
class Cohort:
    """A loaded store, the plink2 outputs on the same genotypes and the phenotype table."""

    store: Store
    freq: pl.DataFrame
    vmiss: pl.DataFrame
    hardy: pl.DataFrame
    glm: pl.DataFrame
    pheno: pl.DataFrame  # participant_id, status, covariates
    covariates: list[str]
    vcfs: list[Path]


def _plink_all(vcf: Path, pheno: Path, covars: list[str], out: Path) -> dict[str, pl.DataFrame]:
    _plink(
        [
            "--vcf",
            str(vcf),
            "--set-all-var-ids",
            "@:#:$r:$a",
            "--new-id-max-allele-len",
            "1000",
            "--freq",
            "--missing",
            "variant-only",
            "--hardy",
            "--pheno",
            str(pheno),
            "--pheno-name",
            "status",
            "--1",
            "--covar",
            str(pheno),
            "--covar-name",
            ",".join(covars),
            "--glm",
            "hide-covar",
            "cols=+a1count,+firth",
        ],
        out,
    )
    return _read_plink(out, ("freq", "vmiss", "hardy", "glm"))


def _read_plink(out: Path, names: Sequence[str]) -> dict[str, pl.DataFrame]:
    """plink2's ``.afreq``/``.vmiss``/``.hardy(.x)``/glm outputs with a ``key`` (contig:position).

    The per-variant files need IDs set with ``--set-all-var-ids @:#:$r:$a``.
    """
    read = {"null_values": "NA", "separator": "\t", "infer_schema_length": 0}
    suffix = {"freq": "afreq", "vmiss": "vmiss", "hardy": "hardy", "hardy.x": "hardy.x"}
    out_ = {}
    for name in names:
        if name == "glm":
            out_[name] = pl.read_csv(f"{out}.status.glm.logistic.hybrid", **read).with_columns(
                key=pl.format("{}:{}", pl.col("#CHROM").str.strip_prefix("chr"), pl.col("POS"))
            )
        else:
            out_[name] = pl.read_csv(f"{out}.{suffix[name]}", **read).with_columns(
                key=pl.col("ID")
                .str.strip_prefix("chr")
                .str.split(":")
                .list.slice(0, 2)
                .list.join(":")
            )
    return out_


@pytest.fixture(scope="module")
def kg(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cohort]:
    """1000 Genomes chr21+chr22 loaded as one batch, and plink2 on the same VCFs."""
    if not SHARED.is_dir():
        pytest.skip("../shared/data is absent")
    tmp = tmp_path_factory.mktemp("kg")
    annot = pl.read_csv(SHARED / "1KG_phase3_subset_annot.tsv", separator="\t")
    pheno = annot.select(
        pl.col("sample.id").alias("#IID"),
        pl.col("status"),
        (pl.col("sex") == "M").cast(pl.Int64).alias("sexcov"),
        pl.col("outcome"),
    )
    pheno.write_csv(tmp / "pheno.tsv", separator="\t")
    store = Store(tmp / "kg.duckdb")
    store.con.register("_a", annot.select(pl.col("sample.id").alias("s")))
    store.con.execute("INSERT INTO sequencing_sample SELECT s, 'L-' || s, 'P-' || s FROM _a")
    vcfs = [SHARED / f"1KG_phase3_subset_chr{c}.vcf.gz" for c in ("21", "22")]
    parts: dict[str, list[pl.DataFrame]] = {}
    for i, vcf in enumerate(vcfs):
        load_vcf(store, vcf, principal=LOADER)
        for name, df in _plink_all(
            vcf, tmp / "pheno.tsv", ["sexcov", "outcome"], tmp / f"p{i}"
        ).items():
            parts.setdefault(name, []).append(df)
    merged = {k: pl.concat(v) for k, v in parts.items()}
    yield Cohort(
        store=store,
        pheno=pheno.with_columns(participant_id="P-" + pl.col("#IID")),
        covariates=["sexcov", "outcome"],
        vcfs=vcfs,
        **merged,
    )
    store.close()


def _bgzip(path: Path) -> Path:
    subprocess.run(["bgzip", "-f", str(path)], check=True)
    subprocess.run(["tabix", "-f", "-p", "vcf", f"{path}.gz"], check=True)
    return Path(f"{path}.gz")


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cohort]:
    """An msprime cohort in two batches; batch B lacks 10 % of variants and 3 % of calls."""
    from biobank.testing.population import simulate_cohort_vcf

    tmp = tmp_path_factory.mktemp("sim")
    full = simulate_cohort_vcf(tmp / "full.vcf.gz", n_samples=400, n_variants=1200, seed=5)
    rng = np.random.default_rng(5)
    with gzip.open(full, "rt") as fh:
        lines = fh.read().splitlines()
    header = [ln for ln in lines if ln.startswith("##")]
    cols = next(ln for ln in lines if ln.startswith("#CHROM")).split("\t")
    records = [ln.split("\t") for ln in lines if not ln.startswith("#")]
    names = cols[9:]
    a_idx, b_idx = range(0, 250), range(250, 400)
    files = []
    for label, idx, drop, miss in (("A", a_idx, 0.0, 0.0), ("B", b_idx, 0.1, 0.03)):
        path = tmp / f"{label}.vcf"
        with open(path, "w") as out:
            out.write("\n".join(header) + "\n")
            out.write("\t".join(cols[:9] + [names[i] for i in idx]) + "\n")
            for rec in records:
                if rng.random() < drop:
                    continue
                gts = [rec[9 + i] if rng.random() >= miss else "./." for i in idx]
                out.write("\t".join([*rec[:7], ".", "GT", *gts]) + "\n")
        files.append(_bgzip(path))
    merged = tmp / "merged.vcf.gz"
    subprocess.run(["bcftools", "merge", "-Oz", "-o", str(merged), *map(str, files)], check=True)
    # phenotype: a covariate and one causal common variant
    with gzip.open(merged, "rt") as fh:
        rows = [ln.split("\t") for ln in fh if not ln.startswith("#")]
    dos = np.array([[g.count("1") if "." not in g else 0 for g in r[9:]] for r in rows])
    complete = np.array([not any("." in g for g in r[9:]) for r in rows])
    common = np.flatnonzero((dos.mean(axis=1) > 0.3) & (dos.mean(axis=1) < 0.7) & complete)
    x = rng.normal(size=len(names))
    eta = -0.8 + 1.5 * dos[common[0]] + 0.7 * x
    status = (rng.random(len(names)) < 1 / (1 + np.exp(-eta))).astype(int)
    pheno = pl.DataFrame({"#IID": names, "status": status, "cov1": x})
    pheno.write_csv(tmp / "pheno.tsv", separator="\t")
    store = Store(tmp / "sim.duckdb")
    store.con.execute(
        "INSERT INTO sequencing_sample SELECT unnest(?::VARCHAR[]) AS s, 'L', 'P-' || s",
        [names],
    )
    for f in files:
        load_vcf(store, f, principal=LOADER)
    out = _plink_all(merged, tmp / "pheno.tsv", ["cov1"], tmp / "pm")
    yield Cohort(
        store=store,
        pheno=pheno.with_columns(participant_id="P-" + pl.col("#IID")),
        covariates=["cov1"],
        vcfs=[merged],
        **out,
    )
    store.close()


@pytest.fixture(scope="module")
def sim_assoc(sim: Cohort) -> pl.DataFrame:
    """association() on the simulated cohort with its covariate (computed once)."""
    cases, controls, cov = _cases_controls(sim.pheno, sim.covariates)
    return association(sim.store.con, cases, controls, covariates=cov)


def _cases_controls(
    pheno: pl.DataFrame, covariates: Sequence[str]
) -> tuple[list[str], list[str], pl.DataFrame]:
    cases = pheno.filter(pl.col("status") == 1)["participant_id"].to_list()
    controls = pheno.filter(pl.col("status") == 0)["participant_id"].to_list()
    return cases, controls, pheno.select("participant_id", *covariates)


# ----------------------------------------------------------------------------- frequencies
def _check_freq_missing_hardy(c: Cohort) -> int:
    ours = _key(allele_frequencies(c.store.con))
    freq = _split_alts(c.freq, "ALT_FREQS")
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
    _plink(
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
    ours = _key(allele_frequencies(sim.store.con, ["P-" + k for k in keep], hwe=False))
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
    rare = allele_frequencies(sim.store.con, filter=VariantFilter(max_frequency=0.01), hwe=False)
    assert rare.height > 0
    assert (rare["variant_alt_allele_frequency"] <= 0.01).all()


def test_hwe_exact__textbook_values() -> None:
    # Wigginton et al. 2005 style checks: perfect HWE gives 1; excess homozygotes is tiny
    p = hwe_exact(np.array([50, 0, 0]), np.array([25, 50, 100]), np.array([25, 50, 0]))
    assert p[0] == pytest.approx(1.0, abs=0.05)
    assert p[1] < 1e-25
    assert p[2] == 1.0


def _hwe_x_by_enumeration(het: int, hom_a: int, hom_b: int, male_a: int, male_b: int) -> float:
    """The X-chromosome exact test by brute force: every table, scipy's hypergeometric."""
    from scipy.stats import hypergeom

    nf, nm = het + hom_a + hom_b, male_a + male_b
    n_a = 2 * hom_a + het + male_a
    tables = {}
    for m in range(max(0, n_a - 2 * nf), min(nm, n_a) + 1):
        female_a = n_a - m
        log_row = float(hypergeom(2 * nf + nm, nm, n_a).logpmf(m))
        for h in range(female_a % 2, min(female_a, 2 * nf - female_a) + 1, 2):
            aa, bb = (female_a - h) // 2, nf - h - (female_a - h) // 2
            log_levene = (  # Levene (1949): the heterozygotes given the female alleles
                math.lgamma(nf + 1) + math.lgamma(female_a + 1) + math.lgamma(2 * nf - female_a + 1)
                - math.lgamma(2 * nf + 1) + h * math.log(2)
                - math.lgamma(aa + 1) - math.lgamma(h + 1) - math.lgamma(bb + 1)
            )  # fmt: skip
            tables[(h, m)] = math.exp(log_row + log_levene)
    observed = tables[(het, male_a)]
    return sum(p for p in tables.values() if p <= observed * (1 + 1e-7))


def test_hwe_exact_x__matches_enumeration_of_every_table() -> None:
    rng = np.random.default_rng(11)
    cases = [(0, 40, 0, 0, 30), (25, 25, 0, 0, 50), (3, 0, 0, 1, 0), (0, 5, 5, 10, 0)]
    for _ in range(40):  # random counts, some in equilibrium, some far from it
        nf, nm = (int(x) for x in rng.integers(1, 160, size=2))
        p_f, p_m = rng.uniform(0.02, 0.98, size=2)
        if rng.random() < 0.5:
            p_m = p_f
        g = rng.multinomial(nf, [p_f**2, 2 * p_f * (1 - p_f), (1 - p_f) ** 2])
        if rng.random() < 0.3:  # heterozygote deficit
            g = np.array([g[0] + g[1] // 2, g[1] - 2 * (g[1] // 2), g[2] + g[1] // 2])
        male_a = int(rng.binomial(nm, p_m))
        cases.append((int(g[1]), int(g[0]), int(g[2]), male_a, nm - male_a))
    cols = [np.array(c) for c in zip(*cases, strict=True)]
    ours = hwe_exact_x(*cols)
    expected = np.array([_hwe_x_by_enumeration(*c) for c in cases])
    assert np.allclose(ours, expected, rtol=1e-6, atol=1e-300)
    assert (expected < 1e-10).sum() >= 5
    assert (expected > 0.1).sum() >= 5
    # every male carrying the allele no female has: far out of equilibrium
    assert ours[1] < 1e-20
    assert hwe_exact(*cols[:3])[1] > 0.01
    # without males, the test of the females alone
    no_males = hwe_exact_x(*cols[:3], 0 * cols[3], 0 * cols[4])
    assert np.array_equal(no_males, hwe_exact(*cols[:3]))


# ----------------------------------------------------------------------------- association
def _check_glm(glm: pl.DataFrame, res: pl.DataFrame) -> tuple[int, int]:
    """Compare ``association`` with plink2's glm output (from :func:`_read_plink`)."""
    glm = glm.filter(pl.col("ERRCODE") == ".").with_columns(
        lb=pl.col("OR").cast(pl.Float64).log(),
        se=pl.col("LOG(OR)_SE").cast(pl.Float64),
        p=pl.col("P").cast(pl.Float64),
    )
    single = glm.group_by("key").len().filter(pl.col("len") == 1)["key"].to_list()
    j = _key(res).join(
        glm.filter(pl.col("key").is_in(single)),
        left_on=["key", "variant_ref", "variant_alt"],
        right_on=["key", "REF", "A1"],
    )
    assert (j["variant_firth"] == (j["FIRTH?"] == "Y")).all()
    assert j["variant_beta"].null_count() == 0
    regular = j.filter(~pl.col("variant_firth"))
    assert np.allclose(regular["variant_beta"], regular["lb"], rtol=1e-4, atol=1e-5)
    # Where a whole batch lacks the variant (OBS_CT 250 of 400), plink2's SEs differ from ours
    # by up to ~1 % with betas equal to 1e-5; statsmodels agrees with ours to 1e-6 there
    # (test_association__matches_statsmodels_logit_per_variant). Elsewhere: 2e-4.
    n = int(j["OBS_CT"].cast(pl.Int64).max())
    for part, rtol in (
        (regular.filter(pl.col("OBS_CT").cast(pl.Int64) >= 0.95 * n), 2e-4),
        (regular.filter(pl.col("OBS_CT").cast(pl.Int64) < 0.95 * n), 1e-2),
    ):
        assert np.allclose(part["variant_standard_error"], part["se"], rtol=rtol)
        assert np.allclose(
            -np.log10(part["variant_p_value"]), -np.log10(part["p"]), rtol=rtol, atol=1e-4
        )
    firth = j.filter(pl.col("variant_firth"))
    assert np.allclose(firth["variant_beta"], firth["lb"], rtol=1e-3, atol=2e-3)
    assert np.allclose(firth["variant_standard_error"], firth["se"], rtol=2e-3)
    assert np.allclose(firth["variant_p_value"], firth["p"], rtol=2e-3, atol=1e-4)
    return regular.height, firth.height


@pytest.mark.shared
@pytest.mark.slow
def test_association__logistic_matches_plink2_glm_on_1000_genomes(kg: Cohort) -> None:
    cases, controls, cov = _cases_controls(kg.pheno, kg.covariates)
    res = association(
        kg.store.con, cases, controls, covariates=cov, filter=VariantFilter(region="22")
    )
    regular, firth = _check_glm(kg.glm, res)
    assert regular > 300
    assert firth > 300


def test_association__logistic_matches_plink2_glm_with_missing_calls(
    sim: Cohort, sim_assoc: pl.DataFrame
) -> None:
    res = sim_assoc
    regular, firth = _check_glm(sim.glm, res)
    assert regular > 300
    assert firth > 10
    assert res["variant_p_value"].min() < 1e-6  # the planted causal variant


def test_association__matches_statsmodels_logit_per_variant(
    sim: Cohort, sim_assoc: pl.DataFrame
) -> None:
    import statsmodels.api as sm

    from biobank.genomes.reader import genotype_matrix

    res = sim_assoc
    m = genotype_matrix(sim.store.con, principal=Principal("ada", Role.ADMIN))
    dosage = m.genotypes.to_n_alt(fill=-1)
    info = sim.pheno.join(m.samples, on="participant_id")
    order = {p: i for i, p in enumerate(m.samples["participant_id"].to_list())}
    cols = np.array([order[p] for p in info["participant_id"].to_list()])
    y = info["status"].to_numpy().astype(float)
    x = info["cov1"].to_numpy()
    row_of = {k: i for i, k in enumerate(m.variants["variant_key"].to_list())}
    regular = res.filter(~pl.col("variant_firth") & pl.col("variant_beta").is_not_null())
    missing_rows = regular.filter(pl.col("variant_n_obs") < 390)
    chosen = pl.concat([missing_rows.head(15), regular.head(15)])
    assert missing_rows.height >= 10
    for row in chosen.iter_rows(named=True):
        g = dosage[row_of[row["variant_key"]], cols].astype(float)
        ok = g >= 0
        fit = sm.Logit(y[ok], sm.add_constant(np.column_stack([g[ok], x[ok]]))).fit(
            disp=0, tol=1e-12
        )
        assert row["variant_n_obs"] == ok.sum()
        assert row["variant_beta"] == pytest.approx(fit.params[1], rel=1e-6, abs=1e-9)
        assert row["variant_standard_error"] == pytest.approx(fit.bse[1], rel=1e-6)


def test_association__fisher_matches_scipy_on_counts_read_with_cyvcf2(
    sim: Cohort, sim_assoc: pl.DataFrame
) -> None:
    import cyvcf2
    from scipy.stats import fisher_exact

    res = _key(sim_assoc).sort("key")
    status = dict(zip(sim.pheno["#IID"].to_list(), sim.pheno["status"].to_list(), strict=True))
    vcf = cyvcf2.VCF(str(sim.vcfs[0]))
    is_case = np.array([status[s] == 1 for s in vcf.samples])
    checked = 0
    by_key = {k: r for k, r in zip(res["key"].to_list(), res.iter_rows(named=True), strict=True)}
    for rec in vcf:
        g = rec.genotype.array()[:, :2]
        called = (g >= 0).all(axis=1)
        alt = (g == 1).sum(axis=1)
        table = [
            [
                int(alt[called & is_case].sum()),
                int(2 * (called & is_case).sum() - alt[called & is_case].sum()),
            ],
            [
                int(alt[called & ~is_case].sum()),
                int(2 * (called & ~is_case).sum() - alt[called & ~is_case].sum()),
            ],
        ]
        row = by_key[f"{rec.CHROM.removeprefix('chr')}:{rec.POS}"]
        assert [row["variant_case_alt_count"], row["variant_case_ref_count"]] == table[0]
        assert [row["variant_control_alt_count"], row["variant_control_ref_count"]] == table[1]
        ref = fisher_exact(table)
        assert row["variant_fisher_p_value"] == pytest.approx(ref.pvalue, rel=1e-9)
        checked += 1
    vcf.close()
    assert checked == res.height


def test_fisher__matches_scipy_on_random_and_degenerate_tables() -> None:
    from scipy.stats import fisher_exact

    from biobank.stats.assoc import _fisher

    rng = np.random.default_rng(3)
    n1, n2 = rng.integers(0, 80, 600), rng.integers(0, 80, 600)
    a = rng.binomial(n1, rng.random(600))
    c = rng.binomial(n2, rng.random(600) * rng.random(600))
    tables = np.column_stack([a, n1 - a, c, n2 - c]).tolist()
    # empty rows/columns, zero cells, the observed table at the mode, large margins
    tables += [[0, 0, 0, 0], [0, 5, 0, 7], [3, 0, 4, 0], [5, 0, 0, 5], [0, 5, 5, 0]]
    tables += [[4, 4, 4, 4], [10, 1828, 2, 4160], [0, 1838, 1, 4161], [500, 1338, 900, 3262]]
    odds, p = _fisher(np.array(tables))
    for row, o, pv in zip(tables, odds, p, strict=True):
        ref = fisher_exact([[row[0], row[1]], [row[2], row[3]]])
        assert pv == pytest.approx(float(ref.pvalue), rel=1e-9), row
        if np.isnan(ref.statistic):
            assert np.isnan(o), row
        else:
            assert o == pytest.approx(float(ref.statistic), rel=1e-12), row


def test_association__rejects_overlapping_cases_and_controls(sim: Cohort) -> None:
    from biobank.core.errors import ValidationError

    ids = sim.pheno["participant_id"].to_list()
    with pytest.raises(ValidationError, match="both cases and controls"):
        association(sim.store.con, ids[:10], ids[5:20])


# ----------------------------------------------------------------------------- burden
def test_burden__matches_scipy_and_statsmodels_on_collapsed_carriers(tmp_path: Path) -> None:
    """Genes of 25 variants with BCSQ consequences; reference from cyvcf2 + scipy + statsmodels."""
    import cyvcf2
    import statsmodels.api as sm
    from scipy.stats import fisher_exact

    from biobank.testing.population import simulate_cohort_vcf

    src = simulate_cohort_vcf(tmp_path / "s.vcf.gz", n_samples=300, n_variants=800, seed=9)
    csqs = ["missense", "synonymous", "stop_gained", "missense&splice_region", "intron"]
    with gzip.open(src, "rt") as fh:
        lines = fh.read().splitlines()
    out = []
    j = 0
    for ln in lines:
        if ln.startswith("##FORMAT"):
            out.append(
                '##INFO=<ID=BCSQ,Number=.,Type=String,Description="Consequence annotation from '
                "BCFtools/csq. Format: Consequence|gene|transcript|biotype|strand|"
                'amino_acid_change|dna_change">'
            )
        if not ln.startswith("#"):
            f = ln.split("\t")
            f[7] = (
                f"BCSQ={csqs[j % 5]}|G{j // 25}|T{j // 25}|protein_coding|+|1A>V|"
                f"{f[1]}{f[3]}>{f[4]}"
            )
            ln = "\t".join(f)
            j += 1
        out.append(ln)
    path = tmp_path / "annotated.vcf"
    path.write_text("\n".join(out) + "\n")
    rng = np.random.default_rng(2)
    vcf = cyvcf2.VCF(str(path))
    names = list(vcf.samples)
    status = rng.random(len(names)) < 0.4
    x = rng.normal(size=len(names))
    # reference: qualifying variants and carriers per gene, straight from the VCF
    carriers: dict[str, np.ndarray] = {}
    for rec in vcf:
        g = rec.genotype.array()[:, :2]
        af = (g == 1).sum() / (2 * len(names))
        gene = rec.INFO["BCSQ"].split("|")[1]
        csq = rec.INFO["BCSQ"].split("|")[0].split("&")
        if 0 < af < 0.01 and {"missense", "stop_gained"} & set(csq):
            carriers[gene] = carriers.get(gene, np.zeros(len(names), bool)) | (g == 1).any(axis=1)
    vcf.close()
    with Store(tmp_path / "b.duckdb") as store:
        store.con.execute(
            "INSERT INTO sequencing_sample SELECT unnest(?::VARCHAR[]) AS s, 'L', 'P-' || s",
            [names],
        )
        load_vcf(store, path, principal=LOADER)
        pids = ["P-" + s for s in names]
        cov = pl.DataFrame({"participant_id": pids, "x": x})
        res = burden(
            store.con,
            [p for p, s in zip(pids, status, strict=True) if s],
            [p for p, s in zip(pids, status, strict=True) if not s],
            covariates=cov,
        )
    assert sorted(res["variant_gene"].to_list()) == sorted(carriers)
    compared = 0
    for row in res.iter_rows(named=True):
        c = carriers[row["variant_gene"]]
        table = [
            [int((c & status).sum()), int((~c & status).sum())],
            [int((c & ~status).sum()), int((~c & ~status).sum())],
        ]
        assert [row["gene_case_carriers"], row["gene_control_carriers"]] == [
            table[0][0],
            table[1][0],
        ]
        assert row["gene_fisher_p_value"] == pytest.approx(fisher_exact(table).pvalue, rel=1e-9)
        if not row["gene_firth"]:
            fit = sm.Logit(
                status.astype(float), sm.add_constant(np.column_stack([c.astype(float), x]))
            ).fit(disp=0)
            assert row["gene_beta"] == pytest.approx(fit.params[1], rel=1e-5)
            assert row["gene_standard_error"] == pytest.approx(fit.bse[1], rel=1e-5)
            assert row["gene_p_value"] == pytest.approx(fit.pvalues[1], rel=1e-4)
            compared += 1
    assert compared >= 3


# ----------------------------------------------------------------------------- packed layout
def test_sim_store__mixes_packed_and_sparse_calls_so_plink2_checks_cover_both(
    sim: Cohort,
) -> None:
    """Common variants are packed in both batches, rare ones sparse; some of each mix."""
    from biobank.genomes.reader import _packed_planes

    con = sim.store.con
    per_batch = dict(
        con.execute("SELECT batch_id, count(*) FROM genotype_packed GROUP BY 1").fetchall()
    )
    assert set(per_batch) == {1, 2}
    sparse_variants = con.execute(
        "SELECT count(DISTINCT variant_key) FROM genotype_call"
    ).fetchone()
    assert sparse_variants is not None
    assert sparse_variants[0] > 100
    # a variant packed in one batch and sparse in the other
    mixed = con.execute(
        "SELECT count(*) FROM genotype_packed p WHERE EXISTS (SELECT 1 FROM genotype_call c"
        " JOIN genotype_sample s USING (sample_key)"
        " WHERE c.variant_key = p.variant_key AND s.batch_id <> p.batch_id)"
    ).fetchone()
    assert mixed is not None
    assert mixed[0] > 0
    # batch B's missing calls (3 %) are packed as code (1, 1)
    _, lo, hi = _packed_planes(con, 2, 150)
    assert np.bitwise_count(lo & hi).sum() > 100


def test_packed_planes__list_reader_matches_unnested_reader(sim: Cohort) -> None:
    """Both ways of reading a batch's packed planes give the same rows and words."""
    from biobank.genomes.reader import _packed_planes

    con = sim.store.con
    batches = con.execute(
        "SELECT batch_id, n_samples FROM genotype_batch b"
        " WHERE EXISTS (SELECT 1 FROM genotype_packed p WHERE p.batch_id = b.batch_id)"
    ).fetchall()
    assert len(batches) == 2
    for batch_id, n_batch in batches:
        for where, params in (("TRUE", []), ("p.variant_key BETWEEN ? AND ?", [100, 5000])):
            flat = _packed_planes(con, batch_id, n_batch, where, params)
            lists = _packed_planes(con, batch_id, n_batch, where, params, unnest=False)
            assert len(flat[0]) > 10
            assert (np.diff(flat[0]) > 0).all()
            for a, b in zip(flat, lists, strict=True):
                assert np.array_equal(a, b)
            # padding bits past the batch's last sample are zero in both planes
            tail = 64 * flat[1].shape[1] - n_batch
            if tail:
                pad = np.uint64(((1 << tail) - 1) << (64 - tail))
                assert not (flat[1][:, -1] & pad).any()
                assert not (flat[2][:, -1] & pad).any()


def test_packed_and_sparse_layouts__give_identical_results(sim: Cohort, tmp_path: Path) -> None:
    """The same files loaded without packing answer every query the same way."""
    from biobank.genomes.reader import carriers, genotype_matrix

    admin = Principal("admin", Role.ADMIN)
    names = sim.pheno["#IID"].to_list()
    with Store(tmp_path / "sparse.duckdb") as sparse:
        sparse.con.execute(
            "INSERT INTO sequencing_sample SELECT unnest(?::VARCHAR[]) AS s, 'L', 'P-' || s",
            [names],
        )
        for label in ("A", "B"):
            load_vcf(sparse, sim.vcfs[0].parent / f"{label}.vcf.gz", principal=LOADER, pack=False)
        assert sparse.con.execute("SELECT count(*) FROM genotype_packed").fetchone() == (0,)
        stores = {"packed": sim.store.con, "sparse": sparse.con}
        order = "ORDER BY variant_key, sample_key"
        calls = {
            k: con.execute(f"SELECT * FROM genotype_call_all {order}").pl()
            for k, con in stores.items()
        }
        assert calls["packed"].height > 10_000
        assert calls["packed"].equals(calls["sparse"])
        subset = [f"P-{n}" for n in names[::3]]
        region = VariantFilter(region="chr1:1-600000")
        for samples, flt in ((None, None), (subset, region)):
            freq = [allele_frequencies(c, samples, filter=flt) for c in stores.values()]
            assert freq[0].height > 100
            assert freq[0].equals(freq[1])
        cases, controls, cov = _cases_controls(sim.pheno, sim.covariates)
        assoc = [
            association(c, cases, controls, covariates=cov, filter=region) for c in stores.values()
        ]
        assert assoc[0].equals(assoc[1])
        gm = [genotype_matrix(c, subset, principal=admin) for c in stores.values()]
        assert np.array_equal(gm[0].genotypes, gm[1].genotypes)
        car = [carriers(c, subset, principal=admin, filter=region) for c in stores.values()]
        assert car[0].height > 100
        assert car[0].equals(car[1])


def test_logistic_regression__identical_rows_share_one_fit() -> None:
    """Duplicate rows (singletons of one sample, variants in LD) get the fit of one copy."""
    from biobank.stats.assoc import logistic_regression

    rng = np.random.default_rng(3)
    n = 300
    y = (rng.random(n) < 0.4).astype(float)
    x = rng.normal(size=(n, 1))
    case, ctrl = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
    single = np.zeros(n)
    single[case[0]] = 1  # separated: Firth
    double = np.zeros(n)
    double[case[1:3]] = [1, 2]
    double[ctrl[0]] = np.nan  # a missing call is part of the row's content
    common = rng.binomial(2, 0.3, n).astype(float)
    alone = [logistic_regression(r[None, :], y, x) for r in (single, double, common)]
    g = np.vstack([single, double, common, single, double, common])
    cache: dict[bytes, tuple[float, float, float]] = {}
    res = logistic_regression(g, y, x, fit_cache=cache)
    assert res["firth"].to_list() == [True, True, False, True, True, False]
    assert len(cache) == 3  # three distinct rows, each fitted once
    for row, want in enumerate([*alone, *alone]):
        for col in ("beta", "standard_error", "p_value"):
            assert res[col][row] == pytest.approx(want[col][0], rel=1e-9)
    # a later call with the same cache reuses the stored fits
    cache[next(iter(cache))] = (9.0, 1.0, 1.0)
    again = logistic_regression(single[None, :], y, x, fit_cache=cache)
    assert again["beta"][0] == 9.0
    assert again["firth"][0]


def test_logistic_regression__firth_fits_maximise_the_penalised_likelihood() -> None:
    """Firth estimates equal a general-purpose optimiser's maximum of ``l + log det(I) / 2``.

    An independent check of the estimator itself (the plink2 comparisons check
    the same numbers against plink2's float32 implementation): singletons in a
    case and in a control, a separated row with a missing call, and three
    carriers of which two hom-alt, with covariates.
    """
    from scipy.optimize import minimize
    from scipy.special import expit, log_expit

    from biobank.stats.assoc import logistic_regression

    rng = np.random.default_rng(11)
    n = 400
    y = (rng.random(n) < 0.35).astype(float)
    x = np.column_stack([rng.normal(size=n), rng.integers(0, 2, n)]).astype(float)
    case, ctrl = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
    rows = np.zeros((4, n))
    rows[0, case[0]] = 1
    rows[1, ctrl[0]] = 1
    rows[2, ctrl[1:4]] = [1, 2, 1]
    rows[2, case[5]] = np.nan
    rows[3, case[1:4]] = [2, 1, 2]
    res = logistic_regression(rows, y, x)
    assert res["firth"].all()

    for i, g in enumerate(rows):
        ok = ~np.isnan(g)
        design = np.column_stack([g[ok], np.ones(ok.sum()), x[ok]])
        yy = y[ok]

        def penalised(b: np.ndarray, design: np.ndarray = design, yy: np.ndarray = yy) -> float:
            eta = design @ b
            p = expit(eta)
            info = design.T @ (design * (p * (1 - p))[:, None])
            ll = (yy * log_expit(eta) + (1 - yy) * log_expit(-eta)).sum()
            return -(ll + 0.5 * np.linalg.slogdet(info)[1])

        best = minimize(
            penalised, np.zeros(design.shape[1]), method="BFGS", options={"gtol": 1e-10}
        )
        p = expit(design @ best.x)
        info = design.T @ (design * (p * (1 - p))[:, None])
        se = np.sqrt(np.linalg.inv(info)[0, 0])
        assert res["beta"][i] == pytest.approx(best.x[0], abs=5e-5), i
        assert res["standard_error"][i] == pytest.approx(se, rel=1e-4), i


def test_association__chrx_with_haploid_males_matches_plink2(sim: Cohort, tmp_path: Path) -> None:
    """chrX: a male's haploid call is one allele (frequencies), 0/2 or 0/1 in glm.

    The simulated cohort's records are moved to chrX and every other sample is
    made a hemizygous male (``0/1`` -> ``0``, ``1/1`` -> ``1``). plink2 is given
    the sexes, so it counts male calls as haploid, and its ``--glm`` codes
    them 0/2 (``--xchr-model 2``, its default) or 0/1 (``1``) with sex as a
    covariate; we pass sex as a covariate and the same ``xchr_model``.
    """
    with gzip.open(sim.vcfs[0], "rt") as fh:
        lines = fh.read().splitlines()
    header = [ln.replace("ID=chr1,", "ID=chrX,") for ln in lines if ln.startswith("##")]
    cols = next(ln for ln in lines if ln.startswith("#CHROM")).split("\t")
    names = cols[9:]
    male = np.arange(len(names)) % 2 == 0
    path = tmp_path / "x.vcf"
    with open(path, "w") as out:
        out.write("\n".join([*header, "\t".join(cols)]) + "\n")
        for ln in lines:
            if ln.startswith("#"):
                continue
            rec = ln.split("\t")
            gts = [
                ("." if "." in g else g[0]) if is_male else g
                for g, is_male in zip(rec[9:], male, strict=True)
            ]
            out.write("\t".join(["chrX", *rec[1:9], *gts]) + "\n")
    vcf = _bgzip(path)
    sexes = pl.DataFrame({"#IID": names, "SEX": np.where(male, 1, 2)})
    sexes.write_csv(tmp_path / "sex.tsv", separator="\t")
    pheno = sim.pheno.join(sexes, on="#IID").with_columns(
        male=(pl.col("SEX") == 1).cast(pl.Float64)
    )
    pheno.select("#IID", "status", "cov1").write_csv(tmp_path / "pheno.tsv", separator="\t")
    outputs = {}
    for model in (1, 2):
        out = tmp_path / f"px{model}"
        _plink(
            [
                *("--vcf", str(vcf), "--update-sex", str(tmp_path / "sex.tsv")),
                *("--set-all-var-ids", "@:#:$r:$a", "--new-id-max-allele-len", "1000", "--freq"),
                "--hardy",
                *("--pheno", str(tmp_path / "pheno.tsv"), "--pheno-name", "status", "--1"),
                *("--covar", str(tmp_path / "pheno.tsv"), "--covar-name", "cov1"),
                *("--glm", "hide-covar", "cols=+a1count,+firth", "--xchr-model", str(model)),
            ],
            out,
        )
        outputs[model] = _read_plink(out, ("freq", "hardy.x", "glm"))
        assert set(outputs[model]["glm"]["#CHROM"].to_list()) == {"X"}  # plink2 took chrX
    afreq = outputs[2]["freq"]
    with Store(tmp_path / "x.duckdb") as store:
        store.con.execute(
            "INSERT INTO sequencing_sample SELECT unnest(?::VARCHAR[]) AS s, 'L', 'P-' || s",
            [names],
        )
        load_vcf(store, vcf, principal=LOADER)
        freq = _key(allele_frequencies(store.con))
        cases, controls, cov = _cases_controls(pheno, ["cov1", "male"])
        res = {
            m: association(store.con, cases, controls, covariates=cov, xchr_model=m) for m in (1, 2)
        }
    j = freq.join(
        _split_alts(afreq, "ALT_FREQS"),
        left_on=["key", "variant_ref", "variant_alt"],
        right_on=["key", "REF", "ALT"],
    )
    assert j.height == freq.height
    # allele observations: 2 per called female, 1 per called male
    assert (j["variant_allele_total"] == j["OBS_CT"].cast(pl.Int64)).all()
    assert np.allclose(j["variant_alt_allele_frequency"], j["ALT_FREQS"], rtol=1e-5, atol=1e-8)
    # Hardy-Weinberg: the joint test of female genotypes and male alleles (.hardy.x)
    hw = freq.join(
        outputs[2]["hardy.x"].filter(~pl.col("AX").str.contains(",")),
        left_on=["key", "variant_ref", "variant_alt"],
        right_on=["key", "A1", "AX"],
    )
    assert hw.height > 0.9 * freq.height
    for ours, theirs in (
        ("variant_n_hom_ref", "FEMALE_HOM_A1_CT"),
        ("variant_n_het", "FEMALE_HET_A1_CT"),
        ("variant_n_hom_alt", "FEMALE_TWO_AX_CT"),
        ("variant_n_haploid_ref", "MALE_A1_CT"),
        ("variant_n_haploid_alt", "MALE_AX_CT"),
    ):
        assert (hw[ours] == hw[theirs].cast(pl.Int64)).all(), ours
    p_plink = hw["P"].cast(pl.Float64).to_numpy()
    p_ours = hw["variant_hwe_p_value"].to_numpy()
    assert np.allclose(p_ours, p_plink, rtol=1e-4, atol=1e-300)
    # the test of the females alone is a different one (it ignores the males)
    p_female = hwe_exact(
        *(hw[c].to_numpy() for c in ("variant_n_het", "variant_n_hom_ref", "variant_n_hom_alt"))
    )
    assert (np.abs(p_female - p_plink) > 1e-3).sum() > 10
    for model in (1, 2):  # plink2's default (males 0/2) and --xchr-model 1 (males 0/1)
        regular, firth = _check_glm(outputs[model]["glm"], res[model])
        assert regular > 300
        assert firth > 10
    # the two codings are different models: some betas differ between them
    assert (res[1]["variant_beta"] - res[2]["variant_beta"]).abs().max() > 0.05
    # Fisher's test counts a male's call as one allele in both
    assert res[1]["variant_case_alt_count"].equals(res[2]["variant_case_alt_count"])
