"""Fixtures of tests/families: ``family_store`` and ``family_store_rw`` (the loaded family
study, see ``families_support``) live in ``tests/conftest.py``, shared with the service
tests of the participant page."""

from __future__ import annotations
