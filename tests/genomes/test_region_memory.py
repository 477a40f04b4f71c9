"""A region worker's memory is bounded by its chunk, not by the region it stages:
``stage_region`` of eight times the records of 1,000 samples peaks barely higher
(each run in its own process, peak RSS from ``wait4``)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

_STAGE = """
import sys
from pathlib import Path
from biobank.genomes.region_chunks import Region
from biobank.genomes.regions import stage_region
bcf, scratch, end, out = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4])
st = stage_region(bcf, Region("chr1", 1, end), scratch=scratch, chunk_records=500, db_threads=1)
out.write_text(str(st.n_records))
st.discard()
"""


def _stage_peak(bcf: Path, work: Path, end: int) -> tuple[int, int]:
    """Stage chr1:1-end of ``bcf`` in a child process: (records staged, peak RSS in bytes)."""
    scratch, out = work / f"scratch-{end}.duckdb", work / f"n-{end}.txt"
    proc = subprocess.Popen(
        [sys.executable, "-c", _STAGE, str(bcf), str(scratch), str(end), str(out)]
    )
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    assert proc.returncode == 0
    assert not scratch.exists(), "the scratch file was left"
    return int(out.read_text()), usage.ru_maxrss * 1024  # kB on Linux


@pytest.mark.slow
def test_stage_region__peak_memory_does_not_follow_the_records_of_the_region(
    tmp_path: Path,
) -> None:
    """A region of all 24,000 records against one of ~3,000 (1,000 samples, BCF).

    Holding the extra records' GT arrays would take ~168 MB more; a worker
    streams them in chunks of 500 records into its scratch file.
    """
    from biobank.testing.population import simulate_cohort_vcf

    vcf = simulate_cohort_vcf(tmp_path / "c.vcf.gz", n_samples=1000, n_variants=24_000)
    bcf = tmp_path / "c.bcf"
    subprocess.run(["bcftools", "view", "-Ob", "-o", str(bcf), str(vcf)], check=True)
    subprocess.run(["bcftools", "index", str(bcf)], check=True)
    positions = subprocess.run(
        ["bcftools", "query", "-f", "%POS\\n", str(bcf)], check=True, capture_output=True, text=True
    ).stdout.split()
    assert len(positions) == 24_000
    small_end = int(positions[2_999])
    n_small, peak_small = _stage_peak(bcf, tmp_path, small_end)
    n_full, peak_full = _stage_peak(bcf, tmp_path, int(positions[-1]))
    assert n_full == 24_000
    assert n_small <= 3_000 + sum(p == positions[2_999] for p in positions)
    held = (n_full - n_small) * 1000 * 2 * 4  # the extra records' int32 GT arrays
    assert peak_full - peak_small < held / 4, (peak_small, peak_full, held)
