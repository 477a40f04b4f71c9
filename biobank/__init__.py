"""biobank: a genomics and biobank workbench.

The researcher's entry point is :func:`open`::

    import biobank
    from biobank import Diagnosis, Lab

    wb = biobank.open("center.duckdb", user="rita", purpose="DS:E11")
    t2d = Diagnosis("E11") & Lab("HbA1c", ">=", 6.5)
    wb.case_control(t2d)

The names below are imported lazily, so ``import biobank`` (and the ``biobank``
command's ``--help``) stays fast.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from biobank import _compat
from biobank.__about__ import __version__

_compat.install()

if TYPE_CHECKING:
    from biobank.clinical.cohorts import Age, Criterion, Diagnosis, Died, InStudy, Lab, Sex
    from biobank.core.errors import (
        AccessDenied,
        BiobankError,
        ConsentError,
        ImportRejected,
        NotFoundError,
        ValidationError,
    )
    from biobank.core.store import Store
    from biobank.genomes.filters import VariantFilter
    from biobank.research.sandbox import SandboxLimits
    from biobank.research.workbench import SurvivalResult, Workbench

__all__ = [
    "AccessDenied",
    "Age",
    "BiobankError",
    "ConsentError",
    "Criterion",
    "Diagnosis",
    "Died",
    "ImportRejected",
    "InStudy",
    "Lab",
    "NotFoundError",
    "SandboxLimits",
    "Sex",
    "Store",
    "SurvivalResult",
    "ValidationError",
    "VariantFilter",
    "Workbench",
    "__version__",
    "open",
]

_LAZY = {
    "Age": "biobank.clinical.cohorts",
    "Criterion": "biobank.clinical.cohorts",
    "Diagnosis": "biobank.clinical.cohorts",
    "Died": "biobank.clinical.cohorts",
    "InStudy": "biobank.clinical.cohorts",
    "Lab": "biobank.clinical.cohorts",
    "Sex": "biobank.clinical.cohorts",
    "AccessDenied": "biobank.core.errors",
    "BiobankError": "biobank.core.errors",
    "ConsentError": "biobank.core.errors",
    "ImportRejected": "biobank.core.errors",
    "NotFoundError": "biobank.core.errors",
    "ValidationError": "biobank.core.errors",
    "Store": "biobank.core.store",
    "SandboxLimits": "biobank.research.sandbox",
    "VariantFilter": "biobank.genomes.filters",
    "SurvivalResult": "biobank.research.workbench",
    "Workbench": "biobank.research.workbench",
}


def open(
    path: str | Path,
    *,
    user: str,
    purpose: str,
    min_count: int | None = None,
    sql_limits: SandboxLimits | None = None,
) -> Workbench:
    """Open a store for research queries as ``user`` for ``purpose``.

    Parameters
    ----------
    path
        The store file.
    user
        A user of the store with the ``researcher`` role.
    purpose
        The research purpose matched against consents: ``GRU``, ``HMB``,
        ``POA`` or ``DS:<ICD-10 code>`` (e.g. ``DS:E11``).
    min_count
        Small-count threshold: aggregate counts below it are suppressed
        (default: :data:`biobank.core.disclosure.SMALL_COUNT_THRESHOLD`).
    sql_limits
        Time, memory, thread and row limits of :meth:`Workbench.sql`
        (default: :meth:`biobank.research.sandbox.SandboxLimits.from_env`).

    Returns
    -------
    Workbench
        See :class:`biobank.research.workbench.Workbench`.

    Raises
    ------
    StoreError
        If the store does not exist or cannot be opened.
    NotFoundError
        If there is no such user.
    AccessDenied
        If the user is not a researcher.
    ValidationError
        If the purpose is malformed.
    """
    from biobank.core.disclosure import SMALL_COUNT_THRESHOLD
    from biobank.research.workbench import open_workbench

    threshold = SMALL_COUNT_THRESHOLD if min_count is None else min_count
    return open_workbench(
        path, user=user, purpose=purpose, min_count=threshold, sql_limits=sql_limits
    )


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'biobank' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
