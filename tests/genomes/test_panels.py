"""Reference panels: loading, per-population frequencies, isolation from participants,
projection onto the panel's PCs and ancestry inference.

A simulated panel (msprime, three groups; panel contig ``1``, cohort contig
``chr1``) runs everywhere; the 1000 Genomes subset of ``../shared`` (marked
``shared``) checks ancestry against the known superpopulations and the
frequencies against plink2 ``--freq --keep``.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from conftest import build_clinical_store
from stats_support import SHARED, plink, split_alts

import biobank
from biobank.core.access import Principal, Role
from biobank.core.errors import (
    AccessDenied,
    ConflictError,
    ConsentError,
    NotFoundError,
    ValidationError,
)
from biobank.core.store import Store
from biobank.genomes import panels
from biobank.genomes.ancestry import infer_ancestry, project_onto_panel
from biobank.genomes.counts import allele_counts_in
from biobank.genomes.filters import VariantFilter
from biobank.genomes.load import load_vcf
from biobank.genomes.reader import carriers, sample_table

LOADER = Principal("reg", Role.REGISTRAR)
SUPER = {"Han-North": "Han", "Han-South": "Han", "Tibetan": "Tibetan"}


# --------------------------------------------------------------------------- simulated panel
@dataclass
class Sim:
    store: Store
    populations: pl.DataFrame  # the panel's sample_id, population, superpopulation
    participants: pl.DataFrame  # participant_id, superpopulation (truth)
    pop: object  # biobank.testing.population.Population
    panel_idx: np.ndarray
    report: panels.PanelReport


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sim]:
    """360 msprime founders: even ones are the panel (contig ``1``), odd ones participants
    (contig ``chr1``)."""
    from biobank.testing.genome import Genome
    from biobank.testing.population import Variants, simulate_population, write_vcf

    tmp = tmp_path_factory.mktemp("panel_sim")
    rng = np.random.default_rng(7)
    seq = np.frombuffer(b"ACGT", np.uint8)[rng.integers(0, 4, 1_500_000)].copy()
    genome = Genome(sequences={"chr1": seq}, genes=[], gaps=[], repeats=[])
    pop = simulate_population(
        genome,
        n_founders=360,
        n_families=0,
        ancestry_shares={"Han-North": 0.3, "Han-South": 0.3, "Tibetan": 0.4},
        seed=11,
    )
    n = len(pop.ancestry)
    panel_idx, part_idx = np.arange(0, n, 2), np.arange(1, n, 2)
    v = pop.variants
    as_1 = Variants(np.full(len(v), "1", dtype=object), v.pos, v.ref, v.alt, v.hap)
    genome_1 = Genome(sequences={"1": seq}, genes=[], gaps=[], repeats=[])
    panel_names = [f"REF{i:03d}" for i in panel_idx]
    panel_vcf = write_vcf(tmp / "panel.vcf.gz", genome_1, as_1, panel_idx, panel_names)
    populations = pl.DataFrame(
        {
            "sample": panel_names,
            "Population": [pop.ancestry[i] for i in panel_idx],
            "super_pop": [SUPER[pop.ancestry[i]] for i in panel_idx],
        }
    )
    populations.write_csv(tmp / "populations.tsv", separator="\t")
    part_names = [f"S{i:03d}" for i in part_idx]
    part_vcf = write_vcf(tmp / "cohort.vcf.gz", genome, v, part_idx, part_names)
    store = Store(tmp / "sim.duckdb")
    store.con.execute(
        "INSERT INTO sequencing_sample SELECT unnest(?::VARCHAR[]) AS s, 'L', 'P-' || s",
        [part_names],
    )
    load_vcf(store, part_vcf, principal=LOADER)
    report = panels.load_panel(
        store,
        panel_vcf,
        populations=tmp / "populations.tsv",
        name="sim",
        principal=LOADER,
        n_components=4,
    )
    yield Sim(
        store=store,
        populations=panels.read_populations(tmp / "populations.tsv"),
        participants=pl.DataFrame(
            {
                "participant_id": [f"P-{s}" for s in part_names],
                "truth": [SUPER[pop.ancestry[i]] for i in part_idx],
            }
        ),
        pop=pop,
        panel_idx=panel_idx,
        report=report,
    )
    store.close()


def test_load_panel__reports_samples_populations_and_a_pca_model(sim: Sim) -> None:
    r = sim.report
    assert r.n_samples == 180
    assert sum(r.populations.values()) == 180
    assert set(r.populations) == {"Han-North", "Han-South", "Tibetan"}
    assert r.n_pca_snps >= 50
    assert len(r.explained_variance_ratio) == 4
    listed = panels.list_panels(sim.store.con)
    assert listed.select("name", "n_samples", "populations").row(0) == ("sim", 180, 3)


def test_panel_frequencies__equal_the_allele_counts_of_each_group(sim: Sim) -> None:
    pop = sim.pop
    anc = np.asarray(pop.ancestry)[sim.panel_idx]  # type: ignore[attr-defined]
    v = pop.variants  # type: ignore[attr-defined]
    for group, members in (
        ("Tibetan", sim.panel_idx[anc == "Tibetan"]),
        ("Han", sim.panel_idx[np.isin(anc, ["Han-North", "Han-South"])]),
        ("ALL", sim.panel_idx),
    ):
        ac, an = v.allele_counts(members)
        got = panels.panel_frequencies(sim.store.con, "sim", populations=[group])
        assert got.height == len(v)
        assert got["variant_contig"].unique().to_list() == ["1"]
        assert np.array_equal(got.sort("variant_position")["allele_count"].to_numpy(), ac)
        assert np.array_equal(got.sort("variant_position")["allele_number"].to_numpy(), an)
        assert got["variant_position"].sort().to_numpy().tolist() == (v.pos + 1).tolist()


def test_panel_samples__are_not_participants_anywhere(sim: Sim) -> None:
    con = sim.store.con
    panel_ids = sim.populations["sample_id"].to_list()
    for table in ("genotype_sample", "sequencing_sample"):
        row = con.execute(
            f"SELECT count(*) FROM {table} WHERE sample_id IN (SELECT unnest(?::VARCHAR[]))",
            [panel_ids],
        ).fetchone()
        assert row == (0,)
    assert con.execute("SELECT count(*) FROM genotype_sample").fetchone() == (180,)
    with sample_table(con) as tbl:
        counts = allele_counts_in(con, tbl, VariantFilter())
    assert counts["variant_n_samples"].unique().to_list() == [180]
    assert counts["variant_n_called"].max() == 180
    found = carriers(con, principal=LOADER, variant_filter=VariantFilter(region="chr1:1-200000"))
    assert found["participant_id"].str.starts_with("P-").all()
    assert not set(found["sample_id"]) & set(panel_ids)


def test_project_onto_panel__matches_chr1_to_1_and_infers_the_superpopulation(sim: Sim) -> None:
    projected, found = project_onto_panel(sim.store.con, panel="sim", principal=LOADER)
    assert found >= 0.9 * sim.report.n_pca_snps
    pcs = ["PC1", "PC2", "PC3", "PC4"]
    assert projected.columns == ["participant_id", "sample_id", *pcs, "n_snps"]
    assert projected.height == 180
    result = infer_ancestry(sim.store.con, projected, panel="sim").join(
        sim.participants, on="participant_id"
    )
    accuracy = (result["ancestry"] == result["truth"]).mean()
    assert accuracy is not None
    assert accuracy >= 0.95, accuracy
    assert result["confidence"].min() >= 0  # type: ignore[operator]
    assert (result["distance"] >= 0).all()
    audit = sim.store.con.execute(
        "SELECT count(*) FROM audit_log WHERE action = 'genotype.read'"
        " AND target = 'panel_projection'"
    ).fetchone()
    assert audit is not None
    assert audit[0] >= 1


def test_infer_ancestry__far_away_participants_are_unassigned(sim: Sim) -> None:
    projected, _ = project_onto_panel(sim.store.con, panel="sim", principal=LOADER)
    far = projected.head(3).with_columns(pl.col("PC1") * 0 + 1e3, pl.col("PC2") * 0 - 1e3)
    result = infer_ancestry(sim.store.con, far, panel="sim")
    assert result["ancestry"].null_count() == 3
    uncalled = projected.head(3).with_columns(n_snps=pl.lit(0, pl.Int64))
    assert infer_ancestry(sim.store.con, uncalled, panel="sim")["ancestry"].null_count() == 3
    with pytest.raises(ValidationError, match="level must be 'superpopulation' or 'population'"):
        infer_ancestry(sim.store.con, projected, panel="sim", level="continent")


def test_panel_max_frequency__filters_carriers_like_the_post_filter(sim: Sim) -> None:
    con = sim.store.con
    region = "chr1:1-400000"
    everything = carriers(con, principal=LOADER, variant_filter=VariantFilter(region=region))
    rare = carriers(
        con,
        principal=LOADER,
        variant_filter=VariantFilter(region=region, panel_max_frequency=("sim", "Tibetan", 0.02)),
    )
    post = panels.filter_rare_in_panel(
        con, everything, panel="sim", population="Tibetan", max_frequency=0.02
    )
    assert 0 < rare.height < everything.height
    assert rare.select("participant_id", "variant_key").equals(
        post.select("participant_id", "variant_key")
    )
    assert (post["panel_af_Tibetan"].fill_null(0) <= 0.02).all()


def test_annotate_frequencies__adds_one_column_per_population_and_keeps_rows(sim: Sim) -> None:
    from biobank.genomes.reader import variants

    frame = variants(sim.store.con, VariantFilter(region="chr1:1-300000"))
    out = panels.annotate_frequencies(
        sim.store.con, frame, panel="sim", populations=["Tibetan", "Han-North"]
    )
    assert out.height == frame.height
    assert out["variant_key"].to_list() == frame["variant_key"].to_list()
    assert out["panel_af_Tibetan"].null_count() == 0
    with pytest.raises(ValidationError, match=r"population\(s\) \['Martian'\] are not in panel"):
        panels.annotate_frequencies(sim.store.con, frame, panel="sim", populations=["Martian"])


def test_panel_errors__name_the_problem(sim: Sim, tmp_path: Path) -> None:
    con = sim.store.con
    with pytest.raises(NotFoundError, match="no reference panel named 'nope'"):
        panels.panel_frequencies(con, "nope")
    with pytest.raises(ConflictError, match="a panel named 'sim' is loaded already"):
        panels.load_panel(
            sim.store, tmp_path / "x.vcf.gz", populations=sim.populations, name="sim",
            principal=LOADER,
        )  # fmt: skip
    with pytest.raises(AccessDenied, match="role"):
        panels.load_panel(
            sim.store, tmp_path / "x.vcf.gz", populations=sim.populations, name="x",
            principal=Principal("aud", Role.AUDITOR),
        )  # fmt: skip
    with pytest.raises(ConsentError, match="needs a purpose"):
        project_onto_panel(con, panel="sim", principal=Principal("rita", Role.RESEARCHER))
    with (
        Store(tmp_path / "empty.duckdb") as empty,
        pytest.raises(NotFoundError, match="loaded: none"),
    ):
        project_onto_panel(empty.con, panel="sim", principal=LOADER)


def test_project_onto_panel__refuses_a_store_without_the_panel_snps(
    sim: Sim, tmp_path: Path
) -> None:
    path = tmp_path / "other.vcf"
    path.write_text(
        "##fileformat=VCFv4.2\n##contig=<ID=chr2,length=1000>\n"
        '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">\n'
        "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\tX1\n"
        "chr2\t10\t.\tA\tG\t.\tPASS\t.\tGT\t0/1\n"
    )
    pops = sim.populations
    with Store(tmp_path / "other.duckdb") as other:
        other.con.execute("INSERT INTO sequencing_sample VALUES ('X1', 'L', 'P-X1')")
        load_vcf(other, path, principal=LOADER)
        # copy the panel tables over: a panel on another build than the cohort
        for table in ("panel", "panel_sample", "panel_frequency", "panel_pca_snp"):
            df = sim.store.con.execute(f"SELECT * FROM {table}").pl()
            other.con.register("_t", df)
            other.con.execute(f"INSERT INTO {table} SELECT * FROM _t")
            other.con.unregister("_t")
        with pytest.raises(ValidationError, match=r"only 0 of panel 'sim'.s \d+ PCA SNPs"):
            project_onto_panel(other.con, panel="sim", principal=LOADER)
    assert pops.height == 180


def test_read_populations__finds_columns_and_rejects_duplicates(tmp_path: Path) -> None:
    good = tmp_path / "p.tsv"
    good.write_text("sample.id\tPopulation\nHG1\tGBR\nHG2\tYRI\nHG3\tXYZ\n")
    df = panels.read_populations(good)
    assert df.rows() == [("HG1", "GBR", "EUR"), ("HG2", "YRI", "AFR"), ("HG3", "XYZ", None)]
    dup = tmp_path / "d.tsv"
    dup.write_text("sample\tpopulation\nHG1\tGBR\nHG1\tGBR\n")
    with pytest.raises(ValidationError, match="sample 'HG1' is listed more than once"):
        panels.read_populations(dup)
    bad = tmp_path / "b.tsv"
    bad.write_text("name\tgroup\nHG1\tGBR\n")
    with pytest.raises(ValidationError, match="no sample column"):
        panels.read_populations(bad)


def test_canonical_contig__maps_chr_prefix_and_mitochondria() -> None:
    assert [panels.canonical_contig(c) for c in ("chr1", "1", "chrX", "MT", "chrM", "CHR2")] == [
        "1",
        "1",
        "X",
        "M",
        "M",
        "2",
    ]


# --------------------------------------------------------------------------- workbench
def test_workbench_panel_ancestry__consented_participants_only_and_sandbox_blind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("BIOBANK_CENTER_KEY", raising=False)
    monkeypatch.delenv("BIOBANK_KEY_FILE", raising=False)
    cs = build_clinical_store(tmp_path / "g.duckdb", genotypes=True)
    # a two-population panel over the four sites of tests/data/clinical/genotypes.vcf,
    # contigs named 1 and 2 (the store has chr1, chr2)
    sites = [("1", 100, "A", "G"), ("1", 200, "C", "T"), ("1", 300, "G", "A"), ("2", 400, "T", "C")]
    rng = np.random.default_rng(3)
    names = [f"R{i:02d}" for i in range(60)]
    lines = [
        "##fileformat=VCFv4.2",
        "##contig=<ID=1,length=1000>",
        "##contig=<ID=2,length=1000>",
        '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">',
        "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\t" + "\t".join(names),
    ]
    for j, (c, p, r, a) in enumerate(sites):
        af = np.where(np.arange(60) < 30, 0.15 + 0.05 * j, 0.85 - 0.05 * j)
        draws = zip(rng.random(60) < af, rng.random(60) < af, strict=True)
        gts = [f"{int(x)}/{int(y)}" for x, y in draws]
        lines.append(f"{c}\t{p}\t.\t{r}\t{a}\t.\tPASS\t.\tGT\t" + "\t".join(gts))
    vcf = tmp_path / "mini.vcf"
    vcf.write_text("\n".join(lines) + "\n")
    pops = pl.DataFrame(
        {
            "sample_id": names,
            "population": ["POPA"] * 30 + ["POPB"] * 30,
            "superpopulation": ["A"] * 30 + ["B"] * 30,
        }
    )
    with biobank.open(cs.path, user="rita", purpose="DS:E11") as wb:
        before = wb.sql("SELECT count(*) AS n FROM genotype_sample")["n"][0]
        consented = set(wb.genotype_matrix().samples["participant_id"])
    with Store(cs.path) as store:
        panels.load_panel(
            store, vcf, populations=pops, name="mini", principal=LOADER,
            n_components=2, min_frequency=0.01, ld_threshold=1.0,
        )  # fmt: skip
    with biobank.open(cs.path, user="rita", purpose="DS:E11") as wb:
        result = wb.panel_ancestry(panel="mini", level="population", k=5)
        assert wb.sql("SELECT count(*) AS n FROM genotype_sample")["n"][0] == before
        with pytest.raises(ValidationError, match="panel_sample"):
            wb.sql("SELECT * FROM panel_sample")
        rare = wb.carriers(variant_filter=VariantFilter(panel_max_frequency=("mini", "POPA", 0.3)))
    assert result.columns == ["participant_id", "PC1", "PC2", "ancestry", "confidence", "distance"]
    assert set(result["participant_id"]) == consented
    assert set(result["ancestry"].drop_nulls()) <= {"POPA", "POPB"}
    with Store(cs.path) as store:
        af = panels.panel_frequencies(store.con, "mini", populations=["POPA"])
    common = af.filter(pl.col("frequency") > 0.3)["variant_position"].to_list()
    assert not set(rare["variant_position"]) & set(common)


# --------------------------------------------------------------------------- 1000 Genomes
@dataclass
class KG:
    store: Store
    panel: pl.DataFrame  # sample_id, population, superpopulation of the panel half
    held_out: pl.DataFrame
    tmp: Path


@pytest.fixture(scope="module")
def kg(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KG]:
    """The 1000 Genomes subset split in two: a panel half and a participant half."""
    if not SHARED.is_dir():
        pytest.skip("../shared/data is absent")
    tmp = tmp_path_factory.mktemp("kg_panel")
    pops = panels.read_populations(SHARED / "1KG_phase3_subset_annot.tsv")
    rng = np.random.default_rng(20)
    pops = pops.sort("sample_id").with_columns(half=pl.Series(rng.random(pops.height) < 0.5))
    panel = pops.filter(pl.col("half")).drop("half")
    held = pops.filter(~pl.col("half")).drop("half")
    (tmp / "held.txt").write_text("\n".join(held["sample_id"]) + "\n")
    store = Store(tmp / "kg.duckdb")
    store.con.execute(
        "INSERT INTO sequencing_sample SELECT unnest(?::VARCHAR[]) AS s, 'L-' || s, 'P-' || s",
        [held["sample_id"].to_list()],
    )
    vcfs = [SHARED / f"1KG_phase3_subset_chr{c}.vcf.gz" for c in [*range(1, 23), "X"]]
    for vcf in vcfs:
        part = tmp / f"held_{vcf.name}"
        subprocess.run(
            ["bcftools", "view", "-S", str(tmp / "held.txt"), "-Oz", "-o", str(part), str(vcf)],
            check=True,
        )
        load_vcf(store, part, principal=LOADER)
    panels.load_panel(store, vcfs, populations=panel, name="1kg", principal=LOADER)
    yield KG(store=store, panel=panel, held_out=held, tmp=tmp)
    store.close()


@pytest.mark.shared
@pytest.mark.slow
def test_1kg__held_out_superpopulation_is_inferred_for_95_percent(kg: KG) -> None:
    projected, found = project_onto_panel(kg.store.con, panel="1kg", principal=LOADER)
    result = infer_ancestry(kg.store.con, projected, panel="1kg")
    truth = kg.held_out.select(
        ("P-" + pl.col("sample_id")).alias("participant_id"), "superpopulation"
    )
    j = result.join(truth, on="participant_id")
    assert j.height == kg.held_out.height
    accuracy = (j["ancestry"] == j["superpopulation"]).mean()
    # measured on this split (583 panel / 543 held out): 531 of 543 (97.8 %), 2 unassigned,
    # the 10 others admixed AMR/AFR/EUR; another split (seed 1): 555 of 558 (99.5 %)
    assert accuracy is not None
    assert accuracy >= 0.95, accuracy
    assert found > 2000


@pytest.mark.shared
@pytest.mark.slow
def test_1kg__population_frequencies_equal_plink2_freq_keep(kg: KG) -> None:
    vcf = SHARED / "1KG_phase3_subset_chr22.vcf.gz"
    ours = panels.panel_frequencies(kg.store.con, "1kg", region="chr22")
    for population in ("YRI", "CHB", "GBR", "PUR"):
        keep = kg.tmp / f"{population}.keep"
        ids = kg.panel.filter(pl.col("population") == population)["sample_id"]
        keep.write_text("\n".join(ids) + "\n")
        out = kg.tmp / f"freq_{population}"
        plink(
            [
                "--vcf", str(vcf), "--keep", str(keep), "--freq",
                "--set-all-var-ids", "@:#:$r:$a", "--new-id-max-allele-len", "1000",
            ],
            out,
        )  # fmt: skip
        theirs = split_alts(
            pl.read_csv(f"{out}.afreq", separator="\t", infer_schema_length=0), "ALT_FREQS"
        ).select(
            pl.col("ID").str.split(":").list.get(1).cast(pl.Int64).alias("variant_position"),
            pl.col("REF").alias("variant_ref"),
            pl.col("ALT").alias("variant_alt"),
            pl.col("ALT_FREQS").alias("plink_af"),
            pl.col("OBS_CT").cast(pl.Int64).alias("plink_an"),
        )
        mine = ours.filter(pl.col("population") == population)
        j = mine.join(theirs, on=["variant_position", "variant_ref", "variant_alt"], how="inner")
        assert j.height == mine.height == theirs.height
        assert (j["allele_number"] == j["plink_an"]).all()
        assert np.allclose(j["frequency"].to_numpy(), j["plink_af"].to_numpy(), atol=1e-12)


# --------------------------------------------------------------------------- CLI
def test_cli_panel_load_and_list(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import typer
    from typer.testing import CliRunner

    import biobank.cli as root
    from biobank.cli import panels as panel_cli

    monkeypatch.delenv("BIOBANK_CENTER_KEY", raising=False)
    monkeypatch.delenv("BIOBANK_KEY_FILE", raising=False)
    cs = build_clinical_store(tmp_path / "c.duckdb", load=False)
    app = typer.Typer()
    app.callback()(root._root)  # the real root options; 'panel' registered as in biobank.cli
    panel_cli.register(app)
    rng = np.random.default_rng(1)
    names = [f"R{i}" for i in range(40)]
    lines = [
        "##fileformat=VCFv4.2",
        "##contig=<ID=7,length=100000>",
        '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">',
        "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\t" + "\t".join(names),
    ]
    for pos in range(100, 3100, 100):
        af = np.where(np.arange(40) < 20, 0.2, 0.7)
        draws = zip(rng.random(40) < af, rng.random(40) < af, strict=True)
        gts = "\t".join(f"{int(x)}|{int(y)}" for x, y in draws)
        lines.append(f"7\t{pos}\t.\tA\tC\t.\tPASS\t.\tGT\t{gts}")
    (tmp_path / "p.vcf").write_text("\n".join(lines) + "\n")
    (tmp_path / "p.tsv").write_text(
        "IID\tpop\n" + "".join(f"R{i}\t{'AA' if i < 20 else 'BB'}\n" for i in range(40))
    )
    base = ["--store", str(cs.path), "--user", "reg", "panel"]
    runner = CliRunner()
    loaded = runner.invoke(
        app,
        [*base, "load", str(tmp_path / "p.vcf"), "--populations", str(tmp_path / "p.tsv"),
         "--name", "tiny", "--components", "2", "--min-frequency", "0.01"],
    )  # fmt: skip
    assert loaded.exit_code == 0, loaded.output
    assert "loaded panel tiny: 40 samples (AA 20, BB 20), 30 variants" in loaded.output
    listed = runner.invoke(app, [*base, "list", "--format", "json"])
    assert listed.exit_code == 0, listed.output
    assert '"name": "tiny"' in listed.output
    again = runner.invoke(
        app,
        [*base, "load", str(tmp_path / "p.vcf"), "--populations", str(tmp_path / "p.tsv"),
         "--name", "tiny"],
    )  # fmt: skip
    assert isinstance(again.exception, ConflictError)
