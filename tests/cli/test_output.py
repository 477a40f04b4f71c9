"""Tests for readable terminal tables (biobank.cli._common.render_table / emit) and the
machine formats (tsv, csv, json give every column, unformatted); the demo's summary and
``compare-calls`` at a fixed terminal width of 80 columns.
"""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from biobank.cli import app
from biobank.cli._common import OutputFormat, emit, render_table
from biobank.sequencing.accuracy import CallSetComparison

WIDTH = 80


def _association() -> pl.DataFrame:
    """An association table like the demo's, with long text and small p-values."""
    return pl.DataFrame(
        {
            "variant_contig": ["chr2", "chr11", "chr1"],
            "variant_position": [94457, 2_181_009, 12],
            "variant_ref": ["A", "CTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTT", "G"],
            "variant_alt": ["G", "C", "T"],
            "variant_gene": ["GCK", None, "LDLR"],
            "variant_consequence": ["missense&splice_region", "intron", "stop_gained"],
            "variant_case_alt_count": [1234, 17, None],
            "variant_control_alt_count": [25_001, 3, None],
            "variant_fisher_p_value": [3.2e-12, 0.04567, None],
            "variant_beta": [1.234567, -0.0123456, None],
            "variant_p_value": [1.5e-9, 0.5, None],
            "variant_alt_allele_frequency": [0.123456789, 0.5, None],
            "variant_suppressed": [False, False, True],
        }
    )


def _lines_fit(text: str, headers: list[str]) -> list[str]:
    lines = text.splitlines()
    assert all(len(line) <= WIDTH for line in lines), [len(x) for x in lines]
    for head in headers:  # every header whole on the header line: never wrapped
        assert re.search(rf"(^|  ){re.escape(head)}(  |$)", lines[0]), (head, lines[0])
    return lines


def test_render_table__formats_numbers_and_fits_80_columns() -> None:
    text = render_table(
        _association(),
        columns=[
            "variant",
            "variant_gene",
            "variant_case_alt_count",
            "variant_control_alt_count",
            "variant_fisher_p_value",
            "variant_beta",
            "variant_p_value",
            "variant_alt_allele_frequency",
            "variant_consequence",
        ],
        width=WIDTH,
    )
    lines = _lines_fit(text, ["variant", "gene", "case ALT", "ctrl ALT", "Fisher p", "beta", "p"])
    cells = [re.split(r"\s{2,}", line.strip()) for line in lines[2:5]]
    assert cells[0][:7] == [
        "chr2:94457 A>G",
        "GCK",
        "1,234",
        "25,001",
        "3.20e-12",
        "1.235",
        "1.50e-09",
    ]
    assert cells[1][0] == "chr11:2181009 CTTTTTTTT…"  # text cut to 24 characters
    assert cells[2][1:4] == ["LDLR", "-", "-"]  # null (suppressed) values
    # what did not fit is named, with where to get every column
    notes = " ".join(lines[5:])
    assert "Not shown to fit 80 columns: ALT freq, consequence." in notes
    assert "3 rows; all 13 columns with --format tsv, csv or json." in notes


def test_render_table__fractions_with_four_decimals_and_wide_terminal() -> None:
    text = render_table(
        _association(), columns=["variant_alt_allele_frequency", "variant_position"], width=200
    )
    lines = text.splitlines()
    assert lines[0].split() == ["ALT", "freq", "position"]
    assert lines[2].split() == ["0.1235", "94457"]  # positions without separators
    assert lines[-1] == "3 rows; all 13 columns with --format tsv, csv or json."


def test_emit__tsv_csv_json_give_every_column_unformatted(
    capsys: pytest.CaptureFixture[str],
) -> None:
    df = _association()
    emit(df, OutputFormat.TSV, columns=["variant", "variant_gene"])
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out), delimiter="\t"))
    assert list(rows[0]) == df.columns
    assert rows[0]["variant_fisher_p_value"] == "3.2e-12"
    assert rows[0]["variant_alt_allele_frequency"] == "0.123456789"
    assert rows[0]["variant_control_alt_count"] == "25001"
    emit(df, OutputFormat.CSV, columns=["variant"])
    assert capsys.readouterr().out.splitlines()[0] == ",".join(df.columns)
    emit(df, OutputFormat.JSON, columns=["variant"])
    assert json.loads(capsys.readouterr().out)[0]["variant_beta"] == 1.234567


def test_demo__summary_tables_fit_80_columns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The demo's final printout (accuracy and association) at COLUMNS=80."""
    import biobank.pipeline
    from biobank.pipeline import DemoResult

    accuracy = pl.DataFrame(
        [
            {"sample_id": f"S00{i}", **c.as_dict()}
            for i in (1, 2)
            for c in (
                CallSetComparison(
                    "SNP",
                    15_321,
                    15_290,
                    15_201,
                    89,
                    120,
                    0.99418,
                    0.99217,
                    0.99318,
                    15_100,
                    101,
                    0.993355,
                ),
                CallSetComparison(
                    "INDEL",
                    1_210,
                    1_190,
                    1_101,
                    89,
                    109,
                    0.92521,
                    0.90992,
                    0.91750,
                    1_050,
                    51,
                    0.953678,
                ),
            )
        ]
    )
    result = DemoResult(
        store=tmp_path / "biobank.duckdb", accuracy=accuracy, association=_association()
    )
    monkeypatch.setattr(biobank.pipeline, "run_demo", lambda *a, **k: result)
    out = CliRunner().invoke(app, ["demo", str(tmp_path)], env={"COLUMNS": str(WIDTH)})
    assert out.exit_code == 0, out.output
    acc = out.stdout.split("simulated truth:\n")[1].split("\n\n")[0]
    lines = _lines_fit(acc, ["sample", "type", "TP", "FP", "FN", "precision", "recall", "F1"])
    first = re.split(r"\s{2,}", lines[2].strip())
    assert first[:8] == ["S001", "SNP", "15,201", "89", "120", "0.9942", "0.9922", "0.9932"]
    assoc = out.stdout.split("strongest associations:\n")[1].split("\n\n")[0]
    lines = _lines_fit(assoc, ["variant", "gene", "Fisher p", "beta", "p"])
    names = re.split(r"\s{2,}", lines[0].strip())
    cells = dict(zip(names, re.split(r"\s{2,}", lines[2].strip()), strict=True))
    assert cells["variant"].split()[0] == "chr2:94457"
    assert float(cells["p"]) == 1.5e-9


def test_compare_calls__table_fits_80_columns_and_tsv_has_all(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import biobank.sequencing.accuracy

    rows = [
        CallSetComparison("SNP", 4, 5, 4, 1, 0, 0.8, 1.0, 0.888889, 3, 1, 0.75),
        CallSetComparison("INDEL", 1, 2, 1, 1, 0, 0.5, 1.0, 0.666667, 1, 0, 1.0),
    ]
    monkeypatch.setattr(biobank.sequencing.accuracy, "compare_calls", lambda *a, **k: rows)
    base = ["compare-calls", "--truth", "t.vcf", "--query", "q.vcf", "--reference", "r.fa"]
    runner = CliRunner()
    table = runner.invoke(app, base, env={"COLUMNS": str(WIDTH)})
    assert table.exit_code == 0, table.output
    lines = _lines_fit(
        table.stdout, ["type", "TP", "FP", "FN", "precision", "recall", "F1", "GT conc"]
    )
    assert re.split(r"\s{2,}", lines[2].strip())[:8] == [
        "SNP", "4", "1", "0", "0.8000", "1.0000", "0.8889", "0.7500"
    ]  # fmt: skip
    tsv = runner.invoke(app, [*base, "--format", "tsv"], env={"COLUMNS": str(WIDTH)})
    assert tsv.exit_code == 0, tsv.output
    got = list(csv.DictReader(io.StringIO(tsv.stdout), delimiter="\t"))
    assert list(got[0]) == list(rows[0].as_dict())
    assert (got[0]["f1"], got[1]["gt_match"]) == ("0.888889", "1")


def test_query_assoc__passes_tests_and_shows_the_main_columns(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import biobank.cli.research

    seen: dict[str, object] = {}

    class Workbench:
        def __enter__(self) -> Workbench:
            return self

        def __exit__(self, *exc: object) -> None:
            return None

        def association(self, *args: object, **options: object) -> pl.DataFrame:
            seen.update(options)
            return _association().with_columns(variant_score_p_value=pl.Series([2.5e-7, 0.3, None]))

    monkeypatch.setattr(biobank.cli.research, "open_workbench", lambda ctx, purpose: Workbench())
    args = ["--store", str(tmp_path / "s.duckdb"), "--user", "rita", "query", "assoc"]
    args += ["--purpose", "HMB", "--cases", "t2d", "--test", "score", "--test", "lrt"]
    out = CliRunner().invoke(app, args, env={"COLUMNS": str(WIDTH)})
    assert out.exit_code == 0, out.output
    assert seen["tests"] == ("score", "lrt")
    lines = _lines_fit(out.stdout, ["variant", "gene", "p", "score p", "Fisher p", "beta"])
    names = re.split(r"\s{2,}", lines[0].strip())
    assert names[:5] == ["variant", "gene", "p", "score p", "Fisher p"]  # p-values first
    cells = dict(zip(names, re.split(r"\s{2,}", lines[2].strip()), strict=True))
    assert (cells["score p"], cells["p"]) == ("2.50e-07", "1.50e-09")
