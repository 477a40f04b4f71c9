"""Run the Snakemake workflow (``workflow/Snakefile``) of this source checkout."""

from __future__ import annotations

import logging
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

__all__ = ["repo_workflow_dir", "run_workflow"]

logger = logging.getLogger(__name__)


def repo_workflow_dir() -> Path:
    """The ``workflow/`` folder of the source checkout this package runs from."""
    return Path(__file__).resolve().parents[2] / "workflow"


def run_workflow(
    *,
    cores: int = 2,
    configfile: str | Path | None = None,
    directory: str | Path | None = None,
    targets: Sequence[str] = (),
    extra: Sequence[str] = (),
) -> int:
    """Run the Snakemake workflow of this checkout as a subprocess.

    Returns
    -------
    int
        Snakemake's exit code.
    """
    snakemake = Path(sys.executable).parent / "snakemake"
    cmd = [
        str(snakemake if snakemake.exists() else "snakemake"),
        "--snakefile",
        str(repo_workflow_dir() / "Snakefile"),
        "--cores",
        str(cores),
    ]
    if configfile is not None:
        cmd += ["--configfile", str(configfile)]
    if directory is not None:
        cmd += ["--directory", str(directory)]
    cmd += [*extra, *targets]
    logger.info("running %s", " ".join(cmd))
    return subprocess.run(cmd, check=False).returncode
