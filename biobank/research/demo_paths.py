"""Find the demo center that ``./run demo`` made, so notebooks need no settings.

``./run demo`` (``biobank demo demo``) writes the demo center into ``demo/`` at
the top of the checkout: the store ``demo/biobank.duckdb``, its center key
``demo/biobank.duckdb.key`` beside it (found by :func:`biobank.core.ids.center_key`
without any environment variable), and the generator's ``truth/`` and
``reference/`` folders. The notebooks run with the working directory
``notebooks/``, so :func:`find_demo` looks for ``demo/`` in the working
directory and then in each parent directory.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from biobank.core.errors import ConfigError

__all__ = [
    "DEMO_DIR_NAME",
    "DEMO_REGISTRAR",
    "DEMO_RESEARCHER",
    "DEMO_STORE_NAME",
    "DemoCenter",
    "find_demo",
]

logger = logging.getLogger(__name__)

#: The folder ``./run demo`` writes, at the top of the checkout.
DEMO_DIR_NAME = "demo"
#: The store file inside that folder.
DEMO_STORE_NAME = "biobank.duckdb"
#: The demo store's researcher account (``biobank.pipeline.DEMO_USERS``).
DEMO_RESEARCHER = "demo-researcher"
#: The demo store's registrar account (``biobank.pipeline.DEMO_USERS``).
DEMO_REGISTRAR = "demo-registrar"


@dataclass(frozen=True)
class DemoCenter:
    """Where the demo center is and who may use it.

    Attributes
    ----------
    directory
        The demo folder (``truth/``, ``reference/``, ``results/`` ...).
    store
        The store file, ``directory / "biobank.duckdb"``.
    researcher, registrar
        The demo accounts for research reads and for registry reads.
    """

    directory: Path
    store: Path
    researcher: str = DEMO_RESEARCHER
    registrar: str = DEMO_REGISTRAR


def find_demo(start: str | Path | None = None) -> DemoCenter:
    """Return the demo center made by ``./run demo``, looked for from ``start`` upwards.

    Parameters
    ----------
    start
        Where to start looking (default: the working directory). The first of
        ``start/demo``, ``start/../demo``, ... that holds ``biobank.duckdb`` wins;
        ``start`` itself counts when it is a demo folder.

    Raises
    ------
    ConfigError
        If no directory on the way up holds ``demo/biobank.duckdb``.
    """
    here = Path.cwd() if start is None else Path(start)
    here = here.resolve()
    candidates = [here] if here.name == DEMO_DIR_NAME else []
    candidates += [d / DEMO_DIR_NAME for d in (here, *here.parents)]
    for directory in candidates:
        store = directory / DEMO_STORE_NAME
        if store.is_file():
            logger.debug("demo center found at %s", directory)
            return DemoCenter(directory=directory, store=store)
    raise ConfigError(
        f"no demo store {DEMO_DIR_NAME}/{DEMO_STORE_NAME} in {here} or any parent: "
        "run './run demo' at the top of the checkout first (it makes demo/), "
        "then start Jupyter from the checkout, e.g. 'jupyter lab notebooks/'"
    )
