"""OAuth 2.0 with Xero: the authorization-code flow with PKCE, and the sessions that refresh themselves."""

from __future__ import annotations

import logging
import os
import secrets
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Any, Callable
from urllib.parse import urljoin, urlparse

import requests
from requests_oauthlib import OAuth2Session

from .tokens import FileTokenStore, StoredConnection

# requests-oauthlib logs whole tokens at DEBUG level; tokens must never reach a log.
for _chatty in ("requests_oauthlib", "oauthlib"):
    logging.getLogger(_chatty).setLevel(logging.WARNING)

_LOOPBACK_HOSTS = {"localhost", "127.0.0.1", "::1"}


@dataclass(frozen=True)
class OAuthApp:
    """The Xero app this site connects with. The secret is None for a PKCE public client."""

    client_id: str
    client_secret: str | None
    authorize_url: str
    token_url: str
    connections_url: str
    redirect_uri: str
    scopes: tuple[str, ...]
    revoke_url: str | None = None

    def __repr__(self) -> str:
        secret = "set" if self.client_secret else "none"
        return f"OAuthApp(client_id={self.client_id!r}, client_secret={secret})"


def allow_http_for_loopback(*urls: str) -> None:
    """oauthlib insists on HTTPS; a sandbox on this machine speaks plain HTTP on loopback only."""
    if urls and all(urlparse(url).hostname in _LOOPBACK_HOSTS for url in urls if url):
        os.environ.setdefault("OAUTHLIB_INSECURE_TRANSPORT", "1")


def authorization_session(app: OAuthApp, state: str | None = None) -> OAuth2Session:
    allow_http_for_loopback(app.authorize_url, app.token_url)
    return OAuth2Session(
        app.client_id,
        redirect_uri=app.redirect_uri,
        scope=list(app.scopes),
        state=state or secrets.token_urlsafe(24),
        pkce="S256",
    )


def exchange_code(app: OAuthApp, session: OAuth2Session, authorization_response: str) -> dict[str, Any]:
    """Trade the callback URL's code (state checked by oauthlib) for tokens."""
    if app.client_secret:
        return session.fetch_token(
            app.token_url, authorization_response=authorization_response, client_secret=app.client_secret
        )
    return session.fetch_token(
        app.token_url, authorization_response=authorization_response, include_client_id=True
    )


class _FormReader(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.action: str | None = None
        self.fields: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "form" and self.action is None:
            self.action = attributes.get("action") or ""
        elif tag == "input" and attributes.get("name"):
            self.fields[attributes["name"]] = attributes.get("value") or ""


def consent_like_a_browser(authorization_url: str, http: requests.Session | None = None) -> str:
    """Open the consent page and submit its form, as a person's browser would; return the callback URL.

    Used with the sandbox, whose consent page needs no password, and by tests.
    """
    http = http or requests.Session()
    page = http.get(authorization_url, timeout=30)
    page.raise_for_status()
    form = _FormReader()
    form.feed(page.text)
    if form.action is None:
        raise RuntimeError("The authorization page has no consent form to submit")
    answer = http.post(urljoin(page.url, form.action), data=form.fields, allow_redirects=False, timeout=30)
    if answer.status_code not in (302, 303) or "location" not in answer.headers:
        raise RuntimeError(f"Consent was not granted (HTTP {answer.status_code})")
    return answer.headers["location"]


def list_connections(app: OAuthApp, token: dict[str, Any]) -> list[dict[str, Any]]:
    answer = requests.get(
        app.connections_url,
        headers={"Authorization": f"Bearer {token['access_token']}", "Accept": "application/json"},
        timeout=30,
    )
    answer.raise_for_status()
    return answer.json()


def choose_tenant(connections: list[dict[str, Any]], wanted: str | None) -> dict[str, Any]:
    """The organisation named (by name or id), or the only one."""
    if not connections:
        raise RuntimeError("This Xero connection reaches no organisation; connect again and pick one.")
    if wanted:
        for connection in connections:
            if wanted in (connection.get("tenantId"), connection.get("tenantName")):
                return connection
        names = ", ".join(sorted(str(c.get("tenantName")) for c in connections))
        raise RuntimeError(f"No connected organisation is called {wanted!r}; connected: {names}")
    if len(connections) > 1:
        names = ", ".join(sorted(str(c.get("tenantName")) for c in connections))
        raise RuntimeError(f"Several organisations are connected ({names}); set xero.tenant_name.")
    return connections[0]


def connect(
    app: OAuthApp,
    store: FileTokenStore,
    tenant: str | None,
    open_consent: Callable[[str], str] = consent_like_a_browser,
) -> StoredConnection:
    """Run the whole authorization-code flow and store the connection with its chosen organisation.

    `open_consent` takes the authorization URL and returns the callback URL the browser was sent to.
    """
    session = authorization_session(app)
    url, _state = session.authorization_url(app.authorize_url)
    callback = open_consent(url)
    token = exchange_code(app, session, callback)
    chosen = choose_tenant(list_connections(app, token), tenant)
    connection = StoredConnection(token=dict(token), tenant_id=chosen["tenantId"], tenant_name=chosen.get("tenantName", ""))
    store.save(connection)
    return connection


def refreshing_session(app: OAuthApp, store: FileTokenStore) -> tuple[OAuth2Session, StoredConnection]:
    """A session that refreshes its access token when it expires and saves the rotated token at once."""
    allow_http_for_loopback(app.token_url)
    connection = store.require()
    session = OAuth2Session(
        app.client_id,
        token=connection.token,
        auto_refresh_url=app.token_url,
        # a public client names itself in the refresh body; a confidential one uses Basic auth
        auto_refresh_kwargs={} if app.client_secret else {"client_id": app.client_id},
        token_updater=store.save_token,
    )
    return session, connection
