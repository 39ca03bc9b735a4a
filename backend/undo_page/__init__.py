"""The undo page of a "Was this you?" notice: ``GET`` shows one button, only its ``POST`` acts.

``GET /undo/{token}?lang=xx`` answers, for a live link, what changed (the
field, the masked new contact, the date) and a form with one button; it
changes nothing, so link previews and mail scanners that fetch the link
undo nothing. ``POST`` to the same address with the form's ``form`` field
(a keyed digest of the token, so a page from elsewhere cannot post it) runs
``contact_undo.undo``. An unknown, used or expired token gets the same page,
with the same status, in the language the link names: nothing on it tells
them apart. Texts come from ``backend/policies/messages.yaml`` (``undo_page_*``),
translated in the gettext catalogs (``backend.messages``).

Every answer is HTML, never an error from the JSON API: a customer's browser
shows it. The page loads nothing from elsewhere and runs no script.
"""

from __future__ import annotations

import logging
from pathlib import Path

import jinja2
from aiohttp import web

from backend import contact_undo, messages, undo_notices
from backend.api.http import SERVICES
from backend.crypto import constant_time_equal
from backend.services import Services
from common.vocabulary.locales import DEFAULT_LOCALE, SHIPPED_LOCALES

log = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
PATH = "/undo/{token}"
# No token is this long; anything longer is not worth hashing.
MAX_TOKEN = 128
HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    # Never the link (and its token) to another site; "same-origin", not "no-referrer":
    # with no-referrer browsers send `Origin: null` on the button's POST.
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
    "X-Robots-Tag": "noindex, nofollow",
}

_templates = jinja2.Environment(
    loader=jinja2.FileSystemLoader(HERE),
    autoescape=jinja2.select_autoescape(default=True),
    undefined=jinja2.StrictUndefined,
)


def _locale(request: web.Request) -> str:
    lang = request.query.get("lang", "")
    return lang if lang in SHIPPED_LOCALES else DEFAULT_LOCALE


def _form_token(services: Services, token: str) -> str:
    return services.keyring.mac("undo-form", contact_undo.token_digest(token))


def _render(
    services: Services, locale: str, state: str, status: int = 200, **values: str
) -> web.Response:
    bank = services.settings.bank_name

    def say(key: str, **params: str) -> str:
        return messages.render(locale, f"undo_page_{key}", bank=bank, **params)

    context = {
        "html_lang": locale.replace("_", "-"),
        "bank": bank or messages.render(locale, "bank_default"),
        "title": say("title"),
        "state": state,
    }
    if state == "offer":
        context |= {
            "heading": say("question"),
            "label_date": say("changed_on"),
            "field": values["field"],
            "new": values["new"],
            "changed_on": values["changed_on"],
            "explain": say("explain"),
            "button": say("button"),
            "keep": say("keep"),
            "form_token": values["form_token"],
        }
    else:
        context |= {"heading": say(f"{state}_heading"), "text": say(state)}
    html = _templates.get_template("undo.html").render(**context)
    return web.Response(text=html, content_type="text/html", status=status, headers=HEADERS)


def _same_origin(request: web.Request, services: Services) -> bool:
    """A browser's POST names its page's origin; it must be ours (``PUBLIC_URL`` or this host)."""
    origin = request.headers.get("Origin")
    if origin is None:
        return True
    public = services.settings.undo_base_url.split("/", 3)
    ours = {f"{request.scheme}://{request.host}", "/".join(public[:3])}
    return origin in ours


async def show(request: web.Request) -> web.Response:
    """The page for a link: the offer for a live one, the same "no longer works" page otherwise."""
    services: Services = request.app[SERVICES]
    locale, token = _locale(request), request.match_info["token"]
    if len(token) <= MAX_TOKEN:
        try:
            _, offer = await contact_undo.find(services, token)
        except Exception as exc:
            log.error("undo page: %s", type(exc).__name__)
            return _render(services, locale, "unavailable", 503)
        if offer is not None:
            return _render(
                services,
                offer.locale,
                "offer",
                field=undo_notices.field_name(offer.locale, offer.field),
                new=offer.new,
                changed_on=undo_notices.localized_date(offer.changed_on, offer.locale),
                form_token=_form_token(services, token),
            )
    return _render(services, locale, "invalid")


async def act(request: web.Request) -> web.Response:
    """The button: undo the change once, then say so; any other POST gets the "no longer works" page."""
    services: Services = request.app[SERVICES]
    locale, token = _locale(request), request.match_info["token"]
    form = await request.post()
    given = form.get("form")
    if (
        len(token) > MAX_TOKEN
        or not isinstance(given, str)
        or not constant_time_equal(given, _form_token(services, token))
        or not _same_origin(request, services)
    ):
        return _render(services, locale, "invalid")
    try:
        row, _ = await contact_undo.find(services, token)
        if row is not None:
            locale = row.locale
        outcome = await contact_undo.undo(services, services.crm, token)
    except Exception as exc:
        # The CRM or the database is down: the link stays usable, the customer tries again.
        log.error("undo page: %s", type(exc).__name__)
        return _render(services, locale, "unavailable", 503)
    if outcome == "invalid":
        return _render(services, locale, "invalid")
    return _render(services, locale, "done" if outcome == "reverted" else "erased")


def setup(app: web.Application) -> None:
    """Add the undo page's routes (public: no service token, no console login)."""
    app.router.add_get(PATH, show)
    app.router.add_post(PATH, act)
