"""Federated analysis across the network's centres: aggregates only (``docs/federation.md``).

:mod:`~biobank.research.federation.centre` answers a question at one centre
(consent, disclosure check, audit); :mod:`~biobank.research.federation.coordinator`
asks N centres over HTTP and combines the answers (counts, allele
frequencies per cohort, logistic regression by summed Newton statistics).
"""

from __future__ import annotations

from biobank.research.federation.centre import QUESTIONS, answer_question
from biobank.research.federation.coordinator import (
    Centre,
    Federated,
    Federation,
    LogisticFit,
    federated_count,
    federated_frequencies,
    federated_logistic,
    load_centres,
)

__all__ = [
    "QUESTIONS",
    "Centre",
    "Federated",
    "Federation",
    "LogisticFit",
    "answer_question",
    "federated_count",
    "federated_frequencies",
    "federated_logistic",
    "load_centres",
]
