"""``python -m biobank`` runs the ``biobank`` command."""

from biobank.cli import _entry

_entry()
