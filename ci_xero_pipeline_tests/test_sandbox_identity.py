"""The sandbox's identity service, over real HTTP: PKCE authorization codes through requests-oauthlib,
rotating refresh tokens, expiry, revocation, connections and client credentials."""

from __future__ import annotations

import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from oauthlib.oauth2 import OAuth2Error
from requests_oauthlib import OAuth2Session

from ci_xero_pipeline.sandbox.server import SandboxClient, SandboxConfig, SandboxOrganisation, SandboxServer
from ci_xero_pipeline.xero.oauth import consent_like_a_browser

SPECS = Path(__file__).resolve().parents[2] / "shared" / "xero-openapi"
REDIRECT_URI = "http://localhost:8765/callback"
PUBLIC_CLIENT = "sandbox-public"
SECRET_CLIENT = "sandbox-secret"
SECRET = "s3cret-value"
SCOPES = ["offline_access", "accounting.invoices", "accounting.contacts", "accounting.settings"]


@pytest.fixture(autouse=True)
def _loopback_http(monkeypatch):
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")


@pytest.fixture
def start(tmp_path):
    servers: list[SandboxServer] = []

    def start(organisations=None, db_name="sandbox.sqlite", **settings) -> SandboxServer:
        config = SandboxConfig(
            db_path=str(tmp_path / db_name),
            organisations=organisations or [SandboxOrganisation("Test Retail Ltd", "TEST1")],
            clients=[
                SandboxClient(PUBLIC_CLIENT, None, [REDIRECT_URI]),
                SandboxClient(SECRET_CLIENT, SECRET, [REDIRECT_URI]),
            ],
            **settings,
        )
        server = SandboxServer(config).__enter__()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.__exit__(None, None, None)


@pytest.fixture(scope="module")
def identity_spec():
    if not (SPECS / "xero-identity.yaml").is_file():
        pytest.skip(f"Xero's OpenAPI specs are not at {SPECS}: nothing to validate against")
    from openapi_core import Config, OpenAPI

    return OpenAPI.from_file_path(str(SPECS / "xero-identity.yaml"), config=Config(spec_validator_cls=None))


def urls(server: SandboxServer) -> dict[str, str]:
    base = server.base_url
    return {
        "authorize": f"{base}/identity/connect/authorize",
        "token": f"{base}/identity/connect/token",
        "revoke": f"{base}/identity/connect/revocation",
        "connections": f"{base}/connections",
    }


def public_session(state: str | None = None) -> OAuth2Session:
    return OAuth2Session(PUBLIC_CLIENT, redirect_uri=REDIRECT_URI, scope=SCOPES, state=state, pkce="S256")


def connect(server: SandboxServer) -> tuple[OAuth2Session, dict]:
    session = public_session()
    url, _ = session.authorization_url(urls(server)["authorize"])
    callback = consent_like_a_browser(url)
    token = session.fetch_token(urls(server)["token"], authorization_response=callback, include_client_id=True)
    return session, token


def refresh(server: SandboxServer, refresh_token: str) -> requests.Response:
    return requests.post(
        urls(server)["token"],
        data={"grant_type": "refresh_token", "refresh_token": refresh_token, "client_id": PUBLIC_CLIENT},
        timeout=10,
    )


def get_connections(server: SandboxServer, access_token: str) -> requests.Response:
    return requests.get(urls(server)["connections"], headers={"Authorization": f"Bearer {access_token}"}, timeout=10)


def organisation(server: SandboxServer, access_token: str, tenant_id: str) -> requests.Response:
    return requests.get(
        f"{server.base_url}/api.xro/2.0/Organisation",
        headers={"Authorization": f"Bearer {access_token}", "xero-tenant-id": tenant_id, "Accept": "application/json"},
        timeout=10,
    )


def test_pkce_flow_gives_tokens_and_state_round_trips(start, identity_spec):
    server = start()
    session = public_session(state="my-state-123")
    url, state = session.authorization_url(urls(server)["authorize"])
    assert state == "my-state-123"
    callback = consent_like_a_browser(url)
    query = parse_qs(urlsplit(callback).query)
    assert callback.startswith(REDIRECT_URI)
    assert query["state"] == ["my-state-123"] and query["code"]
    token = session.fetch_token(urls(server)["token"], authorization_response=callback, include_client_id=True)
    assert token["token_type"] == "Bearer"
    assert token["expires_in"] == 1800
    assert token["refresh_token"] and token["access_token"]
    assert set(token["scope"]) == set(SCOPES)

    answer = get_connections(server, token["access_token"])
    assert answer.status_code == 200
    _validate_identity(identity_spec, answer)
    assert [c["tenantName"] for c in answer.json()] == ["Test Retail Ltd"]
    assert organisation(server, token["access_token"], answer.json()[0]["tenantId"]).status_code == 200


def test_state_mismatch_is_caught_by_the_client(start):
    server = start()
    session = public_session(state="expected")
    url, _ = session.authorization_url(urls(server)["authorize"])
    callback = consent_like_a_browser(url.replace("state=expected", "state=forged"))
    with pytest.raises(OAuth2Error):
        session.fetch_token(urls(server)["token"], authorization_response=callback, include_client_id=True)


def test_wrong_code_verifier_is_rejected_and_a_code_is_single_use(start):
    server = start()
    session = public_session()
    url, _ = session.authorization_url(urls(server)["authorize"])
    code = parse_qs(urlsplit(consent_like_a_browser(url)).query)["code"][0]
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI, "client_id": PUBLIC_CLIENT}
    wrong = requests.post(urls(server)["token"], data={**form, "code_verifier": "x" * 50}, timeout=10)
    assert wrong.status_code == 400 and wrong.json()["error"] == "invalid_grant"
    missing = requests.post(urls(server)["token"], data=form, timeout=10)
    assert missing.json()["error"] == "invalid_grant"
    right = requests.post(urls(server)["token"], data={**form, "code_verifier": session._code_verifier}, timeout=10)
    assert right.status_code == 200, right.text
    again = requests.post(urls(server)["token"], data={**form, "code_verifier": session._code_verifier}, timeout=10)
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"


def test_authorize_refuses_bad_requests(start):
    server = start()
    authorize = urls(server)["authorize"]
    base = {"response_type": "code", "client_id": PUBLIC_CLIENT, "redirect_uri": REDIRECT_URI, "scope": "offline_access",
            "state": "s", "code_challenge": "abc" * 15, "code_challenge_method": "S256"}

    unknown_client = requests.get(authorize, params={**base, "client_id": "nobody"}, allow_redirects=False, timeout=10)
    assert unknown_client.status_code == 400 and "location" not in unknown_client.headers
    bad_redirect = requests.get(authorize, params={**base, "redirect_uri": "http://evil.example/cb"}, allow_redirects=False, timeout=10)
    assert bad_redirect.status_code == 400 and "location" not in bad_redirect.headers

    no_pkce = {k: v for k, v in base.items() if not k.startswith("code_challenge")}
    answer = requests.get(authorize, params=no_pkce, allow_redirects=False, timeout=10)
    assert answer.status_code == 302
    assert parse_qs(urlsplit(answer.headers["location"]).query)["error"] == ["invalid_request"]

    answer = requests.get(authorize, params={**base, "scope": "offline_access accounting.everything"}, allow_redirects=False, timeout=10)
    assert parse_qs(urlsplit(answer.headers["location"]).query)["error"] == ["invalid_scope"]


def test_refresh_rotates_and_a_spent_token_is_invalid_grant(start, identity_spec):
    server = start()
    _, token = connect(server)
    first = refresh(server, token["refresh_token"])
    assert first.status_code == 200
    rotated = first.json()
    assert rotated["refresh_token"] != token["refresh_token"]
    assert rotated["access_token"] != token["access_token"]

    reused = refresh(server, token["refresh_token"])
    assert reused.status_code == 400 and reused.json()["error"] == "invalid_grant"
    # reuse of a spent token revokes the whole grant: the rotated token dies too
    assert refresh(server, rotated["refresh_token"]).json()["error"] == "invalid_grant"
    assert get_connections(server, rotated["access_token"]).status_code == 401


def test_refresh_grace_period_tolerates_the_previous_token(start):
    server = start(refresh_grace_seconds=60)
    _, token = connect(server)
    assert refresh(server, token["refresh_token"]).status_code == 200
    again = refresh(server, token["refresh_token"])
    assert again.status_code == 200
    assert refresh(server, again.json()["refresh_token"]).status_code == 200


def test_expired_access_token_is_401_and_refresh_brings_it_back(start):
    server = start(access_token_seconds=1)
    _, token = connect(server)
    tenant = get_connections(server, token["access_token"]).json()[0]["tenantId"]
    time.sleep(1.1)
    answer = organisation(server, token["access_token"], tenant)
    assert answer.status_code == 401
    assert answer.json()["Detail"] == "AuthenticationUnsuccessful" and answer.json()["Title"] == "Unauthorized"
    fresh = refresh(server, token["refresh_token"]).json()
    assert organisation(server, fresh["access_token"], tenant).status_code == 200


def test_requests_oauthlib_refreshes_automatically(start):
    server = start(access_token_seconds=1)
    _, token = connect(server)
    saved = []
    session = OAuth2Session(
        PUBLIC_CLIENT, token=token, auto_refresh_url=urls(server)["token"],
        auto_refresh_kwargs={"client_id": PUBLIC_CLIENT}, token_updater=saved.append,
    )
    time.sleep(2.1)  # oauthlib rounds expires_at to whole seconds
    assert session.get(urls(server)["connections"], timeout=10).status_code == 200
    assert saved and saved[0]["refresh_token"] != token["refresh_token"]


def test_revocation_kills_tokens_and_connections(start):
    server = start()
    _, token = connect(server)
    assert get_connections(server, token["access_token"]).status_code == 200
    answer = requests.post(urls(server)["revoke"], data={"token": token["refresh_token"], "client_id": PUBLIC_CLIENT}, timeout=10)
    assert answer.status_code == 200
    assert get_connections(server, token["access_token"]).status_code == 401
    assert refresh(server, token["refresh_token"]).json()["error"] == "invalid_grant"
    rows = server.store.query("SELECT COUNT(*) AS n FROM connections")
    assert rows[0]["n"] == 0


def test_connections_list_both_organisations_and_can_be_deleted(start, identity_spec):
    server = start([SandboxOrganisation("Retail One Ltd", "ONE"), SandboxOrganisation("Retail Two Ltd", "TWO")])
    _, token = connect(server)
    answer = get_connections(server, token["access_token"])
    _validate_identity(identity_spec, answer)
    found = answer.json()
    assert [c["tenantName"] for c in found] == ["Retail One Ltd", "Retail Two Ltd"]
    assert {c["tenantType"] for c in found} == {"ORGANISATION"}
    assert len({c["authEventId"] for c in found}) == 1
    headers = {"Authorization": f"Bearer {token['access_token']}"}
    deleted = requests.delete(f"{urls(server)['connections']}/{found[0]['id']}", headers=headers, timeout=10)
    assert deleted.status_code == 204
    assert [c["tenantName"] for c in get_connections(server, token["access_token"]).json()] == ["Retail Two Ltd"]
    # the disconnected organisation now refuses this token
    assert organisation(server, token["access_token"], found[0]["tenantId"]).status_code == 403
    assert organisation(server, token["access_token"], found[1]["tenantId"]).status_code == 200


def test_client_credentials_for_a_confidential_client(start):
    server = start([SandboxOrganisation("Retail One Ltd", "ONE"), SandboxOrganisation("Retail Two Ltd", "TWO")])
    answer = requests.post(
        urls(server)["token"], data={"grant_type": "client_credentials"}, auth=(SECRET_CLIENT, SECRET), timeout=10
    )
    assert answer.status_code == 200, answer.text
    token = answer.json()
    assert "refresh_token" not in token and token["token_type"] == "Bearer"
    assert [c["tenantName"] for c in get_connections(server, token["access_token"]).json()] == ["Retail One Ltd"]

    wrong_secret = requests.post(urls(server)["token"], data={"grant_type": "client_credentials"}, auth=(SECRET_CLIENT, "nope"), timeout=10)
    assert wrong_secret.status_code == 401 and wrong_secret.json()["error"] == "invalid_client"
    public = requests.post(urls(server)["token"], data={"grant_type": "client_credentials", "client_id": PUBLIC_CLIENT}, timeout=10)
    assert public.status_code == 400 and public.json()["error"] == "unauthorized_client"


def test_confidential_client_code_flow_with_basic_auth(start):
    server = start()
    session = OAuth2Session(SECRET_CLIENT, redirect_uri=REDIRECT_URI, scope=SCOPES, pkce="S256")
    url, _ = session.authorization_url(urls(server)["authorize"])
    token = session.fetch_token(urls(server)["token"], authorization_response=consent_like_a_browser(url), client_secret=SECRET)
    rotated = requests.post(
        urls(server)["token"], data={"grant_type": "refresh_token", "refresh_token": token["refresh_token"]},
        auth=(SECRET_CLIENT, SECRET), timeout=10,
    )
    assert rotated.status_code == 200
    stolen = requests.post(
        urls(server)["token"], data={"grant_type": "refresh_token", "refresh_token": rotated.json()["refresh_token"],
                                     "client_id": PUBLIC_CLIENT}, timeout=10,
    )
    assert stolen.json()["error"] == "invalid_grant"


def test_restart_keeps_tokens_connections_and_organisations(start, tmp_path):
    organisations = [SandboxOrganisation("Retail One Ltd", "ONE")]
    first = start(organisations, db_name="persist.sqlite")
    _, token = connect(first)
    tenant = get_connections(first, token["access_token"]).json()[0]["tenantId"]
    first.__exit__(None, None, None)

    second = start(organisations, db_name="persist.sqlite")
    assert second.store.query("SELECT COUNT(*) AS n FROM organisations")[0]["n"] == 1
    assert second.store.query("SELECT COUNT(*) AS n FROM accounts")[0]["n"] == first.store.query("SELECT COUNT(*) AS n FROM accounts")[0]["n"]
    fresh = refresh(second, token["refresh_token"])
    assert fresh.status_code == 200
    assert get_connections(second, fresh.json()["access_token"]).json()[0]["tenantId"] == tenant


def test_tokens_are_not_stored_in_clear(start):
    server = start()
    _, token = connect(server)
    raw = Path(server.config.db_path).read_bytes() + Path(server.config.db_path + "-wal").read_bytes()
    assert token["access_token"].encode() not in raw
    assert token["refresh_token"].encode() not in raw


def _validate_identity(spec, answer: requests.Response) -> None:
    from openapi_core.contrib.requests import RequestsOpenAPIRequest, RequestsOpenAPIResponse

    request = answer.request.copy()
    path = urlsplit(request.url).path.replace("/connections", "/Connections")
    request.url = f"https://api.xero.com{path}"
    spec.validate_response(RequestsOpenAPIRequest(request), RequestsOpenAPIResponse(answer))
