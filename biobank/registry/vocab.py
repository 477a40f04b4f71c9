"""Controlled vocabularies of the registry, with zh-CN and en display labels.

Each vocabulary is a mapping from the stored code (what CSV files and the API
use) to a :class:`Term` carrying its display labels. Codes are stored, labels
are shown: :func:`label` picks the language.

* :data:`SPECIMEN_TYPES`: what a tube holds (``whole_blood``, ``dna`` ...);
  tissue types require an anatomical site.
* :data:`UNITS`: quantity units with their dimension (volume, mass, count) and
  the factor to the dimension's base unit, so an aliquot can be compared with
  its parent (``500 µL`` of plasma is less than ``4 mL`` of blood).
* :data:`DERIVATIONS`: which types a derivative of each type may have.
* :data:`SPECIMEN_STATUSES`: ``available``, ``consumed``, ``shipped``,
  ``destroyed``.
* :data:`DUO_PRIMARY` and :data:`DUO_MODIFIERS`: GA4GH Data Use Ontology codes
  of consents.
* :data:`SEXES`: ``female`` and ``male`` (as encoded in the identity number).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from biobank.core.errors import ValidationError

__all__ = [
    "DERIVATIONS",
    "DUO_MODIFIERS",
    "DUO_PRIMARY",
    "NUCLEIC_ACID_TYPES",
    "SEXES",
    "SPECIMEN_STATUSES",
    "SPECIMEN_TYPES",
    "STATUS_ALIASES",
    "UNITS",
    "Term",
    "Unit",
    "check_term",
    "label",
    "normalise_unit",
]


@dataclass(frozen=True)
class Term:
    """One vocabulary entry: display labels and, for specimen types, whether tissue."""

    en: str
    zh: str
    tissue: bool = False

    def label(self, lang: str = "en") -> str:
        """Return the display label for ``lang`` (``"en"`` or ``"zh-CN"``)."""
        return self.zh if lang.lower().startswith("zh") else self.en


@dataclass(frozen=True)
class Unit:
    """A quantity unit: its dimension and factor to the dimension's base unit (mL, µg, 1)."""

    dimension: str
    factor: float
    en: str
    zh: str


SPECIMEN_TYPES: Mapping[str, Term] = {
    "whole_blood": Term("whole blood", "全血"),
    "clotted_blood": Term("clotted blood", "凝血"),
    "plasma": Term("plasma", "血浆"),
    "serum": Term("serum", "血清"),
    "buffy_coat": Term("buffy coat", "白膜层"),
    "pbmc": Term("peripheral blood mononuclear cells", "外周血单个核细胞"),
    "tissue_fresh_frozen": Term("fresh frozen tissue", "新鲜冷冻组织", tissue=True),
    "tissue_ffpe": Term("FFPE tissue", "石蜡包埋组织", tissue=True),
    "saliva": Term("saliva", "唾液"),
    "urine": Term("urine", "尿液"),
    "stool": Term("stool", "粪便"),
    "dna": Term("DNA", "DNA"),
    "rna": Term("RNA", "RNA"),
    "cfdna": Term("cell-free DNA", "游离DNA"),
}

#: Parent type -> the types a derivative of it may have (an aliquot keeps the parent's
#: type and is always allowed): blood -> buffy coat -> DNA and the like.
DERIVATIONS: Mapping[str, frozenset[str]] = {
    "whole_blood": frozenset({"plasma", "buffy_coat", "pbmc", "dna", "rna", "cfdna"}),
    "clotted_blood": frozenset({"serum"}),
    "plasma": frozenset({"cfdna"}),
    "serum": frozenset(),
    "buffy_coat": frozenset({"dna", "rna", "pbmc"}),
    "pbmc": frozenset({"dna", "rna"}),
    "tissue_fresh_frozen": frozenset({"dna", "rna"}),
    "tissue_ffpe": frozenset({"dna", "rna"}),
    "saliva": frozenset({"dna"}),
    "urine": frozenset({"cfdna", "dna"}),
    "stool": frozenset({"dna"}),
    "dna": frozenset(),
    "rna": frozenset(),
    "cfdna": frozenset(),
}

#: Specimen types that can be linked to a sequencing sample.
NUCLEIC_ACID_TYPES = frozenset({"dna", "rna", "cfdna"})

UNITS: Mapping[str, Unit] = {
    "L": Unit("volume", 1000.0, "litre", "升"),
    "mL": Unit("volume", 1.0, "millilitre", "毫升"),
    "µL": Unit("volume", 1e-3, "microlitre", "微升"),
    "g": Unit("mass", 1e6, "gram", "克"),
    "mg": Unit("mass", 1e3, "milligram", "毫克"),
    "µg": Unit("mass", 1.0, "microgram", "微克"),
    "ng": Unit("mass", 1e-3, "nanogram", "纳克"),
    "cells": Unit("count", 1.0, "cells", "个细胞"),
    "slides": Unit("count", 1.0, "slides", "张切片"),
    "blocks": Unit("count", 1.0, "blocks", "个蜡块"),
}

#: Other spellings accepted on input for a unit (the micro sign and the Greek mu).
_UNIT_ALIASES = {
    "ml": "mL",
    "ul": "µL",
    "μl": "µL",
    "µl": "µL",
    "μL": "µL",
    "uL": "µL",
    "ug": "µg",
    "μg": "µg",
    "l": "L",
    "block": "blocks",
    "slide": "slides",
    "cell": "cells",
}

SPECIMEN_STATUSES: Mapping[str, Term] = {
    "available": Term("available", "可用"),
    "consumed": Term("consumed", "已用尽"),
    "shipped": Term("shipped", "已发出"),
    "destroyed": Term("destroyed", "已销毁"),
}

#: Other words accepted on input for a status.
STATUS_ALIASES = {"depleted": "consumed", "exhausted": "consumed", "used": "consumed"}

SEXES: Mapping[str, Term] = {
    "female": Term("female", "女"),
    "male": Term("male", "男"),
}

#: GA4GH DUO permission codes: exactly one per consent.
DUO_PRIMARY: Mapping[str, Term] = {
    "NRES": Term("no restriction (DUO:0000004)", "无限制"),
    "GRU": Term("general research use (DUO:0000042)", "一般研究用途"),
    "HMB": Term("health/medical/biomedical research (DUO:0000006)", "健康/医学/生物医学研究"),
    "DS": Term("disease-specific research (DUO:0000007)", "特定疾病研究"),
    "POA": Term(
        "population origins or ancestry research only (DUO:0000011)", "仅限人群起源或祖源研究"
    ),
}

#: GA4GH DUO modifier codes: any number per consent.
DUO_MODIFIERS: Mapping[str, Term] = {
    "GSO": Term("genetic studies only (DUO:0000016)", "仅限遗传学研究"),
    "IRB": Term("ethics approval required (DUO:0000021)", "需伦理审批"),
    "PUB": Term("publication required (DUO:0000019)", "要求发表"),
    "COL": Term("collaboration required (DUO:0000020)", "要求合作"),
    "NPU": Term("not-for-profit use only (DUO:0000018)", "仅限非营利用途"),
    "NCU": Term("non-commercial use only (DUO:0000046)", "仅限非商业用途"),
    "NPUNCU": Term("not-for-profit, non-commercial use only (DUO:0000045)", "仅限非营利非商业用途"),
    "RS": Term("research specific restrictions (DUO:0000012)", "特定研究限制"),
    "GS": Term("geographical restriction (DUO:0000022)", "地域限制"),
    "MOR": Term("publication moratorium (DUO:0000024)", "发表暂停期"),
    "TS": Term("time limit on use (DUO:0000025)", "使用时限"),
    "US": Term("user specific restriction (DUO:0000026)", "特定用户限制"),
    "PS": Term("project specific restriction (DUO:0000027)", "特定项目限制"),
    "IS": Term("institution specific restriction (DUO:0000028)", "特定机构限制"),
    "RTN": Term("return to database or resource (DUO:0000029)", "需返回数据"),
}


def check_term(
    vocabulary: Mapping[str, object],
    value: str,
    *,
    field: str,
    name: str,
) -> str:
    """Return ``value`` if it is a code of ``vocabulary``, else raise naming the accepted codes.

    Raises
    ------
    ValidationError
        If ``value`` is not a code of the vocabulary.
    """
    if value in vocabulary:
        return value
    raise ValidationError(
        f"{name} '{value}' is not one of: {', '.join(vocabulary)}", field=field, value=value
    )


def normalise_unit(value: str, *, field: str = "unit") -> str:
    """Return the canonical spelling of a unit (``ul`` -> ``µL``), or raise.

    Raises
    ------
    ValidationError
        If the unit is unknown.
    """
    value = value.strip()
    canonical = value if value in UNITS else _UNIT_ALIASES.get(value)
    if canonical is None:
        raise ValidationError(
            f"unit '{value}' is not one of: {', '.join(UNITS)}", field=field, value=value
        )
    return canonical


def label(vocabulary: Mapping[str, Term], code: str, lang: str = "en") -> str:
    """Return the display label of ``code`` in ``lang`` (the code itself if unknown)."""
    term = vocabulary.get(code)
    return term.label(lang) if term is not None else code
