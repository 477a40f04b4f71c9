"""Tests for ``biobank registry aliquot`` and ``biobank registry label`` (thin over the library).

The labels written are decoded back by ZBar (``labels_support``), the children
read back from the store.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from labels_support import (
    code128_svg_png,
    decode,
    needs_poppler,
    needs_zbar,
    pdf_pages_png,
    qr_svg_png,
)
from registry_support import USERS, loaded, loaded_template, users  # noqa: F401

from biobank.cli import main
from biobank.core.ids import make_label
from biobank.core.store import Store

BLOOD = "BB0000001N"  # 10 mL of whole blood in F01/R1/B01/A1


class Ran:
    """A finished command: exit code, standard output, and both streams as ``output``."""

    def __init__(self, code: int, out: str, err: str) -> None:
        self.exit_code, self.stdout, self.output = code, out, out + err


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> object:
    """``cli(store, *args, user=...)``: run ``biobank`` in this process (:func:`main`)."""

    def run(store: Store, *args: str, user: str = USERS["registrar"].user) -> Ran:
        capsys.readouterr()
        code = main(["--store", str(store.path), "--user", user, *args])
        out, err = capsys.readouterr()
        return Ran(code, out, err)

    return run


def test_aliquot__makes_the_children_in_their_positions(cli: Any, loaded: Store) -> None:
    loaded.close()
    result = cli(
        loaded,
        *("registry", "aliquot", BLOOD.lower(), "-n", "3", "--quantity", "0.5"),
        *("--box", "F03/R1/B01", "--positions", "A1, A2 A3", "--format", "json"),
    )
    assert result.exit_code == 0, result.output
    kids = json.loads(result.stdout)
    # labels continue the prefix's serials after the fixture's nine specimens
    assert [k["label"] for k in kids] == [make_label("BB", n) for n in (10, 11, 12)]
    assert {(k["parent_label"], k["specimen_type"], k["quantity"], k["unit"]) for k in kids} == {
        (BLOOD, "whole_blood", 0.5, "mL")
    }
    with Store(loaded.path) as store:
        rows = store.con.execute(
            "SELECT label, box, position FROM specimen WHERE parent_label = ? AND freezer = 'F03'"
            " ORDER BY label",
            [BLOOD],
        ).fetchall()
    assert [(r[1], r[2]) for r in rows] == [("B01", "A1"), ("B01", "A2"), ("B01", "A3")]


def test_aliquot__refused_as_a_whole_with_a_clear_error(cli: Any, loaded: Store) -> None:
    n = loaded.con.execute("SELECT count(*) FROM specimen").fetchone()
    loaded.close()
    # 30 x 0.5 mL is more than the 10 mL of the tube
    too_much = cli(loaded, "registry", "aliquot", BLOOD, "-n", "30", "--quantity", "0.5")
    assert too_much.exit_code != 0
    assert f"left of {BLOOD}" in too_much.output
    # a taken position (A3 holds BB0000004H), given in another spelling
    taken = cli(
        loaded,
        *("registry", "aliquot", BLOOD, "-n", "2", "--quantity", "1"),
        *("--box", "f01/r1/b01", "--positions", "A5 a03"),
    )
    assert taken.exit_code != 0
    assert "BB0000004H" in taken.output
    no_box = cli(
        loaded, "registry", "aliquot", BLOOD, "-n", "1", "--quantity", "1", "--positions", "A5"
    )
    assert no_box.exit_code != 0
    assert "--box" in no_box.output
    researcher = cli(
        loaded,
        *("registry", "aliquot", BLOOD, "-n", "1", "--quantity", "1"),
        user=USERS["researcher"].user,
    )
    assert researcher.exit_code != 0
    with Store(loaded.path) as store:
        assert store.con.execute("SELECT count(*) FROM specimen").fetchone() == n


@needs_zbar
def test_label__svg_code128_and_qr_read_back(cli: Any, loaded: Store, tmp_path: Path) -> None:
    loaded.close()
    bars, square = tmp_path / "l.svg", tmp_path / "q.svg"
    assert cli(loaded, "registry", "label", BLOOD.lower(), "-o", str(bars)).exit_code == 0
    result = cli(loaded, "registry", "label", BLOOD, "--qr", "-o", str(square))
    assert result.exit_code == 0, result.output
    png = code128_svg_png(bars.read_text(encoding="utf-8"), tmp_path / "l.png")
    assert decode(png) == [f"CODE-128:{BLOOD}"]
    png = qr_svg_png(square.read_text(encoding="utf-8"), tmp_path / "q.png")
    assert decode(png) == [f"QR-Code:{BLOOD}"]


@needs_zbar
@needs_poppler
def test_label__pdf_of_a_specimen_and_of_a_box(cli: Any, loaded: Store, tmp_path: Path) -> None:
    loaded.close()
    one, sheet = tmp_path / "one.pdf", tmp_path / "box.pdf"
    assert cli(loaded, "registry", "label", BLOOD, "-o", str(one)).exit_code == 0
    result = cli(loaded, "registry", "label", "--box", "F01/R1/B01", "-o", str(sheet))
    assert result.exit_code == 0, result.output
    assert "4 labels of box F01/R1/B01" in result.output
    (page,) = pdf_pages_png(one.read_bytes(), tmp_path / "one")
    assert decode(page) == [f"CODE-128:{BLOOD}", f"QR-Code:{BLOOD}"]
    pages = pdf_pages_png(sheet.read_bytes(), tmp_path / "sheet")
    found = {s.split(":", 1)[1] for p in pages for s in decode(p)}
    assert found == {"BB0000001N", "BB0000003J", "BB0000004H", "BB0000005F"}
    with Store(loaded.path) as store:
        acts = store.con.execute(
            "SELECT count(*) FROM audit_log WHERE action = 'specimen.label'"
        ).fetchone()
    assert acts == (2,)


def test_label__bad_requests_write_nothing(cli: Any, loaded: Store, tmp_path: Path) -> None:
    loaded.close()
    folder = tmp_path / "labels"
    folder.mkdir()
    out = folder / "x.pdf"
    wrong = BLOOD[:-1] + "X"
    cases = [
        (("registry", "label", wrong, "-o", str(out)), "check character"),
        (("registry", "label", "-o", str(out)), "not both"),
        (("registry", "label", BLOOD, "--box", "F01/R1/B01", "-o", str(out)), "not both"),
        (("registry", "label", "--box", "F01/R1/B01", "-o", str(folder / "x.svg")), "PDF"),
        (("registry", "label", BLOOD, "-o", str(folder / "x.png")), ".pdf or .svg"),
        (("registry", "label", "--box", "F09/R1/B01", "-o", str(out)), "no specimen"),
    ]
    for args, message in cases:
        result = cli(loaded, *args)
        assert result.exit_code != 0, args
        assert message in result.output, (args, result.output)
    assert list(folder.iterdir()) == []
