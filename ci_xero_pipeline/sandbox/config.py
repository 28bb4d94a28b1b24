"""What a sandbox holds and how it behaves: organisations, client apps, token lifetimes, rate limits.
(Re-exported by `server`, where callers import them from.)"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import date

# Fixed namespace: an organisation's tenant id follows from its short code, the same on every start.
TENANT_NAMESPACE = uuid.UUID("4f1c9a52-6a43-4d4e-9a53-2f8a7e0c5b10")


@dataclass
class SandboxOrganisation:
    name: str
    short_code: str
    tenant_id: str | None = None  # None: a uuid5 of the short code, stable across restarts
    base_currency: str = "NZD"
    period_lock_date: date | None = None  # Xero's PeriodLockDate: see rules.Ledger.lock for what it stops
    tracking_categories: dict[str, list[str]] = field(default_factory=dict)  # category -> option names
    end_of_year_lock_date: date | None = None  # Xero's EndOfYearLockDate: the later of the two applies

    @property
    def resolved_tenant_id(self) -> str:
        return self.tenant_id or str(uuid.uuid5(TENANT_NAMESPACE, self.short_code))


@dataclass
class SandboxClient:
    client_id: str
    client_secret: str | None = None  # None: a PKCE public client
    redirect_uris: list[str] = field(default_factory=list)


@dataclass
class SandboxConfig:
    db_path: str  # SQLite file holding all state
    organisations: list[SandboxOrganisation]
    clients: list[SandboxClient]
    access_token_seconds: int = 1800
    refresh_token_days: int = 60
    refresh_grace_seconds: int = 0  # reuse of the previous refresh token tolerated this long; 0 = single use
    minute_limit: int = 60
    day_limit: int = 5000
    concurrent_limit: int = 5
    app_minute_limit: int = 10000
    time_scale: float = 1.0  # >1 compresses rate-limit windows and Retry-After
    idempotency_seconds: int = 360
