"""How healthy a stored connection is, in words a person can act on (never showing a token)."""

from __future__ import annotations

import time
from datetime import datetime
from zoneinfo import ZoneInfo

from .oauth import CONNECT_COMMAND
from .tokens import StoredConnection

NZ = ZoneInfo("Pacific/Auckland")
DAY = 86_400


def _when(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, NZ).strftime("%Y-%m-%d %H:%M %Z")


def expiry_warning(connection: StoredConnection, warn_days: int, now: float | None = None) -> str | None:
    """A warning when the refresh token dies within `warn_days` (or already has); None when healthy."""
    expires = connection.refresh_token_expires_at
    if expires is None:
        return None  # a custom connection fetches new tokens with the client secret: nothing expires
    now = now or time.time()
    left = expires - now
    if left > warn_days * DAY:
        return None
    if left <= 0:
        return (f"The Xero connection to {connection.tenant_name!r} expired on {_when(expires)}: nothing refreshed "
                f"it for 60 days. Run `{CONNECT_COMMAND}`.")
    return (f"The Xero connection to {connection.tenant_name!r} expires in {left / DAY:.1f} days ({_when(expires)}) "
            f"unless a run or the keep-alive refreshes it before then (last refreshed {_when(connection.refreshed_at)}). "
            f"Run any posting, turn on the keep-alive schedule, or run `{CONNECT_COMMAND}`.")


def status_lines(connection: StoredConnection, warn_days: int, now: float | None = None) -> list[str]:
    now = now or time.time()
    kind = "custom connection (client credentials)" if connection.grant_type == "client_credentials" else "OAuth 2.0 (authorization code + PKCE)"
    lines = [
        f"Organisation:       {connection.tenant_name} ({connection.tenant_id})",
        f"Connection:         {kind}",
        f"Connected:          {_when(connection.connected_at)}",
        f"Tokens refreshed:   {_when(connection.refreshed_at)}",
        f"Access token:       {'valid until ' + _when(connection.access_token_expires_at) if connection.access_token_valid_for(0, now) else 'expired (refreshed on next use)'}",
    ]
    expires = connection.refresh_token_expires_at
    lines.append("Refresh token:      none (a custom connection needs none)" if expires is None
                 else f"Refresh token:      expires {_when(expires)} unless used before then")
    warning = expiry_warning(connection, warn_days, now)
    if warning:
        lines.append(f"WARNING: {warning}")
    return lines
