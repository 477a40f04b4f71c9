"""Tests for biobank.stats.assoc vs plink2 (--glm), scipy and statsmodels; and the
packed and sparse genotype layouts giving the same statistics.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from stats_support import (
    LOADER,
    Cohort,
    bgzip,
    cases_controls,
    keyed,
    plink,
    read_plink,
    split_alts,
)

from biobank.core.access import Principal, Role
from biobank.core.store import Store
from biobank.genomes.filters import VariantFilter
from biobank.genomes.load import load_vcf
from biobank.genomes.packed import packed_planes
from biobank.stats.assoc import association, burden
from biobank.stats.frequencies import allele_frequencies
from biobank.stats.hwe import hwe_exact


def _check_glm(glm: pl.DataFrame, res: pl.DataFrame) -> tuple[int, int]:
    """Compare ``association`` with plink2's glm output (from :func:`_read_plink`)."""
    glm = glm.filter(pl.col("ERRCODE") == ".").with_columns(
        lb=pl.col("OR").cast(pl.Float64).log(),
        se=pl.col("LOG(OR)_SE").cast(pl.Float64),
        p=pl.col("P").cast(pl.Float64),
    )
    single = glm.group_by("key").len().filter(pl.col("len") == 1)["key"].to_list()
    j = keyed(res).join(
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
    cases, controls, cov = cases_controls(kg.pheno, kg.covariates)
    res = association(
        kg.store.con, cases, controls, covariates=cov, variant_filter=VariantFilter(region="22")
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

    res = keyed(sim_assoc).sort("key")
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


def test_association__rejects_overlapping_cases_and_controls(sim: Cohort) -> None:
    from biobank.core.errors import ValidationError

    ids = sim.pheno["participant_id"].to_list()
    with pytest.raises(ValidationError, match="both cases and controls"):
        association(sim.store.con, ids[:10], ids[5:20])


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


def test_sim_store__mixes_packed_and_sparse_calls_so_plink2_checks_cover_both(
    sim: Cohort,
) -> None:
    """Common variants are packed in both batches, rare ones sparse; some of each mix."""

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
    _, lo, hi = packed_planes(con, 2, 150)
    assert np.bitwise_count(lo & hi).sum() > 100


def test_packed_planes__list_reader_matches_unnested_reader(sim: Cohort) -> None:
    """Both ways of reading a batch's packed planes give the same rows and words."""

    con = sim.store.con
    batches = con.execute(
        "SELECT batch_id, n_samples FROM genotype_batch b"
        " WHERE EXISTS (SELECT 1 FROM genotype_packed p WHERE p.batch_id = b.batch_id)"
    ).fetchall()
    assert len(batches) == 2
    for batch_id, n_batch in batches:
        for where, params in (("TRUE", []), ("p.variant_key BETWEEN ? AND ?", [100, 5000])):
            flat = packed_planes(con, batch_id, n_batch, where, params)
            lists = packed_planes(con, batch_id, n_batch, where, params, unnest=False)
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
            freq = [allele_frequencies(c, samples, variant_filter=flt) for c in stores.values()]
            assert freq[0].height > 100
            assert freq[0].equals(freq[1])
        cases, controls, cov = cases_controls(sim.pheno, sim.covariates)
        assoc = [
            association(c, cases, controls, covariates=cov, variant_filter=region)
            for c in stores.values()
        ]
        assert assoc[0].equals(assoc[1])
        gm = [genotype_matrix(c, subset, principal=admin) for c in stores.values()]
        assert np.array_equal(gm[0].genotypes, gm[1].genotypes)
        car = [carriers(c, subset, principal=admin, variant_filter=region) for c in stores.values()]
        assert car[0].height > 100
        assert car[0].equals(car[1])


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
    vcf = bgzip(path)
    sexes = pl.DataFrame({"#IID": names, "SEX": np.where(male, 1, 2)})
    sexes.write_csv(tmp_path / "sex.tsv", separator="\t")
    pheno = sim.pheno.join(sexes, on="#IID").with_columns(
        male=(pl.col("SEX") == 1).cast(pl.Float64)
    )
    pheno.select("#IID", "status", "cov1").write_csv(tmp_path / "pheno.tsv", separator="\t")
    outputs = {}
    for model in (1, 2):
        out = tmp_path / f"px{model}"
        plink(
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
        outputs[model] = read_plink(out, ("freq", "hardy.x", "glm"))
        assert set(outputs[model]["glm"]["#CHROM"].to_list()) == {"X"}  # plink2 took chrX
    afreq = outputs[2]["freq"]
    with Store(tmp_path / "x.duckdb") as store:
        store.con.execute(
            "INSERT INTO sequencing_sample SELECT unnest(?::VARCHAR[]) AS s, 'L', 'P-' || s",
            [names],
        )
        load_vcf(store, vcf, principal=LOADER)
        freq = keyed(allele_frequencies(store.con))
        cases, controls, cov = cases_controls(pheno, ["cov1", "male"])
        res = {
            m: association(store.con, cases, controls, covariates=cov, xchr_model=m) for m in (1, 2)
        }
    j = freq.join(
        split_alts(afreq, "ALT_FREQS"),
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
