"""Every backend table, one module per feature. Importing this package registers them all.

| module         | tables                                                       | migration          |
|----------------|--------------------------------------------------------------|--------------------|
| crm            | customers, phones, emails, addresses, consent, products, …   | 0001_crm           |
| verification   | one-time-code challenges, rate counters, customer sessions   | 0002_verification  |
| ledger         | requests (the queue), holds, notifications outbox            | 0003_ledger        |
| audit          | hash-chained audit entries                                   | 0004_audit         |
| console        | agents, console sessions, escalated chats, transcripts       | 0005_console       |
| keys           | the keys the data is encrypted with, their checks            | 0008_keys          |
| undo           | "Was this you?" notices and undo tokens of contact changes   | 0011_contact_undo  |
| console        | agents' internal notes on chats                              | 0012_chat_notes    |
| ledger         | the claim's index of customers' requests under way           | 0013_requests_turns|
"""

from backend.models import audit, console, crm, keys, ledger, undo, verification

__all__ = ["audit", "console", "crm", "keys", "ledger", "undo", "verification"]
