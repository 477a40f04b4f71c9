"""The foundation every stage stands on; nothing in ``core`` imports a stage.

=============== ==============================================================
module          concern
=============== ==============================================================
``errors``      the one exception tree (:class:`~biobank.core.errors.BiobankError`)
``store``       the DuckDB file: migrations, the one writer path, provenance
``access``      users, roles and permissions
``audit``       the hash-chained audit log
``ids``         resident identity numbers, pseudonyms, specimen labels
``icd10``       ICD-10 codes (WHO and the national clinical edition), hierarchy
``disclosure``  the small-count rule: threshold and suppression
``csvio``       CSV input: encodings (UTF-8, GB18030), lines, fields
``tools``       running external tools (bcftools, plink2, ...)
=============== ==============================================================

The modules are imported by their full path (``from biobank.core.store import
Store``); this package re-exports nothing, so importing one of them stays cheap.
"""

from __future__ import annotations
