"""Bad CI rows, locked periods, the change sensor, the schedule, and an independent read-back with
Xero's own SDK: each through a real Dagster run against the sandbox."""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from dagster import AssetKey, DagsterInstance, RunRequest, SkipReason, build_schedule_context, build_sensor_context

from ci_xero_pipeline.ci.demo import insert_documents
from ci_xero_pipeline.ci.extract import engine_for
from ci_xero_pipeline.ci.tables import build_ci_tables
from ci_xero_pipeline.code_location import build_definitions
from ci_xero_pipeline.money import decimal_to_cents
from ci_xero_pipeline.resources import CISourceResource, XeroResource
from ci_xero_pipeline.sandbox.server import SandboxOrganisation
from ci_xero_pipeline.settings import load_settings

from .conftest import CLIENT_ID, DEMO_DAYS, DEMO_END_DAY
from .pipeline_helpers import ci_final_totals_by_day, connect_site, outcome_counts, run, xero_documents, xero_totals_by_day

FIRST_DAY = DEMO_END_DAY - timedelta(days=DEMO_DAYS - 1)
NZ = ZoneInfo("Pacific/Auckland")


def add_bad_documents(ci_url: str) -> dict[str, str]:
    """Three FINAL E-Retailer invoices on DEMO_END_DAY that cannot be posted; returns number → fault."""
    created = datetime.combine(DEMO_END_DAY, datetime.min.time()).replace(hour=13)

    def header(number: str, branch: str = "WEB") -> dict:
        return {"invoice_no": number, "branch_code": branch, "business_date": DEMO_END_DAY, "created_at": created}

    def line(number: str, **changes) -> dict:
        return {"invoice_no": number, "line_no": 1, "description": "Merino crew", "quantity": Decimal("1"),
                "unit_price_incl": Decimal("40.00"), "analysis_code": "APPAREL", **changes}

    insert_documents(
        engine_for(ci_url),
        [header("BAD-CODE"), header("BAD-SUM"), header("BAD-BRANCH", branch="ZZZ99")],
        [
            line("BAD-CODE", analysis_code="SURFBOARDS"),
            line("BAD-SUM", line_total_incl=Decimal("50.00"), line_gst=Decimal("6.52")),
            line("BAD-BRANCH"),
        ],
    )
    return {"BAD-CODE": "SURFBOARDS", "BAD-SUM": "50.00", "BAD-BRANCH": "ZZZ99"}


def latest_metadata(instance: DagsterInstance, asset: str, day: str) -> dict:
    from dagster import AssetRecordsFilter

    records = instance.fetch_materializations(
        AssetRecordsFilter(asset_key=AssetKey(asset), asset_partitions=[day]), limit=1
    ).records
    return records[0].asset_materialization.metadata


def test_bad_rows_are_quarantined_with_reasons_and_the_rest_of_the_day_posts(sandbox, ci_copy, make_site):
    clean_totals = ci_final_totals_by_day(ci_copy, DEMO_END_DAY, DEMO_END_DAY)
    faults = add_bad_documents(ci_copy)
    site = make_site(sandbox, ci_copy, {"eretailer": {"mode": "detail"}})
    connect_site(site)
    instance = DagsterInstance.ephemeral()

    result = run(site, DEMO_END_DAY, DEMO_END_DAY, instance)

    assert result.success  # quarantine warns, it does not stop the day
    assert "validated_eretailer:no_quarantined_rows" in result.failed_checks
    assert "validated_eretailer:every_code_mapped" in result.failed_checks
    day = DEMO_END_DAY.isoformat()
    rows = latest_metadata(instance, "validated_eretailer", day)["quarantined_rows"].value.records
    reasons = {row.data["invoice_no"]: row.data["reason"] for row in rows}
    assert set(reasons) == set(faults)
    for number, detail in faults.items():
        assert number in reasons[number] and detail in reasons[number], reasons[number]

    invoices, _ = xero_documents(site)
    assert not {i["InvoiceNumber"] for i in invoices} & set(faults)
    assert xero_totals_by_day(site) == clean_totals  # everything else of the day, to the cent
    assert set(result.results["outcome"]) == {"posted"}


def test_authorised_documents_in_a_locked_period_are_reported_not_forced(sandbox_factory, demo_ci_url, make_site):
    lock = DEMO_END_DAY - timedelta(days=1)
    sandbox = sandbox_factory(SandboxOrganisation(name="Test Retail Ltd", short_code="TEST1", period_lock_date=lock))
    site = make_site(sandbox, demo_ci_url, {"eretailer": {"mode": "summary", "status": "AUTHORISED"}})
    connect_site(site)

    result = run(site, FIRST_DAY, DEMO_END_DAY)

    assert result.success  # the locked days are accounted for: excluded by Xero's lock date, and reported
    assert result.failed_checks == ["posted_eretailer:every_document_in_xero"]
    by_day = dict(zip(result.results["business_date"], result.results["outcome"]))
    assert by_day == {d: ("posted" if d == DEMO_END_DAY.isoformat() else "locked") for d in by_day}
    locked = result.results[result.results["outcome"] == "locked"]
    assert locked["message"].str.contains("lock date").all()
    assert set(xero_totals_by_day(site)) == {DEMO_END_DAY.isoformat()}


def test_sensor_reruns_a_posted_day_when_ci_changes_it(sandbox, ci_copy, make_site):
    site = make_site(sandbox, ci_copy)
    connect_site(site)
    instance = DagsterInstance.ephemeral()
    assert run(site, FIRST_DAY, DEMO_END_DAY, instance).success
    sensor = build_definitions(site).resolve_sensor_def("eretailer_changes_after_posting")
    ci = CISourceResource(database_url=ci_copy)

    def tick(cursor: str | None):
        return sensor(build_sensor_context(instance=instance, cursor=cursor, resources={"ci": ci, "xero": XeroResource.from_settings(load_settings(site))}))

    settled = tick(None)
    assert settled.run_requests == []  # nothing changed after posting
    time.sleep(0.01)

    tables = build_ci_tables()
    edited_day = FIRST_DAY + timedelta(days=2)
    now_nz = datetime.now(NZ).replace(tzinfo=None)
    with engine_for(ci_copy).begin() as connection:
        number = connection.execute(
            sa.select(tables.sales_invoices.c.invoice_no)
            .where(tables.sales_invoices.c.business_date == edited_day, tables.sales_invoices.c.status == "FINAL",
                   tables.sales_invoices.c.source == "ERETAILER")
            .limit(1)
        ).scalar_one()
        connection.execute(
            sa.update(tables.sales_invoices)
            .where(tables.sales_invoices.c.invoice_no == number)
            .values(status="VOID", updated_at=now_nz)
        )

    changed = tick(settled.cursor)
    assert [r.partition_key for r in changed.run_requests] == [edited_day.isoformat()]
    assert all(isinstance(r, RunRequest) for r in changed.run_requests)
    quiet = tick(changed.cursor)
    assert isinstance(quiet, SkipReason) or quiet.run_requests == []


def test_schedule_posts_yesterday_at_the_sites_time(sandbox, demo_ci_url, make_site):
    site = make_site(sandbox, demo_ci_url, {"eretailer": {"schedule_time": "05:30"}})
    schedule = build_definitions(site).resolve_schedule_def("eretailer_daily")
    assert schedule.cron_schedule == "30 5 * * *"
    assert schedule.execution_timezone == "Pacific/Auckland"
    tick = datetime(2026, 11, 24, 5, 30, tzinfo=NZ)
    requests = schedule.evaluate_tick(build_schedule_context(scheduled_execution_time=tick)).run_requests
    assert [r.partition_key for r in requests] == ["2026-11-23"]


@pytest.mark.parametrize("mode", ["summary", "detail"])
def test_xero_python_sdk_reads_back_what_the_pipeline_posted(mode, sandbox, demo_ci_url, make_site):
    """Xero's official SDK, an independent client, sees the same books CI has, to the cent."""
    from xero_python.accounting import AccountingApi
    from xero_python.api_client import ApiClient, Configuration
    from xero_python.api_client.oauth2 import OAuth2Token

    site = make_site(sandbox, demo_ci_url, {"eretailer": {"mode": mode}})
    connect_site(site)
    assert run(site, FIRST_DAY, DEMO_END_DAY).success

    connection = XeroResource.from_settings(load_settings(site)).token_store().require()
    stored: dict = {}
    sdk = ApiClient(Configuration(oauth2_token=OAuth2Token(client_id=CLIENT_ID, client_secret="")), pool_threads=1)
    sdk.oauth2_token_getter(lambda: stored)
    sdk.oauth2_token_saver(stored.update)
    sdk.set_oauth2_token({**connection.token, "expires_at": time.time() + 1500})
    accounting = AccountingApi(sdk, base_url=f"{sandbox.base_url.rstrip('/')}/api.xro/2.0")
    tenant = connection.tenant_id

    def every(read, attribute):
        found, page = [], 1
        while batch := getattr(read(tenant, page=page, unitdp=4), attribute):
            found += batch
            page += 1
        return found

    invoices = every(accounting.get_invoices, "invoices")
    credit_notes = every(accounting.get_credit_notes, "credit_notes")
    totals: dict[str, list[int]] = {}
    for sign, documents in ((1, invoices), (-1, credit_notes)):
        for document in documents:
            day = totals.setdefault(document.date.isoformat(), [0, 0])
            day[0] += sign * decimal_to_cents(Decimal(str(document.total)))
            day[1] += sign * decimal_to_cents(Decimal(str(document.total_tax)))
    assert {day: tuple(v) for day, v in totals.items()} == ci_final_totals_by_day(demo_ci_url, FIRST_DAY, DEMO_END_DAY)

    categories = accounting.get_tracking_categories(tenant).tracking_categories
    assert [c.name for c in categories] == ["CI Branches"]
    options = {o.name for o in categories[0].options}
    used = {t.option for d in invoices for line in d.line_items for t in line.tracking}
    assert used and used <= options
    if mode == "detail":
        assert len(invoices) + len(credit_notes) == len(run(site, FIRST_DAY, DEMO_END_DAY).results)
    assert outcome_counts(run(site, FIRST_DAY, DEMO_END_DAY).results).keys() == {"already_posted"}
