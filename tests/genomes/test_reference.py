"""The center's reference genome (biobank.genomes.reference): loads are checked against
its FASTA index: a header contig of another length (another assembly) and a record on a
contig the reference lacks are refused with the file, line and field, and the store is
left as it was, in the single-file, partitioned and per-region (workflow job) loads."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from genomes_support import ADMIN, REGISTRAR, RESEARCHER, table_counts
from store_support import sample_store

from biobank.core.errors import AccessDenied, ConflictError, ValidationError
from biobank.core.store import Store
from biobank.genomes.load import load_vcf
from biobank.genomes.reference import read_fai, reference_contigs, set_reference
from biobank.genomes.region_chunks import Region
from biobank.genomes.regions import load_region

NAMES = ["H0", "H1"]


def _vcf(path: Path, contigs: dict[str, int], records: list[tuple[str, int]]) -> Path:
    lines = ["##fileformat=VCFv4.2"]
    lines += [f"##contig=<ID={c},length={n}>" for c, n in contigs.items()]
    lines += [
        '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">',
        "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\t" + "\t".join(NAMES),
    ]
    lines += [f"{c}\t{p}\t.\tA\tG\t.\tPASS\t.\tGT\t0/1\t1/1" for c, p in records]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def fasta(tmp_path: Path) -> Path:
    """A two-contig FASTA indexed by samtools faidx (the index is samtools', not ours)."""
    fa = tmp_path / "genome.fa"
    fa.write_text(">chr1\n" + "ACGT" * 250 + "\n>chr2\n" + "TTGCA" * 100 + "\n")
    subprocess.run(["samtools", "faidx", str(fa)], check=True)
    return fa


@pytest.fixture
def db(tmp_path: Path) -> Store:
    return sample_store(tmp_path / "s.duckdb", NAMES)


def test_read_fai_takes_the_lengths_samtools_wrote(fasta: Path) -> None:
    assert read_fai(fasta) == {"chr1": 1000, "chr2": 500}
    assert read_fai(fasta.with_name("genome.fa.fai")) == {"chr1": 1000, "chr2": 500}


def test_a_bad_index_is_refused_with_its_line(tmp_path: Path, fasta: Path) -> None:
    bad = tmp_path / "bad.fai"
    bad.write_text("chr1\t1000\t6\t1000\t1001\nchr2\tlong\t1\t1\t1\n")
    with pytest.raises(ValidationError) as err:
        read_fai(bad)
    assert err.value.line == 2
    assert err.value.file == str(bad)
    twice = tmp_path / "twice.fai"
    twice.write_text("chr1\t10\nchr1\t10\n")
    with pytest.raises(ValidationError, match="listed twice"):
        read_fai(twice)
    fasta.with_name("genome.fa.fai").unlink()
    with pytest.raises(ValidationError, match="samtools faidx"):
        read_fai(fasta)


def test_setting_the_reference_needs_the_load_permission_and_is_audited(
    db: Store, fasta: Path
) -> None:
    with db:
        with pytest.raises(AccessDenied):
            set_reference(db, RESEARCHER, fasta)
        assert reference_contigs(db.con) is None
        set_reference(db, ADMIN, fasta)
        assert reference_contigs(db.con) == {"chr1": 1000, "chr2": 500}
        (n,) = db.con.execute(
            "SELECT count(*) FROM audit_log WHERE action = 'reference.set'"
        ).fetchone() or (0,)
        assert n == 1


@pytest.mark.parametrize("partitioned", [False, True])
def test_a_header_of_another_assembly_is_refused_and_nothing_is_stored(
    db: Store, fasta: Path, tmp_path: Path, partitioned: bool
) -> None:
    vcf = _vcf(tmp_path / "b37.vcf", {"chr1": 1200, "chr2": 500}, [("chr1", 10)])
    with db:
        set_reference(db, ADMIN, fasta)
        before = table_counts(db)
        with pytest.raises(ValidationError) as err:
            load_vcf(db, vcf, principal=REGISTRAR, partitioned=partitioned)
        assert err.value.field == "##contig"
        assert err.value.value == "chr1"
        assert "1,200 bp" in str(err.value)
        assert "1,000 bp" in str(err.value)
        assert table_counts(db) == before


@pytest.mark.parametrize("partitioned", [False, True])
def test_a_record_on_a_contig_the_reference_lacks_is_refused_with_its_line(
    db: Store, fasta: Path, tmp_path: Path, partitioned: bool
) -> None:
    # declared in the header (so the header check alone would let it through)
    vcf = _vcf(
        tmp_path / "decoy.vcf",
        {"chr1": 1000, "chrUn_x": 300},
        [("chr1", 10), ("chr1", 20), ("chrUn_x", 5)],
    )
    with db:
        set_reference(db, ADMIN, fasta)
        before = table_counts(db)
        with pytest.raises(ValidationError) as err:
            load_vcf(db, vcf, principal=REGISTRAR, partitioned=partitioned)
        assert err.value.field == "CHROM"
        assert err.value.value == "chrUn_x"
        assert err.value.line == 8, str(err.value)  # 5 header lines, then the third record
        assert table_counts(db) == before
        assert not list(tmp_path.rglob("*.parquet"))


def test_a_workflow_region_job_is_checked_when_it_publishes(
    db: Store, fasta: Path, tmp_path: Path
) -> None:
    vcf = _vcf(tmp_path / "c.vcf", {"chr1": 1000, "chrUn_x": 300}, [("chr1", 10), ("chrUn_x", 5)])
    subprocess.run(["bgzip", "-f", str(vcf)], check=True)
    gz = vcf.with_name("c.vcf.gz")
    subprocess.run(["bcftools", "index", "-t", str(gz)], check=True)
    with db:
        set_reference(db, ADMIN, fasta)
        before = table_counts(db)
    with pytest.raises(ValidationError) as err:
        load_region(db.path, gz, [Region("chrUn_x", 1, 300)], principal=REGISTRAR)
    assert err.value.value == "chrUn_x"
    with Store(db.path) as again:
        assert table_counts(again) == before
    report = load_region(db.path, gz, [Region("chr1", 1, 1000)], principal=REGISTRAR)
    assert report.n_records == 1


def test_matching_files_load_and_a_reference_without_stored_contigs_is_refused(
    db: Store, fasta: Path, tmp_path: Path
) -> None:
    vcf = _vcf(tmp_path / "ok.vcf", {"chr1": 1000, "chr2": 500}, [("chr1", 10), ("chr2", 7)])
    with db:
        set_reference(db, ADMIN, fasta)
        assert load_vcf(db, vcf, principal=REGISTRAR).n_records == 2
        other = tmp_path / "other.fai"
        other.write_text("chr1\t1000\t6\t1000\t1001\n")
        with pytest.raises(ConflictError, match="chr2"):
            set_reference(db, ADMIN, other)
        assert reference_contigs(db.con) == {"chr1": 1000, "chr2": 500}
