"""Languages of the service: Babel message catalogs, compiled when the service starts.

The catalogs are ``locale/<locale>/LC_MESSAGES/messages.po`` beside this module
(msgids in English; ``zh_CN`` is the default language). They are compiled in
memory at start (:func:`load_translations`), so no ``.mo`` file can fall out of
step with its ``.po``. Regenerate the template after adding strings::

    pybabel extract -F biobank/service/babel.cfg -k N_ --no-location \
        -o biobank/service/locale/messages.pot biobank/service
    pybabel update -i biobank/service/locale/messages.pot -d biobank/service/locale

Messages of the library (English, from :mod:`biobank.core` and
:mod:`biobank.registry`) are translated by :func:`library_message` where a
pattern below matches; others are shown as they are.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Mapping
from importlib import resources

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import Translations

__all__ = [
    "DEFAULT_LOCALE",
    "LOCALES",
    "N_",
    "Gettext",
    "library_message",
    "load_translations",
    "pick_locale",
]

DEFAULT_LOCALE = "zh_CN"
#: Locale code -> its name in its own language (for the switch).
LOCALES: Mapping[str, str] = {"zh_CN": "中文", "en": "English"}

Gettext = Callable[..., str]


def N_(message: str) -> str:  # noqa: N802 - the conventional name for a deferred msgid
    """Mark ``message`` for extraction; it is translated where it is shown."""
    return message


def load_translations() -> dict[str, Translations]:
    """Compile every catalog of :data:`LOCALES` from its ``.po`` file."""
    out = {}
    root = resources.files("biobank.service") / "locale"
    for code in LOCALES:
        po = root / code / "LC_MESSAGES" / "messages.po"
        with po.open("rb") as fh:
            catalog = read_po(fh, locale=code)
        buf = io.BytesIO()
        write_mo(buf, catalog)
        buf.seek(0)
        out[code] = Translations(fp=buf)
    return out


def pick_locale(query: str | None, cookie: str | None) -> str:
    """Return the locale asked for by ``?lang=``, else the cookie, else the default."""
    for value in (query, cookie):
        if value:
            norm = value.replace("-", "_")
            for code in LOCALES:
                if code.lower() == norm.lower():
                    return code
    return DEFAULT_LOCALE


def make_gettext(translations: Translations) -> Gettext:
    """Return ``_(msgid, **values)``: the translation with ``%(name)s`` values filled in."""

    def gettext(message: str, **values: object) -> str:
        text = translations.gettext(message)
        return text % values if values else text

    return gettext


_CHECK_CHARACTER = N_(
    "the check character is '%(got)s' but the first 17 digits give '%(expected)s': the number was probably mistyped, check it against the identity card"  # noqa: E501
)

#: English library messages -> msgid of their translation, values from the named groups.
_LIBRARY: list[tuple[re.Pattern[str], str]] = [
    (
        re.compile(r"a resident identity number has 17 digits and a check character \(0-9 or X\)"),
        N_("a resident identity number has 17 digits and a check character (0-9 or X)"),
    ),
    (
        re.compile(r"characters 7-14 must be a real birth date \(YYYYMMDD\), not (?P<got>\S*)"),
        N_("characters 7-14 must be a real birth date (YYYYMMDD), not %(got)s"),
    ),
    (
        re.compile(
            r"check character is '(?P<got>.)' but the first 17 digits give '(?P<expected>.)'.*"
        ),
        _CHECK_CHARACTER,
    ),
    (
        re.compile(r"a password has at least (?P<n>\d+) characters"),
        N_("a password has at least %(n)s characters"),
    ),
    (
        re.compile(r"the new password must differ from the current one"),
        N_("the new password must differ from the current one"),
    ),
    (
        re.compile(r"give the reason for the change"),
        N_("give the reason for the change"),
    ),
    (
        re.compile(r"give the reason for re-contact \(it is audited\)"),
        N_("give the reason for re-contact (it is audited)"),
    ),
]


def library_message(message: str, _: Gettext) -> str:
    """Translate a known library message with ``_``; return others unchanged."""
    for pattern, msgid in _LIBRARY:
        m = pattern.fullmatch(message)
        if m:
            return _(msgid, **m.groupdict())
    return message
