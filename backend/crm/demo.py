"""The demo customers (``datadesk crm seed-demo``): the same data on every run.

Seven well-known customers with documented numbers (``backend/crm/DEMO.md``),
then generated ones from a fixed-seed random generator, so the seed is
deterministic and seeding twice leaves the same data.
"""

from __future__ import annotations

import random
from typing import Any

from common.vocabulary.marketing_channels import MARKETING_CHANNELS

Customer = dict[str, Any]


def iban(bank: str, account: str) -> str:
    """A Latvian IBAN with correct check digits for ``bank`` (4 letters) and 13 digits."""
    bban = bank + account
    digits = "".join(str(int(c, 36)) for c in bban + "LV00")
    check = 98 - int(digits) % 97
    return f"LV{check:02d}{bban}"


def _person(
    ref: str,
    name: str,
    language: str,
    phone: str,
    *,
    email: str | None = None,
    address: dict[str, str] | None = None,
    marketing: tuple[bool, bool, bool, bool] = (True, True, False, True),
    products: list[dict[str, Any]] | None = None,
    documents: list[dict[str, str]] | None = None,
) -> Customer:
    products = products or []
    transactions = [
        {"date": p["opened"], "amount": "100.00", "currency": "EUR", "product": p["id"]}
        for p in products
        if p["kind"].endswith("account")
    ]
    return {
        "ref": ref,
        "name": name,
        "language": language,
        "phones": [{"number": phone, "primary": True}],
        "emails": [{"address": email, "primary": True}] if email else [],
        "address": address,
        "marketing": dict(zip(MARKETING_CHANNELS, marketing, strict=True)),
        "products": products,
        "transactions": transactions,
        "documents": documents or [{"kind": "passport_copy", "collected": "2015-03-01"}],
    }


def _product(kind: str, pid: str, opened: str, closed: str | None = None) -> dict[str, Any]:
    return {"kind": kind, "id": pid, "opened": opened, "closed": closed}


def _riga(street: str, postcode: str = "LV-1010") -> dict[str, str]:
    return {"line1": street, "city": "Rīga", "postcode": postcode, "country": "LV"}


def well_known() -> list[Customer]:
    """The customers DEMO.md documents, one per journey worth showing."""
    anna = _person(
        "C-1001",
        "Anna Bērziņa",
        "lv",
        "+37120000001",
        email="anna@example.lv",
        address=_riga("Brīvības iela 1"),
        products=[
            _product("current_account", "LV80BANK0000435195001", "2015-03-01"),
            _product("loan", "L-77", "2020-01-10", "2024-06-30"),
        ],
    )
    anna["transactions"].append(
        {
            "date": "2024-05-02",
            "amount": "-12.50",
            "currency": "EUR",
            "product": "LV80BANK0000435195001",
        }
    )
    return [
        anna,
        _person(
            "C-1002", "Дмитрий Иванов", "ru", "+37120000002",
            address=_riga("Dzirnavu iela 40-12", "LV-1010"),
            marketing=(False, True, True, False),
            products=[
                _product("current_account", iban("BANK", "0000435195002"), "2018-07-15"),
                _product("card", "411111******1111", "2021-02-01"),
            ],
        ),
        _person(
            "C-1003", "James Carter", "en", "+37120000003",
            email="james.carter@example.com",
            address=_riga("Elizabetes iela 22", "LV-1050"),
            products=[_product("savings_account", iban("BANK", "0000435195003"), "2022-04-20")],
        ),
        _person(
            "C-1004", "王伟", "zh_Hans", "+37120000004",
            email="wang.wei@example.cn",
            products=[_product("current_account", iban("BANK", "0000435195004"), "2023-09-01")],
        ),
        _person(
            "C-1005", "陳美玲", "zh_Hant", "+37120000005",
            email="meiling.chen@example.tw",
            products=[_product("current_account", iban("BANK", "0000435195005"), "2019-11-11")],
        ),
        _person(
            "C-1006", "Jānis Ozols", "lv", "+37120000006",
            address=_riga("Tērbatas iela 5", "LV-1011"),
            products=[
                _product("current_account", iban("BANK", "0000435195006"), "2009-01-05", "2019-05-31"),
                _product("loan", "L-12", "2010-03-01", "2018-12-31"),
            ],
        ),
        _person(
            "C-1007", "Ольга Петрова", "ru", "+37120000007",
            email="olga.petrova@example.lv",
            products=[
                _product("current_account", iban("BANK", "0000435195007"), "2016-06-01", "2026-09-30"),
                _product("card", "520000******0007", "2020-06-01", "2026-09-30"),
            ],
        ),
    ]  # fmt: skip


_NAMES = {
    "lv": ["Līga Kalniņa", "Mārtiņš Liepa", "Ilze Zariņa", "Edgars Krūmiņš", "Dace Vītola", "Roberts Siliņš"],
    "ru": ["Анна Смирнова", "Сергей Кузнецов", "Наталья Попова", "Алексей Соколов", "Елена Морозова", "Игорь Волков"],
    "en": ["Emily Clarke", "Oliver Hughes", "Grace Turner", "Henry Walsh", "Sophie Bennett", "Jack Morgan"],
    "zh_Hans": ["李娜", "张磊", "刘洋", "陈静", "杨帆", "赵敏"],
    "zh_Hant": ["林志明", "黃淑芬", "吳俊傑", "蔡佳穎", "許文華", "鄭雅婷"],
}  # fmt: skip
_STREETS = ["Ģertrūdes iela", "Krišjāņa Barona iela", "Lāčplēša iela", "Avotu iela", "Matīsa iela"]
_DOMAINS = {"lv": "example.lv", "ru": "example.lv", "en": "example.com", "zh_Hans": "example.cn", "zh_Hant": "example.tw"}  # fmt: skip


def generated(count: int = 29) -> list[Customer]:
    """Further customers with varied products, from a fixed seed."""
    rng = random.Random(20261122)  # noqa: S311  (demo data, not secrets)
    languages = list(_NAMES)
    customers = []
    for i in range(count):
        language = languages[i % len(languages)]
        name = _NAMES[language][(i // len(languages)) % len(_NAMES[language])]
        ref = f"C-{1101 + i}"
        opened_year = rng.randint(2005, 2024)
        products = [
            _product(
                "current_account",
                iban("BANK", f"{1000000000000 + i * 7919:013d}"),
                f"{opened_year}-{rng.randint(1, 12):02d}-01",
            )
        ]
        if rng.random() < 0.5:
            closed_year = rng.randint(opened_year + 1, 2026)
            products.append(
                _product("loan", f"L-{200 + i}", f"{opened_year}-06-15", f"{closed_year}-03-31")
            )
        if rng.random() < 0.3:
            products.append(
                _product(
                    "card",
                    f"{rng.choice(['411111', '520000', '362640'])}******{rng.randint(0, 9999):04d}",
                    f"{max(opened_year, 2015)}-09-01",
                )
            )
        if rng.random() < 0.2:
            # A relationship that ended: every product closed.
            products = [
                {**p, "closed": p["closed"] or f"{rng.randint(2016, 2025)}-12-31"} for p in products
            ]
            products = [{**p, "closed": max(p["closed"], p["opened"])} for p in products]
        email = f"customer{1101 + i}@{_DOMAINS[language]}" if rng.random() < 0.6 else None
        address = _riga(
            f"{rng.choice(_STREETS)} {rng.randint(1, 80)}", f"LV-10{rng.randint(10, 99)}"
        )
        marketing = tuple(rng.random() < 0.6 for _ in range(4))
        customers.append(
            _person(
                ref, name, language, f"+3712100{1101 + i:04d}",
                email=email, address=address, marketing=marketing,  # type: ignore[arg-type]
                products=products,
                documents=[{"kind": "id_card_copy", "collected": products[0]["opened"]}],
            )
        )  # fmt: skip
    return customers


def demo_document() -> dict[str, Any]:
    """The whole demo seed in the CRM import shape."""
    return {"customers": [*well_known(), *generated()]}
