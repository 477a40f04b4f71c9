"""Running external programs (bcftools, plink2, bwa ...) with errors translated."""

from __future__ import annotations

import logging
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from biobank.core.errors import ExternalToolError, ToolNotFoundError

__all__ = ["DEBIAN_PACKAGES", "require_tool", "run_tool"]

logger = logging.getLogger(__name__)

#: Which Debian package provides each external program we call.
DEBIAN_PACKAGES: dict[str, str] = {
    "bwa": "bwa",
    "samtools": "samtools",
    "wgsim": "samtools",
    "bcftools": "bcftools",
    "bgzip": "tabix",
    "tabix": "tabix",
    "fastp": "fastp",
    "mosdepth": "mosdepth",
    "plink2": "plink2",
}


def require_tool(name: str) -> str:
    """Return the path of an external program.

    Raises
    ------
    ToolNotFoundError
        If it is not on ``PATH``, naming the Debian package to install.
    """
    path = shutil.which(name)
    if path is None:
        raise ToolNotFoundError(name, DEBIAN_PACKAGES.get(name, name))
    return path


def run_tool(
    args: Sequence[str | Path],
    *,
    cwd: str | Path | None = None,
    stdout: Path | None = None,
    input_bytes: bytes | None = None,
) -> str:
    """Run an external program and return its standard output as text.

    Parameters
    ----------
    args
        The command line; ``args[0]`` is looked up with :func:`require_tool`.
    cwd
        Working directory.
    stdout
        Write standard output to this file instead of returning it.
    input_bytes
        Bytes to send on standard input.

    Raises
    ------
    ToolNotFoundError
        If the program is not installed.
    ExternalToolError
        If it exits non-zero, with its command line, exit code and stderr.
    """
    cmd = [str(a) for a in args]
    cmd[0] = require_tool(cmd[0])
    logger.debug("running %s", " ".join(cmd))
    if stdout is not None:
        with open(stdout, "wb") as out:
            proc = subprocess.run(
                cmd, cwd=cwd, stdout=out, stderr=subprocess.PIPE, input=input_bytes, check=False
            )
        text = ""
    else:
        proc = subprocess.run(cmd, cwd=cwd, capture_output=True, input=input_bytes, check=False)
        text = proc.stdout.decode("utf-8", errors="replace")
    if proc.returncode != 0:
        raise ExternalToolError(
            [str(a) for a in args], proc.returncode, proc.stderr.decode("utf-8", errors="replace")
        )
    return text
