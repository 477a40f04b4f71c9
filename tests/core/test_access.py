"""Tests for biobank.core.access: roles, users, the registry's permission matrix (library)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from registry_support import DATA, LI, WANG, loaded, loaded_template, store, users

from biobank.core.access import PERMISSIONS, Permission, Principal, Role, add_user, get_principal
from biobank.core.errors import AccessDenied, ConsentError, NotFoundError, ValidationError
from biobank.core.ids import center_key, make_label, pseudonym
from biobank.core.store import Store
from biobank.registry.consent import add_consent, withdraw_consent
from biobank.registry.imports import import_all, import_participants
from biobank.registry.inventory import (
    consume_specimen,
    get_specimen,
    link_sequencing_sample,
    list_specimens,
    move_specimen,
    ship_specimen,
    update_specimen,
)
from biobank.registry.participants import (
    find_participant,
    get_participant,
    list_participants,
    register_participant,
    update_participant,
)
from biobank.registry.recontact import read_recontact
from biobank.registry.specimens import add_specimen
from biobank.sequencing.sheet import sample_sheet

__all__ = ["loaded", "loaded_template", "store", "users"]  # fixtures used by the tests below

Action = Callable[[Store, Principal, Path], Any]


def _pid(s: Store, nid: str) -> str:
    return pseudonym(nid, center_key(s.path))


def _fastq_dir(tmp: Path) -> Path:
    d = tmp / "fq"
    d.mkdir(exist_ok=True)
    for read in (1, 2):
        (d / f"S0001_L1_R{read}.fastq").write_text("@r\nACGT\n+\nIIII\n")
    return d


ACTIONS: dict[str, Action] = {
    "participant.register": lambda s, p, t: register_participant(
        s,
        p,
        national_id="11010519491231002X",
        name="赵敏",
        sex="female",
        birth_date="1949-12-31",
        enrolment_date="2024-01-01",
        site="BJ-CY",
    ),
    "participant.update": lambda s, p, t: update_participant(
        s, p, _pid(s, LI), reason="r", site="X1"
    ),
    "participant.find_by_national_id": lambda s, p, t: find_participant(s, p, LI),
    "participant.show": lambda s, p, t: get_participant(s, p, _pid(s, WANG)),
    "participant.list": lambda s, p, t: list_participants(s, p),
    "registry.import": lambda s, p, t: import_participants(s, p, DATA / "participants.csv"),
    "registry.import_all": lambda s, p, t: import_all(s, p, DATA),
    "consent.add": lambda s, p, t: add_consent(
        s, p, _pid(s, WANG), version="v9", signed_date=dt.date(2024, 1, 1), duo_codes="HMB"
    ),
    "consent.withdraw": lambda s, p, t: withdraw_consent(s, p, _pid(s, LI), reason="r"),
    "specimen.add": lambda s, p, t: add_specimen(
        s,
        p,
        label=make_label("BB", 777),
        participant_id=_pid(s, WANG),
        specimen_type="urine",
        collected_at="2024-01-01T08:00",
        quantity=10,
        unit="mL",
    ),
    "specimen.show": lambda s, p, t: get_specimen(s, p, "BB0000003J"),
    "specimen.list": lambda s, p, t: list_specimens(s, p),
    "specimen.move": lambda s, p, t: move_specimen(
        s, p, "BB0000001N", freezer="F9", rack="R9", box="B9", position="A1", reason="r"
    ),
    "specimen.consume": lambda s, p, t: consume_specimen(
        s, p, "BB0000003J", quantity=1, reason="r"
    ),
    "specimen.ship": lambda s, p, t: ship_specimen(s, p, "BB0000005F", destination="x", reason="r"),
    "specimen.update": lambda s, p, t: update_specimen(
        s, p, "BB0000006D", reason="r", anatomical_site="breast, left"
    ),
    "specimen.link": lambda s, p, t: link_sequencing_sample(s, p, "BB0000005F", "S0777"),
    "registry.sample_sheet": lambda s, p, t: sample_sheet(s, p, fastq=_fastq_dir(t)),
    "recontact.read": lambda s, p, t: read_recontact(s, p, _pid(s, WANG), reason="r"),
    "user.add": lambda s, p, t: add_user(s.con, p, "newbie", Role.RESEARCHER),
}

REGISTRY_STAFF = {"admin", "registrar"}
#: Who may do what (the specification, written out; not derived from access.PERMISSIONS).
ALLOWED: dict[str, set[str]] = {
    "participant.register": REGISTRY_STAFF,
    "participant.update": REGISTRY_STAFF,
    "participant.find_by_national_id": REGISTRY_STAFF,
    "participant.show": REGISTRY_STAFF | {"researcher"},
    "participant.list": REGISTRY_STAFF | {"researcher"},
    "registry.import": REGISTRY_STAFF,
    "registry.import_all": REGISTRY_STAFF,
    "consent.add": REGISTRY_STAFF,
    "consent.withdraw": REGISTRY_STAFF,
    "specimen.add": REGISTRY_STAFF,
    "specimen.show": REGISTRY_STAFF | {"researcher"},
    "specimen.list": REGISTRY_STAFF | {"researcher"},
    "specimen.move": REGISTRY_STAFF,
    "specimen.consume": REGISTRY_STAFF,
    "specimen.ship": REGISTRY_STAFF,
    "specimen.update": REGISTRY_STAFF,
    "specimen.link": REGISTRY_STAFF,
    "registry.sample_sheet": REGISTRY_STAFF,
    "recontact.read": REGISTRY_STAFF,
    "user.add": {"admin"},
}
ROLES = ["admin", "registrar", "researcher", "auditor"]


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("action", sorted(ACTIONS))
def test_permission_matrix(
    loaded: Store, users: dict[str, Principal], tmp_path: Path, action: str, role: str
) -> None:
    principal = users[role]
    audit_before = loaded.con.execute("SELECT count(*) FROM audit_log").fetchone()
    if role in ALLOWED[action]:
        ACTIONS[action](loaded, principal, tmp_path)
    else:
        with pytest.raises(
            AccessDenied, match=f"user '{principal.user}' with role '{role}' may not"
        ):
            ACTIONS[action](loaded, principal, tmp_path)
        # a refused action writes nothing, not even an audit entry
        assert loaded.con.execute("SELECT count(*) FROM audit_log").fetchone() == audit_before


def test_researcher__sees_only_consented_pseudonymised_rows(
    loaded: Store, users: dict[str, Principal]
) -> None:
    researcher = users["researcher"]  # purpose HMB: WANG (GRU) and LI (HMB)
    rows = list_participants(loaded, researcher)
    assert {r["participant_id"] for r in rows} == {_pid(loaded, WANG), _pid(loaded, LI)}
    assert all(
        set(r)
        == {
            "participant_id",
            "sex",
            "birth_year",
            "enrolment_date",
            "site",
            "cohorts",
            "consent_version",
            "consent_codes",
        }
        for r in rows
    )
    specimens = list_specimens(loaded, researcher)
    assert {s["participant_id"] for s in specimens} == {_pid(loaded, WANG), _pid(loaded, LI)}
    with pytest.raises(ConsentError, match="has not consented to purpose 'HMB'"):
        get_specimen(loaded, researcher, "BB0000007B")  # CHEN consented to DS:C50 only
    ds = Principal(researcher.user, researcher.role, purpose="DS:C50.9")
    assert get_specimen(loaded, ds, "BB0000007B")["participant_id"] == pseudonym(
        "440106198911300365", center_key(loaded.path)
    )


def test_researcher__needs_a_purpose(loaded: Store) -> None:
    with pytest.raises(ConsentError, match="stated purpose"):
        list_participants(loaded, Principal("res1", Role.RESEARCHER))
    with pytest.raises(ValidationError, match="is not one of GRU"):
        list_participants(loaded, Principal("res1", Role.RESEARCHER, purpose="anything"))


def test_no_research_role_may_read_recontact() -> None:
    for role, perms in PERMISSIONS.items():
        if Permission.RESEARCH_READ in perms or role in {Role.AUDITOR}:
            assert Permission.RECONTACT_READ not in perms


def test_get_principal__unknown_or_inactive_user(store: Store) -> None:
    assert get_principal(store.con, "reg1").role is Role.REGISTRAR
    store.con.execute("UPDATE app_user SET active = FALSE WHERE user_name = 'reg1'")
    with pytest.raises(NotFoundError, match="no active user 'reg1'"):
        get_principal(store.con, "reg1")


def test_add_user__first_must_be_admin_then_only_admins(tmp_path: Path) -> None:
    with Store(tmp_path / "s.duckdb") as s:
        with pytest.raises(ValidationError, match="first user of a store must be an admin"):
            add_user(s.con, None, "reg", Role.REGISTRAR)
        admin = add_user(s.con, None, "boss", Role.ADMIN)
        with pytest.raises(AccessDenied, match="only an admin may add users"):
            add_user(s.con, None, "x", Role.RESEARCHER)
        with pytest.raises(ValidationError, match="role 'owner' is not one of"):
            add_user(s.con, admin, "x", "owner")
        with pytest.raises(ValidationError, match="already exists"):
            add_user(s.con, admin, "boss", Role.ADMIN)
