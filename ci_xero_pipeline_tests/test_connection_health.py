"""Connection health tells the truth, and a refresh in trouble does the right thing.

Against the sandbox over HTTP (which spends refresh tokens, expires and revokes grants like Xero):
a refused refresh is recorded and `ci-xero status` says "reconnect"; a lost refresh answer is retried
at once with the same refresh token (Xero's grace period); transient trouble at the token endpoint is
retried with bounded backoff and never mistaken for a dead connection; a token is attached to a
request only after the pacer's wait. Faults the sandbox cannot produce at its token endpoint (an
answer lost after Xero acted, a 503) are injected around the real exchange."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest
import requests
import responses

from ci_xero_pipeline.resources import XeroResource
from ci_xero_pipeline.settings import load_settings
from ci_xero_pipeline.xero.client import XeroClient
from ci_xero_pipeline.xero.health import (
    EXPIRED, EXPIRING, HEALTHY, NOT_CONNECTED, REFUSED, ConnectionHealth, connection_health,
)
from ci_xero_pipeline.xero.oauth import ReconnectRequired, TokenKeeper, TokenServiceUnavailable
from ci_xero_pipeline.xero.pacing import PacingLimits, TenantPacer
from ci_xero_pipeline.xero.tokens import REFRESH_TOKEN_LIFETIME_SECONDS, StoredConnection

from .conftest import CLIENT_ID
from .pipeline_helpers import connect_site, xero_client

GRACE = 1800  # Xero keeps the previous refresh token usable for 30 minutes (xero-facts.md)
DAY = 86_400


@pytest.fixture(autouse=True)
def token_key(monkeypatch):
    from ci_xero_pipeline.xero.tokens import new_key

    monkeypatch.setenv("CI_XERO_TOKEN_KEY", new_key())


def resource(site: Path) -> XeroResource:
    return XeroResource.from_settings(load_settings(site))


def store_of(site: Path):
    return resource(site).token_store()


def expire_stored_token(site: Path) -> None:
    store = store_of(site)
    with store.locked():
        connection = store.require()
        connection.token["expires_at"] = time.time() - 5
        store.save(connection)


def keeper_of(site: Path, sleeps: list[float] | None = None, **options: Any) -> TokenKeeper:
    xero = resource(site)
    recorded = sleeps if sleeps is not None else []
    return TokenKeeper(xero.oauth_app(), xero.token_store(), sleep=recorded.append, **options)


def token_url(sandbox) -> str:
    return sandbox.base_url.rstrip("/") + "/identity/connect/token"


def refresh_tokens_sent(exchanges: list[requests.PreparedRequest]) -> list[str]:
    from urllib.parse import parse_qs

    return [
        parse_qs(request.body)["refresh_token"][0]
        for request in exchanges
        if request.url.endswith("/connect/token") and "grant_type=refresh_token" in (request.body or "")
    ]


@pytest.fixture
def sent(monkeypatch) -> list[requests.PreparedRequest]:
    """Every request that leaves through requests (recorded before it goes)."""
    requests_sent: list[requests.PreparedRequest] = []
    original = requests.Session.send

    def recording(self, request, **kwargs):
        requests_sent.append(request)
        return original(self, request, **kwargs)

    monkeypatch.setattr(requests.Session, "send", recording)
    return requests_sent


def run_status(site: Path, capsys) -> tuple[int, str]:
    from ci_xero_pipeline.cli import main

    code = main(["--settings", str(site), "status"])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


# -- the health judgement (pure) ---------------------------------------------------------------------

def stored(**changes: Any) -> StoredConnection:
    now = time.time()
    values: dict[str, Any] = dict(
        token={"access_token": "a" * 40, "refresh_token": "r" * 40, "expires_at": now + 1500},
        tenant_id="4f1c9a52-0000-4d4e-9a53-2f8a7e0c5b10", tenant_name="Test Retail Ltd",
        connected_at=now - 10 * DAY, refreshed_at=now - DAY,
    )
    values.update(changes)
    return StoredConnection(**values)


def test_the_health_judgement_for_each_state_of_a_connection():
    now = time.time()
    healthy = connection_health(stored(), warn_days=14, now=now)
    assert isinstance(healthy, ConnectionHealth) and isinstance(healthy, tuple)
    ok, headline, details = healthy
    assert ok and "healthy" in headline and details["state"] == HEALTHY and not details["reconnect_required"]
    assert details["refresh_token_expires_at"] == pytest.approx(now - DAY + REFRESH_TOKEN_LIFETIME_SECONDS)
    assert details["refresh_token_days_left"] == 59.0 and details["last_refusal"] is None

    expiring = connection_health(stored(refreshed_at=now - 50 * DAY), 14, now)
    assert not expiring.healthy and expiring.details["state"] == EXPIRING
    assert expiring.headline.startswith("WARNING") and "expires in 10.0 days" in expiring.headline
    assert not expiring.details["reconnect_required"]

    expired = connection_health(stored(refreshed_at=now - 61 * DAY), 14, now)
    assert not expired.healthy and expired.details["state"] == EXPIRED and expired.details["reconnect_required"]
    assert "reconnect" in expired.headline.lower() and "ci-xero connect" in expired.headline

    refused = connection_health(
        stored(last_refusal={"at": now - 60, "error": "invalid_grant", "description": "the refresh token was already used"}),
        14, now,
    )
    assert not refused.healthy and refused.details["state"] == REFUSED and refused.details["reconnect_required"]
    assert "reconnect" in refused.headline.lower() and "ci-xero connect" in refused.headline
    assert "invalid_grant" in refused.headline and "already used" in refused.headline
    assert refused.details["last_refusal"]["error"] == "invalid_grant"
    assert refused.details["last_refusal"]["at"] == pytest.approx(now - 60)

    nothing = connection_health(None, 14, now)
    assert not nothing.healthy and nothing.details["state"] == NOT_CONNECTED and "ci-xero connect" in nothing.headline

    custom = connection_health(stored(grant_type="client_credentials", token={"access_token": "a", "expires_at": now}), 14, now)
    assert custom.healthy and custom.details["refresh_token_expires_at"] is None
    for verdict in (healthy, expiring, expired, refused, nothing, custom):
        assert "a" * 40 not in repr(verdict) and "r" * 40 not in repr(verdict)


# -- a refused refresh is recorded; status says reconnect ---------------------------------------------

def refuse(kind: str, sandbox, site: Path) -> None:
    """Make Xero refuse the stored refresh token, as it does when it is revoked, expired or spent."""
    refresh_token = store_of(site).require().token["refresh_token"]
    base = sandbox.base_url.rstrip("/")
    if kind == "revoked":  # the adviser removed the app in Xero
        answer = requests.post(f"{base}/identity/connect/revocation", data={"token": refresh_token, "client_id": CLIENT_ID}, timeout=30)
        assert answer.status_code == 200
    elif kind == "expired":  # 60 days unused
        sandbox.store.execute("UPDATE refresh_tokens SET expires_ms = 0")
    else:  # spent: a stale copy of the store refreshed with it (beyond the grace period, there is none here)
        answer = requests.post(token_url(sandbox), data={"grant_type": "refresh_token", "refresh_token": refresh_token,
                                                          "client_id": CLIENT_ID}, timeout=30)
        assert answer.status_code == 200


@pytest.mark.parametrize("kind", ["revoked", "expired", "spent"])
def test_a_refused_refresh_is_recorded_and_status_says_reconnect(kind, sandbox, demo_ci_url, make_site, sent, capsys):
    site = make_site(sandbox, demo_ci_url)
    connect_site(site)
    assert run_status(site, capsys)[0] == 0
    tokens = dict(store_of(site).require().token)
    refuse(kind, sandbox, site)
    expire_stored_token(site)
    sent.clear()
    before = time.time()

    with pytest.raises(ReconnectRequired) as dead:
        xero_client(site)
    assert "invalid_grant" in str(dead.value) and "ci-xero connect" in str(dead.value)

    connection = store_of(site).require()
    refusal = connection.last_refusal
    assert refusal is not None and refusal["error"] == "invalid_grant"
    assert before <= refusal["at"] <= time.time()
    assert not any(secret in repr(refusal) for secret in tokens.values() if isinstance(secret, str))

    code, shown = run_status(site, capsys)
    assert code != 0
    assert "reconnect" in shown.lower() and "ci-xero connect" in shown and "invalid_grant" in shown
    assert tokens["access_token"] not in shown and tokens["refresh_token"] not in shown
    healthy, headline, details = connection_health(connection, load_settings(site).xero.refresh_warning_days)
    assert not healthy and details["state"] == REFUSED and details["last_refusal"]["error"] == "invalid_grant"
    assert details["refresh_token_expires_at"] is not None

    # the dead refresh token is sent once, never again: the next run stops on the recorded refusal
    with pytest.raises(ReconnectRequired):
        xero_client(site)
    assert len(refresh_tokens_sent(sent)) == 1

    connect_site(site)  # someone reconnects
    assert store_of(site).require().last_refusal is None
    code, shown = run_status(site, capsys)
    assert code == 0 and "healthy" in shown
    assert xero_client(site).organisation()["Name"] == "Test Retail Ltd"


def test_status_exits_non_zero_when_nothing_is_connected(sandbox, demo_ci_url, make_site, capsys):
    site = make_site(sandbox, demo_ci_url)
    code, shown = run_status(site, capsys)
    assert code != 0 and "ci-xero connect" in shown


# -- a lost refresh answer ---------------------------------------------------------------------------

def lose_answers(monkeypatch, url: str, how: str, count: int = 1) -> list[requests.PreparedRequest]:
    """The next `count` requests to `url` reach the server (which acts on them), but their answers
    never come back: the connection drops, or the wait for the answer times out."""
    original = requests.Session.send
    lost: list[requests.PreparedRequest] = []

    def send(self, request, **kwargs):
        answer = original(self, request, **kwargs)
        if request.url == url and len(lost) < count:
            lost.append(request)
            if how == "timeout":
                raise requests.ReadTimeout("Read timed out. (fault injected after the server answered)")
            raise requests.ConnectionError("Connection aborted: RemoteDisconnected (fault injected after the server answered)")
        return answer

    monkeypatch.setattr(requests.Session, "send", send)
    return lost


@pytest.mark.parametrize("how", ["drop", "timeout"])
def test_a_lost_refresh_answer_is_retried_at_once_with_the_same_refresh_token(how, sandbox_factory, demo_ci_url, make_site, monkeypatch, sent):
    sandbox = sandbox_factory(refresh_grace_seconds=GRACE)
    site = make_site(sandbox, demo_ci_url)
    connect_site(site)
    old = dict(store_of(site).require().token)
    expire_stored_token(site)
    sleeps: list[float] = []
    keeper = keeper_of(site, sleeps)
    lost = lose_answers(monkeypatch, token_url(sandbox), how)
    sent.clear()

    token = keeper.token()

    assert len(lost) == 1  # Xero refreshed, but its answer never arrived
    assert refresh_tokens_sent(sent) == [old["refresh_token"]] * 2  # the same token, twice
    assert sleeps == []  # at once: no backoff before the retry
    assert token["access_token"] != old["access_token"] and token["refresh_token"] != old["refresh_token"]
    stored = store_of(site).require()
    assert stored.token["refresh_token"] == token["refresh_token"] and stored.last_refusal is None
    assert [row["revoked_ms"] for row in sandbox.store.query("SELECT revoked_ms FROM grants")] == [None]
    client = xero_client(site)
    assert client.organisation()["Name"] == "Test Retail Ltd"
    expire_stored_token(site)  # the rotated chain goes on: the next refresh works too
    assert keeper_of(site).token()["access_token"] != token["access_token"]


# -- transient trouble at the token endpoint -------------------------------------------------------------

def refused_connection() -> requests.ConnectionError:
    """What requests raises when nothing listens at the token endpoint (the request never left)."""
    from urllib3.exceptions import MaxRetryError, NewConnectionError

    cause = NewConnectionError(None, "Failed to establish a new connection: [Errno 111] Connection refused (fault injected)")
    return requests.ConnectionError(MaxRetryError(None, "/identity/connect/token", reason=cause))


TRANSIENT = {
    "503 temporarily_unavailable": dict(status=503, json={"error": "temporarily_unavailable"}),
    "400 temporarily_unavailable": dict(status=400, json={"error": "temporarily_unavailable"}),
    "500 page": dict(status=500, body="<html><body>Internal Server Error</body></html>", content_type="text/html"),
    "502 gateway": dict(status=502, body="Bad Gateway", content_type="text/plain"),
    "429": dict(status=429, json={"error": "rate_limited"}, headers={"Retry-After": "1"}),
    "connection refused": dict(body=refused_connection()),
}


@pytest.mark.parametrize("fault", sorted(TRANSIENT))
def test_transient_token_trouble_is_retried_with_backoff_then_the_refresh_succeeds(fault, sandbox, demo_ci_url, make_site):
    site = make_site(sandbox, demo_ci_url)
    connect_site(site)
    expire_stored_token(site)
    sleeps: list[float] = []
    keeper = keeper_of(site, sleeps, refresh_backoff_seconds=0.5)
    with responses.RequestsMock(assert_all_requests_are_fired=True) as xero:
        xero.add_passthru(sandbox.base_url)
        for _ in range(2):
            xero.add(responses.POST, token_url(sandbox), **TRANSIENT[fault])
        xero.add(responses.PassthroughResponse(responses.POST, token_url(sandbox)))  # then Xero answers
        token = keeper.token()
    assert sleeps == [0.5, 1.0]  # bounded, growing backoff
    assert store_of(site).require().token["access_token"] == token["access_token"]
    assert xero_client(site).organisation()["Name"] == "Test Retail Ltd"


@pytest.mark.parametrize("fault", ["503 temporarily_unavailable", "500 page", "connection refused"])
def test_a_token_endpoint_that_stays_down_raises_a_clear_error_that_is_not_reconnect(fault, sandbox, demo_ci_url, make_site, capsys):
    site = make_site(sandbox, demo_ci_url)
    connect_site(site)
    expire_stored_token(site)
    before = store_of(site).require()
    sleeps: list[float] = []
    keeper = keeper_of(site, sleeps, refresh_attempts=5, refresh_backoff_seconds=1)
    with responses.RequestsMock(assert_all_requests_are_fired=True) as xero:
        xero.add(responses.POST, token_url(sandbox), **TRANSIENT[fault])
        with pytest.raises(TokenServiceUnavailable) as unavailable:
            keeper.token()
        assert len(xero.calls) == 5
    assert not isinstance(unavailable.value, ReconnectRequired)
    message = str(unavailable.value)
    assert "5 attempts" in message and "still valid" in message and "Test Retail Ltd" in message
    assert "ci-xero connect" not in message and "reconnect" not in message.lower()
    assert before.token["refresh_token"] not in message and before.token["access_token"] not in message
    assert sleeps == [1, 2, 4, 8]  # bounded: 15 s in all, far inside Xero's grace period
    after = store_of(site).require()
    assert after.last_refusal is None and after.token == before.token  # nothing spent, nothing recorded
    code, shown = run_status(site, capsys)
    assert code == 0 and "healthy" in shown
    assert keeper_of(site).token()["access_token"] != before.token["access_token"]  # Xero is back: it works


def test_a_refusal_other_than_invalid_grant_is_not_reconnect_and_is_not_recorded(sandbox, demo_ci_url, make_site):
    from ci_xero_pipeline.xero.oauth import RefreshRefused

    site = make_site(sandbox, demo_ci_url)
    connect_site(site)
    expire_stored_token(site)
    sleeps: list[float] = []
    with responses.RequestsMock() as xero:
        xero.add(responses.POST, token_url(sandbox), status=401, json={"error": "invalid_client"})
        with pytest.raises(RefreshRefused) as refused:
            keeper_of(site, sleeps).token()
        assert len(xero.calls) == 1  # not transient: not retried
    assert "invalid_client" in str(refused.value) and "xero.client_id" in str(refused.value)
    assert not isinstance(refused.value, ReconnectRequired) and sleeps == []
    assert store_of(site).require().last_refusal is None


# -- the token goes on a request after the pacer's wait ------------------------------------------------

def test_the_access_token_is_attached_after_the_pacing_wait_not_before(sandbox, demo_ci_url, make_site, sent):
    site = make_site(sandbox, demo_ci_url)
    connect_site(site)
    store = store_of(site)
    lifetime = 3.0  # what is left of the access token, at Xero and in the store
    with store.locked():
        connection = store.require()
        connection.token["expires_at"] = time.time() + lifetime
        store.save(connection)
    sandbox.store.execute("UPDATE access_tokens SET expires_ms = ?", (int((time.time() + lifetime) * 1000),))
    old_access = connection.token["access_token"]

    xero = resource(site)
    keeper = TokenKeeper(xero.oauth_app(), xero.token_store(), refresh_margin_seconds=1)
    pacer = TenantPacer(PacingLimits())
    client = XeroClient(keeper, connection.tenant_id, xero.api_url, pacer=pacer)
    assert keeper.refreshes == 0  # the token was still good when the client started
    pacer.observe(429, {"Retry-After": str(lifetime + 1.5), "X-Rate-Limit-Problem": "minute"})  # Xero: wait
    sent.clear()

    assert client.organisation()["Name"] == "Test Retail Ltd"

    assert pacer.waited_seconds >= lifetime
    accounting = [request for request in sent if "/api.xro/2.0/" in request.url]
    assert len(accounting) == 1  # no 401 and no second try: the token was fresh when it went
    assert accounting[0].headers["Authorization"] != f"Bearer {old_access}"
    assert accounting[0].headers["Authorization"] == f"Bearer {keeper.connection.token['access_token']}"
    assert keeper.refreshes == 1


# -- the lock ------------------------------------------------------------------------------------------

def test_the_store_lock_is_reentrant_in_its_thread_and_exclusive_across_threads(sandbox, demo_ci_url, make_site):
    site = make_site(sandbox, demo_ci_url)
    connect_site(site)
    store, other_store = store_of(site), store_of(site)  # two objects, one file: one lock
    events: list[str] = []
    holding = threading.Event()
    release = threading.Event()

    def holder():
        with store.locked():
            with other_store.locked():  # nested in the same thread: no wait for itself
                events.append("holder in")
                holding.set()
                release.wait(10)
            events.append("holder out")

    def waiter():
        holding.wait(10)
        with store.locked():
            events.append("waiter in")

    # daemon threads: a lock that waits for itself must fail this test, not hang the session
    threads = [threading.Thread(target=holder, daemon=True), threading.Thread(target=waiter, daemon=True)]
    for thread in threads:
        thread.start()
    holding.wait(10)
    time.sleep(0.3)
    assert events == ["holder in"]  # the other thread waits
    release.set()
    for thread in threads:
        thread.join(10)
    assert events == ["holder in", "holder out", "waiter in"]
