"""The column classification registry covers every column of a fresh store."""

from __future__ import annotations

from pathlib import Path

import pytest

from biobank.core.classification import (
    ColumnClass,
    check_requestable,
    classification,
    column_class,
    data_dictionary,
    data_dictionary_markdown,
    unclassified_columns,
)
from biobank.core.errors import ValidationError
from biobank.core.store import Store


def test_every_column_of_a_fresh_store_is_classified(tmp_path: Path) -> None:
    with Store(tmp_path / "fresh.duckdb", create=True) as store:
        unclassified, stale = unclassified_columns(store.con)
        n_columns = store.con.execute(
            "SELECT count(*) FROM information_schema.columns WHERE table_schema = 'main'"
            " AND table_catalog = current_database()"
        ).fetchone()
    assert unclassified == [], f"add a class for {unclassified} to biobank/core/classification.csv"
    assert stale == [], f"remove {stale} from biobank/core/classification.csv"
    assert n_columns is not None
    assert len(classification()) == n_columns[0]


def test_an_unclassified_column_is_reported(tmp_path: Path) -> None:
    with Store(tmp_path / "fresh.duckdb", create=True) as store:
        store.con.execute("ALTER TABLE participant ADD COLUMN nickname VARCHAR")
        unclassified, _ = unclassified_columns(store.con)
    assert unclassified == ["participant.nickname"]


def test_identifying_columns_carry_the_identifying_classes() -> None:
    assert column_class("recontact_identifier", "token") is ColumnClass.DIRECT_IDENTIFIER
    assert column_class("web_account", "password_hash") is ColumnClass.SECRET
    assert column_class("clinical_person", "participant_id") is ColumnClass.PSEUDONYM
    assert column_class("clinical_person", "year_of_birth") is ColumnClass.QUASI_IDENTIFIER
    assert column_class("genotype_call_all", "dosage") is ColumnClass.GENETIC


@pytest.mark.parametrize(
    "field",
    [
        "recontact_identifier.token",
        "clinical_person.participant_id",
        "specimen.label",
        "audit_log.detail",
    ],
)
def test_unextractable_fields_are_refused(field: str) -> None:
    with pytest.raises(ValidationError, match="may never be extracted"):
        check_requestable(["clinical_person.sex", field])


def test_requestable_fields_are_normalised_and_unknown_ones_refused() -> None:
    assert check_requestable(["clinical_person.sex", " clinical_person.sex", "variant.gene"]) == [
        "clinical_person.sex",
        "variant.gene",
    ]
    with pytest.raises(ValidationError, match="not a classified column"):
        check_requestable(["clinical_person.name"])
    with pytest.raises(ValidationError, match=r"TABLE\.COLUMN"):
        check_requestable(["sex"])


def test_data_dictionary_has_types_classes_and_schema_comments(tmp_path: Path) -> None:
    with Store(tmp_path / "fresh.duckdb", create=True) as store:
        df = data_dictionary(store.con)
    row = df.filter((df["table"] == "recontact_identifier") & (df["column"] == "token")).to_dicts()[
        0
    ]
    assert row["class"] == "direct_identifier"
    assert row["type"] == "VARCHAR"
    assert "Fernet" in row["description"]
    assert df["class"].null_count() == 0
    md = data_dictionary_markdown(df)
    assert "## recontact_identifier" in md
    assert "| token | VARCHAR | direct_identifier |" in md


def test_the_committed_data_dictionary_is_up_to_date(tmp_path: Path) -> None:
    doc = Path(__file__).parents[2] / "docs" / "data-dictionary.md"
    with Store(tmp_path / "fresh.duckdb", create=True) as store:
        md = data_dictionary_markdown(data_dictionary(store.con))
    assert doc.read_text(encoding="utf-8") == md + "\n", (
        "regenerate it: biobank data-dictionary --format md > docs/data-dictionary.md"
    )
