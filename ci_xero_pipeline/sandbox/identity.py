"""Xero's identity service in miniature: authorization codes with PKCE, rotating refresh tokens,
client credentials, revocation and the connections a grant reaches.

A grant is one consent (or one client-credentials token): its access tokens, its chain of refresh
tokens and its connections (one per organisation) live and die together.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import uuid
from dataclasses import dataclass
from typing import Any

from .config import SandboxConfig
from .store import SandboxStore, digest
from .xerojson import iso_utc, now_ms

AUTH_CODE_MS = 5 * 60 * 1000

# Scopes Xero knows (OpenID, offline access, broad and granular accounting scopes).
KNOWN_SCOPES = frozenset(
    {
        "openid", "profile", "email", "offline_access",
        "accounting.transactions", "accounting.transactions.read",
        "accounting.invoices", "accounting.invoices.read",
        "accounting.payments", "accounting.payments.read",
        "accounting.banktransactions", "accounting.banktransactions.read",
        "accounting.manualjournals", "accounting.manualjournals.read",
        "accounting.contacts", "accounting.contacts.read",
        "accounting.settings", "accounting.settings.read",
        "accounting.reports.read", "accounting.journals.read", "accounting.attachments",
        "accounting.attachments.read", "accounting.budgets.read", "paymentservices",
    }
)


class OAuthError(Exception):
    """An RFC 6749 error answer: {"error": code} with an HTTP status."""

    def __init__(self, error: str, description: str = "", status: int = 400):
        super().__init__(description or error)
        self.error = error
        self.description = description
        self.status = status

    def body(self) -> dict[str, str]:
        body = {"error": self.error}
        if self.description:
            body["error_description"] = self.description
        return body


@dataclass(frozen=True)
class Grant:
    grant_id: str
    client_id: str
    scope: str


def pkce_s256(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


def unknown_scopes(scope: str) -> list[str]:
    return [s for s in scope.split() if s not in KNOWN_SCOPES]


class Identity:
    def __init__(self, store: SandboxStore, config: SandboxConfig):
        self.store = store
        self.config = config

    # -- client authentication --------------------------------------------------------------------
    def registered_client(self, client_id: str | None, redirect_uri: str | None) -> Any:
        """The client if it exists and registered this redirect URI, else None (the caller shows an
        error page: never redirect to an unregistered URI)."""
        if not client_id:
            return None
        client = self.store.client(client_id)
        if client is None or redirect_uri not in json.loads(client["redirect_uris"]):
            return None
        return client

    def authenticate_client(self, basic: tuple[str, str] | None, form: dict[str, str]) -> Any:
        """The client making a token/revocation call: HTTP Basic, or client_id (+ secret) in the body."""
        if basic:
            client_id, secret = basic
        else:
            client_id, secret = form.get("client_id", ""), form.get("client_secret")
        client = self.store.client(client_id) if client_id else None
        if client is None:
            raise OAuthError("invalid_client", status=401 if basic else 400)
        if client["secret_sha256"]:
            if not secret or not hmac.compare_digest(digest(secret), client["secret_sha256"]):
                raise OAuthError("invalid_client", status=401 if basic else 400)
        return client

    # -- authorization codes ------------------------------------------------------------------------
    def issue_code(
        self, client_id: str, redirect_uri: str, scope: str, code_challenge: str | None, tenant_ids: list[str]
    ) -> str:
        code = secrets.token_urlsafe(32)
        self.store.execute(
            "INSERT INTO auth_codes VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL)",
            (
                digest(code), client_id, redirect_uri, scope, code_challenge or None, json.dumps(tenant_ids),
                str(uuid.uuid4()), now_ms() + AUTH_CODE_MS,
            ),
        )
        return code

    def exchange_code(self, client: Any, form: dict[str, str]) -> dict[str, Any]:
        code = form.get("code") or ""
        with self.store.transaction():
            row = self.store.query_one("SELECT * FROM auth_codes WHERE code_sha256 = ?", (digest(code),))
            if row is None or row["client_id"] != client["client_id"]:
                raise OAuthError("invalid_grant", "unknown authorization code")
            if row["used_ms"] is not None:
                raise OAuthError("invalid_grant", "the authorization code was already used")
            if row["expires_ms"] < now_ms():
                raise OAuthError("invalid_grant", "the authorization code has expired")
            self.store.execute("UPDATE auth_codes SET used_ms = ? WHERE code_sha256 = ?", (now_ms(), row["code_sha256"]))
            if form.get("redirect_uri") != row["redirect_uri"]:
                raise OAuthError("invalid_grant", "redirect_uri does not match the authorization request")
            if row["code_challenge"]:
                verifier = form.get("code_verifier") or ""
                if not verifier or not hmac.compare_digest(pkce_s256(verifier), row["code_challenge"]):
                    raise OAuthError("invalid_grant", "code_verifier does not match the code_challenge")
            elif not client["secret_sha256"]:
                raise OAuthError("invalid_grant", "a public client must use PKCE")
            grant = self._new_grant(client["client_id"], "authorization_code", row["scope"], row["auth_event_id"])
            for tenant_id in json.loads(row["tenant_ids"]):
                self._connect(grant, tenant_id, row["auth_event_id"])
            return self._tokens(grant, with_refresh="offline_access" in row["scope"].split())

    # -- grants and tokens ----------------------------------------------------------------------------
    def _new_grant(self, client_id: str, grant_type: str, scope: str, auth_event_id: str) -> Grant:
        grant = Grant(str(uuid.uuid4()), client_id, scope)
        self.store.execute(
            "INSERT INTO grants VALUES (?, ?, ?, ?, ?, ?, NULL, NULL)",
            (grant.grant_id, client_id, grant_type, scope, auth_event_id, now_ms()),
        )
        return grant

    def _connect(self, grant: Grant, tenant_id: str, auth_event_id: str) -> None:
        stamp = now_ms()
        self.store.execute(
            "INSERT INTO connections VALUES (?, ?, ?, ?, ?, ?, ?)",
            (str(uuid.uuid4()), grant.grant_id, grant.client_id, tenant_id, auth_event_id, stamp, stamp),
        )

    def _tokens(self, grant: Grant, with_refresh: bool) -> dict[str, Any]:
        access = secrets.token_urlsafe(40)
        stamp = now_ms()
        self.store.execute(
            "INSERT INTO access_tokens VALUES (?, ?, ?, ?)",
            (digest(access), grant.grant_id, stamp, stamp + self.config.access_token_seconds * 1000),
        )
        answer: dict[str, Any] = {
            "access_token": access,
            "expires_in": self.config.access_token_seconds,
            "token_type": "Bearer",
            "scope": grant.scope,
        }
        if with_refresh:
            refresh = secrets.token_urlsafe(40)
            self.store.execute(
                "INSERT INTO refresh_tokens VALUES (?, ?, ?, ?, NULL)",
                (digest(refresh), grant.grant_id, stamp, stamp + self.config.refresh_token_days * 86_400_000),
            )
            answer["refresh_token"] = refresh
        return answer

    def _grant(self, grant_id: str) -> Any:
        return self.store.query_one("SELECT * FROM grants WHERE grant_id = ?", (grant_id,))

    def refresh(self, client: Any, form: dict[str, str]) -> dict[str, Any]:
        token = form.get("refresh_token") or ""
        with self.store.transaction():
            row = self.store.query_one("SELECT * FROM refresh_tokens WHERE token_sha256 = ?", (digest(token),))
            grant = self._grant(row["grant_id"]) if row else None
            if row is None or grant is None or grant["client_id"] != client["client_id"] or grant["revoked_ms"]:
                raise OAuthError("invalid_grant")
            stamp = now_ms()
            if row["expires_ms"] < stamp:
                raise OAuthError("invalid_grant", "the refresh token has expired")
            replayed = row["spent_ms"] is not None and stamp - row["spent_ms"] > self.config.refresh_grace_seconds * 1000
            if not replayed:
                if row["spent_ms"] is None:
                    self.store.execute(
                        "UPDATE refresh_tokens SET spent_ms = ? WHERE token_sha256 = ?", (stamp, row["token_sha256"])
                    )
                return self._tokens(Grant(grant["grant_id"], grant["client_id"], grant["scope"]), with_refresh=True)
        # a spent token replayed: someone may hold a stolen copy, so the whole grant dies (as at Xero)
        self.revoke_grant(grant["grant_id"], reason="refresh token reused", disconnect=False)
        raise OAuthError("invalid_grant", "the refresh token was already used")

    def client_credentials(self, client: Any, form: dict[str, str]) -> dict[str, Any]:
        if not client["secret_sha256"]:
            raise OAuthError("unauthorized_client", "client_credentials needs a confidential client")
        scope = form.get("scope") or "accounting.transactions accounting.contacts accounting.settings"
        bad = unknown_scopes(scope)
        if bad:
            raise OAuthError("invalid_scope", f"unknown scopes: {' '.join(bad)}")
        organisations = self.store.organisations()
        with self.store.transaction():
            grant = self._new_grant(client["client_id"], "client_credentials", scope, str(uuid.uuid4()))
            if organisations:
                self._connect(grant, organisations[0].tenant_id, str(uuid.uuid4()))
            return self._tokens(grant, with_refresh=False)

    def revoke_grant(self, grant_id: str, reason: str, disconnect: bool = True) -> None:
        with self.store.transaction():
            self.store.execute(
                "UPDATE grants SET revoked_ms = ?, revoked_reason = ? WHERE grant_id = ? AND revoked_ms IS NULL",
                (now_ms(), reason, grant_id),
            )
            self.store.execute("DELETE FROM access_tokens WHERE grant_id = ?", (grant_id,))
            self.store.execute(
                "UPDATE refresh_tokens SET spent_ms = COALESCE(spent_ms, ?), expires_ms = 0 WHERE grant_id = ?",
                (now_ms(), grant_id),
            )
            if disconnect:
                self.store.execute("DELETE FROM connections WHERE grant_id = ?", (grant_id,))

    def revoke(self, client: Any, form: dict[str, str]) -> None:
        """RFC 7009: revoke the grant behind a refresh (or access) token; unknown tokens are fine."""
        hashed = digest(form.get("token") or "")
        row = self.store.query_one("SELECT grant_id FROM refresh_tokens WHERE token_sha256 = ?", (hashed,)) or self.store.query_one(
            "SELECT grant_id FROM access_tokens WHERE token_sha256 = ?", (hashed,)
        )
        if row is None:
            return
        grant = self._grant(row["grant_id"])
        if grant is not None and grant["client_id"] == client["client_id"]:
            self.revoke_grant(grant["grant_id"], reason="revoked by the client")

    # -- bearer tokens ------------------------------------------------------------------------------
    def grant_for_access_token(self, token: str) -> Grant | None:
        row = self.store.query_one(
            "SELECT g.grant_id, g.client_id, g.scope, a.expires_ms FROM access_tokens a "
            "JOIN grants g ON g.grant_id = a.grant_id WHERE a.token_sha256 = ? AND g.revoked_ms IS NULL",
            (digest(token),),
        )
        if row is None or row["expires_ms"] <= now_ms():
            return None
        return Grant(row["grant_id"], row["client_id"], row["scope"])

    def connections(self, grant: Grant) -> list[dict[str, Any]]:
        rows = self.store.query(
            "SELECT c.*, o.name FROM connections c JOIN organisations o ON o.tenant_id = c.tenant_id "
            "WHERE c.grant_id = ? ORDER BY c.rowid",
            (grant.grant_id,),
        )
        return [
            {
                "id": row["connection_id"],
                "authEventId": row["auth_event_id"],
                "tenantId": row["tenant_id"],
                "tenantType": "ORGANISATION",
                "tenantName": row["name"],
                "createdDateUtc": iso_utc(row["created_ms"]),
                "updatedDateUtc": iso_utc(row["updated_ms"]),
            }
            for row in rows
        ]

    def is_connected(self, grant: Grant, tenant_id: str) -> bool:
        return self.store.query_one(
            "SELECT 1 FROM connections WHERE grant_id = ? AND tenant_id = ?", (grant.grant_id, tenant_id)
        ) is not None

    def disconnect(self, grant: Grant, connection_id: str) -> bool:
        return self.store.execute(
            "DELETE FROM connections WHERE grant_id = ? AND connection_id = ?", (grant.grant_id, connection_id)
        ) > 0
