"""Sensors that watch for months: the change sensor misses nothing (days posted per the ledger, the
night the clocks go back, a CI transaction committed after a tick but stamped before it, a run it asked
for that failed), and the expiry sensor tells the truth about a refused connection.

Real runs post into the sandbox and are recorded in a persistent Dagster instance (a temporary
DAGSTER_HOME made with the repository's dagster.yaml); the sensors' ticks are evaluated with that
instance, and the runs they ask for are started with the tags Dagster's sensor daemon gives them."""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import requests
import sqlalchemy as sa
from dagster import AssetKey, AssetRecordsFilter, DagsterInstance, DagsterRunStatus, SkipReason, build_sensor_context
from dagster._core.storage.tags import RUN_KEY_TAG, SENSOR_NAME_TAG

from ci_xero_pipeline import sensors
from ci_xero_pipeline.ci.extract import engine_for
from ci_xero_pipeline.ci.tables import build_ci_tables
from ci_xero_pipeline.code_location import build_definitions
from ci_xero_pipeline.resources import XeroResource
from ci_xero_pipeline.runner import ensure_dagster_home, run_days
from ci_xero_pipeline.sandbox.faults import FaultPlan
from ci_xero_pipeline.settings import load_settings
from ci_xero_pipeline.xero.oauth import ReconnectRequired

from .conftest import CLIENT_ID, DEMO_END_DAY
from .pipeline_helpers import connect_site, xero_client

NZ = ZoneInfo("Pacific/Auckland")
TABLES = build_ci_tables()
DAY1, DAY2 = DEMO_END_DAY - timedelta(days=1), DEMO_END_DAY
# NZ daylight saving ends on the first Sunday of April: at 03:00 NZDT the clocks go back to 02:00 NZST
DST_NIGHT = datetime(2027, 4, 4)
SPOIL_ONE_INVOICE = FaultPlan(script=("validation",), methods=("PUT",), collections=("Invoices",))


@pytest.fixture
def instance(tmp_path: Path):
    instance = DagsterInstance.from_config(str(ensure_dagster_home(tmp_path / "dagster_home")))
    yield instance
    instance.dispose()


@pytest.fixture
def site(sandbox, ci_copy, make_site) -> Path:
    path = make_site(sandbox, ci_copy)  # Summary mode: one invoice a day
    connect_site(path)
    return path


class ChangeSensor:
    def __init__(self, site: Path, instance: DagsterInstance):
        self.definitions = build_definitions(site)
        self.sensor = self.definitions.resolve_sensor_def(sensors.CHANGE_SENSOR_NAME)
        self.instance = instance
        self.cursor: str | None = None
        self.ci_url = load_settings(site).resolved_ci_database_url
        self.resources = {key: self.definitions.resources[key] for key in ("ci", "xero")}

    def tick(self) -> list:
        """One evaluation, as the daemon does it (the cursor carries on); the runs it asks for."""
        result = self.sensor(build_sensor_context(instance=self.instance, cursor=self.cursor, resources=self.resources))
        if isinstance(result, SkipReason):  # the cursor stays
            return []
        self.cursor = result.cursor
        return list(result.run_requests or [])

    def launch(self, request) -> DagsterRunStatus:
        """Start a requested run with the tags Dagster's sensor daemon gives it."""
        job = self.definitions.resolve_job_def("eretailer_to_xero")
        outcome = job.execute_in_process(
            instance=self.instance, partition_key=request.partition_key, raise_on_error=False,
            tags={**request.tags, SENSOR_NAME_TAG: self.sensor.name, RUN_KEY_TAG: request.run_key},
        )
        return self.instance.get_run_by_id(outcome.run_id).status


def stamp(ci_url: str, day, updated_at: datetime) -> str:
    """CI voids one FINAL E-Retailer invoice of the day, stamped `updated_at` (NZ wall time, as CI keeps it)."""
    invoices = TABLES.sales_invoices
    with engine_for(ci_url).begin() as connection:
        number = connection.execute(
            sa.select(invoices.c.invoice_no).where(
                invoices.c.business_date == day, invoices.c.status == "FINAL", invoices.c.source == "ERETAILER",
                invoices.c.doc_type == "INVOICE",
            ).order_by(invoices.c.invoice_no).limit(1)
        ).scalar_one()
        connection.execute(sa.update(invoices).where(invoices.c.invoice_no == number)
                           .values(status="VOID", updated_at=updated_at))
    return number


def nz_now() -> datetime:
    return datetime.now(NZ).replace(tzinfo=None)


def instant(wall: datetime, fold: int = 0) -> float:
    return wall.replace(tzinfo=NZ, fold=fold).timestamp()


def days_of(run_requests) -> list[str]:
    return [r.partition_key for r in run_requests]


def ledger_of(site: Path):
    xero = XeroResource.from_settings(load_settings(site))
    return xero.ledger(xero.token_store().load().tenant_id)


def test_a_day_posted_by_a_run_that_failed_on_another_day_is_watched(sandbox, site, instance):
    changes = ChangeSensor(site, instance)
    sandbox.faults.set(SPOIL_ONE_INVOICE)  # one run of two days: Xero refuses one invoice, saves the other
    outcome = run_days(site, DAY1, DAY2, instance)
    sandbox.faults.clear()
    assert not outcome.success
    posted = ledger_of(site).posted_partitions()
    assert posted and set(posted) <= {DAY1.isoformat(), DAY2.isoformat()}
    # the run failed, so Dagster has no materialisation of its days: only the ledger knows what Xero holds
    assert instance.fetch_materializations(
        AssetRecordsFilter(asset_key=AssetKey("posted_eretailer"), asset_partitions=[DAY1.isoformat(), DAY2.isoformat()]),
        limit=10,
    ).records == []

    assert changes.tick() == []  # nothing changed since it was posted
    day = posted[0]
    stamp(changes.ci_url, day, nz_now())
    assert days_of(changes.tick()) == [day]  # the void will reach Xero
    assert changes.tick() == []  # asked once


def test_the_night_the_clocks_go_back_neither_fails_the_sensor_nor_hides_a_change(site, instance, monkeypatch):
    assert run_days(site, DAY1, DAY2, instance).success
    changes = ChangeSensor(site, instance)
    first_pass = DST_NIGHT.replace(hour=2, minute=40)  # 02:40 NZDT; at 03:00 it is 02:00 NZST again
    second_pass = DST_NIGHT.replace(hour=2, minute=20)  # 02:20 NZST, 40 minutes later
    assert instant(second_pass, fold=1) - instant(first_pass) == 40 * 60

    # 02:30 happens twice that night: a change stamped so is read, taken as the later 02:30, and run
    stamp(changes.ci_url, DAY1, DST_NIGHT.replace(hour=2, minute=30))
    monkeypatch.setattr(sensors, "clock", lambda: instant(first_pass))
    assert days_of(changes.tick()) == [DAY1.isoformat()]

    # after that tick, in the repeated hour, CI stamps a change 02:10 (NZST): earlier on the wall than the
    # tick, later in time; the next tick (02:20 NZST) sees it, and does not ask for DAY1 again
    stamp(changes.ci_url, DAY2, DST_NIGHT.replace(hour=2, minute=10))
    monkeypatch.setattr(sensors, "clock", lambda: instant(second_pass, fold=1))
    assert days_of(changes.tick()) == [DAY2.isoformat()]
    monkeypatch.setattr(sensors, "clock", lambda: instant(second_pass, fold=1) + 300)
    assert changes.tick() == []

    # the same rules, directly: ambiguous wall times are their later instant, skipped ones after the jump
    assert sensors.nz_instant("2027-04-04 02:30:00") == instant(datetime(2027, 4, 4, 2, 30), fold=1)
    assert sensors.nz_instant("2026-09-27 02:30:00") == instant(datetime(2026, 9, 27, 3, 30))
    assert sensors.wall_time_window_start(instant(first_pass) - 15 * 60) < DST_NIGHT.replace(hour=2, minute=10)


def test_a_change_committed_after_a_tick_but_stamped_before_it_is_not_lost(site, instance, monkeypatch):
    assert run_days(site, DAY1, DAY2, instance).success
    changes = ChangeSensor(site, instance)
    later = datetime.now(NZ).replace(tzinfo=None) + timedelta(hours=2)  # the ticks happen after the posting
    stamp(changes.ci_url, DAY1, later - timedelta(minutes=1))
    monkeypatch.setattr(sensors, "clock", lambda: instant(later))
    assert days_of(changes.tick()) == [DAY1.isoformat()]

    # a CI transaction that began 5 minutes before that tick commits only now
    stamp(changes.ci_url, DAY2, later - timedelta(minutes=5))
    monkeypatch.setattr(sensors, "clock", lambda: instant(later + timedelta(minutes=5)))
    assert days_of(changes.tick()) == [DAY2.isoformat()]
    # both changes are still in the overlap window: each was asked for once
    monkeypatch.setattr(sensors, "clock", lambda: instant(later + timedelta(minutes=10)))
    assert changes.tick() == []


def test_a_run_the_sensor_asked_for_that_failed_is_asked_for_again(sandbox_factory, ci_copy, make_site, instance, monkeypatch):
    # Xero answers a repeated Idempotency-Key with its first answer for a while; here only for a second
    sandbox = sandbox_factory(idempotency_seconds=1)
    site = make_site(sandbox, ci_copy)
    connect_site(site)
    assert run_days(site, DAY1, DAY2, instance).success
    changes = ChangeSensor(site, instance)
    stamp(changes.ci_url, DAY2, nz_now())
    [request] = changes.tick()
    assert request.partition_key == DAY2.isoformat()

    sandbox.faults.set(SPOIL_ONE_INVOICE)  # Xero refuses the day's new invoice: the run fails
    assert changes.launch(request) == DagsterRunStatus.FAILURE
    sandbox.faults.clear()

    assert changes.tick() == []  # not at once: a Xero outage gets time to pass
    now = sensors.clock()
    monkeypatch.setattr(sensors, "clock", lambda: now + sensors.RETRY_AFTER_SECONDS + 1)
    [again] = changes.tick()
    assert again.partition_key == DAY2.isoformat() and again.run_key != request.run_key
    assert again.tags[sensors.CHANGE_TAG] == request.run_key
    time.sleep(1.1)
    assert changes.launch(again) == DagsterRunStatus.SUCCESS

    monkeypatch.setattr(sensors, "clock", lambda: now + 3600)
    assert changes.tick() == []  # posted: nothing more to ask


def revoke_and_refuse(sandbox, site: Path) -> None:
    """Someone revokes the app's access in Xero; the next refresh is refused (invalid_grant)."""
    store = XeroResource.from_settings(load_settings(site)).token_store()
    refresh_token = store.require().token["refresh_token"]
    answer = requests.post(sandbox.base_url.rstrip("/") + "/identity/connect/revocation",
                           data={"token": refresh_token, "client_id": CLIENT_ID}, timeout=30)
    assert answer.status_code == 200
    with store.locked():
        connection = store.require()
        connection.token["expires_at"] = 0  # the access token is spent: the next call refreshes
        store.save(connection)
    with pytest.raises(ReconnectRequired):
        xero_client(site)


def test_the_expiry_sensor_says_reconnect_after_xero_refused_the_connection(sandbox, site):
    sensor = build_definitions(site).resolve_sensor_def("xero_connection_expiry")
    xero = XeroResource.from_settings(load_settings(site))

    def tick() -> SkipReason:
        return sensor(build_sensor_context(resources={"xero": xero}))

    assert "healthy" in tick().skip_message
    revoke_and_refuse(sandbox, site)  # the refresh token's 60 days are far from over
    refused = tick().skip_message
    assert "healthy" not in refused
    assert refused.startswith("RECONNECT NEEDED") and "invalid_grant" in refused and "ci-xero connect" in refused
