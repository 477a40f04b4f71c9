"""Registry commands (:mod:`biobank.registry`): ``registry``, ``participant``, ``consent``,
``specimen``.

Each command parses its options, calls one library function (permissions are
checked there) and prints with ``--format table|csv|json``.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated, Any

import typer

from biobank.cli._common import (
    FormatOption,
    LimitOption,
    OutputFormat,
    PurposeOption,
    ReasonOption,
    acting_principal,
    emit,
    open_store,
)
from biobank.cli.sequencing import registry_sample_sheet

__all__ = ["register"]

registry_app = typer.Typer(
    help="Registry imports, sample sheets, re-contact, vocabularies.", no_args_is_help=True
)
participant_app = typer.Typer(help="Participants (pseudonymised).", no_args_is_help=True)
consent_app = typer.Typer(help="Consents (GA4GH DUO codes) and withdrawals.", no_args_is_help=True)
specimen_app = typer.Typer(
    help="Specimens, storage, lineage, sequencing links.", no_args_is_help=True
)

PseudonymArg = Annotated[str, typer.Argument(help="The pseudonym (P-...).")]
LabelArg = Annotated[str, typer.Argument(help="Label.")]


def _date(value: str | None, name: str) -> dt.date | None:
    from biobank.registry.participants import parse_date

    return parse_date(value, field=name) if value else None


def _plain(record: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.isoformat() if isinstance(v, dt.date) else v) for k, v in record.items()}


# -- registry ------------------------------------------------------------------
@registry_app.command("import")
def registry_import(
    ctx: typer.Context,
    kind: Annotated[str, typer.Argument(help="participants, consents or specimens.")],
    file: Annotated[Path, typer.Argument(help="The CSV file (UTF-8 or GB18030).")],
    fmt: FormatOption = OutputFormat.TABLE,
) -> None:
    """Import one registry CSV, all or nothing (see config/README.md for the columns)."""
    from biobank.core.errors import ValidationError
    from biobank.registry import imports as ri

    funcs = {
        "participants": ri.import_participants,
        "consents": ri.import_consents,
        "specimens": ri.import_specimens,
    }
    if kind not in funcs:
        raise ValidationError(f"kind must be one of: {', '.join(funcs)}", field="kind", value=kind)
    with open_store(ctx) as store:
        result = funcs[kind](store, acting_principal(ctx, store), file)
    emit(result.as_dict(), fmt)


@registry_app.command("import-all")
def registry_import_all(
    ctx: typer.Context,
    directory: Annotated[
        Path, typer.Argument(help="Folder with participants/consents/specimens.csv.")
    ],
    fmt: FormatOption = OutputFormat.TABLE,
) -> None:
    """Import participants.csv, consents.csv and specimens.csv in one transaction."""
    from biobank.registry.imports import import_all

    with open_store(ctx) as store:
        results = import_all(store, acting_principal(ctx, store), directory)
    emit([r.as_dict() for r in results], fmt)


# ``registry sample-sheet`` lists registered samples for the sequencing workflow; its body is
# with the sequencing commands. Mounted here to keep its place among the registry commands.
registry_app.command("sample-sheet")(registry_sample_sheet)


@registry_app.command("recontact")
def registry_recontact(
    ctx: typer.Context,
    pseudonym: Annotated[str, typer.Argument(help="The participant's pseudonym (P-...).")],
    reason: ReasonOption,
    fmt: FormatOption = OutputFormat.TABLE,
) -> None:
    """Show re-contact identifiers (registrar/admin only; audited)."""
    from biobank.registry.participants import read_recontact

    with open_store(ctx) as store:
        record = read_recontact(store, acting_principal(ctx, store), pseudonym, reason=reason)
    emit(record, fmt)


@registry_app.command("barcode")
def registry_barcode(
    label: Annotated[str, typer.Argument(help="Specimen label.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="SVG file to write.")],
) -> None:
    """Write a specimen label as a Code 128 barcode (SVG)."""
    from biobank.registry.inventory import label_barcode_svg

    out.write_text(label_barcode_svg(label), encoding="utf-8")
    typer.echo(f"wrote {out}")


#: Columns ``registry aliquot`` prints of each child.
CHILD_COLUMNS = [
    *("label", "parent_label", "specimen_type", "quantity", "unit"),
    *("freezer", "rack", "box", "position"),
]


def _box(text: str, option: str) -> tuple[str, str, str]:
    """``FREEZER/RACK/BOX`` as its three parts."""
    from biobank.core.errors import ValidationError

    parts = text.split("/")
    if len(parts) != 3 or not all(p.strip() for p in parts):
        raise ValidationError(f"{option} is FREEZER/RACK/BOX (e.g. F01/R01/B02)", field=option[2:])
    return parts[0], parts[1], parts[2]


@registry_app.command("aliquot")
def registry_aliquot(
    ctx: typer.Context,
    label: Annotated[str, typer.Argument(help="The parent's label.")],
    count: Annotated[int, typer.Option("--count", "-n", help="How many children (1-96).")],
    quantity: Annotated[float, typer.Option(help="Quantity of each child.")],
    unit: Annotated[str | None, typer.Option(help="Unit (default: the parent's).")] = None,
    specimen_type: Annotated[
        str | None,
        typer.Option("--type", help="A derivative's type (e.g. buffy_coat, dna); default aliquot."),
    ] = None,
    box: Annotated[
        str | None, typer.Option("--box", help="FREEZER/RACK/BOX of the children.")
    ] = None,
    positions: Annotated[
        str | None, typer.Option(help="One position per child in --box, e.g. 'A1 A2 A3'.")
    ] = None,
    parent_used: Annotated[
        float | None,
        typer.Option(help="For a derivative in another unit: parent quantity used."),
    ] = None,
    reason: Annotated[str, typer.Option(help="Kept with every event.")] = "aliquoted",
    fmt: FormatOption = OutputFormat.TABLE,
) -> None:
    """Split a specimen into N children (aliquots or a derivative), all or none."""
    import dataclasses
    import re

    from biobank.core.errors import ValidationError
    from biobank.registry.aliquots import aliquot_specimen

    spots: list[dict[str, str] | None] | None = None
    if positions and not box:
        raise ValidationError("--positions needs --box FREEZER/RACK/BOX", field="box")
    if box:
        freezer, rack, name = _box(box, "--box")
        wells = [p for p in re.split(r"[\s,;]+", (positions or "").strip()) if p]
        if not wells:
            raise ValidationError("--box needs --positions, one per child", field="positions")
        spots = [{"freezer": freezer, "rack": rack, "box": name, "position": w} for w in wells]
    with open_store(ctx) as store:
        children = aliquot_specimen(
            store,
            acting_principal(ctx, store),
            label,
            count=count,
            quantity=quantity,
            unit=unit,
            specimen_type=specimen_type,
            positions=spots,
            parent_used=parent_used,
            reason=reason,
        )
    rows = [_plain(dataclasses.asdict(c)) for c in children]
    emit(
        rows,
        fmt,
        columns=CHILD_COLUMNS,
    )


@registry_app.command("label")
def registry_label(
    ctx: typer.Context,
    out: Annotated[Path, typer.Option("--out", "-o", help="File to write: .pdf or .svg.")],
    label: Annotated[str | None, typer.Argument(help="A specimen's label.")] = None,
    box: Annotated[
        str | None, typer.Option("--box", help="FREEZER/RACK/BOX: a PDF sheet of its labels.")
    ] = None,
    qr: Annotated[bool, typer.Option("--qr", help="SVG: a QR code, not Code 128.")] = False,
) -> None:
    """Print labels: one specimen as PDF or SVG (Code 128 or QR), or a box's PDF sheet."""
    from biobank.core.errors import ValidationError
    from biobank.core.ids import validate_label
    from biobank.registry.inventory import get_specimen, label_barcode_svg
    from biobank.registry.labels import box_label_sheet_pdf, label_qr_svg, specimen_label_pdf

    kind = out.suffix.lower()
    if kind not in (".pdf", ".svg"):
        raise ValidationError("--out must end in .pdf or .svg", field="out", value=str(out))
    if (label is None) == (box is None):
        raise ValidationError("give a specimen label or --box FREEZER/RACK/BOX, not both")
    if box is not None and kind != ".pdf":
        raise ValidationError("a box's labels are a PDF sheet: --out ....pdf", field="out")
    with open_store(ctx) as store:
        who = acting_principal(ctx, store)
        if box is not None:
            freezer, rack, name = _box(box, "--box")
            data, labels = box_label_sheet_pdf(store, who, freezer=freezer, rack=rack, box=name)
            what = f"{len(labels)} labels of box {box}"
        elif kind == ".pdf":
            assert label is not None
            data, what = specimen_label_pdf(store, who, label), validate_label(label)
        else:
            assert label is not None
            value = str(get_specimen(store, who, label)["label"])
            svg = label_qr_svg(value) if qr else label_barcode_svg(value)
            data, what = svg.encode("utf-8"), value
    out.write_bytes(data)
    typer.echo(f"wrote {what} to {out}")


@registry_app.command("vocab")
def registry_vocab(
    name: Annotated[str, typer.Argument(help="specimen-types, units, statuses, duo, sexes.")],
    lang: Annotated[str, typer.Option(help="en or zh-CN.")] = "en",
    fmt: FormatOption = OutputFormat.TABLE,
) -> None:
    """List a controlled vocabulary with its display labels."""
    from biobank.core.errors import ValidationError
    from biobank.registry import vocab

    tables: dict[str, Any] = {
        "specimen-types": vocab.SPECIMEN_TYPES,
        "statuses": vocab.SPECIMEN_STATUSES,
        "sexes": vocab.SEXES,
        "duo": {**vocab.DUO_PRIMARY, **vocab.DUO_MODIFIERS},
        "units": vocab.UNITS,
    }
    if name not in tables:
        raise ValidationError(f"vocabulary is one of: {', '.join(tables)}", value=name)
    rows = [
        {"code": code, "label": term.zh if lang.lower().startswith("zh") else term.en}
        for code, term in tables[name].items()
    ]
    emit(rows, fmt)


# -- participant ---------------------------------------------------------------
@participant_app.command("add")
def participant_add(
    ctx: typer.Context,
    national_id: Annotated[
        str, typer.Option(help="Resident identity number (hashed, never stored in clear).")
    ],
    name: Annotated[str, typer.Option(help="Name (encrypted, re-contact only).")],
    sex: Annotated[str, typer.Option(help="female or male (must match the identity number).")],
    birth_date: Annotated[str, typer.Option(help="YYYY-MM-DD (must match the identity number).")],
    enrolment_date: Annotated[str, typer.Option(help="YYYY-MM-DD.")],
    site: Annotated[str, typer.Option(help="Enrolling site.")],
    phone: Annotated[str, typer.Option(help="Phone (encrypted, re-contact only).")] = "",
    cohort: Annotated[
        list[str] | None, typer.Option(help="Cohort membership (repeatable).")
    ] = None,
) -> None:
    """Register a participant; prints the pseudonym."""
    from biobank.registry.participants import register_participant

    with open_store(ctx) as store:
        pid = register_participant(
            store,
            acting_principal(ctx, store),
            national_id=national_id,
            name=name,
            sex=sex,
            birth_date=birth_date,
            enrolment_date=enrolment_date,
            site=site,
            phone=phone,
            cohorts=cohort or [],
        )
    typer.echo(pid)


@participant_app.command("show")
def participant_show(
    ctx: typer.Context,
    pseudonym: Annotated[str | None, typer.Argument(help="The pseudonym (P-...).")] = None,
    national_id: Annotated[
        str | None, typer.Option(help="Look up by identity number instead (registry staff).")
    ] = None,
    purpose: PurposeOption = None,
    lang: Annotated[str, typer.Option(help="Labels in en or zh-CN.")] = "en",
    fmt: FormatOption = OutputFormat.TABLE,
) -> None:
    """Show one participant (pseudonymised) with cohorts and current consent."""
    from biobank.core.errors import ValidationError
    from biobank.registry.participants import find_participant, get_participant

    with open_store(ctx) as store:
        principal = acting_principal(ctx, store, purpose=purpose)
        if national_id:
            pseudonym = find_participant(store, principal, national_id)
        if not pseudonym:
            raise ValidationError("give a pseudonym or --national-id", field="pseudonym")
        record = get_participant(store, principal, pseudonym, lang=lang)
    emit(_plain(record), fmt)


@participant_app.command("list")
def participant_list(
    ctx: typer.Context,
    site: Annotated[str | None, typer.Option(help="Only this site.")] = None,
    cohort: Annotated[str | None, typer.Option(help="Only this cohort.")] = None,
    sex: Annotated[str | None, typer.Option(help="Only female or male.")] = None,
    consented_for: Annotated[
        str | None, typer.Option(help="Only participants consenting to this purpose.")
    ] = None,
    purpose: PurposeOption = None,
    limit: LimitOption = None,
    fmt: FormatOption = OutputFormat.TABLE,
) -> None:
    """List participants with filters (researchers: consented participants only)."""
    from biobank.registry.participants import list_participants

    with open_store(ctx) as store:
        rows = list_participants(
            store,
            acting_principal(ctx, store, purpose=purpose),
            site=site,
            cohort=cohort,
            sex=sex,
            consented_for=consented_for,
            limit=limit,
        )
    emit([_plain(r) for r in rows], fmt)


@participant_app.command("update")
def participant_update(
    ctx: typer.Context,
    pseudonym: PseudonymArg,
    reason: ReasonOption,
    site: Annotated[str | None, typer.Option(help="New site.")] = None,
    enrolment_date: Annotated[str | None, typer.Option(help="New enrolment date.")] = None,
    cohort: Annotated[list[str] | None, typer.Option(help="Replace cohorts (repeatable).")] = None,
    name: Annotated[str | None, typer.Option(help="New name (encrypted).")] = None,
    phone: Annotated[str | None, typer.Option(help="New phone (encrypted).")] = None,
) -> None:
    """Change a participant's site, enrolment date, cohorts, name or phone."""
    from biobank.registry.participants import update_participant

    with open_store(ctx) as store:
        changed = update_participant(
            store,
            acting_principal(ctx, store),
            pseudonym,
            reason=reason,
            site=site,
            enrolment_date=_date(enrolment_date, "enrolment_date"),
            cohorts=cohort,
            name=name,
            phone=phone,
        )
    typer.echo(f"changed: {', '.join(sorted(changed)) or 'nothing'}")


# -- consent -------------------------------------------------------------------
@consent_app.command("add")
def consent_add(
    ctx: typer.Context,
    pseudonym: PseudonymArg,
    version: Annotated[str, typer.Option(help="Consent form version, e.g. v2.")],
    signed_date: Annotated[str, typer.Option(help="YYYY-MM-DD.")],
    duo_codes: Annotated[str, typer.Option(help="e.g. HMB;IRB or DS;NPU.")],
    disease: Annotated[str | None, typer.Option(help="ICD-10 code for DS.")] = None,
) -> None:
    """Register a new consent version."""
    from biobank.registry.consent import add_consent

    with open_store(ctx) as store:
        add_consent(
            store,
            acting_principal(ctx, store),
            pseudonym,
            version=version,
            signed_date=_date(signed_date, "signed_date") or dt.date.today(),
            duo_codes=duo_codes,
            disease=disease,
        )
    typer.echo(f"consent {version} registered for {pseudonym}")


@consent_app.command("withdraw")
def consent_withdraw(
    ctx: typer.Context,
    pseudonym: PseudonymArg,
    reason: ReasonOption,
    date: Annotated[str | None, typer.Option(help="Withdrawal date (default today).")] = None,
) -> None:
    """Record a withdrawal: effective at once for every query and export."""
    from biobank.registry.consent import withdraw_consent

    with open_store(ctx) as store:
        c = withdraw_consent(
            store,
            acting_principal(ctx, store),
            pseudonym,
            withdrawn_date=_date(date, "date"),
            reason=reason,
        )
    typer.echo(f"consent {c['consent_version']} of {pseudonym} withdrawn on {c['withdrawn_date']}")


@consent_app.command("show")
def consent_show(
    ctx: typer.Context,
    pseudonym: PseudonymArg,
    fmt: FormatOption = OutputFormat.TABLE,
) -> None:
    """Show every consent version of a participant (registry staff)."""
    from biobank.core import audit
    from biobank.core.access import Permission, require

    with open_store(ctx) as store:
        principal = acting_principal(ctx, store)
        require(principal, Permission.REGISTRY_READ)
        with store.transaction() as con:
            df = con.execute(
                "SELECT consent_version, signed_date, primary_code, disease, modifiers,"
                " withdrawn_date FROM consent WHERE participant_id = ?"
                " ORDER BY signed_date, consent_seq",
                [pseudonym],
            ).pl()
            audit.record(con, principal, "consent.read", pseudonym, {})
    emit(df, fmt)


# -- specimen ------------------------------------------------------------------
@specimen_app.command("add")
def specimen_add(
    ctx: typer.Context,
    label: Annotated[str, typer.Option(help="Label with check character.")],
    participant: Annotated[str, typer.Option(help="The participant's pseudonym.")],
    specimen_type: Annotated[str, typer.Option("--type", help="e.g. whole_blood, plasma, dna.")],
    collected_at: Annotated[str, typer.Option(help="YYYY-MM-DDTHH:MM.")],
    quantity: Annotated[float, typer.Option(help="Amount.")],
    unit: Annotated[str, typer.Option(help="mL, µL, mg, µg, ng ...")],
    parent: Annotated[str | None, typer.Option(help="Parent specimen label.")] = None,
    anatomical_site: Annotated[str | None, typer.Option(help="Required for tissue.")] = None,
    location: Annotated[str | None, typer.Option(help="FREEZER/RACK/BOX/POSITION.")] = None,
    sample_id: Annotated[str | None, typer.Option(help="Sequencing sample id (DNA/RNA).")] = None,
) -> None:
    """Register a specimen."""
    from biobank.registry.specimens import add_specimen

    parts = (location or "").split("/") if location else [None] * 4
    if len(parts) != 4:
        from biobank.core.errors import ValidationError

        raise ValidationError(
            "location is FREEZER/RACK/BOX/POSITION", field="location", value=location
        )
    with open_store(ctx) as store:
        add_specimen(
            store,
            acting_principal(ctx, store),
            label=label,
            participant_id=participant,
            specimen_type=specimen_type,
            collected_at=collected_at,
            quantity=quantity,
            unit=unit,
            parent_label=parent,
            anatomical_site=anatomical_site,
            freezer=parts[0],
            rack=parts[1],
            box=parts[2],
            position=parts[3],
            sequencing_sample_id=sample_id,
        )
    typer.echo(f"registered {label.upper()}")


@specimen_app.command("show")
def specimen_show(
    ctx: typer.Context,
    label: LabelArg,
    purpose: PurposeOption = None,
    fmt: FormatOption = OutputFormat.TABLE,
) -> None:
    """Show a specimen with storage, remaining amount and lineage."""
    from biobank.registry.inventory import get_specimen

    with open_store(ctx) as store:
        record = get_specimen(store, acting_principal(ctx, store, purpose=purpose), label)
    emit(_plain(record), fmt)


@specimen_app.command("list")
def specimen_list(
    ctx: typer.Context,
    participant: Annotated[str | None, typer.Option(help="Only this pseudonym.")] = None,
    specimen_type: Annotated[str | None, typer.Option("--type", help="Only this type.")] = None,
    status: Annotated[str | None, typer.Option(help="Only this status.")] = None,
    freezer: Annotated[str | None, typer.Option(help="Only this freezer.")] = None,
    purpose: PurposeOption = None,
    limit: LimitOption = None,
    fmt: FormatOption = OutputFormat.TABLE,
) -> None:
    """List specimens with filters."""
    from biobank.registry.inventory import list_specimens

    with open_store(ctx) as store:
        rows = list_specimens(
            store,
            acting_principal(ctx, store, purpose=purpose),
            participant_id=participant,
            specimen_type=specimen_type,
            status=status,
            freezer=freezer,
            limit=limit,
        )
    emit([_plain(r) for r in rows], fmt)


@specimen_app.command("update")
def specimen_update(
    ctx: typer.Context,
    label: LabelArg,
    reason: ReasonOption,
    collected_at: Annotated[str | None, typer.Option(help="Corrected collection time.")] = None,
    anatomical_site: Annotated[str | None, typer.Option(help="Corrected anatomical site.")] = None,
    quantity: Annotated[float | None, typer.Option(help="Corrected quantity (same unit).")] = None,
) -> None:
    """Correct a specimen's collection time, anatomical site or quantity."""
    from biobank.registry.inventory import update_specimen

    with open_store(ctx) as store:
        update_specimen(
            store,
            acting_principal(ctx, store),
            label,
            reason=reason,
            collected_at=collected_at,
            anatomical_site=anatomical_site,
            quantity=quantity,
        )
    typer.echo(f"updated {label.upper()}")


@specimen_app.command("move")
def specimen_move(
    ctx: typer.Context,
    label: LabelArg,
    to: Annotated[str, typer.Option("--to", help="FREEZER/RACK/BOX/POSITION.")],
    reason: ReasonOption,
) -> None:
    """Move a specimen to an empty position."""
    from biobank.core.errors import ValidationError
    from biobank.registry.inventory import move_specimen

    parts = to.split("/")
    if len(parts) != 4:
        raise ValidationError("--to is FREEZER/RACK/BOX/POSITION", field="to", value=to)
    with open_store(ctx) as store:
        move_specimen(
            store,
            acting_principal(ctx, store),
            label,
            freezer=parts[0],
            rack=parts[1],
            box=parts[2],
            position=parts[3],
            reason=reason,
        )
    typer.echo(f"moved {label.upper()} to {to}")


@specimen_app.command("consume")
def specimen_consume(
    ctx: typer.Context,
    label: LabelArg,
    reason: ReasonOption,
    quantity: Annotated[float | None, typer.Option(help="Amount used (default: all).")] = None,
    unit: Annotated[str | None, typer.Option(help="Unit of --quantity.")] = None,
) -> None:
    """Use up some or all of a specimen."""
    from biobank.registry.inventory import consume_specimen

    with open_store(ctx) as store:
        spec = consume_specimen(
            store, acting_principal(ctx, store), label, reason=reason, quantity=quantity, unit=unit
        )
    typer.echo(f"{spec['label']}: {spec['status']}")


@specimen_app.command("ship")
def specimen_ship(
    ctx: typer.Context,
    label: LabelArg,
    destination: Annotated[str, typer.Option(help="Where it goes.")],
    reason: ReasonOption,
) -> None:
    """Record a shipment (frees the position)."""
    from biobank.registry.inventory import ship_specimen

    with open_store(ctx) as store:
        ship_specimen(
            store, acting_principal(ctx, store), label, destination=destination, reason=reason
        )
    typer.echo(f"{label.upper()} shipped to {destination}")


@specimen_app.command("destroy")
def specimen_destroy(
    ctx: typer.Context,
    label: LabelArg,
    reason: ReasonOption,
) -> None:
    """Record that a specimen was destroyed (frees the position)."""
    from biobank.registry.inventory import destroy_specimen

    with open_store(ctx) as store:
        destroy_specimen(store, acting_principal(ctx, store), label, reason=reason)
    typer.echo(f"{label.upper()} destroyed")


@specimen_app.command("link")
def specimen_link(
    ctx: typer.Context,
    label: Annotated[str, typer.Argument(help="DNA/RNA specimen label.")],
    sample_id: Annotated[str, typer.Argument(help="Sequencing sample id.")],
) -> None:
    """Link a DNA/RNA specimen to a sequencing sample id."""
    from biobank.registry.inventory import link_sequencing_sample

    with open_store(ctx) as store:
        link_sequencing_sample(store, acting_principal(ctx, store), label, sample_id)
    typer.echo(f"{sample_id} -> {label.upper()}")


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root app."""
    app.add_typer(registry_app, name="registry")
    app.add_typer(participant_app, name="participant")
    app.add_typer(consent_app, name="consent")
    app.add_typer(specimen_app, name="specimen")
