"""Where a one-time code can go: an SMS to a phone, or an email (when SMTP is set up)."""

from __future__ import annotations

from typing import Literal

VerificationChannel = Literal["sms", "email"]
VERIFICATION_CHANNELS: tuple[VerificationChannel, ...] = ("sms", "email")
