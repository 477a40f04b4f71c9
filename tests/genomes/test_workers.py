"""The worker processes of a region load (biobank/genomes/workers.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from genomes_support import REGISTRAR, stored_calls, table_counts
from store_support import random_vcf, sample_store

from biobank.core.errors import StoreError, ValidationError
from biobank.core.store import file_checksum
from biobank.genomes import regions as regions_mod
from biobank.genomes.load import load_vcf
from biobank.genomes.partitions import parts_root
from biobank.genomes.regions import Region, load_regions, plan_regions, stage_job
from biobank.genomes.workers import StageWorker


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """A random indexed VCF.gz: 16 samples, 200 records on chr1 and chr2."""
    path = tmp_path_factory.mktemp("cohort") / "c.vcf.gz"
    return path, random_vcf(path, 16, 200, seed=11)


def _job(vcf: Path, region: Region, scratch: Path) -> tuple[object, ...]:
    return (vcf, region, scratch, [], [], True, file_checksum(vcf), 1)


def test_worker__stages_what_this_process_stages(
    tmp_path: Path, cohort: tuple[Path, list[str]]
) -> None:
    vcf, _ = cohort
    region = plan_regions(vcf, chunk_bp=60000)[0]
    here = stage_job(_job(vcf, region, tmp_path / "a.duckdb"))
    worker = StageWorker()
    try:
        there = worker.run(_job(vcf, region, tmp_path / "b.duckdb"))
        again = worker.run(_job(vcf, Region("chr2"), tmp_path / "c.duckdb"))  # a second job
    finally:
        worker.close()
    assert worker.proc.returncode == 0
    assert (there.n_records, there.n_variants, there.n_calls, there.n_packed) == (
        here.n_records,
        here.n_variants,
        here.n_calls,
        here.n_packed,
    )
    assert there.names == here.names
    assert again.n_records > 0
    for st in (here, there, again):
        st.discard()


def test_worker__raises_the_jobs_error_with_its_file(tmp_path: Path) -> None:
    missing = tmp_path / "missing.bcf"
    worker = StageWorker()
    try:
        with pytest.raises(ValidationError, match="does not exist") as err:
            worker.run((missing, None, tmp_path / "s.duckdb", [], [], True, "0" * 64, 1))
    finally:
        worker.close()
    assert err.value.file == str(missing)


def test_worker__imports_neither_pandas_nor_the_parents_main() -> None:
    code = (
        "import sys\n"
        "import biobank.genomes.workers as w\n"
        "sys.stdin = open('/dev/null')\n"
        "w.main()\n"
        "print('pandas' in sys.modules, 'biobank.genomes.reader' in sys.modules, file=sys.stderr)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stderr.split() == ["False", "False"]


def test_load_regions__a_killed_worker_leaves_nothing_and_a_rerun_finishes(
    tmp_path: Path, cohort: tuple[Path, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    vcf, names = cohort
    regs = plan_regions(vcf, chunk_bp=60000)
    assert len(regs) >= 3
    run = StageWorker.run

    def killed(self: StageWorker, job: tuple[object, ...]) -> object:
        self.proc.kill()
        self.proc.wait()
        return run(self, job)

    with sample_store(tmp_path / "p.duckdb", names) as s:
        before = table_counts(s)
        monkeypatch.setattr(regions_mod.StageWorker, "run", killed)
        with pytest.raises(StoreError, match="worker process ended without an answer"):
            load_regions(s, vcf, principal=REGISTRAR, regions=regs, workers=2)
        assert table_counts(s) == before
        assert not [f for f in parts_root(s.path).rglob("*") if f.is_file()]
        assert not list(tmp_path.glob(".p.duckdb.region-*"))
        monkeypatch.undo()
        load_regions(s, vcf, principal=REGISTRAR, regions=regs, workers=3)
        with sample_store(tmp_path / "ref.duckdb", names) as ref:
            load_vcf(ref, vcf, principal=REGISTRAR)
            assert stored_calls(s) == stored_calls(ref)
