"""Tests for the workflow's sample sheet reader (biobank.sequencing.units).

The FASTQ pair checks run through :func:`check_inputs` in ``test_checks.py``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sequencing.workflow_support import SAMPLES_SCHEMA, edit_sheet

from biobank.core.errors import ImportRejected, ValidationError
from biobank.sequencing.units import read_sample_sheet


@pytest.mark.parametrize(
    ("line", "column", "value", "message"),
    [
        (2, "sample_id", "S 1", r"line 2, field 'sample_id'.*does not match"),
        (2, "sample_id", "S.1", r"line 2, field 'sample_id'"),
        (3, "unit", "L1", r"line 3, field 'unit': duplicate unit 'L1' of sample 'S1'"),
        (4, "platform", "illumina", r"line 4, field 'platform'.*is not one of"),
        (4, "library", "LIB-S1", r"line 4, field 'library': library 'LIB-S1' already belongs"),
    ],
)
def test_read_sample_sheet__rejects_bad_rows(
    small: Path, line: int, column: str, value: str, message: str
) -> None:
    edit_sheet(small, line, column, value)
    with pytest.raises(ImportRejected, match=message):
        read_sample_sheet(small / "samples.tsv", schema=SAMPLES_SCHEMA, workdir=small)


def test_read_sample_sheet__missing_column(small: Path) -> None:
    text = (small / "samples.tsv").read_text().replace("\tlane", "\tlanes")
    (small / "samples.tsv").write_text(text)
    with pytest.raises(ImportRejected, match="line 1, field 'lane': required column 'lane'"):
        read_sample_sheet(small / "samples.tsv", schema=SAMPLES_SCHEMA, workdir=small)


def test_read_sample_sheet__sex_column_and_metadata(small: Path) -> None:
    text = (small / "samples.tsv").read_text().splitlines()
    text = [text[0] + "\tsex", text[1] + "\tmale", text[2] + "\tmale", text[3] + "\t"]
    (small / "samples.tsv").write_text("\n".join(text) + "\n")
    sheet = read_sample_sheet(small / "samples.tsv", schema=SAMPLES_SCHEMA, workdir=small)
    assert sheet.sex == {"S1": "male", "S2": None}
    meta = small / "meta.tsv"
    meta.write_text("sample_id\tancestry\tsex\nS2\tHan\tfemale\nS9\tHan\tmale\n")
    sheet = read_sample_sheet(
        small / "samples.tsv", schema=SAMPLES_SCHEMA, workdir=small, metadata=meta
    )
    assert sheet.sex == {"S1": "male", "S2": "female"}


def test_read_sample_sheet__bom_and_encoding(small: Path) -> None:
    sheet = small / "samples.tsv"
    sheet.write_bytes(b"\xef\xbb\xbf" + sheet.read_bytes())
    assert read_sample_sheet(sheet, schema=SAMPLES_SCHEMA, workdir=small).samples == ["S1", "S2"]
    sheet.write_bytes(sheet.read_bytes().replace(b"S2\tL1", "样本\tL1".encode("gb18030")))
    with pytest.raises(ValidationError, match="not UTF-8 text"):
        read_sample_sheet(sheet, schema=SAMPLES_SCHEMA, workdir=small)


def test_old_path__read_sample_sheet_warns_and_is_the_same_object() -> None:
    with pytest.warns(DeprecationWarning, match=r"biobank\.sequencing\.units\.read_sample_sheet"):
        from biobank.workflow import read_sample_sheet as old

    assert old is read_sample_sheet
