"""The retention policy file, and the preview it gives for customers with open and closed products."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from backend.crm.connector import CustomerRecord, Product
from backend.ledger.previews import plan_from_storage, plan_to_api, plan_to_storage
from backend.retention import POLICY_PATH, add_period, due_date, load_policy, parse_policy, preview
from common.errors import ConfigError
from common.vocabulary.categories import CATEGORIES

TODAY = date(2026, 11, 22)
ACCOUNT = Product("current_account", "LV80BANK0000435195001", date(2015, 3, 1), None)
LOAN_CLOSED = Product("loan", "L-77", date(2020, 1, 10), date(2024, 6, 30))


def record(*products: Product, last_transaction: date | None = date(2024, 5, 2)) -> CustomerRecord:
    return CustomerRecord(
        ref="C-1",
        name="Anna",
        language="lv",
        phones=(("+37120000001", True),),
        emails=(),
        address=None,
        marketing={"email": True, "sms": True, "phone": False, "post": True},
        products=products,
        last_transaction=last_transaction,
    )


def test_the_shipped_policy_covers_every_category_in_both_jurisdictions() -> None:
    policy = load_policy(POLICY_PATH)
    for code in ("EU-LV", "CN"):
        assert set(policy.get(code).categories) == set(CATEGORIES)


def test_eu_requests_are_due_a_month_later_and_cn_after_fifteen_working_days() -> None:
    policy = load_policy(POLICY_PATH)
    assert due_date(policy.get("EU-LV"), datetime(2026, 1, 31, 10, tzinfo=UTC)) == date(2026, 2, 28)
    assert due_date(policy.get("CN"), datetime(2026, 11, 20, 2, tzinfo=UTC)) == date(2026, 12, 11)


def test_cn_working_days_skip_public_holidays_and_count_make_up_saturdays() -> None:
    cn = load_policy(POLICY_PATH).get("CN")
    # Golden Week 2026: 1-7 October off; Saturday 10 October is worked. Weekdays alone
    # would give 19 October.
    assert due_date(cn, datetime(2026, 9, 28, 2, tzinfo=UTC)) == date(2026, 10, 23)
    # Spring Festival 2026: 15-23 February off; Saturdays 14 and 28 February are worked.
    assert due_date(cn, datetime(2026, 2, 13, 2, tzinfo=UTC)) == date(2026, 3, 12)


def test_the_receipt_date_is_the_banks_local_date_not_utcs() -> None:
    policy = load_policy(POLICY_PATH)
    # 21:30 UTC on 31 May is 00:30 on 1 June in Riga (UTC+3 in summer).
    assert due_date(policy.get("EU-LV"), datetime(2026, 5, 31, 21, 30, tzinfo=UTC)) == date(
        2026, 7, 1
    )
    assert due_date(policy.get("EU-LV"), datetime(2026, 5, 31, 20, 30, tzinfo=UTC)) == date(
        2026, 6, 30
    )
    # 16:30 UTC on 19 November is 00:30 on 20 November in Shanghai.
    assert due_date(policy.get("CN"), datetime(2026, 11, 19, 16, 30, tzinfo=UTC)) == date(
        2026, 12, 11
    )


def test_with_an_open_account_products_and_contact_are_kept_while_it_is_open() -> None:
    plan = preview(record(ACCOUNT, LOAN_CLOSED), ["all"], load_policy().get("EU-LV"), TODAY)
    by = {c.category: c for c in plan.categories}
    assert by["marketing"].action == "erase"
    assert by["chat_history"].action == "erase"
    assert (by["products"].basis, by["products"].until, by["products"].while_open) == (
        "product_open",
        None,
        ACCOUNT,
    )
    assert (by["identity"].basis, by["identity"].while_open) == ("eu_aml_records", ACCOUNT)
    assert (by["transactions"].basis, by["transactions"].until) == ("eu_aml_records", None)
    assert plan.warnings == ("irreversible", "open_products")


def test_after_the_last_product_closed_eu_data_is_held_for_its_statutory_years() -> None:
    plan = preview(record(LOAN_CLOSED), ["all"], load_policy().get("EU-LV"), TODAY)
    by = {c.category: c for c in plan.categories}
    assert by["contact"].action == "erase"
    assert (by["identity"].basis, by["identity"].until) == ("eu_aml_records", date(2029, 6, 30))
    assert (by["products"].basis, by["products"].until) == (
        "lv_accounting_registers",
        date(2034, 6, 30),
    )
    assert (by["transactions"].basis, by["transactions"].until) == (
        "lv_accounting_registers",
        date(2034, 5, 2),
    )
    assert plan.warnings == ("irreversible",)


def test_cn_keeps_anti_money_laundering_records_ten_years() -> None:
    plan = preview(
        record(LOAN_CLOSED), ["identity", "transactions"], load_policy().get("CN"), TODAY
    )
    assert [(c.category, c.basis, c.until) for c in plan.categories] == [
        ("identity", "cn_aml_records", date(2034, 6, 30)),
        ("transactions", "cn_aml_records", date(2034, 5, 2)),
    ]


def test_a_hold_that_has_already_ended_means_the_data_is_erased() -> None:
    old = Product("loan", "L-1", date(1990, 1, 1), date(2000, 1, 1))
    plan = preview(
        record(old, last_transaction=date(2000, 1, 1)), ["all"], load_policy().get("EU-LV"), TODAY
    )
    assert {c.action for c in plan.categories} == {"erase"}


dates = st.dates(min_value=date(1990, 1, 1), max_value=date(2026, 11, 21))


@st.composite
def products(draw: st.DrawFn) -> Product:
    opened = draw(dates)
    closed = draw(st.none() | st.dates(min_value=opened, max_value=date(2026, 11, 21)))
    return Product(
        draw(st.sampled_from(["current_account", "loan", "card"])),
        draw(st.text("ABC123", min_size=4, max_size=8)),
        opened,
        closed,
    )


@given(
    st.lists(products(), max_size=4),
    st.none() | dates,
    st.sampled_from(["EU-LV", "CN"]),
    st.lists(st.sampled_from([*CATEGORIES, "all"]), min_size=1),
)
def test_every_kept_category_has_a_basis_and_a_future_end_or_an_open_product(
    items: list[Product], last: date | None, code: str, scope: list[str]
) -> None:
    plan = preview(record(*items, last_transaction=last), scope, load_policy().get(code), TODAY)
    assert [c.category for c in plan.categories] == [
        c for c in CATEGORIES if c in scope or "all" in scope
    ]
    for item in plan.categories:
        if item.action == "keep":
            assert item.basis
            if item.until is None:
                assert item.while_open is not None
                assert item.while_open.closed is None
            else:
                assert item.until > TODAY
    if item.category == "marketing":
        assert item.action == "erase"
    assert ("open_products" in plan.warnings) == any(p.closed is None for p in items)


def test_period_arithmetic_keeps_month_ends_inside_the_month() -> None:
    assert add_period(date(2024, 2, 29), "years", 5) == date(2029, 2, 28)
    assert add_period(date(2026, 1, 31), "months", 1) == date(2026, 2, 28)
    assert add_period(date(2026, 11, 20), "working_days", 1) == date(2026, 11, 23)


GOOD = POLICY_PATH.read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("broken", "expected"),
    [
        (
            GOOD.replace(
                "\n          start: relationship_end", "\n          start: account_end", 1
            ),
            "start: 'account_end' is not one of",
        ),
        (
            GOOD.replace("period: {years: 5}", "period: {years: -5}", 1),
            "must be a whole number above 0",
        ),
        (GOOD.replace("      chat_history: []\n", "", 1), "no entry for chat_history"),
        (GOOD.replace("basis: eu_aml_records", "basis:", 1), "must be a non-empty text"),
        (
            GOOD.replace("      marketing: []", "      marketting: []", 1),
            "unknown category 'marketting'",
        ),
        (GOOD.replace("deadline: {months: 1}", "deadline: {months: 1", 1), "not valid YAML"),
        (
            GOOD.replace("timezone: Europe/Riga", "timezone: Europe/Rigga", 1),
            "'Europe/Rigga' is no IANA time zone",
        ),
        (
            GOOD.replace("calendar: CN", "calendar: XX", 1),
            "'XX' is no country code the holidays calendar knows",
        ),
        (GOOD.replace("    calendar: LV\n", "", 1), "missing field 'calendar'"),
    ],
)
def test_a_broken_policy_names_the_file_and_line(broken: str, expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_policy(broken)
    message = str(caught.value)
    assert message.startswith("retention.yaml:")
    line = int(message.split(":")[1])
    assert 1 <= line <= len(broken.splitlines()) + 1
    assert expected in message


def test_a_wrong_start_is_reported_on_its_own_line() -> None:
    broken = GOOD.replace(
        "\n          start: relationship_end", "\n          start: account_end", 1
    )
    wanted = next(i for i, text in enumerate(broken.splitlines(), 1) if "account_end" in text)
    with pytest.raises(ConfigError) as caught:
        parse_policy(broken)
    assert str(caught.value).startswith(f"retention.yaml:{wanted}: ")


@given(
    st.lists(products(), max_size=4),
    st.none() | dates,
    st.sampled_from(["EU-LV", "CN"]),
    st.lists(st.sampled_from([*CATEGORIES, "all"]), min_size=1),
)
def test_the_stored_plan_is_exactly_the_previewed_one(
    items: list[Product], last: date | None, code: str, scope: list[str]
) -> None:
    plan = preview(record(*items, last_transaction=last), scope, load_policy().get(code), TODAY)
    stored = plan_from_storage(plan_to_storage(plan))
    assert stored.erase == plan.erase
    assert stored.holds == plan.holds
    assert plan_to_api(stored, "pv_x") == plan_to_api(plan, "pv_x")
    assert stored.erase.isdisjoint(h.category for h in stored.holds)


def test_without_any_product_an_occasional_transaction_starts_the_aml_period() -> None:
    plan = preview(
        record(last_transaction=date(2024, 5, 2)), ["identity"], load_policy().get("EU-LV"), TODAY
    )
    assert [(c.action, c.basis, c.until) for c in plan.categories] == [
        ("keep", "eu_aml_records", date(2029, 5, 2))
    ]
