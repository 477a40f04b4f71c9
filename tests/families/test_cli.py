"""The ``biobank family`` commands as a user runs them (a real subprocess)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from families_support import FamilyStore


def _run(store: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BIOBANK_")}
    return subprocess.run(
        [sys.executable, "-m", "biobank", "--store", str(store), *args],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.mark.slow
def test_family_commands(family_store_rw: FamilyStore, tmp_path: Path) -> None:
    store = family_store_rw.path
    study = family_store_rw.study
    mendel = _run(store, "--user", "registrar", "family", "mendel", "--format", "json")
    assert mendel.returncode == 0, mendel.stderr
    assert len(json.loads(mendel.stdout)) == sum(len(k) for _, _, k in study.families.values())
    cands = _run(store, "--user", "registrar", "family", "candidates", "--format", "json")
    assert cands.returncode == 0, cands.stderr
    rows = json.loads(cands.stdout)
    assert {(r["variant_gene"], r["rank"]) for r in rows} >= {("MYH7", 1), ("ATP7B", 1)}
    de_novo = ["family", "candidates", "--mode", "de_novo", "--format", "json"]
    kept = _run(store, "--user", "registrar", *de_novo, "--keep-read-failures")
    assert kept.returncode == 0, kept.stderr
    assert {r["read_evidence"] for r in json.loads(kept.stdout)} == {"pass", "fail"}
    away = tmp_path / "moved"
    away.mkdir()
    for f in (study.vcf, Path(f"{study.vcf}.tbi")):
        (away / f.name).write_bytes(f.read_bytes())
    relocated = _run(
        store, "--user", "registrar", *de_novo, "--source-path", f"{study.vcf.parent}={away}"
    )
    assert relocated.returncode == 0, relocated.stderr
    (only,) = json.loads(relocated.stdout)
    assert only["read_evidence"] == "pass"
    bad_option = _run(store, "--user", "registrar", *de_novo, "--source-path", "nowhere")
    assert bad_option.returncode == 2
    assert "OLD=NEW" in bad_option.stderr
    research = _run(store, "--user", "researcher", "family", "candidates")
    assert research.returncode == 1
    assert "purpose" in research.stderr
    out = tmp_path / "fam.json"
    packet = _run(store, "--user", "registrar", "family", "phenopacket", "FAM03", "-o", str(out))
    assert packet.returncode == 0, packet.stderr
    assert json.loads(out.read_text())["id"] == "FAM03"
    man = next(n for n in study.national_ids if n[16] in "13579")  # odd order code: male
    bad = tmp_path / "bad.ped"
    bad.write_text(f"F9 {man} 0 0 2 1\n")
    imported = _run(store, "--user", "registrar", "family", "import-ped", str(bad))
    assert imported.returncode == 1
    assert "line 1" in imported.stderr
    assert "differs from the registered male" in imported.stderr
