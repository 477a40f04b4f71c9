"""Languages of the service: Babel message catalogs, compiled when the service starts.

The catalogs are ``locale/<locale>/LC_MESSAGES/messages.po`` beside this module
(msgids in English; ``zh_CN`` is the default language). They are compiled in
memory at start (:func:`load_translations`), so no ``.mo`` file can fall out of
step with its ``.po``. Regenerate the template after adding strings::

    pybabel extract -F biobank/service/babel.cfg -k N_ --no-location \
        -o biobank/service/locale/messages.pot biobank/service
    pybabel update -i biobank/service/locale/messages.pot -d biobank/service/locale

Messages of the library (English, from :mod:`biobank.core` and
:mod:`biobank.registry`) are translated by
:func:`biobank.service.library_messages.library_message` where a pattern of its
one table matches; others are shown as they are.
"""

from __future__ import annotations

import io
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
