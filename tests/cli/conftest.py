"""Fixtures of the command tests: ``run`` runs ``biobank`` as a real subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

BIOBANK = [sys.executable, "-m", "biobank"]


def _run(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ}
    for name in ("BIOBANK_STORE", "BIOBANK_USER", "BIOBANK_PURPOSE"):
        full_env.pop(name, None)
    if env:
        full_env.update(env)
    return subprocess.run(
        [*BIOBANK, *args], cwd=cwd, env=full_env, capture_output=True, text=True, check=False
    )


@pytest.fixture
def run() -> Callable[..., subprocess.CompletedProcess[str]]:
    """``run(*args, cwd=..., env=...)``: the finished ``biobank`` process."""
    return _run


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Remove the biobank environment variables for an in-process command."""
    for name in (
        "BIOBANK_STORE",
        "BIOBANK_USER",
        "BIOBANK_PURPOSE",
        "BIOBANK_CENTER_KEY",
        "BIOBANK_KEY_FILE",
    ):
        monkeypatch.delenv(name, raising=False)
