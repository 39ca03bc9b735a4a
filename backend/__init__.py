"""datadesk backend: the system of record (CRM look-up, verification, requests ledger, audit)."""
