"""Fixtures of the sequencing tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from sequencing.workflow_support import make_small


@pytest.fixture
def small(tmp_path: Path) -> Path:
    """A run directory with a tiny reference, two samples (three units) and a config."""
    return make_small(tmp_path)
