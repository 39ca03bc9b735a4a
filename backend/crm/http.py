"""A bank's own CRM over JSON/HTTP: the ``CrmConnector`` protocol of ``docs/crm-http.md``.

Every call sends ``Authorization: Bearer {DATADESK_CRM_TOKEN}``. Answers: 2xx
with JSON (or 204), ``404 {"error": "customer_not_found"}`` for an unknown
ref; anything else, and any network failure, is a ``ConnectorError`` raised at
this boundary (``raise … from exc``), which workers retry with back-off.
Phones and emails travel in bodies, never in URLs, so they stay out of access
logs.
"""

from __future__ import annotations

import json
from datetime import date
from typing import Any
from urllib.parse import quote

import aiohttp

from backend.crm.connector import (
    Address,
    ContactOnFile,
    CustomerNotFound,
    CustomerRecord,
    ExportUnsupported,
    Hold,
)
from backend.crm.shape import address_json, hold_json, record_from_export
from backend.errors import ConnectorError
from common.vocabulary.categories import Category
from common.vocabulary.marketing_channels import MarketingChannel


def _says_customer_not_found(text: str) -> bool:
    try:
        body = json.loads(text)
    except ValueError:
        return False
    return isinstance(body, dict) and body.get("error") == "customer_not_found"


def _first_primary(pairs: tuple[tuple[str, bool], ...]) -> str | None:
    """The primary value of (value, primary) pairs, else the first one, else None."""
    for value, primary in pairs:
        if primary:
            return value
    return pairs[0][0] if pairs else None


class HttpCrm:
    """``CrmConnector`` speaking to ``base_url``; one client session per call."""

    def __init__(self, base_url: str, token: str | None, *, timeout: float = 10.0) -> None:
        self._base = base_url.rstrip("/")
        self._token = token
        self._timeout = aiohttp.ClientTimeout(total=timeout)

    async def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        """One request; the JSON answer, or None for 204."""
        headers = {"Authorization": f"Bearer {self._token}"} if self._token else {}
        try:
            async with (
                aiohttp.ClientSession(timeout=self._timeout) as client,
                client.request(method, self._base + path, json=body, headers=headers) as resp,
            ):
                if resp.status == 404:
                    # Only the protocol's own answer means "no such customer"; any
                    # other 404 is a misconfigured URL, which must not look like one.
                    if _says_customer_not_found(await resp.text()):
                        raise CustomerNotFound(f"{method} {path.split('/')[1]}: customer not found")
                    raise ConnectorError(f"CRM answered HTTP 404 to {method}: not the protocol")
                if resp.status == 501:
                    # The protocol's way to say "this CRM does not offer that call".
                    raise ExportUnsupported(
                        f"CRM does not implement {method} {path.split('/')[-1]}"
                    )
                if resp.status == 204:
                    return None
                if not 200 <= resp.status < 300:
                    raise ConnectorError(f"CRM answered HTTP {resp.status} to {method}")
                return await resp.json()
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise ConnectorError(f"CRM call {method} failed: {type(exc).__name__}") from exc

    @staticmethod
    def _ref(ref: str) -> str:
        return quote(ref, safe="")

    async def find_by_phone(self, e164: str) -> str | None:
        """The customer ref whose phone on file is ``e164``, or None."""
        data = await self._call("POST", "/lookup", {"phone": e164})
        ref = data.get("ref") if isinstance(data, dict) else None
        return str(ref) if ref else None

    async def contact_on_file(self, ref: str) -> ContactOnFile:
        """Primary phone and email on file; raises ``CustomerNotFound``."""
        data = await self._call("GET", f"/customers/{self._ref(ref)}/contact")
        try:
            return ContactOnFile(
                phone=data.get("phone"), email=data.get("email"), language=str(data["language"])
            )
        except (AttributeError, KeyError, TypeError) as exc:
            raise ConnectorError("CRM sent a contact without the expected fields") from exc

    async def export(self, ref: str) -> dict[str, object] | None:
        """The customer in the CRM JSON shape, or None."""
        try:
            data = await self._call("GET", f"/customers/{self._ref(ref)}")
        except CustomerNotFound:
            return None
        if not isinstance(data, dict):
            raise ConnectorError("CRM sent a customer that is not a JSON object")
        return data

    async def access_export(self, ref: str) -> dict[str, Any] | None:
        """``GET /customers/{ref}/export``; ``ExportUnsupported`` when the CRM answers 501."""
        try:
            data = await self._call("GET", f"/customers/{self._ref(ref)}/export")
        except CustomerNotFound:
            return None
        if not isinstance(data, dict):
            raise ConnectorError("CRM sent a customer copy that is not a JSON object")
        return data

    async def contact_and_address(self, ref: str) -> tuple[ContactOnFile, Address | None]:
        """The phone and email ``contact_on_file`` would pick, and the address, from one export."""
        record = await self.get(ref)
        if record is None:
            raise CustomerNotFound(f"no customer with ref {ref!r}")
        on_file = ContactOnFile(
            phone=_first_primary(record.phones),
            email=_first_primary(record.emails),
            language=record.language,
        )
        return on_file, record.address

    async def get(self, ref: str) -> CustomerRecord | None:
        """The customer's current record, or None."""
        data = await self.export(ref)
        if data is None:
            return None
        try:
            return record_from_export(data)
        except (KeyError, TypeError, ValueError) as exc:
            raise ConnectorError("CRM sent a customer in an unexpected shape") from exc

    async def update_phone(self, ref: str, e164: str, *, idempotency_key: str) -> None:
        """Make ``e164`` the primary phone."""
        body = {"phone": e164, "idempotency_key": idempotency_key}
        await self._call("POST", f"/customers/{self._ref(ref)}/phone", body)

    async def update_email(self, ref: str, address: str, *, idempotency_key: str) -> None:
        """Make ``address`` the primary email."""
        body = {"email": address, "idempotency_key": idempotency_key}
        await self._call("POST", f"/customers/{self._ref(ref)}/email", body)

    async def update_address(self, ref: str, address: Address, *, idempotency_key: str) -> None:
        """Replace the postal address."""
        body = {"address": address_json(address), "idempotency_key": idempotency_key}
        await self._call("POST", f"/customers/{self._ref(ref)}/address", body)

    async def set_marketing(
        self, ref: str, consent: dict[MarketingChannel, bool], *, idempotency_key: str
    ) -> None:
        """Set consent for the channels given."""
        body = {"consent": dict(consent), "idempotency_key": idempotency_key}
        await self._call("POST", f"/customers/{self._ref(ref)}/marketing", body)

    async def erase(
        self,
        ref: str,
        erase: frozenset[Category],
        holds: tuple[Hold, ...],
        *,
        idempotency_key: str,
    ) -> None:
        """Erase ``erase`` and record ``holds``."""
        body = {
            "erase": sorted(erase),
            "holds": [hold_json(h) for h in holds],
            "idempotency_key": idempotency_key,
        }
        await self._call("POST", f"/customers/{self._ref(ref)}/erase", body)

    async def purge_expired_holds(self, today: date) -> list[tuple[str, Category]]:
        """Ask the CRM to purge holds that ended before ``today``."""
        data = await self._call("POST", "/purge", {"today": today.isoformat()})
        try:
            return [(str(ref), category) for ref, category in data["purged"]]
        except (KeyError, TypeError, ValueError) as exc:
            raise ConnectorError("CRM sent a purge answer in an unexpected shape") from exc
