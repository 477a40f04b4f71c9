"""Every message of the templates and the service code has a zh_CN translation."""

from __future__ import annotations

from pathlib import Path

from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

import biobank.service

SERVICE = Path(biobank.service.__file__).parent
METHODS = [("**.py", "python"), ("**/templates/**.html", "jinja2")]


def _msgids() -> set[str]:
    found = extract_from_dir(
        str(SERVICE), METHODS, keywords={"_": None, "N_": None}, comment_tags=()
    )
    return {message for _file, _line, message, _comments, _context in found if message}


def _catalog(locale: str) -> dict[str, str]:
    with (SERVICE / "locale" / locale / "LC_MESSAGES" / "messages.po").open("rb") as fh:
        return {m.id: m.string for m in read_po(fh) if m.id and not m.fuzzy}


def test_every_msgid_has_a_chinese_translation() -> None:
    msgids = _msgids()
    assert len(msgids) > 100  # the extraction sees the templates
    zh = _catalog("zh_CN")
    assert sorted(m for m in msgids if not zh.get(m)) == []


def test_the_english_catalog_lists_every_msgid() -> None:
    assert _msgids() <= set(_catalog("en"))


def test_translations_keep_their_placeholders() -> None:
    import re

    for msgid, text in _catalog("zh_CN").items():
        assert sorted(re.findall(r"%\(\w+\)s", msgid)) == sorted(re.findall(r"%\(\w+\)s", text))
