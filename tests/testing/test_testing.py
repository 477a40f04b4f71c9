"""Tests of the demo-center generator (biobank.testing), checked with independent tools.

The tiny preset is generated once per session; bcftools, bwa, samtools, stdnum,
cyvcf2, scikit-allel and scipy check what it wrote.
"""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import itertools
import os
import re
import subprocess
from collections import Counter
from pathlib import Path

import numpy as np
import pysam
import pytest
from stdnum.cn import ric

from biobank.cli import main
from biobank.core.errors import ConflictError, ValidationError
from biobank.core.ids import is_valid_label
from biobank.registry.vocab import SPECIMEN_STATUSES, SPECIMEN_TYPES, UNITS
from biobank.testing import (
    REFERENCE_DATE,
    Manifest,
    generate_demo,
    simulate_cohort_vcf,
    transcode_registry,
    write_registry_for_samples,
)

# The standard genetic code, written out here independently of biobank.testing.genome.
_AA = "FFLLSSSSYY**CC*WLLLLPPPPHHQQRRRRIIIMTTTTNNKKSSRRVVVVAAAADDEEGGGG"
CODONS = {"".join(c): aa for c, aa in zip(itertools.product("TCAG", repeat=3), _AA, strict=True)}


def _revcomp(s: str) -> str:
    return s[::-1].translate(str.maketrans("ACGTN", "TGCAN"))


def _read_csv(path: Path, delimiter: str = ",") -> list[dict[str, str]]:
    with open(path, encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh, delimiter=delimiter))


def _sh(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, check=True)


@pytest.fixture(scope="session")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("gen")
    cwd = os.getcwd()
    os.chdir(base)  # a relative OUT, as `./run demo` uses: samples.tsv paths are relative
    try:  # through the command line, so the CLI path is covered too
        assert main(["demo-data", "demo", "--preset", "tiny", "--seed", "7"]) == 0
    finally:
        os.chdir(cwd)
    return base / "demo"


@pytest.fixture(scope="session")
def sample_to_nid(demo: Path) -> dict[str, str]:
    return {
        r["sequencing_sample_id"]: r["national_id"]
        for r in _read_csv(demo / "registry" / "specimens.csv")
        if r["sequencing_sample_id"]
    }


# ------------------------------------------------------------------ layout, determinism, CLI
def test_generate_demo__writes_the_architecture_layout(demo: Path) -> None:
    manifest = Manifest.load(demo)
    sequenced = manifest.parameters["sequenced_samples"]
    expected = [
        "reference/genome.fa",
        "reference/genome.fa.fai",
        "reference/genes.gff3",
        "population/cohort.vcf.gz",
        "population/cohort.vcf.gz.tbi",
        "truth/causal_variants.tsv",
        "truth/ancestry.tsv",
        "samples.tsv",
        *[f"registry/{n}.csv" for n in ("participants", "consents", "specimens")],
        *[
            f"clinical/{n}.csv"
            for n in (
                "person",
                "condition_occurrence",
                "measurement",
                "observation_period",
                "death",
            )
        ],
        *[f"truth/{s}.vcf.gz" for s in sequenced],
    ]
    for rel in expected:
        assert rel in manifest.files, rel
    for rel, digest in manifest.files.items():
        assert len(digest) == 64
        assert (demo / rel).is_file()
    assert manifest.counts["sequenced_samples"] == 2
    assert 150 <= manifest.counts["participants"] <= 260


def test_generate_demo__is_deterministic_for_a_seed(
    demo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    again = generate_demo("demo", seed=7, preset="tiny")
    assert again.files == Manifest.load(demo).files
    assert (tmp_path / "demo" / "manifest.json").read_bytes() == (
        demo / "manifest.json"
    ).read_bytes()
    other = generate_demo(tmp_path / "other", seed=8, preset="tiny", reads=False)
    assert other.files["population/cohort.vcf.gz"] != again.files["population/cohort.vcf.gz"]
    assert other.files["registry/participants.csv"] != again.files["registry/participants.csv"]


def test_generate_demo__rejects_unknown_preset_and_bad_seed(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="unknown preset 'huge'"):
        generate_demo(tmp_path / "x", preset="huge")
    with pytest.raises(ValidationError, match="seed must be a positive"):
        generate_demo(tmp_path / "x", seed=0, preset="tiny")


def test_generate_demo__refuses_a_non_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("keep me")
    with pytest.raises(ConflictError, match=r"is not empty.*--force"):
        generate_demo(tmp_path, preset="tiny")
    assert (tmp_path / "notes.txt").read_text() == "keep me"


def test_generate_demo__force_replaces_only_its_own_files(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("keep me")
    (tmp_path / "registry").mkdir()
    (tmp_path / "registry" / "stale.csv").write_text("old")
    manifest = generate_demo(tmp_path, seed=3, preset="tiny", force=True, reads=False)
    assert (tmp_path / "notes.txt").read_text() == "keep me"
    assert not (tmp_path / "registry" / "stale.csv").exists()
    assert "notes.txt" not in manifest.files
    assert "registry/participants.csv" in manifest.files


def test_cli_demo_data__refuses_non_empty_out(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "x").write_text("")
    assert main(["demo-data", str(tmp_path), "--preset", "tiny"]) == 1
    assert "is not empty" in capsys.readouterr().err


def test_cli_demo_data__rejects_unknown_preset(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["demo-data", str(tmp_path / "o"), "--preset", "big"]) == 1
    assert "unknown preset 'big'" in capsys.readouterr().err


# ------------------------------------------------------------------ reference and genes
def test_reference__has_realistic_composition(demo: Path) -> None:
    fa = pysam.FastaFile(str(demo / "reference" / "genome.fa"))
    assert set(fa.references) == {"chr1", "chr2", "chrX", "chrY"}
    assert 300_000 <= sum(fa.lengths) <= 500_000
    seq = "".join(fa.fetch(c) for c in fa.references)
    acgt = seq.replace("N", "")
    gc = (acgt.count("G") + acgt.count("C")) / len(acgt)
    assert 0.37 <= gc <= 0.45
    cpg_oe = acgt.count("CG") * len(acgt) / (acgt.count("C") * acgt.count("G"))
    assert cpg_oe < 0.5  # depleted, as in mammals (about 0.2-0.25)
    assert re.search(r"N{200,}", seq)  # gaps
    assert re.search(r"A{10,}|C{10,}|G{10,}|T{10,}", seq)  # homopolymers
    assert re.search(r"((?:[ACGT]{2,4}))\1{5,}", seq)  # microsatellites


def _gff_transcripts(path: Path) -> dict[str, dict[str, list[tuple[str, int, int, str]]]]:
    out: dict[str, dict[str, list[tuple[str, int, int, str]]]] = {}
    for line in path.read_text().splitlines():
        if line.startswith("#"):
            continue
        f = line.split("\t")
        attrs = dict(kv.split("=", 1) for kv in f[8].split(";"))
        if f[2] in ("CDS", "exon"):
            tid = attrs["Parent"]
            out.setdefault(tid, {}).setdefault(f[2], []).append((f[0], int(f[3]), int(f[4]), f[6]))
    return out


def test_gff3__cds_are_open_reading_frames_with_gt_ag_introns(demo: Path) -> None:
    fa = pysam.FastaFile(str(demo / "reference" / "genome.fa"))
    text = (demo / "reference" / "genes.gff3").read_text()
    assert "ID=gene:" in text
    assert "biotype=protein_coding" in text
    transcripts = _gff_transcripts(demo / "reference" / "genes.gff3")
    assert len(transcripts) >= 15
    strands = set()
    for tid, parts in transcripts.items():
        assert tid.startswith("transcript:")
        cds = sorted(parts["CDS"], key=lambda x: x[1])
        contig, strand = cds[0][0], cds[0][3]
        strands.add(strand)
        seq = "".join(fa.fetch(contig, s - 1, e) for _, s, e, _ in cds)  # GFF: 1-based inclusive
        if strand == "-":
            seq = _revcomp(seq)
        assert len(seq) % 3 == 0, tid
        protein = "".join(CODONS[seq[i : i + 3]] for i in range(0, len(seq), 3))
        assert protein[0] == "M", tid
        assert protein[-1] == "*", tid
        assert "*" not in protein[:-1], tid
        exons = sorted(parts["exon"], key=lambda x: x[1])
        for (_, _, e1, _), (_, s2, _, _) in itertools.pairwise(exons):
            intron = fa.fetch(contig, e1, s2 - 1)
            if strand == "-":
                intron = _revcomp(intron)
            assert intron[:2] == "GT", tid
            assert intron[-2:] == "AG", tid
    assert strands == {"+", "-"}


def test_csq__annotates_missense_stop_frameshift_and_splice(demo: Path) -> None:
    out = _sh(
        "bcftools", "csq", "--phase", "a",
        "-f", demo / "reference" / "genome.fa",
        "-g", demo / "reference" / "genes.gff3",
        demo / "population" / "cohort.vcf.gz",
    ).stdout  # fmt: skip
    classes = Counter(
        part.split("|")[0]
        for m in re.finditer(r"BCSQ=([^\t;]+)", out)
        for part in m.group(1).split(",")
    )
    kinds = {k for c in classes for k in c.lstrip("*").split("&")}
    assert {"missense", "stop_gained", "frameshift"} <= kinds
    assert kinds & {"splice_donor", "splice_acceptor"}


# ------------------------------------------------------------------ VCFs
def test_vcfs__are_valid_and_match_the_reference(demo: Path) -> None:
    fasta = demo / "reference" / "genome.fa"
    vcfs = [demo / "population" / "cohort.vcf.gz", *sorted((demo / "truth").glob("*.vcf.gz"))]
    for vcf in vcfs:
        assert _sh("bcftools", "view", "-H", vcf).stdout.count("\n") > 100
        # -c e: a REF mismatch is an error; nothing must need realigning
        norm = _sh("bcftools", "norm", "-c", "e", "-f", fasta, "-Ou", "-o", "/dev/null", vcf)
        m = re.search(r"total/split/realigned/skipped:\s+(\d+)/(\d+)/(\d+)/(\d+)", norm.stderr)
        assert m is not None, norm.stderr
        assert m.group(3) == "0", f"{vcf}: indels not left-aligned"
        header = pysam.VariantFile(str(vcf)).header
        fai = pysam.FastaFile(str(fasta))
        assert {c: header.contigs[c].length for c in header.contigs} == dict(
            zip(fai.references, fai.lengths, strict=True)
        )


def test_vcfs__sequenced_samples_only_in_truth(demo: Path) -> None:
    cohort = set(pysam.VariantFile(str(demo / "population" / "cohort.vcf.gz")).header.samples)
    sequenced = Manifest.load(demo).parameters["sequenced_samples"]
    assert not cohort & set(sequenced)
    for s in sequenced:
        assert list(pysam.VariantFile(str(demo / "truth" / f"{s}.vcf.gz")).header.samples) == [s]


def test_vcfs__males_are_haploid_on_x(demo: Path, sample_to_nid: dict[str, str]) -> None:
    sex = {r["national_id"]: r["sex"] for r in _read_csv(demo / "registry" / "participants.csv")}
    vcf = pysam.VariantFile(str(demo / "population" / "cohort.vcf.gz"))
    ploidy: dict[str, set[int]] = {}
    for rec in itertools.islice(vcf.fetch("chrX"), 50):
        for name, call in rec.samples.items():
            ploidy.setdefault(name, set()).add(len(call["GT"]))
    for name, p in ploidy.items():
        assert p == ({1} if sex[sample_to_nid[name]] == "male" else {2}), name
    for rec in itertools.islice(vcf.fetch("chr1"), 20):
        assert {len(c["GT"]) for c in rec.samples.values()} == {2}


def test_population__site_frequency_spectrum_has_many_rare_variants(demo: Path) -> None:
    import allel

    data = allel.read_vcf(
        str(demo / "population" / "cohort.vcf.gz"), fields=["variants/CHROM", "calldata/GT"]
    )
    gt = allel.GenotypeArray(data["calldata/GT"][data["variants/CHROM"] == "chr1"])
    ac = gt.count_alleles()
    n = gt.n_samples * 2
    maf = np.minimum(ac[:, 1], n - ac[:, 1]) / n
    assert np.mean(maf < 0.01) > 0.3
    assert np.mean(maf < 0.05) > 0.5
    assert np.any(maf > 0.2)
    assert (ac[:, 1] == 1).sum() > (ac[:, 1] == 2).sum()  # singletons outnumber doubletons


def test_population__has_indels_and_ancestry_groups(demo: Path) -> None:
    vcf = pysam.VariantFile(str(demo / "population" / "cohort.vcf.gz"))
    lengths = Counter(len(r.ref) != len(r.alts[0]) for r in vcf)
    assert 0.03 < lengths[True] / (lengths[True] + lengths[False]) < 0.2
    anc = _read_csv(demo / "truth" / "ancestry.tsv", "\t")
    assert {r["ancestry"] for r in anc} == {"Han-North", "Han-South", "Tibetan"}


def test_population__relatives_share_alleles(demo: Path) -> None:
    """Parent-offspring pairs never have opposite homozygotes (checked with cyvcf2)."""
    import cyvcf2

    rel = [r for r in _read_csv(demo / "truth" / "relatives.tsv", "\t")]
    pairs = [r for r in rel if r["relationship"] == "parent-offspring"]
    vcf = cyvcf2.VCF(str(demo / "population" / "cohort.vcf.gz"))
    idx = {s: i for i, s in enumerate(vcf.samples)}
    pairs = [r for r in pairs if r["sample_id_1"] in idx and r["sample_id_2"] in idx]
    assert pairs
    gts = np.array([v.gt_types.copy() for v in vcf("chr1")])  # 0 hom-ref, 1 het, 3 hom-alt
    unrelated_opposite = 0
    for r in pairs:
        a, b = gts[:, idx[r["sample_id_1"]]], gts[:, idx[r["sample_id_2"]]]
        assert not np.any(((a == 0) & (b == 3)) | ((a == 3) & (b == 0))), r
    names = list(idx)
    for i in range(0, 40, 2):
        a, b = gts[:, idx[names[i]]], gts[:, idx[names[i + 1]]]
        unrelated_opposite += int(np.sum(((a == 0) & (b == 3)) | ((a == 3) & (b == 0))))
    assert unrelated_opposite > 0  # the check above can fail


# ------------------------------------------------------------------ reads
def test_fastq__reads_map_back_to_their_origin(demo: Path, tmp_path: Path) -> None:
    sheet = _read_csv(demo / "samples.tsv", "\t")
    assert list(sheet[0]) == [
        "sample_id", "unit", "library", "platform", "flowcell", "lane", "fq1", "fq2",
    ]  # fmt: skip
    assert Counter(r["sample_id"] for r in sheet).most_common(1)[0][1] == 2  # unit merging
    ref = tmp_path / "ref.fa"
    ref.write_bytes((demo / "reference" / "genome.fa").read_bytes())
    _sh("bwa", "index", ref)
    row = sheet[0]
    sub1, sub2 = tmp_path / "r1.fq", tmp_path / "r2.fq"
    for src, dst in ((row["fq1"], sub1), (row["fq2"], sub2)):
        path = demo / "fastq" / Path(src).name
        with gzip.open(path, "rt") as fh:
            lines = [line for _, line in zip(range(4 * 3000), fh, strict=False)]
        # also take reads from the second haplotype (the file holds h0 then h1)
        with gzip.open(path, "rt") as fh:
            tail = fh.readlines()[-4 * 1000 :]
        dst.write_text("".join(lines + tail))
    sam = _sh("bwa", "mem", "-t", "1", ref, sub1, sub2).stdout
    reads = [ln.split("\t") for ln in sam.splitlines() if not ln.startswith("@")]
    primary = [r for r in reads if int(r[1]) & 0x900 == 0]
    assert len(primary) == 8000
    mapped = [r for r in primary if not int(r[1]) & 0x4]
    assert len(mapped) / len(primary) > 0.95
    assert np.mean([int(r[4]) > 0 for r in mapped]) > 0.85
    right_place = 0
    for r in mapped:
        contig, start, end = re.match(r"[^:]+:[^:]+:h\d:(\w+?)_(\d+)_(\d+)_", r[0]).groups()  # type: ignore[union-attr]
        near = min(abs(int(r[3]) - int(start)), abs(int(r[3]) - int(end)))
        right_place += r[2] == contig and near < 600
    assert right_place / len(mapped) > 0.9


def test_fastq__sex_chromosome_depth_follows_registered_sex(
    demo: Path, sample_to_nid: dict[str, str]
) -> None:
    sex = {r["national_id"]: r["sex"] for r in _read_csv(demo / "registry" / "participants.csv")}
    fai = pysam.FastaFile(str(demo / "reference" / "genome.fa"))
    length = dict(zip(fai.references, fai.lengths, strict=True))
    sheet = _read_csv(demo / "samples.tsv", "\t")
    seen = set()
    for row in sheet:
        counts: Counter[str] = Counter()
        for r in sheet:
            if r["sample_id"] == row["sample_id"]:
                with gzip.open(demo / "fastq" / Path(r["fq1"]).name, "rt") as fh:
                    for i, line in enumerate(fh):
                        if i % 4 == 0:
                            counts[line.split(":")[3].split("_")[0]] += 1
        per_kb = {c: 1000 * counts[c] / length[c] for c in length}
        x_ratio = per_kb["chrX"] / per_kb["chr1"]
        if sex[sample_to_nid[row["sample_id"]]] == "male":
            assert 0.35 < x_ratio < 0.65
            assert per_kb["chrY"] / per_kb["chr1"] > 0.35
        else:
            assert 0.8 < x_ratio < 1.2
            assert counts["chrY"] == 0
        seen.add(sex[sample_to_nid[row["sample_id"]]])
    assert seen == {"male", "female"}


# ------------------------------------------------------------------ registry
def test_registry__national_ids_valid_and_consistent(demo: Path) -> None:
    rows = _read_csv(demo / "registry" / "participants.csv")
    assert list(rows[0]) == [
        "national_id", "name", "sex", "birth_date", "phone", "enrolment_date", "site", "cohorts",
    ]  # fmt: skip
    assert len({r["national_id"] for r in rows}) == len(rows)
    for r in rows:
        nid = r["national_id"]
        assert ric.is_valid(nid), nid
        assert ric.get_birth_place(nid)["province"]
        assert ric.get_birth_date(nid).isoformat() == r["birth_date"]
        assert r["sex"] == ("male" if int(nid[16]) % 2 else "female")
        assert re.fullmatch(r"1[3-9]\d{9}", r["phone"])
        assert 2 <= len(r["name"]) <= 4
        birth = dt.date.fromisoformat(r["birth_date"])
        enrol = dt.date.fromisoformat(r["enrolment_date"])
        assert (enrol - birth).days >= 18 * 365
        assert enrol <= REFERENCE_DATE
        assert r["cohorts"]


def test_registry__consents_cover_codes_withdrawals_and_reconsent(demo: Path) -> None:
    rows = _read_csv(demo / "registry" / "consents.csv")
    nids = {r["national_id"] for r in _read_csv(demo / "registry" / "participants.csv")}
    assert {r["national_id"] for r in rows} == nids
    primary = Counter(r["duo_codes"].split(";")[0] for r in rows)
    assert primary["GRU"] > primary["HMB"] > primary["DS"] > 0
    for r in rows:
        assert (r["disease"] != "") == (r["duo_codes"].split(";")[0] == "DS")
        if r["withdrawn_date"]:
            assert r["withdrawn_date"] > r["signed_date"]
    assert Counter(r["national_id"] for r in rows).most_common(1)[0][1] == 2  # re-consent


def test_registry__specimens_labels_lineage_and_storage(
    demo: Path, sample_to_nid: dict[str, str]
) -> None:
    rows = _read_csv(demo / "registry" / "specimens.csv")
    people = {r["national_id"]: r for r in _read_csv(demo / "registry" / "participants.csv")}
    seen: dict[str, dict[str, str]] = {}
    slots = set()
    for r in rows:
        assert is_valid_label(r["label"]), r["label"]
        assert r["label"] not in seen
        if r["parent_label"]:
            parent = seen[r["parent_label"]]  # parents come first
            assert parent["national_id"] == r["national_id"]
            if parent["unit"] == r["unit"]:
                assert float(r["quantity"]) <= float(parent["quantity"])
            assert r["collected_at"] >= parent["collected_at"]
        collected = dt.datetime.fromisoformat(r["collected_at"]).date()
        assert dt.date.fromisoformat(people[r["national_id"]]["birth_date"]) < collected
        assert collected <= REFERENCE_DATE
        if r["status"] == "available":
            slot = (r["freezer"], r["rack"], r["box"], r["position"])
            assert all(slot)
            assert slot not in slots
            slots.add(slot)
        else:
            assert not r["position"]
        seen[r["label"]] = r
    # the registry's own vocabularies (biobank.registry.vocab) accept every code written
    assert {r["unit"] for r in rows} <= set(UNITS)
    assert {r["status"] for r in rows} <= set(SPECIMEN_STATUSES)
    assert {r["specimen_type"] for r in rows} <= set(SPECIMEN_TYPES)
    types = Counter(r["specimen_type"] for r in rows)
    assert {"whole_blood", "buffy_coat", "dna", "plasma", "serum", "tissue_ffpe"} <= set(types)
    vcf_samples = set(pysam.VariantFile(str(demo / "population" / "cohort.vcf.gz")).header.samples)
    assert vcf_samples <= set(sample_to_nid)
    assert all(r["specimen_type"] == "dna" for r in rows if r["sequencing_sample_id"])


def test_generate_demo__gb18030_registry_has_the_same_text(demo: Path, tmp_path: Path) -> None:
    manifest = generate_demo(
        tmp_path / "gb", seed=7, preset="tiny", reads=False, registry_encoding="gb18030"
    )
    for name in ("participants", "consents", "specimens"):
        raw = (tmp_path / "gb" / "registry" / f"{name}.csv").read_bytes()
        assert raw.decode("gb18030") == (demo / "registry" / f"{name}.csv").read_text("utf-8")
    # without reads, every other file is the same as with them
    full = Manifest.load(demo).files
    for rel, digest in manifest.files.items():
        if not rel.startswith("registry/"):
            assert full[rel] == digest, rel
    with pytest.raises(ValidationError, match="registry_encoding 'latin-1' is not supported"):
        generate_demo(tmp_path / "x", preset="tiny", registry_encoding="latin-1")


def test_registry__gb18030_copy_decodes_to_the_same_text(demo: Path, tmp_path: Path) -> None:
    paths = transcode_registry(demo / "registry", tmp_path)
    assert [p.name for p in paths] == ["participants.csv", "consents.csv", "specimens.csv"]
    for path in paths:
        original = (demo / "registry" / path.name).read_bytes()
        raw = path.read_bytes()
        assert raw.decode("gb18030") == original.decode("utf-8")
    raw = paths[0].read_bytes()
    assert raw != (demo / "registry" / "participants.csv").read_bytes()  # names differ in bytes
    with pytest.raises(UnicodeDecodeError):
        raw.decode("utf-8")


# ------------------------------------------------------------------ clinical
def test_clinical__tables_reference_participants_and_dates_are_consistent(demo: Path) -> None:
    clinical = demo / "clinical"
    nids = {r["national_id"]: r for r in _read_csv(demo / "registry" / "participants.csv")}
    person = {r["person_id"]: r for r in _read_csv(clinical / "person.csv")}
    assert {p["person_source_value"] for p in person.values()} == set(nids)
    birth = {}
    for pid, p in person.items():
        reg = nids[p["person_source_value"]]
        birth[pid] = dt.date(
            int(p["year_of_birth"]), int(p["month_of_birth"]), int(p["day_of_birth"])
        )
        assert birth[pid].isoformat() == reg["birth_date"]
        assert p["gender_source_value"] == ("M" if reg["sex"] == "male" else "F")
    obs = {r["person_id"]: r for r in _read_csv(clinical / "observation_period.csv")}
    assert set(obs) == set(person)
    span = {
        k: (
            dt.date.fromisoformat(r["observation_period_start_date"]),
            dt.date.fromisoformat(r["observation_period_end_date"]),
        )
        for k, r in obs.items()
    }
    for k, (a, b) in span.items():
        assert birth[k] < a <= b <= REFERENCE_DATE
    for table, col in (
        ("condition_occurrence", "condition_start_date"),
        ("measurement", "measurement_date"),
    ):
        for r in _read_csv(clinical / f"{table}.csv"):
            a, b = span[r["person_id"]]
            assert a <= dt.date.fromisoformat(r[col]) <= b, r
    for r in _read_csv(clinical / "death.csv"):
        assert span[r["person_id"]][1].isoformat() == r["death_date"]
    codes = [r["condition_source_value"] for r in _read_csv(clinical / "condition_occurrence.csv")]
    assert any(re.fullmatch(r"[A-Z]\d\d\.\d{3}", c) for c in codes)  # national clinical edition
    assert any(re.fullmatch(r"[A-Z]\d\d\.\d", c) for c in codes)
    units = {
        r["measurement_source_value"]: r["unit_source_value"]
        for r in _read_csv(clinical / "measurement.csv")
    }
    assert units == {
        "HbA1c": "%",
        "FPG": "mmol/L",
        "LDL-C": "mmol/L",
        "BMI": "kg/m2",
        "SBP": "mmHg",
    }
    women_bc = {
        person[r["person_id"]]["gender_source_value"]
        for r in _read_csv(clinical / "condition_occurrence.csv")
        if r["condition_source_value"].startswith("C50")
    }
    assert women_bc == {"F"}
    # the registry cohorts agree with the diagnoses
    prefix = {"T2D": "E11", "CAD": "I25", "BC": "C50", "FH": "E78", "WD": "E83", "HTN": "I10"}
    codes_of: dict[str, set[str]] = {}
    for r in _read_csv(clinical / "condition_occurrence.csv"):
        nid = person[r["person_id"]]["person_source_value"]
        codes_of.setdefault(nid, set()).add(r["condition_source_value"][:3])
    for nid, reg in nids.items():
        cohorts = set(reg["cohorts"].split(";"))
        expected = {c for c, code in prefix.items() if code in codes_of.get(nid, set())}
        assert cohorts == (expected or {"HV"}), (nid, cohorts, codes_of.get(nid))


def _dosage_at(vcf_path: Path, contig: str, pos: int) -> tuple[list[str], np.ndarray]:
    import cyvcf2

    vcf = cyvcf2.VCF(str(vcf_path))
    rec = next(vcf(f"{contig}:{pos}-{pos}"))
    gt = rec.gt_types  # 0 hom-ref, 1 het, 3 hom-alt
    return list(vcf.samples), np.where(gt == 3, 2, gt)


def test_planted_t2d_variant__is_enriched_in_cases(
    demo: Path, sample_to_nid: dict[str, str]
) -> None:
    from scipy.stats import fisher_exact

    causal = _read_csv(demo / "truth" / "causal_variants.tsv", "\t")
    t2d = next(r for r in causal if r["trait"] == "T2D")
    assert t2d["gene"] == "GCK"
    assert 0.05 <= float(t2d["cohort_af"]) <= 0.2
    person = {
        r["person_id"]: r["person_source_value"]
        for r in _read_csv(demo / "clinical" / "person.csv")
    }
    cases = {
        person[r["person_id"]]
        for r in _read_csv(demo / "clinical" / "condition_occurrence.csv")
        if r["condition_source_value"].startswith("E11")
    }
    samples, dosage = _dosage_at(
        demo / "population" / "cohort.vcf.gz", t2d["contig"], int(t2d["pos"])
    )
    case = np.array([sample_to_nid[s] in cases for s in samples])
    table = [
        [int(dosage[case].sum()), int(2 * case.sum() - dosage[case].sum())],
        [int(dosage[~case].sum()), int(2 * (~case).sum() - dosage[~case].sum())],
    ]
    odds, p = fisher_exact(table)
    # the tiny preset plants OR 5 per allele in ~200 people: clearly visible, not overwhelming
    assert odds > 2
    assert p < 0.01


def test_planted_variants__have_their_consequence_in_csq(demo: Path) -> None:
    causal = _read_csv(demo / "truth" / "causal_variants.tsv", "\t")
    out = _sh(
        "bcftools", "csq", "--phase", "a",
        "-f", demo / "reference" / "genome.fa",
        "-g", demo / "reference" / "genes.gff3",
        demo / "population" / "cohort.vcf.gz",
    ).stdout  # fmt: skip
    for r in causal:
        line = next(ln for ln in out.splitlines() if ln.startswith(f"{r['contig']}\t{r['pos']}\t"))
        expected = r["consequence"].removesuffix("_variant")
        assert f"{expected}|{r['gene']}|" in line, (r, line[:300])


# ------------------------------------------------------------------ benchmark helpers
def test_simulate_cohort_vcf__writes_exact_size_and_valid_ref(tmp_path: Path) -> None:
    vcf = simulate_cohort_vcf(
        tmp_path / "bench.vcf.gz", n_samples=60, n_variants=400, seed=3, fasta=tmp_path / "ref.fa"
    )
    assert (tmp_path / "bench.vcf.gz.tbi").exists()
    records = _sh("bcftools", "view", "-H", vcf).stdout.splitlines()
    assert len(records) == 400
    samples = _sh("bcftools", "query", "-l", vcf).stdout.split()
    assert samples[:2] == ["S000001", "S000002"]
    assert len(samples) == 60
    _sh("bcftools", "norm", "-c", "e", "-f", tmp_path / "ref.fa", "-Ou", "-o", "/dev/null", vcf)
    again = simulate_cohort_vcf(tmp_path / "again.vcf.gz", n_samples=60, n_variants=400, seed=3)
    assert again.read_bytes() == vcf.read_bytes()


def test_simulate_cohort_vcf__rejects_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match=r"must end in \.vcf\.gz"):
        simulate_cohort_vcf(tmp_path / "x.vcf", n_samples=5, n_variants=5)
    with pytest.raises(ValidationError, match="n_variants must be at least 1"):
        simulate_cohort_vcf(tmp_path / "x.vcf.gz", n_samples=5, n_variants=0)
    assert not list(tmp_path.iterdir())


def test_write_registry_for_samples__links_every_sample(tmp_path: Path) -> None:
    ids = [f"S{i:06d}" for i in range(1, 31)]
    write_registry_for_samples(tmp_path, ids, seed=5)
    spec = _read_csv(tmp_path / "specimens.csv")
    assert sorted(r["sequencing_sample_id"] for r in spec if r["sequencing_sample_id"]) == ids
    for r in _read_csv(tmp_path / "participants.csv"):
        assert ric.is_valid(r["national_id"])


# ------------------------------------------------ the demo preset: planted signals
@pytest.mark.slow
def test_demo_preset__planted_effects_are_detectable(tmp_path: Path) -> None:
    """On the full demo preset (no reads): Fisher finds GCK/T2D, a Cox model finds BRCA2."""
    import pandas as pd
    from lifelines import CoxPHFitter
    from scipy.stats import fisher_exact

    out = tmp_path / "demo"
    manifest = generate_demo(out, seed=42, preset="demo", reads=False)
    assert 950 <= manifest.counts["participants"] <= 1100
    assert not (out / "fastq").exists()
    periods = _read_csv(out / "clinical" / "observation_period.csv")
    bad = [
        r for r in periods if r["observation_period_start_date"] > r["observation_period_end_date"]
    ]
    assert bad == []
    for r in _read_csv(out / "registry" / "participants.csv"):
        born = dt.date.fromisoformat(r["birth_date"])
        assert dt.date(born.year + 18, born.month, min(born.day, 28)) <= dt.date.fromisoformat(
            r["enrolment_date"]
        ), r
    s2n = {
        r["sequencing_sample_id"]: r["national_id"]
        for r in _read_csv(out / "registry" / "specimens.csv")
        if r["sequencing_sample_id"]
    }
    person = {
        r["person_source_value"]: r["person_id"] for r in _read_csv(out / "clinical" / "person.csv")
    }
    conditions = _read_csv(out / "clinical" / "condition_occurrence.csv")
    causal = {r["gene"]: r for r in _read_csv(out / "truth" / "causal_variants.tsv", "\t")}
    vcf = out / "population" / "cohort.vcf.gz"

    t2d = {r["person_id"] for r in conditions if r["condition_source_value"].startswith("E11")}
    samples, dosage = _dosage_at(vcf, causal["GCK"]["contig"], int(causal["GCK"]["pos"]))
    case = np.array([person[s2n[s]] in t2d for s in samples])
    alt_case, alt_ctrl = int(dosage[case].sum()), int(dosage[~case].sum())
    table = [
        [alt_case, 2 * int(case.sum()) - alt_case],
        [alt_ctrl, 2 * int((~case).sum()) - alt_ctrl],
    ]
    odds, p = fisher_exact(table)
    assert 1.8 < odds < 4
    assert p < 1e-5

    bc = {
        r["person_id"]: r["condition_start_date"]
        for r in conditions
        if r["condition_source_value"].startswith("C50")
    }
    end = {
        r["person_id"]: r["observation_period_end_date"]
        for r in _read_csv(out / "clinical" / "observation_period.csv")
    }
    dead = {r["person_id"] for r in _read_csv(out / "clinical" / "death.csv")}
    samples, dosage = _dosage_at(vcf, causal["BRCA2"]["contig"], int(causal["BRCA2"]["pos"]))
    rows = [
        {
            "years": (dt.date.fromisoformat(end[pid]) - dt.date.fromisoformat(bc[pid])).days
            / 365.25,
            "died": int(pid in dead),
            "brca2": int(g),
        }
        for s, g in zip(samples, dosage, strict=True)
        if (pid := person[s2n[s]]) in bc
    ]
    cox = CoxPHFitter().fit(pd.DataFrame(rows), duration_col="years", event_col="died")
    assert 1.5 < float(cox.hazard_ratios_["brca2"]) < 6
    assert float(cox.summary.loc["brca2", "p"]) < 1e-3
