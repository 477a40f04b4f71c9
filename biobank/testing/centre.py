"""A demo centre's loaded store, quickly: the demo folder without reads, then the real loaders.

Used by the Beacon and federation tests and benchmarks (one store per seed is
one centre of a simulated network; different seeds are different people and
different genomes).
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["build_centre_store", "load_centre_store"]


def build_centre_store(root: str | os.PathLike[str], *, seed: int, preset: str = "tiny") -> Path:
    """Generate ``root/demo`` (no reads) and load it into ``root/centre.duckdb``; mode 0600.

    Registry import, ``load-vcf`` of the cohort VCF and ``load-clinical``, as
    ``biobank demo`` does. Users: ``admin`` (mapped to this operating-system
    login) and ``registrar``. A few seconds for ``tiny``.

    Returns
    -------
    Path
        The store path (the key file is beside it).
    """
    from biobank.testing.demo import generate_demo

    base = Path(root)
    generate_demo(base / "demo", preset=preset, seed=seed, reads=False)
    return load_centre_store(base / "centre.duckdb", base / "demo")


def load_centre_store(path: str | os.PathLike[str], source: str | os.PathLike[str]) -> Path:
    """Load a demo-like folder (``registry/``, ``population/cohort.vcf.gz``, ``clinical/``)
    into a new store at ``path`` (mode 0600), with users ``admin`` and ``registrar``.
    """
    from biobank.clinical.load import load_clinical
    from biobank.core.access import Principal, Role, add_user, map_login, os_login
    from biobank.core.ids import center_key
    from biobank.core.store import Store
    from biobank.genomes.load import load_vcf
    from biobank.registry.imports import import_all

    path, demo = Path(path), Path(source)
    with Store(path) as store:
        center_key(store.path, create=True)
        with store.transaction() as con:
            admin = add_user(con, None, "admin", Role.ADMIN)
            add_user(con, admin, "registrar", Role.REGISTRAR)
            map_login(con, admin, os_login(), "admin")
        registrar = Principal("registrar", Role.REGISTRAR)
        import_all(store, registrar, demo / "registry")
        load_vcf(store, demo / "population" / "cohort.vcf.gz", principal=registrar)
        load_clinical(store, demo / "clinical", principal=registrar)
    for f in (path, Path(str(path) + ".key")):
        f.chmod(0o600)
    return path
