"""Fixtures of the service tests: a keyed store with one web account per role, the app."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from service.support import ACCOUNTS, PASSWORD, SECRET, TestClient

from biobank.core.access import Role
from biobank.core.ids import center_key
from biobank.core.store import Store
from biobank.service import create_app
from biobank.service.accounts import LoginPolicy, RateLimiter, create_account


@pytest.fixture(autouse=True)
def cheap_hashes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Argon2 with small cost: the tests check behaviour, not the cost."""
    from argon2 import PasswordHasher

    from biobank.service import accounts

    monkeypatch.setattr(
        accounts, "HASHER", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    )


@pytest.fixture
def store_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A new store (mode 0600) with its key and one web account per role."""
    monkeypatch.delenv("BIOBANK_CENTER_KEY", raising=False)
    monkeypatch.delenv("BIOBANK_KEY_FILE", raising=False)
    path = tmp_path / "store.duckdb"
    with Store(path) as store:
        center_key(store.path, create=True)
        admin = create_account(store, None, ACCOUNTS[Role.ADMIN], Role.ADMIN, PASSWORD, client="t")
        for role in (Role.REGISTRAR, Role.RESEARCHER, Role.AUDITOR, Role.APPROVER):
            create_account(store, admin, ACCOUNTS[role], role, PASSWORD, client="t")
            # an admin-created account must change its password: the fixture clears that
            store.con.execute("UPDATE web_account SET must_change = FALSE")
    path.chmod(0o600)
    Path(str(path) + ".key").chmod(0o600)
    return path


@pytest.fixture
def app(store_path: Path) -> Iterator[object]:
    """The application over :func:`store_path` (lockout after 3 failures)."""
    application = create_app(
        store_path,
        secret_key=SECRET,
        policy=LoginPolicy(max_failures=3),
        limiter=RateLimiter(limit=10, window=60),
    )
    yield application
    application.state.service.store.close()


@pytest.fixture
def client(app: object) -> TestClient:
    """A logged-out client."""
    return TestClient(app, follow_redirects=False)  # type: ignore[arg-type]
