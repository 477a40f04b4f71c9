"""Property tests: the loaders (single-file and partitioned) store valid records and
refuse broken ones (an allele index beyond the ALTs, an undeclared contig, REF or
ALT outside the VCF alphabet) with the file, line and field, leaving the store as
it was."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest
from genomes_support import REGISTRAR, stored_calls, table_counts
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from store_support import sample_store

from biobank.core.errors import ValidationError
from biobank.core.store import Store
from biobank.genomes.load import load_vcf
from biobank.genomes.verify import verify_vcf

NAMES = ["H0", "H1", "H2"]
HEADER = [
    "##fileformat=VCFv4.2",
    "##contig=<ID=chr1,length=1000000>",
    "##contig=<ID=chr2,length=1000000>",
    '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">',
    "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\t" + "\t".join(NAMES),
]
BASES = "ACGT"


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty store with the samples registered, copied for each example."""
    path = tmp_path_factory.mktemp("template") / "t.duckdb"
    sample_store(path, NAMES).close()
    return path


@st.composite
def records(draw: st.DrawFn) -> list[str]:
    """Valid, sorted records: 1 or 2 ALTs, diploid/haploid/missing/phased calls."""
    n = draw(st.integers(1, 6))
    out = []
    for i in range(n):
        ref = draw(st.sampled_from(["A", "C", "G", "T", "AC", "N"]))
        pool = [b for b in [*BASES, "<DEL>", "*", "ACG"] if b != ref]
        alts = draw(st.lists(st.sampled_from(pool), min_size=1, max_size=2, unique=True))
        allele = st.integers(0, len(alts))
        cells = []
        for _ in NAMES:
            kind = draw(st.sampled_from(["dip", "phased", "hap", "miss"]))
            a, b = draw(allele), draw(allele)
            cells.append(
                {"dip": f"{a}/{b}", "phased": f"{a}|{b}", "hap": f"{a}", "miss": "./."}[kind]
            )
        contig = "chr1" if i < n / 2 else "chr2"
        out.append(
            f"{contig}\t{100 * (i + 1)}\t.\t{ref}\t{','.join(alts)}\t.\tPASS\t.\tGT\t"
            + "\t".join(cells)
        )
    return out


def _break(record: str, kind: str, value: str) -> tuple[str, str]:
    """One broken copy of a record and the field the loader must name."""
    f = record.split("\t")
    n_alt = len(f[4].split(","))
    if kind == "allele":
        f[9] = f"0/{n_alt + 1 + ord(value) % 7}"
        return "\t".join(f), "GT"
    if kind == "contig":
        f[0] = "chrUn_" + value
        return "\t".join(f), "CHROM"
    if kind == "ref":
        f[3] = "A" + value
        return "\t".join(f), "REF"
    f[4] = f[4].split(",")[0] + value
    return "\t".join(f), "ALT"


def _load(template: Path, vcf: Path, *, partitioned: bool) -> tuple[Store, Path]:
    work = Path(tempfile.mkdtemp(dir=vcf.parent))
    db = work / "s.duckdb"
    for f in template.parent.glob(f"{template.name}*"):  # the store and its audit head file
        shutil.copy(f, work / f.name.replace(template.name, db.name))
    return Store(db), work


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(body=records(), partitioned=st.booleans())
def test_valid_records_are_stored_as_written(
    template: Path, tmp_path: Path, body: list[str], partitioned: bool
) -> None:
    vcf = Path(tempfile.mkdtemp(dir=tmp_path)) / "ok.vcf"
    vcf.write_text("\n".join([*HEADER, *body]) + "\n")
    s, work = _load(template, vcf, partitioned=partitioned)
    with s:
        report = load_vcf(s, vcf, principal=REGISTRAR, partitioned=partitioned)
        assert report.n_records == len(body)
        assert verify_vcf(s, vcf).ok  # every genotype as bcftools reads it
        assert stored_calls(s) is not None
    shutil.rmtree(work)


@settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    body=records(),
    where=st.integers(0, 5),
    kind=st.sampled_from(["allele", "contig", "ref", "alt"]),
    value=st.sampled_from(["Z", "1", "x", "-", "B", "9"]),
    partitioned=st.booleans(),
)
def test_a_broken_record_is_refused_with_its_line_and_the_store_is_unchanged(
    template: Path,
    tmp_path: Path,
    body: list[str],
    where: int,
    kind: str,
    value: str,
    partitioned: bool,
) -> None:
    i = where % len(body)
    body = list(body)
    body[i], field = _break(body[i], kind, value)
    vcf = Path(tempfile.mkdtemp(dir=tmp_path)) / "bad.vcf"
    vcf.write_text("\n".join([*HEADER, *body]) + "\n")
    s, work = _load(template, vcf, partitioned=partitioned)
    with s:
        before = table_counts(s)
        with pytest.raises(ValidationError) as err:
            load_vcf(s, vcf, principal=REGISTRAR, partitioned=partitioned)
        assert err.value.line == len(HEADER) + i + 1, str(err.value)
        assert err.value.field == field, str(err.value)
        assert err.value.file == str(vcf)
        assert table_counts(s) == before
    leftovers = [p for p in work.rglob("*") if p.is_file() and p.name != "s.duckdb"]
    assert not [p for p in leftovers if p.suffix == ".parquet"]
    shutil.rmtree(work)
