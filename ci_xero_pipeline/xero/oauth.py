"""OAuth 2.0 with Xero: connecting (authorization code + PKCE, or a custom connection), keeping the
connection alive across processes, and disconnecting. No function here ever logs or raises a token.

What a refresh's outcome means (Xero rotates refresh tokens; see TokenKeeper):
- an answer with tokens: saved before use; any recorded refusal is cleared;
- `invalid_grant`: the refresh token is spent, expired or revoked. The refusal is recorded in the
  store and ReconnectRequired raised; the dead token is never sent again;
- the answer was lost (timeout or dropped connection after sending): retried at once, inside the
  same lock, with the same refresh token (Xero accepts the previous token for a grace period);
- `temporarily_unavailable`, HTTP 429/5xx, network errors: retried with bounded backoff, then
  TokenServiceUnavailable, which is not a reason to reconnect;
- any other refusal (`invalid_client`, …): RefreshRefused, naming the settings to check.
"""

from __future__ import annotations

import logging
import os
import secrets
import threading
import time
from dataclasses import dataclass
from html.parser import HTMLParser
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any, Callable
from urllib.parse import parse_qs, urljoin, urlparse

import requests
from oauthlib.oauth2 import MissingTokenError, OAuth2Error, WebApplicationClient
from requests_oauthlib import OAuth2Session

from .tokens import StoredConnection, TokenStore

# requests-oauthlib logs whole tokens at DEBUG level; tokens must never reach a log.
for _chatty in ("requests_oauthlib", "oauthlib"):
    logging.getLogger(_chatty).setLevel(logging.WARNING)

log = logging.getLogger(__name__)

_LOOPBACK_HOSTS = {"localhost", "127.0.0.1", "::1"}
CONNECT_COMMAND = "ci-xero connect"
# refresh a little before expiry, so a token never dies between the check and the request
DEFAULT_REFRESH_MARGIN_SECONDS = 60
# a refresh in trouble: this many attempts, waiting backoff × 1, 2, 4 … (at most the cap) between
# them; far inside Xero's 30-minute grace for the previous refresh token
DEFAULT_REFRESH_ATTEMPTS = 5
DEFAULT_REFRESH_BACKOFF_SECONDS = 1.0
MAX_REFRESH_BACKOFF_SECONDS = 8.0
TOKEN_TIMEOUT_SECONDS = 30


class ReconnectRequired(RuntimeError):
    """The connection is spent, expired or revoked. Posting stops; a person must reconnect.
    Not retryable: retrying a dead grant only locks the account out further."""

    def __init__(self, reason: str, tenant_name: str = ""):
        where = f" to {tenant_name!r}" if tenant_name else ""
        super().__init__(
            f"The Xero connection{where} no longer works: {reason}. Nothing more will be posted until "
            f"someone reconnects: run `{CONNECT_COMMAND}` (see `ci-xero status`)."
        )


class TokenServiceUnavailable(RuntimeError):
    """Xero's token service did not answer usefully (network trouble, 5xx, `temporarily_unavailable`)
    on every attempt. The stored connection is unchanged and still valid: try again later; nothing
    needs reconnecting."""


class RefreshRefused(RuntimeError):
    """Xero refused a refresh for a reason other than a dead grant (`invalid_client`, a wrong token
    URL …): the app's settings need fixing; reconnecting would not help."""


class DisconnectIncomplete(RuntimeError):
    """Xero did not confirm the revocation; the stored connection is kept so disconnect can be retried."""


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

    @property
    def client_auth(self) -> requests.auth.HTTPBasicAuth | None:
        return requests.auth.HTTPBasicAuth(self.client_id, self.client_secret) if self.client_secret else None


def allow_http_for_loopback(*urls: str) -> None:
    """oauthlib insists on HTTPS; a sandbox on this machine speaks plain HTTP on loopback only."""
    if urls and all(urlparse(url).hostname in _LOOPBACK_HOSTS for url in urls if url):
        os.environ.setdefault("OAUTHLIB_INSECURE_TRANSPORT", "1")


# -- connecting: authorization code with PKCE ---------------------------------------------------------

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
    """Trade the callback URL's code for tokens. oauthlib checks the callback's `state` against ours
    (MismatchingStateError otherwise) and sends the PKCE verifier."""
    if app.client_secret:
        return session.fetch_token(
            app.token_url, authorization_response=authorization_response, client_secret=app.client_secret
        )
    return session.fetch_token(app.token_url, authorization_response=authorization_response, include_client_id=True)


class CallbackServer:
    """A one-shot HTTP server on the redirect URI's loopback port that catches Xero's redirect."""

    def __init__(self, redirect_uri: str):
        target = urlparse(redirect_uri)
        if target.hostname not in _LOOPBACK_HOSTS:
            raise ValueError(f"The redirect URI {redirect_uri} must point at this machine (localhost) to connect here")
        self.path = target.path or "/"
        self.callback_url: str | None = None
        self._arrived = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                if urlparse(self.path).path != outer.path:
                    self.send_error(404)
                    return
                outer.callback_url = f"{target.scheme}://{target.netloc}{self.path}"
                query = parse_qs(urlparse(self.path).query)
                failed = "error" in query
                self.send_response(400 if failed else 200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.end_headers()
                message = (f"Xero refused: {query['error'][0]}" if failed
                           else "Connected. You can close this window and return to the terminal.")
                self.wfile.write(f"<!doctype html><title>ci-xero</title><p>{message}</p>".encode())
                outer._arrived.set()

            def log_message(self, *args: Any) -> None:  # the query holds the one-time code: keep it out of logs
                pass

        self._server = HTTPServer((target.hostname or "127.0.0.1", target.port or 80), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> "CallbackServer":
        self._thread.start()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self._server.shutdown()
        self._server.server_close()

    def wait(self, timeout: float) -> str:
        if not self._arrived.wait(timeout):
            raise TimeoutError(f"No answer from Xero within {int(timeout)} s; run `{CONNECT_COMMAND}` again.")
        assert self.callback_url is not None
        return self.callback_url


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
    """Open the consent page and submit its form, as a person's browser would; return the callback URL
    Xero redirects to (not followed). Used with the sandbox, whose consent page needs no password."""
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
            if wanted.lower() in (str(connection.get("tenantId")).lower(), str(connection.get("tenantName")).lower()):
                return connection
        names = ", ".join(sorted(str(c.get("tenantName")) for c in connections))
        raise RuntimeError(f"No connected organisation is called {wanted!r}; connected: {names}. Use --tenant.")
    if len(connections) > 1:
        names = ", ".join(sorted(str(c.get("tenantName")) for c in connections))
        raise RuntimeError(f"Several organisations are connected ({names}); choose one with --tenant or xero.tenant_name.")
    return connections[0]


def _stored(token: dict[str, Any], chosen: dict[str, Any], grant_type: str) -> StoredConnection:
    return StoredConnection(
        token=dict(token), tenant_id=chosen["tenantId"], tenant_name=chosen.get("tenantName", ""), grant_type=grant_type
    )


def connect(
    app: OAuthApp,
    store: TokenStore,
    tenant: str | None,
    open_consent: Callable[[str], str] = consent_like_a_browser,
) -> StoredConnection:
    """The whole authorization-code flow; stores the connection with its chosen organisation.

    `open_consent` takes the authorization URL and returns the callback URL the browser was sent to:
    a browser and the local callback server for a person, the scripted consent for the sandbox."""
    session = authorization_session(app)
    url, _state = session.authorization_url(app.authorize_url)
    token = exchange_code(app, session, open_consent(url))
    connection = _stored(token, choose_tenant(list_connections(app, token), tenant), "authorization_code")
    with store.locked():
        store.save(connection)
    return connection


def connect_custom(app: OAuthApp, store: TokenStore, tenant: str | None) -> StoredConnection:
    """Xero's custom connection: the client-credentials grant for one organisation, no refresh token
    (a new access token is fetched whenever the old one expires)."""
    token = _retrying(lambda: _client_credentials_request(app), "")
    connection = _stored(token, choose_tenant(list_connections(app, token), tenant), "client_credentials")
    with store.locked():
        store.save(connection)
    return connection


# -- one request to the token endpoint, classified ----------------------------------------------------

class _Transient(Exception):
    """Trouble worth another attempt. `lost`: the request may have reached Xero (its answer did not
    reach us), so Xero may already have spent the refresh token it carried."""

    def __init__(self, reason: str, lost: bool):
        super().__init__(reason)
        self.reason = reason
        self.lost = lost


def _may_have_arrived(error: requests.RequestException) -> bool:
    """False only when the request certainly never left (no connection was made)."""
    if isinstance(error, requests.ConnectTimeout):
        return False
    if isinstance(error, requests.ConnectionError):
        import urllib3.exceptions

        reason = error.args[0] if error.args else None
        reason = getattr(reason, "reason", reason)  # MaxRetryError wraps the cause
        return not isinstance(reason, urllib3.exceptions.NewConnectionError)
    return True


def _oauth_error_code(answer: requests.Response) -> str:
    try:
        body = answer.json()
    except ValueError:
        return ""
    return str(body.get("error") or "") if isinstance(body, dict) else ""


def _token_request(app: OAuthApp, data: dict[str, str]) -> dict[str, Any]:
    """POST one grant to the token endpoint. Returns the token (with `expires_at`); raises OAuth2Error
    for Xero's refusal, _Transient for trouble worth a retry, RefreshRefused for anything else."""
    allow_http_for_loopback(app.token_url)
    try:
        answer = requests.post(
            app.token_url, data=data, auth=app.client_auth, headers={"Accept": "application/json"},
            timeout=TOKEN_TIMEOUT_SECONDS,
        )
    except requests.RequestException as error:
        raise _Transient(type(error).__name__, lost=_may_have_arrived(error)) from None
    code = _oauth_error_code(answer)
    if answer.status_code >= 500 or answer.status_code == 429 or code == "temporarily_unavailable":
        raise _Transient(f"HTTP {answer.status_code}" + (f" {code}" if code else ""), lost=False)
    try:
        # raises OAuth2Error on {"error": …}; no scope given, so a narrower grant is not an error here
        return dict(WebApplicationClient(app.client_id).parse_request_body_response(answer.text))
    except MissingTokenError:
        if answer.status_code == 200:  # an answer without a token (a proxy's page, a cut body): try again
            raise _Transient("an answer without a token", lost=True) from None
        raise RefreshRefused(
            f"Xero's token endpoint {app.token_url} answered HTTP {answer.status_code} without an OAuth answer: "
            "check xero.token_url"
        ) from None
    except ValueError:
        raise _Transient(f"HTTP {answer.status_code} with an unreadable body", lost=answer.status_code == 200) from None


def _refresh_grant_request(app: OAuthApp, refresh_token: str) -> dict[str, Any]:
    data = {"grant_type": "refresh_token", "refresh_token": refresh_token}
    if not app.client_secret:
        data["client_id"] = app.client_id  # a public (PKCE) client names itself in the body
    token = _token_request(app, data)
    token.setdefault("refresh_token", refresh_token)  # Xero always rotates; an answer without one keeps ours
    return token


def _client_credentials_request(app: OAuthApp) -> dict[str, Any]:
    if not app.client_secret:
        raise ReconnectRequired("a custom connection needs the app's client secret in its environment variable")
    scopes = [scope for scope in app.scopes if scope != "offline_access"]
    try:
        return _token_request(app, {"grant_type": "client_credentials", "scope": " ".join(scopes)})
    except OAuth2Error as error:
        raise ReconnectRequired(f"Xero refused the custom connection ({error.error})") from None


def _retrying(
    fetch: Callable[[], dict[str, Any]],
    tenant_name: str,
    attempts: int = DEFAULT_REFRESH_ATTEMPTS,
    backoff_seconds: float = DEFAULT_REFRESH_BACKOFF_SECONDS,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """Call `fetch` (one token request) until it answers: a lost answer is retried at once (the same
    refresh token is still good within Xero's grace period), other trouble after a growing pause;
    then TokenServiceUnavailable. Runs inside the caller's lock."""
    retried_at_once = False
    pauses = 0
    for attempt in range(1, max(1, attempts) + 1):
        try:
            return fetch()
        except _Transient as trouble:
            if attempt >= attempts:
                where = f" to {tenant_name!r}" if tenant_name else ""
                raise TokenServiceUnavailable(
                    f"Xero's token service did not renew the connection{where} after {attempt} attempts "
                    f"(last: {trouble.reason}). The stored connection is unchanged and still valid; try "
                    "again later (the next run does)."
                ) from None
            if trouble.lost and not retried_at_once:
                retried_at_once, pause = True, 0.0
            else:
                pause = min(backoff_seconds * 2**pauses, MAX_REFRESH_BACKOFF_SECONDS)
                pauses += 1
            log.warning(
                "Renewing the Xero connection%s: %s (attempt %d of %d); trying again in %.1f s",
                f" to {tenant_name!r}" if tenant_name else "", trouble.reason, attempt, attempts, pause,
            )
            if pause:
                sleep(pause)
    raise AssertionError("unreachable")


def disconnect(app: OAuthApp, store: TokenStore) -> StoredConnection | None:
    """Remove the tenant connection, revoke the refresh token (which ends the grant), forget the store.

    Works with an expired access token: the refresh it needs takes the store's lock again, which this
    thread already holds (the lock is re-entrant per thread). A connection Xero already refused is
    just revoked and forgotten. If Xero does not confirm the revocation, the store is kept."""
    with store.locked():
        if store.load() is None:
            return None
        keeper = TokenKeeper(app, store)
        try:
            token: dict[str, Any] | None = keeper.token()
        except (ReconnectRequired, TokenServiceUnavailable, RefreshRefused):
            token = None  # dead (or unreachable) at Xero's end: revoking below still ends the grant
        connection = keeper.connection  # after a refresh: the newest refresh token, the one to revoke
        if token is not None:
            try:
                for link in list_connections(app, token):
                    if link.get("tenantId") == connection.tenant_id:
                        requests.delete(
                            f"{app.connections_url.rstrip('/')}/{link['id']}",
                            headers={"Authorization": f"Bearer {token['access_token']}"},
                            timeout=30,
                        )
            except requests.RequestException:
                pass  # the revocation below removes the grant's connections as well
        refresh = connection.token.get("refresh_token")
        if refresh and app.revoke_url:
            data = {"token": refresh, "token_type_hint": "refresh_token"}
            if not app.client_secret:
                data["client_id"] = app.client_id
            try:
                answer = requests.post(app.revoke_url, data=data, auth=app.client_auth, timeout=30)
                problem = None if answer.status_code == 200 else f"HTTP {answer.status_code}"
            except requests.RequestException as error:
                problem = type(error).__name__
            if problem:
                raise DisconnectIncomplete(
                    f"Xero did not confirm revoking the connection to {connection.tenant_name!r} ({problem}); the "
                    "stored connection is kept. Run `ci-xero disconnect` again, or remove the app in Xero "
                    "(Settings > Connected apps)."
                )
        store.delete()
    return connection


# -- staying connected -------------------------------------------------------------------------------

class TokenKeeper:
    """Hands out a valid access token for one stored connection, refreshing it safely.

    Refreshes happen under the store's lock and start by re-reading the store: if another process
    refreshed meanwhile, its token is used and our (now spent) refresh token is never sent. The rotated
    token is saved before it is returned. Trouble is handled inside the same lock (see the module's
    docstring): a lost answer is retried at once with the same refresh token, transient trouble with
    bounded backoff; Xero's `invalid_grant` is recorded in the store and never retried.
    """

    def __init__(
        self,
        app: OAuthApp,
        store: TokenStore,
        refresh_margin_seconds: float = DEFAULT_REFRESH_MARGIN_SECONDS,
        *,
        refresh_attempts: int = DEFAULT_REFRESH_ATTEMPTS,
        refresh_backoff_seconds: float = DEFAULT_REFRESH_BACKOFF_SECONDS,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.app = app
        self.store = store
        self.margin = refresh_margin_seconds
        self.refresh_attempts = max(1, refresh_attempts)
        self.refresh_backoff_seconds = refresh_backoff_seconds
        self._sleep = sleep
        self._connection = store.require()
        self.refreshes = 0  # done by this keeper (not by other processes)

    def __repr__(self) -> str:
        return f"TokenKeeper(tenant={self._connection.tenant_name!r})"

    @property
    def connection(self) -> StoredConnection:
        return self._connection

    def token(self) -> dict[str, Any]:
        if not self._connection.access_token_valid_for(self.margin):
            self.refresh()
        return self._connection.token

    def refresh(self, rejected_access_token: str | None = None, force: bool = False) -> dict[str, Any]:
        """A new access token. With `rejected_access_token` (Xero just answered 401 to it), refresh only
        if the store still holds that token; otherwise someone else already did. `force` always
        refreshes (the keep-alive: a used refresh token starts a new 60 days)."""
        with self.store.locked():
            current = self.store.require()
            fresh_elsewhere = not force and (
                current.token.get("access_token") != rejected_access_token
                if rejected_access_token
                else current.access_token_valid_for(self.margin)
            )
            if fresh_elsewhere and current.access_token_valid_for(0):
                self._connection = current
                return current.token
            if current.grant_type == "client_credentials":
                token = self._retrying(current, lambda: _client_credentials_request(self.app))
            else:
                token = self._refresh_grant(current)
            current.token = dict(token)
            current.refreshed_at = time.time()
            current.last_refusal = None
            self.store.save(current)  # before first use: the old refresh token is spent now
            self._connection = current
            self.refreshes += 1
            return current.token

    def _refresh_grant(self, current: StoredConnection) -> dict[str, Any]:
        refresh_token = current.token.get("refresh_token")
        if not refresh_token:
            raise ReconnectRequired("the stored connection has no refresh token", current.tenant_name)
        if current.last_refusal:
            # Xero already said this refresh token is dead: sending it again changes nothing
            self._connection = current
            raise ReconnectRequired(_refusal_reason(current.last_refusal), current.tenant_name)
        try:
            return self._retrying(current, lambda: _refresh_grant_request(self.app, refresh_token))
        except OAuth2Error as error:
            if error.error != "invalid_grant":
                description = (error.description or "").replace(refresh_token, "[token]")
                raise RefreshRefused(
                    f"Xero refused to refresh the connection to {current.tenant_name!r} ({error.error}"
                    f"{': ' + description if description else ''}). Check the app's settings "
                    "(xero.client_id, the client secret's environment variable, xero.token_url)."
                ) from None
            # invalid_grant: spent, expired (60 days unused) or revoked; never worth a retry
            current.record_refusal(error.error, error.description or "")
            self.store.save(current)  # status and the expiry sensor now know, without asking Xero
            self._connection = current
            raise ReconnectRequired(_refusal_reason(current.last_refusal), current.tenant_name) from None

    def _retrying(self, current: StoredConnection, fetch: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        return _retrying(fetch, current.tenant_name, self.refresh_attempts, self.refresh_backoff_seconds, self._sleep)


def _refusal_reason(refusal: dict[str, Any] | None) -> str:
    refusal = refusal or {}
    description = refusal.get("description") or ""
    return f"Xero refused to refresh it ({refusal.get('error', 'invalid_grant')}{': ' + description if description else ''})"
