"""``biobank serve`` and ``biobank web-password`` as typer commands (registered by cli)."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from biobank.cli import service as service_cli
from biobank.core.errors import ConfigError
from biobank.service.app import check_private, create_app, load_secret


def _app() -> typer.Typer:
    from biobank.cli import app

    if not any(c.name == "serve" for c in app.registered_commands):
        service_cli.register(app)
    return app


def test_web_password_sets_a_password_the_service_accepts(store_path: Path) -> None:
    from biobank.core.access import get_principal, map_login, os_login
    from biobank.core.store import Store

    with Store(store_path) as store, store.transaction() as con:  # the command line's peer
        map_login(con, get_principal(con, "admin1"), os_login(), "admin1")
    result = CliRunner().invoke(
        _app(),
        ["--store", str(store_path), "--user", "admin1", "web-password", "reg1"],
        input="from the cli 123\nfrom the cli 123\n",
    )
    assert result.exit_code == 0, result.output
    from biobank.service.accounts import LoginPolicy, authenticate

    with Store(store_path) as store:
        assert (
            authenticate(store, "reg1", "from the cli 123", client="t", policy=LoginPolicy())
            is not None
        )


def test_a_store_readable_by_others_is_refused(store_path: Path) -> None:
    store_path.chmod(0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        check_private(store_path)
    with pytest.raises(ConfigError, match="mode 0644"):
        create_app(store_path, secret_key="k" * 40)


def test_no_store_is_created_and_a_short_secret_is_refused(
    tmp_path: Path, store_path: Path
) -> None:
    with pytest.raises(ConfigError, match="biobank init"):
        create_app(tmp_path / "typo.duckdb", secret_key="k" * 40)
    assert not (tmp_path / "typo.duckdb").exists()
    with pytest.raises(ConfigError, match="32 characters"):
        create_app(store_path, secret_key="short")


def test_the_secret_file_is_private_and_stable(
    store_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("BIOBANK_SECRET_KEY", raising=False)
    first = load_secret(store_path)
    assert load_secret(store_path) == first
    assert len(first) == 64
    assert (Path(str(store_path) + ".web-secret").stat().st_mode & 0o777) == 0o600
