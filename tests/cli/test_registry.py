"""Tests for biobank.cli.registry: ``registry``, ``participant``, ``consent``, ``specimen``."""

from __future__ import annotations

import json
from pathlib import Path

from registry_support import USERS, loaded, loaded_template, users  # noqa: F401
from typer.testing import CliRunner

from biobank.cli import app
from biobank.core.ids import make_label
from biobank.core.store import Store
from biobank.registry.imports import import_specimens

HEADER = (
    "label,national_id,parent_label,specimen_type,collected_at,anatomical_site,quantity,unit,"
    "status,freezer,rack,box,position,sequencing_sample_id"
)


def _add_unstored_specimens(store: Store, tmp_path: Path, n: int) -> list[str]:
    """Import ``n`` consumed specimens without location that list before the fixture's."""
    labels = [make_label("AA", i) for i in range(1, n + 1)]
    rows = [
        f"{label},110105196503120128,,whole_blood,2023-04-01T09:30,,10,mL,consumed,,,,,"
        for label in labels
    ]
    csv = tmp_path / "more_specimens.csv"
    csv.write_text("\n".join([HEADER, *rows]) + "\n", encoding="utf-8")
    import_specimens(store, USERS["registrar"], csv)
    return labels


def test_specimen_list__without_limit_lists_every_specimen(
    loaded: Store,
    tmp_path: Path,
) -> None:
    # More rows than polars looks at to guess column types, and the columns of
    # the first rows (no parent, site, location or sample) empty: this crashed.
    new = _add_unstored_specimens(loaded, tmp_path, 120)
    n_all = loaded.con.execute("SELECT count(*) FROM specimen").fetchone()
    assert n_all is not None
    loaded.close()
    base = ["--store", str(loaded.path), "--user", USERS["registrar"].user, "specimen", "list"]
    runner = CliRunner()

    table = runner.invoke(app, base)
    assert table.exit_code == 0, table.output
    note = " ".join(table.output.split())  # the note below the table, wrapped to the terminal
    assert f"{n_all[0]:,} rows; all 15 columns with --format tsv, csv or json." in note

    as_json = runner.invoke(app, [*base, "--format", "json"])
    assert as_json.exit_code == 0, as_json.output
    rows = json.loads(as_json.stdout)
    labels = [r["label"] for r in rows]
    assert len(labels) == n_all[0] > len(new) + 1
    assert labels[: len(new)] == new
    assert {r["freezer"] for r in rows[len(new) :]} >= {"F01", "F02"}


def test_specimen_list__limit_still_limits(loaded: Store) -> None:
    loaded.close()
    result = CliRunner().invoke(
        app,
        [
            *["--store", str(loaded.path), "--user", USERS["registrar"].user],
            *["specimen", "list", "--limit", "2", "--format", "json"],
        ],
    )
    assert result.exit_code == 0, result.output
    assert [r["label"] for r in json.loads(result.stdout)] == ["BB0000001N", "BB0000002L"]
