"""Languages: which locale a request, an email or an SMS is written in.

Flask-Babel owns the catalogs (``translations/<locale>/LC_MESSAGES/messages.po``); this module
decides the locale. Mark every string a person reads: ``_("...")`` / ``ngettext`` in Python and
``{{ _("...") }}`` or ``{% trans %}`` in templates; use ``lazy_gettext`` for strings built at import
time (form labels, module constants).
"""
from __future__ import annotations

# The languages ExpertBook ships, in the order the switcher lists them: code -> its own name.
LANGUAGES: dict[str, str] = {"en": "English"}
DEFAULT_LOCALE = "en"


def select_locale() -> str:
    """The locale of the current request (Flask-Babel's locale selector)."""
    return DEFAULT_LOCALE
