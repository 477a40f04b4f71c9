"""The package's shape: layering, private names, module and function sizes, old paths.

The layering itself is checked by import-linter (``lint-imports``, contracts in
``pyproject.toml``); these tests check what import-linter cannot.
"""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "biobank"
MAX_MODULE_LINES = 800
MAX_FUNCTION_LINES = 120


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def _stage(module: str) -> str:
    parts = module.split(".")
    return ".".join(parts[:2]) if len(parts) > 1 else module


def _dotted(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _crossings(here: str, source: str) -> list[str]:
    """Private names (or private modules) that ``here`` imports from another stage."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.ImportFrom) or not node.module:
            continue
        if not node.module.startswith("biobank.") or _stage(node.module) == _stage(here):
            continue
        for alias in node.names:
            if alias.name.startswith("_") and not alias.name.startswith("__"):
                found.append(f"{here} imports {node.module}.{alias.name}")
        if any(part.startswith("_") for part in node.module.split(".")[2:]):
            found.append(f"{here} imports the private module {node.module}")
    return found


def test_no_private_name_crosses_a_stage() -> None:
    found = [
        c
        for p in _modules()
        if not p.name.startswith("__")  # python -m biobank runs the command's entry point
        for c in _crossings(_dotted(p), p.read_text(encoding="utf-8"))
    ]
    assert found == []


def test_the_private_name_check_finds_a_crossing() -> None:
    source = (
        "from biobank.genomes.reader import _secret, public\n"
        "from biobank.stats.hwe import _inside_the_stage\n"
        "from biobank.core._malloc import tune\n"
    )
    assert _crossings("biobank.stats.assoc", source) == [
        "biobank.stats.assoc imports biobank.genomes.reader._secret",
        "biobank.stats.assoc imports the private module biobank.core._malloc",
    ]


def _stated_reason(tree: ast.Module) -> bool:
    doc = ast.get_docstring(tree) or ""
    return "longer than" in doc.lower() and "lines" in doc.lower()


def test_modules_stay_under_800_lines_or_say_why() -> None:
    long = []
    for path in _modules():
        text = path.read_text(encoding="utf-8")
        n = text.count("\n")
        if n > MAX_MODULE_LINES and not _stated_reason(ast.parse(text)):
            long.append(f"{path.relative_to(PACKAGE.parent)}: {n} lines")
    assert long == []


def test_functions_stay_under_120_lines() -> None:
    long = []
    for path in _modules():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                assert node.end_lineno is not None
                n = node.end_lineno - node.lineno + 1
                if n > MAX_FUNCTION_LINES:
                    long.append(
                        f"{path.relative_to(PACKAGE.parent)}:{node.lineno} {node.name}: {n}"
                    )
    assert long == []


def test_lint_imports_keeps_the_layering() -> None:
    exe = Path(sys.executable).with_name("lint-imports")
    done = subprocess.run(
        [str(exe)], cwd=PACKAGE.parent, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout


OLD_PATHS = [
    ("biobank.store", "Store", "biobank.core.store"),
    ("biobank.errors", "ValidationError", "biobank.core.errors"),
    ("biobank.ids", "validate_national_id", "biobank.core.ids"),
    ("biobank.icd10", "normalise", "biobank.core.icd10"),
    ("biobank.consent", "parse_purpose", "biobank.registry.consent"),
    ("biobank.registry_import", "import_all", "biobank.registry.imports"),
    ("biobank.inventory", "move_specimen", "biobank.registry.inventory"),
    ("biobank.cohorts", "Diagnosis", "biobank.clinical.cohorts"),
    ("biobank.survival", "kaplan_meier", "biobank.clinical.survival"),
    ("biobank.workbench", "Workbench", "biobank.research.workbench"),
]


@pytest.mark.parametrize(("old", "name", "new"), OLD_PATHS)
def test_old_module_path__warns_and_gives_the_same_object(old: str, name: str, new: str) -> None:
    module = importlib.import_module(old)
    with pytest.warns(DeprecationWarning, match=rf"{old}\.{name} has moved to {new}\.{name}"):
        value = getattr(module, name)
    assert value is getattr(importlib.import_module(new), name)


def test_old_module_path__from_import_statement_warns() -> None:
    with pytest.warns(DeprecationWarning, match="biobank.store.Store has moved"):
        from biobank.store import Store  # type: ignore[import-not-found,unused-ignore]
    from biobank.core.store import Store as NewStore

    assert Store is NewStore


def test_old_module_path__unknown_name_is_an_attribute_error() -> None:
    module = importlib.import_module("biobank.store")
    with pytest.raises(AttributeError, match="has no attribute 'nothing_here'"):
        module.nothing_here  # noqa: B018


def test_public_api_keeps_working() -> None:
    import biobank

    for name in biobank.__all__:
        assert getattr(biobank, name) is not None
