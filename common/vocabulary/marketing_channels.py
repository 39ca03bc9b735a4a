"""The channels a customer can opt out of marketing on (the CRM JSON's ``marketing`` keys).

A marketing opt-out may also name ``all``, which stands for every one of them.
"""

from __future__ import annotations

from typing import Literal

MarketingChannel = Literal["email", "sms", "phone", "post"]
MARKETING_CHANNELS: tuple[MarketingChannel, ...] = ("email", "sms", "phone", "post")
