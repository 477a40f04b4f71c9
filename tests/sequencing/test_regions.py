"""Tests for scatter regions and the ploidy file (biobank.sequencing.regions)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from biobank.core.errors import ConfigError
from biobank.sequencing.regions import (
    plan_region_chunks,
    write_ploidy_file,
    write_region_chunks,
)


@settings(max_examples=60, deadline=None)
@given(
    lengths=st.lists(st.integers(1, 500), min_size=1, max_size=4),
    gaps=st.lists(st.tuples(st.integers(0, 499), st.integers(1, 120)), max_size=4),
    n=st.integers(1, 12),
)
def test_plan_region_chunks__covers_every_base_once(
    lengths: list[int], gaps: list[tuple[int, int]], n: int
) -> None:
    contigs = {f"c{i}": length for i, length in enumerate(lengths)}
    gap_map = {"c0": [(s, min(s + w, lengths[0])) for s, w in gaps if s < lengths[0]]}
    non_gap = {
        (c, p)
        for c, length in contigs.items()
        for p in range(length)
        if not any(s <= p < e for s, e in gap_map.get(c, []))
    }
    if len(non_gap) < n:
        with pytest.raises(ConfigError, match="fewer than the"):
            plan_region_chunks(contigs, gap_map, n)
        return
    chunks = plan_region_chunks(contigs, gap_map, n)
    assert len(chunks) == n
    assert all(chunks), "no chunk is empty"
    covered = [(c, p) for chunk in chunks for c, s, e in chunk for p in range(s, e)]
    assert len(covered) == len(set(covered))
    assert set(covered) == non_gap
    order = list(contigs)
    flat = [(order.index(c), s) for chunk in chunks for c, s, _ in chunk]
    assert flat == sorted(flat), "chunks are in genome order"
    sizes = [sum(e - s for _, s, e in chunk) for chunk in chunks]
    assert max(sizes) - min(sizes) <= 2


def test_write_region_chunks__avoids_n_gaps(small: Path) -> None:
    out = [small / f"{i}.bed" for i in range(3)]
    write_region_chunks(small / "ref" / "genome.fa", out, min_gap=100)
    intervals = [line.split("\t") for p in out for line in p.read_text().splitlines()]
    chr1 = [(int(s), int(e)) for c, s, e in intervals if c == "chr1"]
    # chr1 is 400 ACGT bases, 150 N (0-based 400-550), 200 ACGT bases.
    assert all(e <= 400 or s >= 550 for s, e in chr1)
    assert sum(e - s for s, e in chr1) == 600


def test_write_ploidy_file__pseudoautosomal_regions(tmp_path: Path) -> None:
    path = tmp_path / "ploidy.txt"
    write_ploidy_file(
        path,
        contigs={"chr1": 100, "chrX": 1000, "chrY": 500},
        chrx="chrX",
        chry="chrY",
        par=[
            {"contig": "chrX", "start": 1, "end": 100},
            {"contig": "chrX", "start": 900, "end": 1000},
        ],
    )
    lines = path.read_text().splitlines()
    assert lines[:3] == ["chrX\t101\t899\tM\t1", "chrY\t1\t500\tM\t1", "chrY\t1\t500\tF\t0"]
    assert "*\t*\t*\tU\t2" in lines
