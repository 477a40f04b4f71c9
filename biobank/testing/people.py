"""Simulated participants and their registry records (participants, consents, specimens).

Names, identity numbers and phone numbers are synthetic but well formed:

* names: a common Chinese surname plus one or two given-name characters (Han),
  or two two-character Tibetan names (Tibetan participants have no surname);
* resident identity numbers: the 6-digit code of a real county-level district
  that existed in the birth year (:data:`REGIONS`, :data:`OLD_REGIONS`; checked
  with :func:`stdnum.cn.ric.is_valid`), the birth date, a 3-digit order code (odd for
  men, even for women) and the ISO 7064 MOD 11-2 check character, so
  :func:`biobank.core.ids.validate_national_id` accepts them and sex and birth date
  agree with the registry columns;
* mobile numbers: 11 digits with real carrier prefixes.

The CSV formats are those of ``docs/ARCHITECTURE.md`` ("Registry CSV columns").
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import logging
import os
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from stdnum.cn import ric
from stdnum.iso7064 import mod_11_2

from biobank.core.ids import make_label

__all__ = [
    "CONSENTS_COLUMNS",
    "PARTICIPANTS_COLUMNS",
    "REFERENCE_DATE",
    "REGIONS",
    "SPECIMENS_COLUMNS",
    "Person",
    "make_people",
    "registry_rows",
    "transcode_registry",
    "write_csv",
    "write_registry_for_samples",
]

logger = logging.getLogger(__name__)

#: "Today" of the simulated center: nothing happens after this date.
REFERENCE_DATE = dt.date(2026, 6, 30)

PARTICIPANTS_COLUMNS = [
    "national_id",
    "name",
    "sex",
    "birth_date",
    "phone",
    "enrolment_date",
    "site",
    "cohorts",
]
CONSENTS_COLUMNS = [
    "national_id",
    "consent_version",
    "signed_date",
    "duo_codes",
    "disease",
    "withdrawn_date",
]
SPECIMENS_COLUMNS = [
    "label",
    "national_id",
    "parent_label",
    "specimen_type",
    "collected_at",
    "anatomical_site",
    "quantity",
    "unit",
    "status",
    "freezer",
    "rack",
    "box",
    "position",
    "sequencing_sample_id",
]

#: Real district codes (GB/T 2260) by ancestry group, as in stdnum's region table.
#: stdnum checks that a code existed in the birth year; the codes of :data:`OLD_REGIONS`
#: are valid for every birth year and are used when the first choice was not.
REGIONS: dict[str, tuple[str, ...]] = {
    "Han-North": ("110105", "370102", "210102", "230103", "320102", "130102", "410105"),
    "Han-South": ("330106", "330102", "330205", "330302", "310104", "440106", "350102"),
    "Tibetan": ("540102", "630102", "510107", "542621"),
}
OLD_REGIONS: dict[str, tuple[str, ...]] = {
    "Han-North": ("110105", "110108", "110102", "120101", "120103"),
    "Han-South": ("310104", "310101", "310105", "310106", "310107", "310109", "310110"),
    "Tibetan": ("540121", "513321"),
}
SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程"
    "苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝"
)
COMPOUND_SURNAMES = ("欧阳", "司马", "上官", "诸葛")
GIVEN_MALE = "伟强磊军勇杰涛明超刚平辉鹏华飞鑫波斌宇浩凯健俊帆帅旭宁龙林阳建国志文博轩睿堃喆昇"
GIVEN_FEMALE = "芳娜敏静丽艳娟霞秀玲桂英梅燕红婷雪琳颖倩慧洁琴云莉兰萍晶欣怡玥妍璐婧䶮"
TIBETAN = (
    "扎西",
    "卓玛",
    "次仁",
    "格桑",
    "达瓦",
    "尼玛",
    "洛桑",
    "央金",
    "旦增",
    "拉姆",
    "德吉",
    "平措",
)
PHONE_PREFIXES = tuple(
    [
        "138",
        "139",
        "135",
        "136",
        "137",
        "150",
        "151",
        "152",
        "158",
        "159",
        "182",
        "187",
        "188",
        "186",
        "130",
        "131",
        "132",
        "155",
        "156",
        "185",
        "133",
        "153",
        "180",
        "189",
        "177",
        "199",
    ]
)

SITES = {
    "default": "浙江大学医学院附属第一医院",
    "Han-South": "杭州市第一人民医院",
    "Han-North": "浙江省人民医院",
    "Tibetan": "西藏自治区人民医院",
    "BC": "浙江省肿瘤医院",
}
CONSENT_VERSIONS = (("v1.0", dt.date(2015, 1, 1)), ("v2.0", dt.date(2020, 7, 1)))
MODIFIERS = ("GSO", "IRB", "PUB", "COL", "NPU")


@dataclass
class Person:
    """One simulated participant (direct identifiers included: this is hospital-side data)."""

    index: int
    sample_id: str
    national_id: str
    name: str
    sex: str
    birth_date: dt.date
    phone: str
    enrolment_date: dt.date
    ancestry: str
    cohorts: list[str] = field(default_factory=list)
    #: ICD-10 codes (3 characters) of the person's diseases, for DS consents.
    diseases: list[str] = field(default_factory=list)
    death_date: dt.date | None = None
    #: Date of a breast-cancer operation (tissue specimens), if any.
    surgery_date: dt.date | None = None


def _days(rng: np.random.Generator, lo: dt.date, hi: dt.date) -> dt.date:
    span = (hi - lo).days
    return lo + dt.timedelta(days=int(rng.integers(0, max(span, 0) + 1)))


def _years(d: dt.date, years: float) -> dt.date:
    return d + dt.timedelta(days=round(365.25 * years))


def national_id(region: str, birth: dt.date, order: int, sex: str) -> str:
    """Return an 18-character identity number (order: 0-99; sex sets the parity)."""
    seq = order * 10 + (1 + 2 * (order % 5) if sex == "male" else 2 * (order % 5))
    body = f"{region}{birth:%Y%m%d}{seq:03d}"
    return body + mod_11_2.calc_check_digit(body)


def _name(rng: np.random.Generator, sex: str, ancestry: str, surname: str | None) -> str:
    if ancestry == "Tibetan":
        first, second = rng.choice(len(TIBETAN), size=2, replace=False)
        return TIBETAN[int(first)] + TIBETAN[int(second)]
    if surname is None:
        surname = (
            COMPOUND_SURNAMES[int(rng.integers(0, len(COMPOUND_SURNAMES)))]
            if rng.random() < 0.01
            else SURNAMES[int(min(rng.exponential(25), len(SURNAMES) - 1))]
        )
    pool = GIVEN_MALE if sex == "male" else GIVEN_FEMALE
    n = 1 if rng.random() < 0.3 else 2
    return surname + "".join(pool[int(i)] for i in rng.integers(0, len(pool), n))


def make_people(
    rng: np.random.Generator,
    *,
    sexes: Sequence[str],
    ancestries: Sequence[str],
    parents: Sequence[tuple[int, int] | None],
    sample_ids: Sequence[str],
    min_father_gap: float | None = None,
) -> list[Person]:
    """Simulate demographics for individuals (children after their parents).

    Parents in a family are 48-80 years old at enrolment and children are born
    22-38 years after their mother (and, with ``min_father_gap``, at least that
    many years after their father); everyone is at least 18 at enrolment, which
    falls between 2016-01-01 and 2025-12-31.
    """
    is_parent = {p for pair in parents if pair is not None for p in pair}
    used_ids: set[str] = set()
    people: list[Person] = []
    for i, (sex, anc, par) in enumerate(zip(sexes, ancestries, parents, strict=True)):
        enrol = _days(rng, dt.date(2016, 1, 1), dt.date(2025, 12, 31))
        surname = None
        if par is None:
            age = rng.uniform(48, 80) if i in is_parent else 18 + rng.beta(2.2, 1.8) * 67
            birth = _years(enrol, -age) - dt.timedelta(days=int(rng.integers(0, 365)))
        else:
            father, mother = people[par[0]], people[par[1]]
            birth = _years(mother.birth_date, rng.uniform(22, 38))
            if min_father_gap is not None:
                birth = max(birth, _years(father.birth_date, min_father_gap))
            # adults only: a child must be 18 before the last possible enrolment
            birth = min(birth, _years(REFERENCE_DATE - dt.timedelta(days=200), -18.3))
            enrol = max(enrol, _years(birth, 18.2), father.enrolment_date)
            enrol = min(enrol, REFERENCE_DATE - dt.timedelta(days=200))
            if anc != "Tibetan":
                surname = father.name[:1]
        region = REGIONS[anc][int(rng.integers(0, len(REGIONS[anc])))]
        while True:
            nid = national_id(region, birth, int(rng.integers(0, 100)), sex)
            if not ric.is_valid(nid):  # the district did not exist in the birth year
                region = OLD_REGIONS[anc][int(rng.integers(0, len(OLD_REGIONS[anc])))]
                continue
            if nid not in used_ids:
                used_ids.add(nid)
                break
        prefix = PHONE_PREFIXES[int(rng.integers(0, len(PHONE_PREFIXES)))]
        phone = prefix + f"{int(rng.integers(0, 10**8)):08d}"
        people.append(
            Person(
                index=i,
                sample_id=sample_ids[i],
                national_id=nid,
                name=_name(rng, sex, anc, surname),
                sex=sex,
                birth_date=birth,
                phone=phone,
                enrolment_date=enrol,
                ancestry=anc,
            )
        )
    return people


def _site(p: Person) -> str:
    if "BC" in p.cohorts:
        return SITES["BC"]
    return SITES.get(p.ancestry, SITES["default"])


def _consents(rng: np.random.Generator, p: Person) -> list[dict[str, str]]:
    version = [v for v, since in CONSENT_VERSIONS if since <= p.enrolment_date][-1]
    r = rng.random()
    primary = "GRU" if r < 0.55 else "HMB" if r < 0.85 else "DS" if r < 0.95 else "POA"
    if primary == "DS" and not p.diseases:
        primary = "HMB"
    mods = [m for m in MODIFIERS if rng.random() < {"GSO": 0.05, "IRB": 0.1}.get(m, 0.08)]
    disease = p.diseases[int(rng.integers(0, len(p.diseases)))] if primary == "DS" else ""
    rows = [
        {
            "national_id": p.national_id,
            "consent_version": version,
            "signed_date": p.enrolment_date.isoformat(),
            "duo_codes": ";".join([primary, *mods]),
            "disease": disease,
            "withdrawn_date": "",
        }
    ]
    latest = CONSENT_VERSIONS[-1]
    if version != latest[0] and rng.random() < 0.15:  # re-consented to the new version
        signed = _days(rng, max(latest[1], p.enrolment_date), REFERENCE_DATE)
        if p.death_date is None or signed < p.death_date:
            rows.append(
                {**rows[0], "consent_version": latest[0], "signed_date": signed.isoformat()}
            )
            if rng.random() < 0.3:
                rows[-1]["duo_codes"] = "GRU"
                rows[-1]["disease"] = ""
    if p.death_date is None and rng.random() < 0.02:  # withdrawn
        last = dt.date.fromisoformat(rows[-1]["signed_date"])
        rows[-1]["withdrawn_date"] = _days(
            rng, last + dt.timedelta(days=30), REFERENCE_DATE
        ).isoformat()
    return rows


class _Storage:
    """Hands out unique freezer/rack/box/position slots (9x9 boxes)."""

    def __init__(self, start: int = 0) -> None:
        self.n = start

    def next(self, kind: str) -> tuple[str, str, str, str]:
        i = self.n
        self.n += 1
        pos, box, rack, freezer = i % 81, (i // 81) % 10, (i // 810) % 8, i // 6480
        cab = "RT-CAB" if kind == "tissue_ffpe" else "F"
        return (
            f"{cab}{freezer + 1:02d}",
            f"R{rack + 1:02d}",
            f"B{box + 1:02d}",
            f"{'ABCDEFGHI'[pos // 9]}{pos % 9 + 1}",
        )


def _specimens(
    rng: np.random.Generator,
    p: Person,
    serial: list[int],
    storage: dict[str, _Storage],
    withdrawn: bool,
) -> list[dict[str, str]]:
    rows: list[dict[str, str]] = []

    def add(
        prefix: str,
        kind: str,
        parent: str,
        when: dt.datetime,
        qty: float,
        unit: str,
        status: str = "available",
        site: str = "",
        sample: str = "",
    ) -> str:
        serial[0] += 1
        label = make_label(prefix, serial[0])
        if withdrawn and status == "available":
            status = "destroyed"
        slot = (
            storage["ffpe" if kind == "tissue_ffpe" else "frozen"].next(kind)
            if status == "available"
            else ("", "", "", "")
        )
        rows.append(
            {
                "label": label,
                "national_id": p.national_id,
                "parent_label": parent,
                "specimen_type": kind,
                "collected_at": when.isoformat(timespec="minutes"),
                "anatomical_site": site,
                "quantity": f"{qty:g}",
                "unit": unit,
                "status": status,
                "freezer": slot[0],
                "rack": slot[1],
                "box": slot[2],
                "position": slot[3],
                "sequencing_sample_id": sample,
            }
        )
        return label

    draw = dt.datetime.combine(p.enrolment_date, dt.time(7, 30)) + dt.timedelta(
        minutes=int(rng.integers(0, 240))
    )
    wb = add("WB", "whole_blood", "", draw, 10, "mL", status="consumed")
    later = draw + dt.timedelta(hours=2)
    for _ in range(3):
        st = (
            "available"
            if rng.random() < 0.85
            else ("shipped" if rng.random() < 0.5 else "consumed")
        )
        add("PL", "plasma", wb, later, 0.5, "mL", status=st)
    bc = add("BF", "buffy_coat", wb, later, 0.5, "mL", status="consumed")
    add(
        "DN",
        "dna",
        bc,
        later + dt.timedelta(days=3),
        round(float(rng.uniform(8, 40)), 1),
        "\u00b5g",
        sample=p.sample_id,
    )
    if rng.random() < 0.8:
        cb = add("CB", "clotted_blood", "", draw, 5, "mL", status="consumed")
        for _ in range(2):
            add("SE", "serum", cb, later, 0.5, "mL")
    if p.surgery_date is not None:
        op = dt.datetime.combine(p.surgery_date, dt.time(10, 0)) + dt.timedelta(
            minutes=int(rng.integers(0, 300))
        )
        side = "left breast" if rng.random() < 0.5 else "right breast"
        quadrant = ("upper-outer quadrant", "upper-inner quadrant", "central portion")[
            int(rng.integers(0, 3))
        ]
        add(
            "TF",
            "tissue_fresh_frozen",
            "",
            op,
            round(float(rng.uniform(50, 300))),
            "mg",
            site=f"{side}, {quadrant}",
        )
        add("TP", "tissue_ffpe", "", op, 1, "blocks", site=f"{side}, {quadrant}")
    return rows


def registry_rows(
    rng: np.random.Generator,
    people: Sequence[Person],
    *,
    serial_start: int = 0,
    slot_start: int = 0,
) -> dict[str, list[dict[str, str]]]:
    """Return the rows of participants.csv, consents.csv and specimens.csv.

    Specimen labels count on from ``serial_start`` and storage slots from
    ``slot_start``, so that a second registry can join a store without clashes.
    """
    participants, consents, specimens = [], [], []
    serial = [serial_start]
    storage: dict[str, _Storage] = defaultdict(lambda: _Storage(slot_start))
    for p in people:
        participants.append(
            {
                "national_id": p.national_id,
                "name": p.name,
                "sex": p.sex,
                "birth_date": p.birth_date.isoformat(),
                "phone": p.phone,
                "enrolment_date": p.enrolment_date.isoformat(),
                "site": _site(p),
                "cohorts": ";".join(p.cohorts),
            }
        )
        rows = _consents(rng, p)
        consents += rows
        specimens += _specimens(rng, p, serial, storage, withdrawn=bool(rows[-1]["withdrawn_date"]))
    return {"participants": participants, "consents": consents, "specimens": specimens}


def write_csv(
    path: Path, columns: Sequence[str], rows: Sequence[dict[str, str]], *, encoding: str = "utf-8"
) -> None:
    """Write rows as a comma-separated file with a header (``\\n`` line ends)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    path.write_bytes(buf.getvalue().encode(encoding))


def write_registry(
    out_dir: Path, tables: dict[str, list[dict[str, str]]], *, encoding: str = "utf-8"
) -> list[Path]:
    """Write participants.csv, consents.csv, specimens.csv into ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    cols = {
        "participants": PARTICIPANTS_COLUMNS,
        "consents": CONSENTS_COLUMNS,
        "specimens": SPECIMENS_COLUMNS,
    }
    paths = []
    for name, columns in cols.items():
        path = out_dir / f"{name}.csv"
        write_csv(path, columns, tables[name], encoding=encoding)
        paths.append(path)
    return paths


def write_registry_for_samples(
    out_dir: str | os.PathLike[str],
    sample_ids: Sequence[str],
    *,
    seed: int = 42,
    encoding: str = "utf-8",
) -> list[Path]:
    """Write registry CSVs for existing sequencing sample ids (e.g. a benchmark VCF's).

    Every sample gets a participant (random sex and ancestry, no relatives and
    no diseases), GRU/HMB consents, and a blood -> buffy coat -> DNA lineage
    whose DNA specimen carries the sample id as ``sequencing_sample_id``.

    Parameters
    ----------
    out_dir
        Folder for participants.csv, consents.csv and specimens.csv.
    sample_ids
        The sequencing sample ids, e.g. ``S000001`` ... from
        :func:`biobank.testing.simulate_cohort_vcf`.
    seed
        Random seed.
    encoding
        ``utf-8`` or ``gb18030``.
    """
    rng = np.random.default_rng([seed, 11])
    n = len(sample_ids)
    anc_labels = list(REGIONS)
    ancestries = [anc_labels[int(i)] for i in rng.choice(3, size=n, p=[0.45, 0.4, 0.15])]
    sexes = ["male" if x < 0.5 else "female" for x in rng.random(n)]
    people = make_people(
        rng, sexes=sexes, ancestries=ancestries, parents=[None] * n, sample_ids=list(sample_ids)
    )
    for p in people:
        p.cohorts = ["HV"]
    return write_registry(Path(out_dir), registry_rows(rng, people), encoding=encoding)


def transcode_registry(
    src_dir: str | os.PathLike[str],
    dst_dir: str | os.PathLike[str],
    *,
    encoding: str = "gb18030",
) -> list[Path]:
    """Copy the registry CSVs of ``src_dir`` (UTF-8) into ``dst_dir`` re-encoded.

    Hospitals often export GB18030; this makes such a copy of the demo
    registry (``OUT/registry``) for import tests. The text is unchanged.
    """
    out = Path(dst_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in ("participants", "consents", "specimens"):
        text = (Path(src_dir) / f"{name}.csv").read_text(encoding="utf-8")
        path = out / f"{name}.csv"
        path.write_bytes(text.encode(encoding))
        paths.append(path)
    return paths
