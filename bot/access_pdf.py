"""The human-readable copy of a customer's data: a PDF in their language (fpdf2).

Every text comes from ``dialogs/messages.yaml`` (``copy.*``, ``category.*``,
``basis.*``, ``purpose.*``, …) in the customer's locale; dates are written the
locale's way. The fonts are Debian's and are embedded (subset) in the file:
DejaVu Sans for Latin (Latvian diacritics) and Cyrillic, WenQuanYi Micro Hei
for Simplified and Traditional Chinese, each the other's fallback for a
character it lacks (a Chinese name in a Latvian copy). ``make test`` installs
them (``fonts`` target); a host without them sends the JSON copy alone.
"""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from typing import Any

from fpdf import FPDF
from fpdf.enums import WrapMode, XPos, YPos

from bot.access_copy import CopyAnswer, Texts
from common.errors import DatadeskError
from common.vocabulary.categories import PRODUCT_OPEN_BASIS
from common.vocabulary.marketing_channels import MARKETING_CHANNELS

FONT_DIRS = (Path("/usr/share/fonts/truetype/dejavu"), Path("/usr/share/fonts/truetype/wqy"))
LATIN = ("DejaVu", "DejaVuSans.ttf", "DejaVuSans-Bold.ttf")
CJK = ("WenQuanYi", "wqy-microhei.ttc", "wqy-microhei.ttc")
CJK_LOCALES = ("zh_Hans", "zh_Hant")


class PdfUnavailable(DatadeskError):
    """The PDF could not be made (its fonts are not installed)."""


def _font(name: str) -> Path:
    for folder in FONT_DIRS:
        if (folder / name).is_file():
            return folder / name
    raise PdfUnavailable(
        f"font {name} not found in {', '.join(map(str, FONT_DIRS))}: "
        "install Debian's fonts-dejavu-core and fonts-wqy-microhei (make fonts)"
    )


class _Page:
    """Writes the copy's lines onto an A4 document in one locale's fonts."""

    def __init__(self, locale: str) -> None:
        self.pdf = FPDF(format="A4")
        self.pdf.set_auto_page_break(auto=True, margin=15)
        self.pdf.set_margins(18, 18, 18)
        for family, regular, bold in (LATIN, CJK):
            self.pdf.add_font(family, "", _font(regular))
            self.pdf.add_font(family, "B", _font(bold))
        cjk = locale in CJK_LOCALES
        self.family = CJK[0] if cjk else LATIN[0]
        self.pdf.set_fallback_fonts([LATIN[0] if cjk else CJK[0]])
        # Chinese has no spaces between words: lines break between characters.
        self.wrap = WrapMode.CHAR if cjk else WrapMode.WORD
        self.pdf.add_page()

    def text(self, line: str, *, size: float = 10.5, bold: bool = False, gap: float = 1) -> None:
        self.pdf.set_font(self.family, "B" if bold else "", size)
        self.pdf.multi_cell(
            0,
            size * 0.5,
            line,
            new_x=XPos.LMARGIN,
            new_y=YPos.NEXT,
            align="L",
            wrapmode=self.wrap,
        )
        self.pdf.ln(gap)

    def rule(self) -> None:
        y = self.pdf.get_y() + 1
        self.pdf.line(self.pdf.l_margin, y, self.pdf.w - self.pdf.r_margin, y)
        self.pdf.ln(4)

    def output(self) -> bytes:
        return bytes(self.pdf.output())


def _iso_date(value: Any) -> date | None:
    if not isinstance(value, str):
        return None
    try:
        return date.fromisoformat(value[:10])
    except ValueError:
        return None


def _values(category: str, copy: dict[str, Any], texts: Texts) -> list[str]:
    """The category's values as lines of text, in the copy's order."""
    lines: list[str] = []
    if category == "contact":
        primary = texts.say("copy.primary")
        for phone in copy.get("phones") or []:
            lines.append(f"{phone.get('number')}" + (f" {primary}" if phone.get("primary") else ""))
        for email in copy.get("emails") or []:
            lines.append(
                f"{email.get('address')}" + (f" {primary}" if email.get("primary") else "")
            )
        address = copy.get("address")
        if isinstance(address, dict):
            parts = ("line1", "line2", "city", "postcode", "country")
            lines.append(", ".join(str(address[k]) for k in parts if address.get(k)))
    elif category == "marketing":
        marketing = copy.get("marketing")
        consents: dict[str, Any] = marketing if isinstance(marketing, dict) else {}
        for channel in MARKETING_CHANNELS:
            name = texts.say(f"channel.{channel}")
            key = "copy.marketing_on" if consents.get(channel) else "copy.marketing_off"
            lines.append(texts.say(key, channel=name))
    elif category == "identity":
        for doc in copy.get("documents") or []:
            kind = texts.named("document", doc.get("kind"), "other")
            lines.append(
                texts.say("copy.document", document=kind, date=_iso_date(doc.get("collected")))
            )
    elif category == "products":
        for product in copy.get("products") or []:
            kind = texts.named("product", product.get("kind"), "other")
            opened = texts.say("copy.opened", date=_iso_date(product.get("opened")))
            closed = _iso_date(product.get("closed"))
            end = texts.say("copy.closed", date=closed) if closed else texts.say("copy.still_open")
            lines.append(
                texts.say(
                    "copy.product",
                    product=kind,
                    id=str(product.get("id")),
                    opened=opened,
                    status=end,
                )
            )
    elif category == "transactions":
        for item in copy.get("transactions") or []:
            lines.append(
                texts.say(
                    "copy.transaction",
                    date=_iso_date(item.get("date")),
                    amount=str(item.get("amount")),
                    currency=str(item.get("currency")),
                    product=str(item.get("product")),
                )
            )
    return lines or [texts.say("copy.nothing")]


def _kept(entry: dict[str, Any], texts: Texts) -> str:
    kept = entry.get("kept")
    if not isinstance(kept, dict):
        return texts.say("copy.not_kept")
    basis = texts.named("basis", kept.get("basis"), "unknown")
    until = _iso_date(kept.get("until"))
    if until is not None:
        return texts.say("copy.kept_until", until=until, basis=basis)
    found = kept.get("while_open")
    product: dict[str, Any] = found if isinstance(found, dict) else {}
    # A basis that is only "while your product is open" would repeat the condition.
    plain = kept.get("basis") == PRODUCT_OPEN_BASIS
    return texts.say(
        "copy.kept_while_open_plain" if plain else "copy.kept_while_open",
        product=texts.named("product", product.get("kind"), "other"),
        masked=str(product.get("masked") or ""),
        basis=basis,
    )


def render_pdf(answer: CopyAnswer, locale: str, texts: Texts) -> bytes:
    """The PDF copy of ``answer`` in ``locale``; ``PdfUnavailable`` without its fonts."""
    page = _Page(locale)
    copy = answer.copy
    made = _iso_date(answer.generated_at) or datetime.now().date()
    page.text(answer.bank_name or texts.say("copy.bank_default"), size=12, bold=True)
    page.text(texts.say("copy.title"), size=17, bold=True, gap=2)
    page.text(texts.say("copy.made_on", name=str(copy.get("name") or ""), date=made))
    page.text(texts.say("copy.reference", reference=answer.reference), gap=3)
    page.text(texts.say("copy.intro"), size=9.5, gap=3)
    page.rule()
    for entry in answer.summary:
        category = str(entry.get("category"))
        page.text(texts.named("category", category, "contact"), size=13, bold=True)
        page.text(texts.say("copy.values"), bold=True)
        for line in _values(category, copy, texts):
            page.text(f"•  {line}", gap=0.5)
        if category == "marketing":
            page.text(texts.say("copy.history"), bold=True)
            history = [h for h in copy.get("marketing_history") or [] if isinstance(h, dict)]
            for change in history:
                page.text(
                    "•  "
                    + texts.say(
                        "copy.history_line",
                        date=_iso_date(change.get("date")),
                        channel=texts.say(f"channel.{change.get('channel')}"),
                        reference=str(change.get("reference") or ""),
                    ),
                    gap=0.5,
                )
            if not history:
                page.text(texts.say("copy.no_history"))
        page.text(_kept(entry, texts), gap=0.5)
        page.text(texts.say("copy.purpose", purpose=texts.say(f"purpose.{category}")), gap=3)
    page.rule()
    page.text(texts.say("copy.requests"), size=13, bold=True)
    requests = [r for r in copy.get("requests") or [] if isinstance(r, dict)]
    for request in requests:
        page.text(
            "•  "
            + texts.say(
                "copy.request_line",
                reference=str(request.get("reference") or ""),
                kind=texts.named("kind", request.get("kind"), "erasure"),
                state=texts.named("state", request.get("state"), "submitted"),
                received=_iso_date(request.get("received_at")),
                due_date=_iso_date(request.get("due_date")),
            ),
            gap=0.5,
        )
    if not requests:
        page.text(texts.say("copy.no_requests"))
    return page.output()
