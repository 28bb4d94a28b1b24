"""The OAuth 2.0 connection over its whole life, against the sandbox (which enforces PKCE, single-use
refresh tokens with reuse detection, expiry and revocation like Xero): connect from the command line,
encrypted storage, refresh races between real processes, expiry mid-run, revocation, disconnect,
the expiry warning and the keep-alive, and no secret anywhere a person or a log could see it."""

from __future__ import annotations

import json
import multiprocessing
import os
import socket
import stat
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
import requests
from dagster import DagsterInstance, SkipReason, build_sensor_context
from dagster._core.remote_representation.external_data import RepositorySnap
from dagster._serdes import serialize_value

from ci_xero_pipeline.code_location import build_definitions
from ci_xero_pipeline.resources import XeroResource
from ci_xero_pipeline.sandbox.server import SandboxClient, SandboxOrganisation
from ci_xero_pipeline.settings import load_settings
from ci_xero_pipeline.xero.oauth import ReconnectRequired, authorization_session, consent_like_a_browser, exchange_code
from ci_xero_pipeline.xero.tokens import TokenStoreError

from .conftest import CLIENT_ID, DEMO_DAYS, DEMO_END_DAY
from .pipeline_helpers import connect_site, outcome_counts, run, xero_client
from .race_worker import refresh_and_call

FIRST_DAY = DEMO_END_DAY - timedelta(days=DEMO_DAYS - 1)
SECRET = "s3cret-for-the-sandbox-app-0d9f"
TOKEN_KEY_VAR = "CI_XERO_TOKEN_KEY"


@pytest.fixture(autouse=True)
def token_key(monkeypatch):
    """An encryption key from the environment, as a hosted deployment has it."""
    from ci_xero_pipeline.xero.tokens import new_key

    key = new_key()
    monkeypatch.setenv(TOKEN_KEY_VAR, key)
    return key


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def store_of(site: Path):
    return XeroResource.from_settings(load_settings(site)).token_store()


def expire_access_tokens(sandbox) -> None:
    """Xero's side of an access token reaching its 30 minutes."""
    sandbox.store.execute("UPDATE access_tokens SET expires_ms = 0")


def expire_stored_token(site: Path) -> None:
    """Our side: the stored access token says it has expired, so the next user must refresh."""
    store = store_of(site)
    with store.locked():
        connection = store.require()
        connection.token["expires_at"] = time.time() - 5
        store.save(connection)


# -- connect -------------------------------------------------------------------------------------------

def test_connect_from_the_command_line_stores_an_encrypted_token_for_the_chosen_organisation(
    sandbox_factory, demo_ci_url, make_site, token_key
):
    redirect = f"http://localhost:{free_port()}/callback"
    sandbox = sandbox_factory(
        SandboxOrganisation(name="Alpha Retail Ltd", short_code="ALPHA"),
        SandboxOrganisation(name="Beta Retail Ltd", short_code="BETA"),
        clients=[SandboxClient(client_id=CLIENT_ID, client_secret=None, redirect_uris=[redirect])],
    )
    site = make_site(sandbox, demo_ci_url, {"xero": {"redirect_uri": redirect}}, tenant=None)
    command = [sys.executable, "-m", "ci_xero_pipeline.cli", "--settings", str(site), "connect", "--no-browser",
               "--tenant", "Beta Retail Ltd", "--timeout", "60"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, TOKEN_KEY_VAR: token_key})
    try:
        url = next(line.strip() for line in process.stdout if line.startswith("http"))
        callback = consent_like_a_browser(url)  # the person clicks "Allow" on the consent page …
        assert callback.startswith(redirect)
        landing = requests.get(callback, timeout=30)  # … and the browser follows Xero's redirect
        assert landing.status_code == 200 and "Connected" in landing.text
        out, err = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 0, err
    assert "Beta Retail Ltd" in out

    token_file = load_settings(site).token_path
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    raw = token_file.read_bytes()
    with pytest.raises(ValueError):
        json.loads(raw)
    connection = store_of(site).require()
    assert connection.tenant_name == "Beta Retail Ltd"
    assert connection.token["access_token"].encode() not in raw and connection.token["refresh_token"].encode() not in raw

    assert run(site, DEMO_END_DAY, DEMO_END_DAY).success
    written = {
        organisation.short_code: sum(n for (method, _), n in sandbox.store.call_counts(organisation.resolved_tenant_id).items()
                                     if method in ("PUT", "POST"))
        for organisation in sandbox.config.organisations
    }
    assert written["BETA"] > 0 and written["ALPHA"] == 0


def test_a_callback_with_another_state_is_refused(sandbox):
    from oauthlib.oauth2.rfc6749.errors import MismatchingStateError

    from ci_xero_pipeline.xero.oauth import OAuthApp

    base = sandbox.base_url.rstrip("/")
    app = OAuthApp(CLIENT_ID, None, f"{base}/identity/connect/authorize", f"{base}/identity/connect/token",
                   f"{base}/connections", "http://localhost:8765/callback", ("offline_access", "accounting.settings"))
    session = authorization_session(app)
    url, state = session.authorization_url(app.authorize_url)
    callback = consent_like_a_browser(url)
    forged = callback.replace(state, "someone-elses-state")
    with pytest.raises(MismatchingStateError):
        exchange_code(app, session, forged)


def test_a_token_store_read_with_another_key_says_what_to_do(sandbox, demo_ci_url, make_site, monkeypatch):
    from ci_xero_pipeline.xero.tokens import new_key

    site = make_site(sandbox, demo_ci_url)
    connect_site(site)
    token = store_of(site).require().token["refresh_token"]
    monkeypatch.setenv(TOKEN_KEY_VAR, new_key())
    with pytest.raises(TokenStoreError) as refused:
        store_of(site).require()
    assert "ci-xero connect" in str(refused.value) and token not in str(refused.value)


# -- refresh races between real processes ------------------------------------------------------------

def race(site: Path, rounds: int) -> None:
    """Two processes find the same expired token at the same moment, `rounds` times over."""
    # forkserver: children fork from a clean, preloaded process (not from this one with its sandbox threads)
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["ci_xero_pipeline.resources", "ci_xero_pipeline_tests.race_worker"])
    manager = context.Manager()
    outcomes = manager.dict()
    for attempt in range(rounds):
        expire_stored_token(site)
        barrier = context.Barrier(2)
        outcomes.clear()
        workers = [context.Process(target=refresh_and_call, args=(str(site), dict(os.environ), barrier, outcomes, n)) for n in (0, 1)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(60)
        assert sorted(outcomes.values()) == ["ok:Test Retail Ltd"] * 2, (attempt, dict(outcomes))
        assert xero_client(site).organisation()["Name"] == "Test Retail Ltd", attempt  # the store still works
    manager.shutdown()


def test_fifty_refresh_races_between_two_processes_never_lose_the_connection(sandbox_factory, demo_ci_url, make_site):
    sandbox = sandbox_factory(minute_limit=10_000)  # 150 calls in seconds: the race, not the rate limit, is tested
    site = make_site(sandbox, demo_ci_url)
    connect_site(site)
    before = store_of(site).require().refreshed_at
    race(site, rounds=50)
    after = store_of(site).require()
    assert after.refreshed_at > before
    # each round refreshed exactly once: a second refresh with the spent token would have killed the grant
    grants = sandbox.store.query("SELECT revoked_ms FROM grants")
    assert [row["revoked_ms"] for row in grants] == [None]


@pytest.mark.postgres
def test_refresh_races_with_the_sql_token_store_on_postgresql(sandbox, demo_ci_url, make_site):
    url = os.environ.get("CI_XERO_TEST_POSTGRES_URL")
    if not url:
        pytest.skip("set CI_XERO_TEST_POSTGRES_URL to test the SQL token store on PostgreSQL")
    site_name = f"race-{os.getpid()}-{time.time_ns()}"
    site = make_site(sandbox, demo_ci_url, {"site_name": site_name, "xero": {"token_store": "sql", "token_database_url": url}})
    connect_site(site)
    try:
        race(site, rounds=10)
        assert not load_settings(site).token_path.exists()  # nothing went to the file store
    finally:
        store_of(site).delete()


def revoke_in_xero(sandbox, refresh_token: str, secret: str | None = None) -> None:
    """What removing the app in Xero's UI does: the grant dies, with its tokens and connections."""
    data = {"token": refresh_token}
    if secret is None:
        data["client_id"] = CLIENT_ID
    answer = requests.post(sandbox.base_url.rstrip("/") + "/identity/connect/revocation", data=data,
                           auth=(CLIENT_ID, secret) if secret else None, timeout=30)
    assert answer.status_code == 200


# -- during runs ---------------------------------------------------------------------------------------

@pytest.fixture
def sent(monkeypatch) -> list[tuple[requests.PreparedRequest, requests.Response]]:
    """Every request sent through requests in this process, with its answer."""
    exchanges: list[tuple[requests.PreparedRequest, requests.Response]] = []
    original = requests.Session.send

    def recording(self, request, **kwargs):
        answer = original(self, request, **kwargs)
        exchanges.append((request, answer))
        return answer

    monkeypatch.setattr(requests.Session, "send", recording)
    return exchanges


def token_calls(exchanges, grant: str) -> int:
    return sum(1 for request, _ in exchanges if request.url.endswith("/connect/token") and f"grant_type={grant}" in (request.body or ""))


def test_an_access_token_expiring_mid_run_is_refreshed_without_failing_the_run(sandbox, demo_ci_url, make_site, sent, monkeypatch):
    site = make_site(sandbox, demo_ci_url, {"eretailer": {"mode": "detail"}})
    connect_site(site)
    original = requests.Session.send
    accounting_calls = []

    def expire_after_third_call(self, request, **kwargs):
        if "/api.xro/2.0/" in request.url:
            accounting_calls.append(request.url)
            if len(accounting_calls) == 3:
                expire_access_tokens(sandbox)  # Xero's clock passes 30 minutes here
        return original(self, request, **kwargs)

    monkeypatch.setattr(requests.Session, "send", expire_after_third_call)
    result = run(site, FIRST_DAY, DEMO_END_DAY)
    monkeypatch.undo()
    assert result.success
    assert set(result.results["outcome"]) == {"posted"}
    assert len(accounting_calls) > 3
    # exactly one refresh: the 401 answer, one refresh_token grant, the call again
    refreshed = sandbox.store.query("SELECT COUNT(*) AS n FROM refresh_tokens WHERE spent_ms IS NOT NULL")[0]["n"]
    assert refreshed == 1


def test_a_revoked_connection_fails_the_run_once_with_the_reconnect_message(sandbox, demo_ci_url, make_site, sent):
    site = make_site(sandbox, demo_ci_url)
    connect_site(site)
    refresh_token = store_of(site).require().token["refresh_token"]
    revoke_in_xero(sandbox, refresh_token)  # the organisation's adviser removes the app in Xero
    instance = DagsterInstance.ephemeral()
    sent.clear()

    result = run(site, DEMO_END_DAY, DEMO_END_DAY, instance)

    assert not result.success
    failures = [
        (event.dagster_event.event_specific_data.error, event.dagster_event.step_key)
        for event in instance.all_logs(result.run_id)
        if event.dagster_event and event.dagster_event.is_step_failure
    ]
    assert len(failures) == 1 and failures[0][1] == "posted_eretailer"
    message = json.dumps(serialize_value(failures[0][0]))
    assert "ci-xero connect" in message and "invalid_grant" in message
    assert refresh_token not in message
    assert token_calls(sent, "refresh_token") == 1  # tried once, never in a loop
    assert not any(e.dagster_event and e.dagster_event.event_type_value == "STEP_UP_FOR_RETRY" for e in instance.all_logs(result.run_id))


# -- disconnect, status, expiry warning, keep-alive -------------------------------------------------------

def test_disconnect_revokes_at_xero_and_forgets_the_tokens(sandbox, demo_ci_url, make_site):
    from ci_xero_pipeline.cli import main

    site = make_site(sandbox, demo_ci_url)
    connect_site(site)
    old = store_of(site).require()
    assert main(["--settings", str(site), "disconnect"]) == 0
    assert store_of(site).load() is None
    refused = requests.post(sandbox.base_url.rstrip("/") + "/identity/connect/token",
                            data={"grant_type": "refresh_token", "refresh_token": old.token["refresh_token"], "client_id": CLIENT_ID})
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_grant"
    gone = requests.get(sandbox.base_url.rstrip("/") + "/connections",
                        headers={"Authorization": f"Bearer {old.token['access_token']}"})
    assert gone.status_code == 401
    with pytest.raises(Exception) as not_connected:
        xero_client(site)
    assert "ci-xero connect" in str(not_connected.value)


@pytest.mark.parametrize("store_kind", ["file", "sql"])
def test_disconnect_works_with_an_expired_access_token(store_kind, sandbox, demo_ci_url, make_site, token_key, tmp_path):
    """disconnect holds the store's lock and needs a fresh access token; the refresh takes the same lock
    again (it used to wait for itself for ever). Run as a real command, with a deadline."""
    changes = {} if store_kind == "file" else {
        "xero": {"token_store": "sql", "token_database_url": f"sqlite:///{tmp_path / 'connections.sqlite'}"}
    }
    site = make_site(sandbox, demo_ci_url, changes)
    connect_site(site)
    expire_stored_token(site)
    expire_access_tokens(sandbox)  # Xero agrees: the access token is dead
    old = store_of(site).require()
    command = [sys.executable, "-m", "ci_xero_pipeline.cli", "--settings", str(site), "disconnect"]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=60, env={**os.environ, TOKEN_KEY_VAR: token_key})
    except subprocess.TimeoutExpired:
        pytest.fail("`ci-xero disconnect` with an expired access token hung (waiting for its own lock)")
    assert done.returncode == 0, done.stderr
    assert "Disconnected from 'Test Retail Ltd'" in done.stdout
    assert store_of(site).load() is None
    assert [row["revoked_ms"] is not None for row in sandbox.store.query("SELECT revoked_ms FROM grants")] == [True]
    assert sandbox.store.query("SELECT COUNT(*) AS n FROM connections")[0]["n"] == 0
    assert old.token["refresh_token"] not in done.stdout + done.stderr
    if store_kind == "file":
        assert not load_settings(site).token_path.exists()


def test_disconnect_forgets_a_refused_connection_and_keeps_one_xero_did_not_confirm_revoking(sandbox, demo_ci_url, make_site, capsys):
    import responses

    from ci_xero_pipeline.cli import main

    site = make_site(sandbox, demo_ci_url)
    connect_site(site)
    revoke_url = sandbox.base_url.rstrip("/") + "/identity/connect/revocation"
    with responses.RequestsMock() as xero:  # Xero's revocation endpoint is down
        xero.add_passthru(sandbox.base_url)
        xero.add(responses.POST, revoke_url, status=503, json={"error": "temporarily_unavailable"})
        assert main(["--settings", str(site), "disconnect"]) == 3
    assert "did not confirm" in capsys.readouterr().err
    assert store_of(site).load() is not None  # kept: disconnect can be run again

    revoke_in_xero(sandbox, store_of(site).require().token["refresh_token"])
    expire_stored_token(site)
    with pytest.raises(ReconnectRequired):
        xero_client(site)  # Xero refuses the refresh; the refusal is recorded
    assert main(["--settings", str(site), "disconnect"]) == 0
    assert store_of(site).load() is None


def test_status_tells_the_organisation_and_expiry_but_never_a_token(sandbox, demo_ci_url, make_site, capsys):
    from ci_xero_pipeline.cli import main

    site = make_site(sandbox, demo_ci_url)
    connect_site(site)
    token = store_of(site).require().token
    assert main(["--settings", str(site), "status"]) == 0
    shown = capsys.readouterr().out
    assert "Test Retail Ltd" in shown and "Refresh token:      expires" in shown
    assert token["access_token"] not in shown and token["refresh_token"] not in shown


def test_expiry_sensor_warns_before_the_refresh_token_dies_and_keep_alive_refreshes(sandbox, demo_ci_url, make_site):
    site = make_site(sandbox, demo_ci_url, {"xero": {"refresh_warning_days": 14, "keep_alive_time": "03:30"}})
    connect_site(site)
    definitions = build_definitions(site)
    sensor = definitions.resolve_sensor_def("xero_connection_expiry")
    resource = XeroResource.from_settings(load_settings(site))

    def tick():
        return sensor(build_sensor_context(resources={"xero": resource}))

    healthy = tick()
    assert isinstance(healthy, SkipReason) and "healthy" in healthy.skip_message

    store = store_of(site)
    with store.locked():
        connection = store.require()
        connection.refreshed_at = time.time() - 50 * 86_400  # idle for 50 days: 10 left
        store.save(connection)
    warned = tick()
    assert warned.skip_message.startswith("WARNING") and "ci-xero connect" in warned.skip_message
    assert "expires in 10.0 days" in warned.skip_message

    keep_alive = definitions.get_job_def("xero_keep_alive")
    assert definitions.resolve_schedule_def("xero_keep_alive_daily").cron_schedule == "30 3 * * *"
    assert keep_alive.execute_in_process(resources={"xero": resource}).success
    assert "healthy" in tick().skip_message
    assert xero_client(site).organisation()["Name"] == "Test Retail Ltd"


# -- secrets -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["summary", "detail"])
def test_no_secret_or_token_reaches_logs_metadata_or_output(mode, sandbox_factory, demo_ci_url, make_site, sent, monkeypatch, capfd, caplog):
    sandbox = sandbox_factory(
        clients=[SandboxClient(client_id=CLIENT_ID, client_secret=SECRET, redirect_uris=["http://localhost:8765/callback"])]
    )
    monkeypatch.setenv("XERO_CLIENT_SECRET", SECRET)
    site = make_site(sandbox, demo_ci_url, {"eretailer": {"mode": mode}})
    connect_site(site)
    expire_stored_token(site)  # the run starts with a refresh, so fresh tokens pass through it
    instance = DagsterInstance.ephemeral()
    caplog.set_level("DEBUG")

    result = run(site, FIRST_DAY, DEMO_END_DAY, instance)
    assert result.success and outcome_counts(result.results)
    revoke_in_xero(sandbox, store_of(site).require().token["refresh_token"], SECRET)
    expire_stored_token(site)
    with pytest.raises(ReconnectRequired) as dead:  # the error a dead connection raises, too
        xero_client(site)

    secrets_seen = {SECRET}
    for request, answer in sent:
        if request.url.endswith("/connect/token") and answer.ok:
            issued = answer.json()
            secrets_seen.update(v for k, v in issued.items() if k in ("access_token", "refresh_token"))
    assert len(secrets_seen) >= 5  # the secret and two pairs of tokens at least

    events = [json.dumps(serialize_value(event)) for event in instance.all_logs(result.run_id)]
    materialisations = [
        json.dumps(serialize_value(record.asset_materialization))
        for key in instance.get_asset_keys()
        for record in instance.fetch_materializations(key, limit=1000).records
    ]
    captured = capfd.readouterr()
    haystacks = {
        "event log": "\n".join(events),
        "asset metadata": "\n".join(materialisations),
        "stdout": captured.out,
        "stderr": captured.err,
        "python logs": caplog.text,
        "error": str(dead.value) + repr(dead.value),
        "resource config": json.dumps(serialize_value(instance.get_run_by_id(result.run_id))),
        "repository snapshot": serialize_value(RepositorySnap.from_def(build_definitions(site).get_repository_def())),
        # every file the pipeline wrote: the (encrypted) token store, the ledger, asset values, reports
        "files under data/": "\n".join(
            path.read_bytes().decode("latin-1") for path in load_settings(site).data_path.rglob("*") if path.is_file()
        ),
    }
    assert len(haystacks["event log"]) > 10_000
    for name, text in haystacks.items():
        leaked = [secret[:6] + "…" for secret in secrets_seen if secret in text]
        assert not leaked, f"{name} shows {leaked}"
