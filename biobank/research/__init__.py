"""Stage 5, research: the researcher's :class:`Workbench` behind
:func:`biobank.open`.
"""

from __future__ import annotations

from biobank.research.workbench import (
    DEFAULT_MIN_COUNT,
    RESEARCH_TABLES,
    SurvivalResult,
    Workbench,
    open_workbench,
    suppress_small_counts,
)

__all__ = [
    "DEFAULT_MIN_COUNT",
    "RESEARCH_TABLES",
    "SurvivalResult",
    "Workbench",
    "open_workbench",
    "suppress_small_counts",
]
