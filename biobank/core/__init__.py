"""The foundation every stage stands on: errors, the store, users and roles,
the audit log, identifiers and pseudonyms, external tools, CSV input and the
small-count (disclosure) rule. Nothing in ``core`` imports another stage.
"""

from __future__ import annotations
