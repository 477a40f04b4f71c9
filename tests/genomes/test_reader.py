"""Tests for biobank.genomes.reader: carriers, genotype matrices, PCA, access, consent, audit.

References: cyvcf2 and scikit-allel reading the same VCFs directly.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from biobank.core.access import Principal, Role, add_user
from biobank.core.errors import AccessDenied, ConsentError, ValidationError
from biobank.core.store import Store
from biobank.genomes.load import load_vcf
from biobank.genomes.reader import VariantFilter, carriers, genotype_matrix, pca, variants

VCF = Path(__file__).parents[1] / "data" / "vcf"
SHARED = Path(__file__).resolve().parents[3] / "shared" / "data" / "1kg-phase3-subset"
ADMIN = Principal("ada", Role.ADMIN)
REGISTRAR = Principal("reg", Role.REGISTRAR)


def _audit_entries(store: Store, action: str) -> list[dict[str, object]]:
    rows = store.con.execute(
        "SELECT target, CAST(detail AS VARCHAR) FROM audit_log WHERE action = ? ORDER BY entry_id",
        [action],
    ).fetchall()
    return [{"target": r[0], **json.loads(r[1])} for r in rows]


@pytest.fixture
def tiny(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Store, dict[str, str]]]:
    """tiny.vcf (S0001-S0004) and tiny_batch2.vcf (S0005, S0006) loaded; consents vary."""
    from stdnum.cn import ric

    from biobank.core.ids import center_key, make_label
    from biobank.registry.consent import add_consent
    from biobank.registry.participants import register_participant
    from biobank.registry.specimens import add_specimen

    monkeypatch.delenv("BIOBANK_CENTER_KEY", raising=False)
    monkeypatch.delenv("BIOBANK_KEY_FILE", raising=False)
    store = Store(tmp_path / "t.duckdb")
    center_key(store.path, create=True)
    with store.transaction() as con:
        admin = add_user(con, None, "ada", Role.ADMIN)
        add_user(con, admin, "reg", Role.REGISTRAR)
        add_user(con, admin, "rita", Role.RESEARCHER)
        add_user(con, admin, "aud", Role.AUDITOR)
    pids = {}
    codes = ["HMB", "GRU", "DS:C50", "HMB", "HMB", "POA"]
    for i, code in enumerate(codes, start=1):
        body = f"11010519800101{i:03d}"
        pid = register_participant(
            store,
            REGISTRAR,
            national_id=body + ric.calc_check_digit(body + "0"),
            name="测试",
            sex="male" if i % 2 else "female",
            birth_date="1980-01-01",
            enrolment_date="2020-01-01",
            site="BJ01",
        )
        primary, _, disease = code.partition(":")
        add_consent(
            store,
            REGISTRAR,
            pid,
            version="v1",
            signed_date=dt.date(2020, 1, 1),
            duo_codes=primary,
            disease=disease or None,
        )
        add_specimen(
            store,
            REGISTRAR,
            label=make_label("DN", i),
            participant_id=pid,
            specimen_type="dna",
            collected_at="2020-01-01T09:00:00",
            quantity=10.0,
            unit="ug",
            sequencing_sample_id=f"S000{i}",
        )
        pids[f"S000{i}"] = pid
    load_vcf(store, VCF / "tiny.vcf", principal=REGISTRAR, call_fields=["DP", "GQ"])
    load_vcf(store, VCF / "tiny_batch2.vcf", principal=REGISTRAR)
    yield store, pids
    store.close()


def test_variants__filters_by_gene_region_consequence_and_id(
    tiny: tuple[Store, dict[str, str]],
) -> None:
    store, _ = tiny
    pos = lambda f: variants(store.con, f)["variant_position"].to_list()  # noqa: E731
    assert pos(VariantFilter(genes=["GENE1"])) == [100, 300]
    assert pos(VariantFilter(region="chr1:150-300")) == [200, 200, 300, 150]
    assert pos(VariantFilter(consequences=["stop_gained", "synonymous"])) == [300, 5000]
    assert pos(VariantFilter(variant_ids=["rs3"])) == [300]
    assert pos(VariantFilter(region="chr1", pass_only=True)) == [100, 300, 150]
    with pytest.raises(ValidationError, match="ends before it starts"):
        variants(store.con, VariantFilter(region="chr1:300-100"))


def test_carriers__match_the_vcf_and_are_audited(tiny: tuple[Store, dict[str, str]]) -> None:
    store, pids = tiny
    df = carriers(store.con, principal=ADMIN, variant_filter=VariantFilter(genes=["GENE1"]))
    got = sorted(
        zip(
            df["sample_id"].to_list(),
            df["variant_position"].to_list(),
            df["call_dosage"].to_list(),
            strict=True,
        )
    )
    # tiny.vcf: GENE1 = chr1:100 (S0002 0/1, S0003 1/1, S0004 ./.) and chr1:300 (S0003 0|1);
    # tiny_batch2.vcf: chr1:100 S0005 0/1
    assert got == [("S0002", 100, 1), ("S0003", 100, 2), ("S0003", 300, 1), ("S0005", 100, 1)]
    assert df.filter(pl.col("sample_id") == "S0002")["call_DP"].to_list() == [12]
    assert set(df["participant_id"]) == {pids["S0002"], pids["S0003"], pids["S0005"]}
    entry = _audit_entries(store, "genotype.read")[-1]
    assert (entry["target"], entry["rows"], entry["participants"]) == ("carriers", 4, 3)


def test_carriers__by_frequency_in_the_sample_set(tiny: tuple[Store, dict[str, str]]) -> None:
    store, pids = tiny
    df = carriers(
        store.con,
        [pids["S0001"], pids["S0002"], pids["S0003"], pids["S0004"]],
        principal=ADMIN,
        variant_filter=VariantFilter(region="chr1", max_frequency=0.25),
    )
    # chr1:300 A is 1 of 8 alleles, chr1:200 T and CA 2 of 8 each; chr1:100 G is 3 of 6
    assert sorted(df["variant_alt"].to_list()) == ["A", "CA", "CA", "T", "T"]


def test_carriers__researcher_sees_only_consented_participants(
    tiny: tuple[Store, dict[str, str]],
) -> None:
    store, _pids = tiny
    rita = Principal("rita", Role.RESEARCHER)
    with pytest.raises(ConsentError, match="needs a purpose"):
        carriers(store.con, principal=rita)
    df = carriers(
        store.con, principal=rita, purpose="HMB", variant_filter=VariantFilter(region="chr1:100")
    )
    # S0003 consented DS:C50 only, so not for HMB; S0002 and S0005 carry
    assert sorted(df["sample_id"].to_list()) == ["S0002", "S0005"]
    ds = carriers(
        store.con, principal=rita, purpose="DS:C50", variant_filter=VariantFilter(region="chr1:100")
    )
    assert sorted(ds["sample_id"].to_list()) == ["S0002", "S0003", "S0005"]


def test_carriers__auditor_may_not_read_genotypes(tiny: tuple[Store, dict[str, str]]) -> None:
    store, _ = tiny
    with pytest.raises(AccessDenied, match="may not read genotypes"):
        carriers(store.con, principal=Principal("aud", Role.AUDITOR))


def test_genotype_matrix__missing_where_a_batch_did_not_cover(
    tiny: tuple[Store, dict[str, str]],
) -> None:
    store, _ = tiny
    m = genotype_matrix(store.con, principal=ADMIN, variant_filter=VariantFilter(region="chr1"))
    ids = m.samples["sample_id"].to_list()
    pos = m.variants["variant_position"].to_list()
    g = m.genotypes.values
    s5, s1 = ids.index("S0005"), ids.index("S0001")
    # chr1:150 is new in batch 2: missing (not hom-ref) for batch-1 samples
    assert g[pos.index(150), s1].tolist() == [-1, -1]
    assert g[pos.index(150), ids.index("S0006")].tolist() == [1, 1]
    # chr1:300 was not in batch 2: missing for S0005, hom-ref for S0001 (covered, no call)
    assert g[pos.index(300), s5].tolist() == [-1, -1]
    assert g[pos.index(300), s1].tolist() == [0, 0]
    assert _audit_entries(store, "genotype.read")[-1]["target"] == "genotype_matrix"


def test_genotype_matrix__matches_scikit_allel_on_the_vcf(
    tiny: tuple[Store, dict[str, str]],
) -> None:
    import allel

    store, pids = tiny
    m = genotype_matrix(
        store.con,
        [pids[f"S000{i}"] for i in range(1, 5)],
        principal=ADMIN,
        variant_filter=VariantFilter(variant_ids=["rs1", "rs3"]),
    )
    ref = allel.read_vcf(str(VCF / "tiny.vcf"), fields=["calldata/GT", "variants/ID"])
    keep = np.isin(ref["variants/ID"], ["rs1", "rs3"])
    assert m.samples["sample_id"].to_list() == ["S0001", "S0002", "S0003", "S0004"]
    assert np.array_equal(m.genotypes.values, ref["calldata/GT"][keep])


@pytest.mark.shared
def test_genotype_matrix_and_carriers__match_cyvcf2_on_1000_genomes(tmp_path: Path) -> None:
    import allel
    import cyvcf2

    if not SHARED.is_dir():
        pytest.skip("../shared/data is absent")
    vcf = SHARED / "1KG_phase3_subset_chr22.vcf.gz"
    with Store(tmp_path / "kg.duckdb") as store:
        names = cyvcf2.VCF(str(vcf)).samples
        store.con.execute(
            "INSERT INTO sequencing_sample SELECT unnest(?::VARCHAR[]) AS s, 'L', 'P-' || s",
            [names],
        )
        load_vcf(store, vcf, principal=REGISTRAR)
        region = "22:30000000-40000000"
        m = genotype_matrix(store.con, principal=ADMIN, variant_filter=VariantFilter(region=region))
        rare = carriers(
            store.con,
            principal=ADMIN,
            variant_filter=VariantFilter(region=region, max_frequency=0.01),
        )
    ref = allel.read_vcf(
        str(vcf), fields=["calldata/GT", "variants/ALT", "variants/POS", "samples"]
    )
    inside = (ref["variants/POS"] >= 30_000_000) & (ref["variants/POS"] <= 40_000_000)
    biallelic = (ref["variants/ALT"][:, 1] == "") & inside
    stored_multi = m.variants.group_by("variant_position").len().filter(pl.col("len") > 1)
    ours = m.genotypes.values[
        ~m.variants["variant_position"].is_in(stored_multi["variant_position"]).to_numpy()
    ]
    assert m.samples["sample_id"].to_list() == list(ref["samples"])
    assert np.array_equal(ours, ref["calldata/GT"][biallelic][:, :, :2])
    # carriers of rare variants, straight from cyvcf2
    want = set()
    reader = cyvcf2.VCF(str(vcf))
    for rec in reader:
        if not 30_000_000 <= rec.POS <= 40_000_000:
            continue
        gts = rec.genotype.array()[:, :2]
        for a, alt in enumerate(rec.ALT, start=1):
            dosage = (gts == a).sum(axis=1)
            if dosage.sum() / (2 * len(names)) <= 0.01:
                for i in np.flatnonzero(dosage):
                    want.add((names[i], rec.POS, alt, int(dosage[i])))
    got = set(
        zip(
            rare["sample_id"],
            rare["variant_position"],
            rare["variant_alt"],
            rare["call_dosage"],
            strict=True,
        )
    )
    assert got == want
    assert len(got) > 100


@pytest.mark.shared
def test_pca__first_component_separates_african_from_other_samples(tmp_path: Path) -> None:
    if not SHARED.is_dir():
        pytest.skip("../shared/data is absent")
    annot = pl.read_csv(SHARED / "1KG_phase3_subset_annot.tsv", separator="\t")
    with Store(tmp_path / "kg.duckdb") as store:
        store.con.register("_a", annot.select(pl.col("sample.id").alias("s")))
        store.con.execute("INSERT INTO sequencing_sample SELECT s, 'L', 'P-' || s FROM _a")
        for c in ("21", "22"):
            load_vcf(store, SHARED / f"1KG_phase3_subset_chr{c}.vcf.gz", principal=REGISTRAR)
        coords, ratio = pca(store.con, principal=ADMIN, n_components=4)
        assert _audit_entries(store, "genotype.read")[-1]["target"] == "genotype_matrix"
    afr = {"YRI", "LWK", "GWD", "MSL", "ESN", "ASW", "ACB"}
    pops = dict(zip(annot["sample.id"], annot["Population"], strict=True))
    is_afr = np.array([pops[s] in afr for s in coords["sample_id"].to_list()])
    assert coords.height == annot.height
    assert ratio[0] > ratio[1]
    assert abs(np.corrcoef(coords["pc1"].to_numpy(), is_afr)[0, 1]) > 0.8
