"""Tests for biobank.core.errors: one tree, messages that say where and how to fix."""

from __future__ import annotations

import inspect

import pytest

from biobank.core import errors
from biobank.core.errors import (
    BiobankError,
    ExternalToolError,
    ImportRejected,
    Problem,
    ToolNotFoundError,
    ValidationError,
)


def test_every_public_exception_derives_from_biobank_error() -> None:
    classes = [
        obj
        for name, obj in vars(errors).items()
        if inspect.isclass(obj) and issubclass(obj, Exception) and name in errors.__all__
    ]
    assert len(classes) >= 10
    assert all(issubclass(c, BiobankError) for c in classes)


def test_every_exception_is_drawn_in_the_module_docstring() -> None:
    doc = errors.__doc__ or ""
    for name in errors.__all__:
        obj = getattr(errors, name)
        if inspect.isclass(obj) and issubclass(obj, Exception):
            assert name in doc, name


def test_validation_error__names_file_line_field_value() -> None:
    exc = ValidationError(
        "is not a date", file="p.csv", line=7, field="birth_date", value="1990-13-01"
    )
    assert str(exc) == "p.csv, line 7, field 'birth_date': is not a date (value '1990-13-01')"
    assert (exc.file, exc.line, exc.field, exc.value) == ("p.csv", 7, "birth_date", "1990-13-01")


def test_import_rejected__lists_every_problem() -> None:
    problems = [
        Problem("bad sex", file="p.csv", line=3, field="sex", value="x"),
        Problem("bad date", file="p.csv", line=9, field="birth_date", value="2099-01-01"),
    ]
    exc = ImportRejected(problems, file="p.csv")
    text = str(exc)
    assert text.startswith("2 problems found, nothing was written")
    assert "line 3, field 'sex'" in text
    assert "line 9, field 'birth_date'" in text
    assert isinstance(exc, ValidationError)


def test_external_tool_error__keeps_command_code_and_stderr() -> None:
    exc = ExternalToolError(["bcftools", "view", "x.vcf"], 255, "noise\n[E::hts_open] fail\n")
    assert exc.command == ["bcftools", "view", "x.vcf"]
    assert exc.returncode == 255
    assert str(exc) == "bcftools failed with exit code 255: [E::hts_open] fail"


def test_tool_not_found__names_debian_package() -> None:
    exc = ToolNotFoundError("wgsim", "samtools")
    assert "apt-get install samtools" in str(exc)
    with pytest.raises(ExternalToolError):
        raise exc
