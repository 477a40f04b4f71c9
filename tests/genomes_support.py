"""Shared helpers of the genome tests (tests/genomes): principals, the store
fixture with registered samples, table counts and small VCFs.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from stdnum.cn import ric

from biobank.core.access import Principal, Role, add_user, map_login, os_login
from biobank.core.store import Store

__all__ = [
    "ADMIN",
    "REGISTRAR",
    "RESEARCHER",
    "VCF",
    "register_samples",
    "store",
    "stored_calls",
    "table_counts",
    "tiny_records",
    "tiny_with",
    "write_many_records",
]

VCF = Path(__file__).parent / "data" / "vcf"


ADMIN = Principal("ada", Role.ADMIN)


REGISTRAR = Principal("reg", Role.REGISTRAR)


RESEARCHER = Principal("rita", Role.RESEARCHER, purpose="HMB")


def register_samples(store: Store, names: list[str]) -> dict[str, str]:
    """Register one participant with a DNA specimen per sequencing sample (registry API)."""
    from biobank.core.ids import make_label
    from biobank.registry.participants import register_participant
    from biobank.registry.specimens import add_specimen

    out = {}
    for i, name in enumerate(names, start=1):
        body = f"11010519800101{i:03d}"
        pid = register_participant(
            store,
            REGISTRAR,
            national_id=body + ric.calc_check_digit(body + "0"),
            name="测试",
            sex="male" if i % 2 else "female",
            birth_date="1980-01-01",
            enrolment_date="2020-01-01",
            site="BJ01",
        )
        add_specimen(
            store,
            REGISTRAR,
            label=make_label("DN", i),
            participant_id=pid,
            specimen_type="dna",
            collected_at="2020-01-01T09:00:00",
            quantity=10.0,
            unit="ug",
            sequencing_sample_id=name,
        )
        out[name] = pid
    return out


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Store]:
    """A keyed store with users ada (admin), reg (registrar), rita (researcher), S0001..S0006."""
    from biobank.core.ids import center_key

    monkeypatch.delenv("BIOBANK_CENTER_KEY", raising=False)
    monkeypatch.delenv("BIOBANK_KEY_FILE", raising=False)
    s = Store(tmp_path / "g.duckdb")
    center_key(s.path, create=True)
    with s.transaction() as con:
        admin = add_user(con, None, "ada", Role.ADMIN)
        add_user(con, admin, "reg", Role.REGISTRAR)
        add_user(con, admin, "rita", Role.RESEARCHER)
        for user in ("ada", "reg", "rita"):  # the command line acts as a mapped user
            map_login(con, admin, os_login(), user)
    register_samples(s, [f"S000{i}" for i in range(1, 7)])
    yield s
    s.close()


def table_counts(store: Store) -> dict[str, int]:
    out = {}
    for table in (
        "provenance",
        "genotype_batch",
        "genotype_load",
        "genotype_sample",
        "variant",
        "batch_variant",
        "genotype_call",
        "genotype_packed",
        "audit_log",
    ):
        row = store.con.execute(f"SELECT count(*) FROM {table}").fetchone()
        out[table] = int(row[0]) if row else -1
    return out


def stored_calls(store: Store) -> dict[tuple[str, str], tuple[int, int, int | None, int | None]]:
    rows = store.con.execute(
        "SELECT s.sample_id, v.contig || ':' || v.position || ':' || v.alt, c.dosage, c.flags,"
        " c.dp, c.gq FROM genotype_call_all c JOIN genotype_sample s USING (sample_key)"
        " JOIN variant v USING (variant_key)"
    ).fetchall()
    return {(r[0], r[1]): (r[2], r[3], r[4], r[5]) for r in rows}


def tiny_with(tmp_path: Path, name: str, body: list[str]) -> Path:
    """tiny.vcf's header (samples S0001..S0004) with other records."""
    header = [ln for ln in (VCF / "tiny.vcf").read_text().splitlines() if ln.startswith("#")]
    path = tmp_path / name
    path.write_text("\n".join([*header, *body]) + "\n")
    return path


def tiny_records() -> list[str]:
    return [ln for ln in (VCF / "tiny.vcf").read_text().splitlines() if not ln.startswith("#")]


def write_many_records(path: Path, n_samples: int, n_records: int, seed: int) -> None:
    """A plain gzipped VCF of random biallelic SNVs (unphased diploid GT only), fast."""
    import gzip

    rng = np.random.default_rng(seed)
    names = [f"M{i:04d}" for i in range(n_samples)]
    codes = np.array(["0/0", "0/1", "1/1", "./."])
    bases = np.array(list("ACGT"))
    with gzip.open(path, "wt", compresslevel=1) as out:
        out.write("##fileformat=VCFv4.2\n##contig=<ID=chr1,length=100000000>\n")
        out.write('##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">\n')
        out.write("\t".join(["#CHROM", "POS", "ID", "REF", "ALT", "QUAL", "FILTER", "INFO"]))
        out.write("\tFORMAT\t" + "\t".join(names) + "\n")
        for start in range(0, n_records, 10_000):
            m = min(10_000, n_records - start)
            af = rng.uniform(0.01, 0.5, (m, 1))
            g = (rng.random((m, n_samples)) < af).astype(int)
            g += rng.random((m, n_samples)) < af
            g[rng.random((m, n_samples)) < 0.01] = 3
            ref = rng.integers(0, 4, m)
            alt = (ref + rng.integers(1, 4, m)) % 4
            gts = codes[g]
            for i in range(m):
                pos = 10 * (start + i) + 1
                out.write(
                    f"chr1\t{pos}\t.\t{bases[ref[i]]}\t{bases[alt[i]]}\t.\tPASS\t.\tGT\t"
                    + "\t".join(gts[i])
                    + "\n"
                )
