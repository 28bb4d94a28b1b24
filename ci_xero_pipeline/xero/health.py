"""How healthy a stored connection is, in words a person can act on (never showing a token).

`connection_health` is the one judgement, shared by `ci-xero status` and the Dagster expiry sensor: it
reads only the stored connection (no call to Xero), so it is cheap and has no side effects.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from .oauth import CONNECT_COMMAND
from .tokens import StoredConnection

NZ = ZoneInfo("Pacific/Auckland")
DAY = 86_400

# the states a connection can be in, from `connection_health(...).details["state"]`
HEALTHY = "healthy"
EXPIRING = "expiring"  # works, but the refresh token dies within the warning period unless used
EXPIRED = "expired"  # the refresh token went 60 days unused: reconnect
REFUSED = "refused"  # Xero refused a refresh (invalid_grant: revoked, expired or spent): reconnect
NOT_CONNECTED = "not_connected"
RECONNECT_STATES = frozenset({EXPIRED, REFUSED, NOT_CONNECTED})


class ConnectionHealth(NamedTuple):
    """(healthy, headline, details); unpacks as a plain tuple."""

    healthy: bool
    headline: str  # one line for a person: what is wrong and the command that fixes it
    details: dict[str, Any]  # plain JSON-able values (sensor metadata, `status --json` one day)


def _when(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, NZ).strftime("%Y-%m-%d %H:%M %Z")


def _refusal_details(connection: StoredConnection) -> dict[str, Any] | None:
    refusal = connection.last_refusal
    if not refusal:
        return None
    at = float(refusal.get("at") or 0)
    return {
        "at": at,
        "at_nz": _when(at),
        "error": str(refusal.get("error") or ""),
        "description": str(refusal.get("description") or ""),
    }


def connection_health(connection: StoredConnection | None, warn_days: int, now: float | None = None) -> ConnectionHealth:
    """Judge a stored connection (`store.load()`, None when nothing is stored) without asking Xero.

    Unhealthy when nothing is stored, when Xero refused the last refresh (recorded by the TokenKeeper),
    when the refresh token has passed its 60 days, or when it dies within `warn_days`. The headline
    says "reconnect" and names `ci-xero connect` whenever only a reconnect helps."""
    now = now or time.time()
    if connection is None:
        return ConnectionHealth(
            False,
            f"NOT CONNECTED: the site is not connected to Xero. Run `{CONNECT_COMMAND}`.",
            {"state": NOT_CONNECTED, "reconnect_required": True, "action": CONNECT_COMMAND,
             "tenant_name": None, "tenant_id": None, "grant_type": None,
             "refresh_token_expires_at": None, "refresh_token_expires_at_nz": None,
             "refresh_token_days_left": None, "last_refusal": None},
        )
    expires = connection.refresh_token_expires_at
    refusal = _refusal_details(connection)
    details: dict[str, Any] = {
        "tenant_name": connection.tenant_name,
        "tenant_id": connection.tenant_id,
        "grant_type": connection.grant_type,
        "connected_at": connection.connected_at,
        "refreshed_at": connection.refreshed_at,
        "access_token_expires_at": connection.access_token_expires_at,
        "refresh_token_expires_at": expires,
        "refresh_token_expires_at_nz": _when(expires) if expires is not None else None,
        "refresh_token_days_left": round((expires - now) / DAY, 1) if expires is not None else None,
        "last_refusal": refusal,
        "action": None,
    }
    name = connection.tenant_name
    if refusal is not None:
        what = refusal["error"] + (f": {refusal['description']}" if refusal["description"] else "")
        headline = (f"RECONNECT NEEDED: Xero refused to refresh the connection to {name!r} on {refusal['at_nz']} "
                    f"({what}): it was revoked, has expired or its refresh token was spent. Nothing is posted "
                    f"until someone reconnects: run `{CONNECT_COMMAND}`.")
        state = REFUSED
    elif expires is not None and expires <= now:
        headline = (f"RECONNECT NEEDED: the Xero connection to {name!r} expired on {_when(expires)}: nothing refreshed "
                    f"it for 60 days. Reconnect: run `{CONNECT_COMMAND}`.")
        state = EXPIRED
    elif expires is not None and expires - now <= warn_days * DAY:
        headline = f"WARNING: {expiry_warning(connection, warn_days, now)}"
        state = EXPIRING
    else:
        until = "a custom connection: nothing expires" if expires is None else f"refresh token good until {_when(expires)}"
        return ConnectionHealth(True, f"The Xero connection to {name!r} is healthy ({until}).",
                                {**details, "state": HEALTHY, "reconnect_required": False})
    reconnect = state in RECONNECT_STATES
    details.update(state=state, reconnect_required=reconnect, action=CONNECT_COMMAND if reconnect else None)
    return ConnectionHealth(False, headline, details)


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
    """The stored connection in lines for `ci-xero status`, ending with its health headline."""
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
    refusal = _refusal_details(connection)
    if refusal is not None:
        text = refusal["error"] + (f" ({refusal['description']})" if refusal["description"] else "")
        lines.append(f"Last refusal:       {refusal['at_nz']}: Xero refused a refresh: {text}")
    lines.append(connection_health(connection, warn_days, now).headline)
    return lines
