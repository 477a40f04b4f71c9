"""Old module paths of the flat package, kept for one release.

Until release 0.x the package was flat (``biobank.vcf``, ``biobank.store``,
...). Those paths still import, through a finder on :data:`sys.meta_path`
that makes a stand-in module for each; reading a name from it warns with a
:class:`DeprecationWarning` that says where the name lives now. The next
release removes this module.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import types
import warnings
from collections.abc import Sequence
from typing import Any

#: old module -> the modules its names moved to, searched in order
MOVED: dict[str, tuple[str, ...]] = {
    "biobank.errors": ("biobank.core.errors",),
    "biobank.store": ("biobank.core.store",),
    "biobank.access": ("biobank.core.access",),
    "biobank.audit": ("biobank.core.audit",),
    "biobank.ids": ("biobank.core.ids",),
    "biobank.tools": ("biobank.core.tools",),
    "biobank.csvio": ("biobank.core.csvio",),
    "biobank.vocab": ("biobank.registry.vocab",),
    "biobank.consent": ("biobank.registry.consent",),
    "biobank.specimens": ("biobank.registry.specimens",),
    "biobank.inventory": ("biobank.registry.inventory",),
    "biobank.events": ("biobank.registry.events",),
    "biobank.recontact": ("biobank.registry.recontact",),
    "biobank.registry_import": ("biobank.registry.imports",),
    "biobank.workflow": (
        "biobank.sequencing.units",
        "biobank.sequencing.checks",
        "biobank.sequencing.regions",
        "biobank.sequencing.launcher",
        "biobank.sequencing.filters",
    ),
    "biobank.samplesheet": ("biobank.sequencing.sheet",),
    "biobank.sampleqc": ("biobank.sequencing.sampleqc",),
    "biobank.accuracy": ("biobank.sequencing.accuracy",),
    "biobank.vcf": (
        "biobank.genomes.load",
        "biobank.genomes.encoding",
        "biobank.genomes.bcsq",
        "biobank.genomes.verify",
    ),
    "biobank.genotypes": (
        "biobank.genomes.reader",
        "biobank.genomes.filters",
        "biobank.genomes.packed",
    ),
    "biobank.icd10": ("biobank.core.icd10",),
    "biobank.cohorts": ("biobank.clinical.cohorts",),
    "biobank.survival": ("biobank.clinical.survival",),
    "biobank.workbench": ("biobank.research.workbench",),
}


def _moved_getattr(old: str, targets: Sequence[str]) -> Any:
    def module_getattr(name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        for target in targets:
            module = importlib.import_module(target)
            if hasattr(module, name):
                warnings.warn(
                    f"{old}.{name} has moved to {target}.{name}; import it from there"
                    f" ({old} is removed in the next release)",
                    DeprecationWarning,
                    stacklevel=2,
                )
                return getattr(module, name)
        raise AttributeError(f"module {old!r} has no attribute {name!r}")

    return module_getattr


class _Loader(importlib.abc.Loader):
    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        module = types.ModuleType(spec.name, f"Deprecated: moved to {', '.join(MOVED[spec.name])}.")
        module.__getattr__ = _moved_getattr(spec.name, MOVED[spec.name])  # type: ignore[method-assign]
        return module

    def exec_module(self, module: types.ModuleType) -> None:
        return None


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: types.ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in MOVED:
            return None
        return importlib.machinery.ModuleSpec(fullname, _Loader())


def install() -> None:
    """Put the finder for the old module paths on :data:`sys.meta_path` (once)."""
    if not any(isinstance(finder, _Finder) for finder in sys.meta_path):
        sys.meta_path.append(_Finder())
