"""The retention policy: what may be erased for a customer, what must be kept, and until when.

``load_policy`` reads ``backend/policies/retention.yaml`` (compliance edits it)
and reports mistakes as ``retention.yaml:LINE: what is wrong``. ``preview``
turns the policy and one customer's record into a ``Plan``: per category in
the chosen scope, erase, or keep with a basis code and an end date, or keep
while a named product is open. The plan is what the customer is shown and,
stored unchanged, what the worker carries out (``backend.ledger.previews``).

``purge_command`` (``datadesk purge``) erases held data whose hold has ended;
workers run the same purge once a day.
"""

from __future__ import annotations

import argparse
import asyncio
import calendar
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays
import yaml

from backend.crm.connector import CustomerRecord, Hold, Product
from backend.settings import Settings
from common.errors import ConfigError
from common.vocabulary.categories import CATEGORIES, Category

POLICY_PATH = Path(__file__).resolve().parent / "policies" / "retention.yaml"
STARTS = ("product_open", "product_closed", "relationship_end", "transaction_date")
PERIOD_UNITS = ("years", "months", "days")
DEADLINE_UNITS = ("months", "days", "working_days")
OPTIONAL_FIELDS = frozenset({"period", "chat_history_kept"})


@dataclass(frozen=True)
class Rule:
    """One reason to keep a category: a basis code, its citation, a start event and a period."""

    basis: str
    citation: str
    start: str
    period: tuple[str, int] | None  # (unit, amount); None for ``product_open``


@dataclass(frozen=True)
class Jurisdiction:
    """The rules of one jurisdiction."""

    code: str
    timezone: (
        str  # IANA zone of the bank's office: a request's receipt date is the local date there
    )
    calendar: str  # ISO 3166 country whose public holidays and make-up working days count
    deadline: tuple[str, int]
    deadline_citation: str
    restriction: str
    categories: dict[Category, tuple[Rule, ...]]
    # How long a closed chat's transcript stays findable in the console
    # (``chat_history``, unless the customer's erasure removes it sooner); None: while kept.
    chat_history_kept: tuple[str, int] | None = None


@dataclass(frozen=True)
class Policy:
    jurisdictions: dict[str, Jurisdiction]

    def get(self, code: str) -> Jurisdiction:
        """The rules for ``code``; a ConfigError names the file when it has none."""
        try:
            return self.jurisdictions[code]
        except KeyError:
            known = ", ".join(sorted(self.jurisdictions))
            raise ConfigError(
                POLICY_PATH.name, None, f"no rules for jurisdiction {code!r} (have: {known})"
            ) from None


class _Reader:
    """Walks composed YAML nodes, so every complaint carries the line it is about."""

    def __init__(self, name: str) -> None:
        self.name = name

    def fail(self, node: yaml.Node, message: str) -> ConfigError:
        return ConfigError(self.name, node.start_mark.line + 1, message)

    def mapping(self, node: yaml.Node, what: str) -> dict[str, tuple[yaml.Node, yaml.Node]]:
        if not isinstance(node, yaml.MappingNode):
            raise self.fail(node, f"{what} must be a mapping")
        out: dict[str, tuple[yaml.Node, yaml.Node]] = {}
        for key, value in node.value:
            name = self.scalar(key, f"a key in {what}")
            if name in out:
                raise self.fail(key, f"{what}: {name!r} appears twice")
            out[name] = (key, value)
        return out

    def sequence(self, node: yaml.Node, what: str) -> list[yaml.Node]:
        if not isinstance(node, yaml.SequenceNode):
            raise self.fail(node, f"{what} must be a list")
        return list(node.value)

    def scalar(self, node: yaml.Node, what: str) -> str:
        if not isinstance(node, yaml.ScalarNode) or not str(node.value).strip():
            raise self.fail(node, f"{what} must be a non-empty text")
        return str(node.value)

    def amount(self, node: yaml.Node, units: tuple[str, ...], what: str) -> tuple[str, int]:
        fields = self.mapping(node, what)
        if len(fields) != 1 or next(iter(fields)) not in units:
            raise self.fail(node, f"{what} must be exactly one of {', '.join(units)}")
        unit, (_, value) = next(iter(fields.items()))
        text = self.scalar(value, f"{what}.{unit}")
        if not text.isdigit() or int(text) <= 0:
            raise self.fail(value, f"{what}.{unit} must be a whole number above 0, got {text!r}")
        return unit, int(text)

    def only(self, fields: dict[str, Any], allowed: set[str], where: yaml.Node, what: str) -> None:
        for name, (key, _) in fields.items():
            if name not in allowed:
                raise self.fail(key, f"{what}: unknown field {name!r}")
        for name in sorted(allowed - set(fields)):
            if name not in OPTIONAL_FIELDS:
                raise self.fail(where, f"{what}: missing field {name!r}")

    def rule(self, node: yaml.Node, what: str) -> Rule:
        fields = self.mapping(node, what)
        self.only(fields, {"basis", "citation", "start", "period"}, node, what)
        start = self.scalar(fields["start"][1], f"{what}.start")
        if start not in STARTS:
            raise self.fail(
                fields["start"][1], f"{what}.start: {start!r} is not one of {', '.join(STARTS)}"
            )
        period = None
        if "period" in fields:
            if start == "product_open":
                raise self.fail(fields["period"][0], f"{what}: product_open takes no period")
            period = self.amount(fields["period"][1], PERIOD_UNITS, f"{what}.period")
        elif start != "product_open":
            raise self.fail(node, f"{what}: start {start!r} needs a period")
        return Rule(
            basis=self.scalar(fields["basis"][1], f"{what}.basis"),
            citation=self.scalar(fields["citation"][1], f"{what}.citation"),
            start=start,
            period=period,
        )

    def jurisdiction(self, code: str, node: yaml.Node) -> Jurisdiction:
        what = f"jurisdictions.{code}"
        fields = self.mapping(node, what)
        self.only(
            fields,
            {
                "timezone",
                "calendar",
                "deadline",
                "deadline_citation",
                "restriction",
                "categories",
                "chat_history_kept",
            },
            node,
            what,
        )
        zone = self.scalar(fields["timezone"][1], f"{what}.timezone")
        try:
            ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise self.fail(
                fields["timezone"][1], f"{what}.timezone: {zone!r} is no IANA time zone"
            ) from None
        country = self.scalar(fields["calendar"][1], f"{what}.calendar")
        if country not in holidays.list_supported_countries():
            raise self.fail(
                fields["calendar"][1],
                f"{what}.calendar: {country!r} is no country code the holidays calendar knows",
            )
        cats = self.mapping(fields["categories"][1], f"{what}.categories")
        categories: dict[Category, tuple[Rule, ...]] = {}
        for name, (key, value) in cats.items():
            if name not in CATEGORIES:
                raise self.fail(key, f"{what}.categories: unknown category {name!r}")
            rules = self.sequence(value, f"{what}.categories.{name}")
            categories[name] = tuple(
                self.rule(r, f"{what}.categories.{name}[{i}]") for i, r in enumerate(rules)
            )
        missing = [c for c in CATEGORIES if c not in categories]
        if missing:
            raise self.fail(fields["categories"][1], f"{what}: no entry for {', '.join(missing)}")
        return Jurisdiction(
            code=code,
            timezone=zone,
            calendar=country,
            deadline=self.amount(fields["deadline"][1], DEADLINE_UNITS, f"{what}.deadline"),
            deadline_citation=self.scalar(fields["deadline_citation"][1], what),
            restriction=self.scalar(fields["restriction"][1], what),
            categories=categories,
            chat_history_kept=self.amount(
                fields["chat_history_kept"][1], PERIOD_UNITS, f"{what}.chat_history_kept"
            )
            if "chat_history_kept" in fields
            else None,
        )


def parse_policy(text: str, name: str = "retention.yaml") -> Policy:
    """Parse policy text; raise ConfigError ``name:LINE: …`` for anything wrong."""
    reader = _Reader(name)
    try:
        root = yaml.compose(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        raise ConfigError(name, line, f"not valid YAML: {getattr(exc, 'problem', exc)}") from exc
    if root is None:
        raise ConfigError(name, 1, "the file is empty")
    top = reader.mapping(root, "the file")
    reader.only(top, {"jurisdictions"}, root, "the file")
    found = reader.mapping(top["jurisdictions"][1], "jurisdictions")
    return Policy({code: reader.jurisdiction(code, node) for code, (_, node) in found.items()})


@cache
def load_policy(path: Path = POLICY_PATH) -> Policy:
    """The policy file, parsed once per process."""
    return parse_policy(path.read_text(encoding="utf-8"), path.name)


@cache
def working_days_of(country: str) -> holidays.HolidayBase:
    """The public holidays of ``country``, with its make-up working days (China's 调休)."""
    return holidays.country_holidays(country)


def add_period(start: date, unit: str, amount: int, calendar_country: str | None = None) -> date:
    """``start`` plus a period; the 29th of February becomes the 28th in a short year.

    Working days are Monday to Friday, except the public holidays of
    ``calendar_country`` and including its weekend days made working days.
    """
    if unit == "days":
        return start + timedelta(days=amount)
    if unit == "working_days":
        is_working = (
            working_days_of(calendar_country).is_working_day
            if calendar_country
            else (lambda d: d.weekday() < 5)
        )
        day, left = start, amount
        while left:
            day += timedelta(days=1)
            if is_working(day):
                left -= 1
        return day
    months = amount * 12 if unit == "years" else amount
    year, month = divmod(start.month - 1 + months, 12)
    year, month = start.year + year, month + 1
    return date(year, month, min(start.day, calendar.monthrange(year, month)[1]))


def received_on(jurisdiction: Jurisdiction, at: datetime) -> date:
    """The bank's local date at ``at`` (a request received at 23:30 UTC in Riga is received the next day)."""
    return at.astimezone(ZoneInfo(jurisdiction.timezone)).date()


def due_date(jurisdiction: Jurisdiction, received: datetime) -> date:
    """The statutory deadline for answering a request received at ``received`` (aware)."""
    unit, amount = jurisdiction.deadline
    return add_period(received_on(jurisdiction, received), unit, amount, jurisdiction.calendar)


Action = Literal["erase", "keep"]


@dataclass(frozen=True)
class CategoryPlan:
    """What happens to one category: erased, or kept for ``basis`` until a date or a closing."""

    category: Category
    action: Action
    basis: str | None = None
    until: date | None = None
    while_open: Product | None = None


@dataclass(frozen=True)
class Plan:
    """A customer's erasure plan as previewed; carried out unchanged."""

    jurisdiction: str
    categories: tuple[CategoryPlan, ...]
    warnings: tuple[str, ...] = field(default=())

    @property
    def erase(self) -> frozenset[Category]:
        return frozenset(c.category for c in self.categories if c.action == "erase")

    @property
    def holds(self) -> tuple[Hold, ...]:
        return tuple(
            Hold(
                category=c.category,
                basis=c.basis or "",
                until=c.until,
                while_open=c.while_open.id if c.while_open else None,
            )
            for c in self.categories
            if c.action == "keep"
        )


def _keep_until(rule: Rule, record: CustomerRecord) -> tuple[date | None, Product | None] | None:
    """How long ``rule`` keeps data: (date, None), (None, open product), or None: not at all."""
    open_products = [p for p in record.products if p.closed is None]
    # The longest-held open product is named, so the customer sees a stable reason.
    holder = min(open_products, key=lambda p: (p.opened, p.id)) if open_products else None
    if rule.start == "product_open":
        return (None, holder) if holder else None
    assert rule.period is not None
    if rule.start in ("product_closed", "relationship_end"):
        if holder:
            return None, holder
        closings = [p.closed for p in record.products if p.closed is not None]
        if closings:
            return add_period(max(closings), *rule.period), None
        if rule.start == "product_closed":
            return None
        # Never a product, so no relationship to end: an occasional transaction
        # starts the period instead (Directive (EU) 2015/849 Art. 40(1)).
    if record.last_transaction is None:
        return None
    return add_period(record.last_transaction, *rule.period), None


def scope_categories(scope: Sequence[str]) -> tuple[Category, ...]:
    """The categories a scope names, in the policy's order; ``all`` means every one."""
    if "all" in scope:
        return CATEGORIES
    return tuple(c for c in CATEGORIES if c in scope)


def preview(
    record: CustomerRecord, scope: Sequence[str], jurisdiction: Jurisdiction, today: date
) -> Plan:
    """The plan for erasing ``scope`` of ``record`` under ``jurisdiction`` as of ``today``."""
    plans: list[CategoryPlan] = []
    for category in scope_categories(scope):
        best: tuple[Rule, date | None, Product | None] | None = None
        for rule in jurisdiction.categories[category]:
            kept = _keep_until(rule, record)
            if kept is None or (kept[0] is not None and kept[0] <= today):
                continue
            until, product = kept
            if best is None or _longer(until, best[1]):
                best = (rule, until, product)
        if best is None:
            plans.append(CategoryPlan(category, "erase"))
        else:
            plans.append(CategoryPlan(category, "keep", best[0].basis, best[1], best[2]))
    warnings: list[str] = []
    if any(p.action == "erase" for p in plans):
        warnings.append("irreversible")
    if any(p.closed is None for p in record.products):
        warnings.append("open_products")
    return Plan(jurisdiction.code, tuple(plans), tuple(warnings))


def _longer(until: date | None, than: date | None) -> bool:
    # None means "while a product is open": longer than any fixed date.
    if than is None:
        return False
    return until is None or until > than


def purge_command(args: argparse.Namespace, settings: Settings) -> int:
    """``datadesk purge``: erase held data whose hold has ended and spent verification rows."""
    from backend.ledger.purge import purge_once
    from backend.services import open_services
    from backend.verification import purge_verification

    async def run() -> tuple[int, int]:
        services = await open_services(settings)
        try:
            held = len(await purge_once(services))
            return held, await purge_verification(services)
        finally:
            await services.close()

    held, verification = asyncio.run(run())
    print(f"purge: {held} held categories erased")
    print(f"purge: {verification} spent verification rows deleted")
    return 0
