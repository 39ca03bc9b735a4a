"""The backend's exception tree. Every error shown to a client carries a stable code.

    DatadeskError           (common/errors.py)
    ├── ApiError            an HTTP answer: status, stable ``code``, developer message, details
    │   ├── BadRequest      400  (unknown request kind, malformed JSON, …)
    │   ├── Unauthorized    401  (missing or wrong service token / session token)
    │   ├── Forbidden       403
    │   ├── NotFound        404
    │   ├── Conflict        409
    │   │   └── IllegalTransition  a request cannot move from its state to that one
    │   ├── Expired         410  (a one-time code past its five minutes)
    │   ├── PayloadTooLarge 413
    │   ├── Invalid         422  (per-field codes in ``details["fields"]``)
    │   ├── WrongCode       422  (``details["attempts_left"]``)
    │   ├── TooManyRequests 429  (``details["retry_after"]`` in seconds)
    │   └── ServiceUnavailable 503  (the CRM cannot be reached)
    ├── ConfigError         a file an operator or product team edits is wrong (common/errors.py)
    └── ConnectorError      the CRM connector failed (network, remote 5xx); retried by workers

Codes are part of the HTTP contract (``docs/backend-api.md``): the bot maps
them to catalog messages in the customer's language. Messages here are for
developers and never contain personal data.
"""

from __future__ import annotations

from typing import Any

from common.errors import DatadeskError


class ApiError(DatadeskError):
    status = 500
    default_code = "internal_error"

    def __init__(
        self, message: str, *, code: str | None = None, details: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code
        self.details = details or {}

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"error": {"code": self.code, "message": self.message}}
        if self.details:
            body["error"].update(self.details)
        return body


class BadRequest(ApiError):
    status = 400
    default_code = "bad_request"


class Unauthorized(ApiError):
    status = 401
    default_code = "unauthorized"


class Forbidden(ApiError):
    status = 403
    default_code = "forbidden"


class NotFound(ApiError):
    status = 404
    default_code = "not_found"


class Conflict(ApiError):
    status = 409
    default_code = "conflict"


class IllegalTransition(Conflict):
    """A request was asked to move where ``backend/ledger/states.py`` allows no move.

    ``current`` and ``to`` are state ids; the message names the reference.
    """

    default_code = "illegal_transition"

    def __init__(self, reference: str, current: str, to: str) -> None:
        super().__init__(
            f"request {reference} cannot move from {current} to {to}",
            details={"from": current, "to": to},
        )
        self.current = current
        self.to = to


class PayloadTooLarge(ApiError):
    status = 413
    default_code = "payload_too_large"


class Invalid(ApiError):
    """422 with one code per field: ``details={"fields": {"phone": "invalid_phone"}}``."""

    status = 422
    default_code = "invalid"

    def __init__(self, fields: dict[str, str], message: str = "some fields are invalid") -> None:
        super().__init__(message, details={"fields": fields})
        self.fields = fields


class ServiceUnavailable(ApiError):
    """503: a part the answer needs (the CRM) is not reachable; try again."""

    status = 503
    default_code = "unavailable"


class Expired(ApiError):
    """410: the code's five minutes are over; ask for a new one."""

    status = 410
    default_code = "expired"


class WrongCode(ApiError):
    """422: the code does not match; ``attempts_left`` says how many checks remain."""

    status = 422
    default_code = "wrong_code"


class TooManyRequests(ApiError):
    status = 429
    default_code = "too_many_requests"


class ConnectorError(DatadeskError):
    """The CRM connector could not complete a call; workers retry with back-off."""
