"""The whole path, for real: demo CI database → Dagster run → OAuth 2.0 → sandbox Xero → read back."""

from __future__ import annotations

from datetime import timedelta

import pytest
from dagster import AssetKey, DagsterInstance

from ci_xero_pipeline.sandbox.server import SandboxOrganisation

from .conftest import DEMO_DAYS, DEMO_END_DAY
from .pipeline_helpers import (
    ci_final_totals_by_day,
    connect_site,
    outcome_counts,
    run,
    xero_client,
    xero_documents,
    xero_totals_by_day,
)

FIRST_DAY = DEMO_END_DAY - timedelta(days=DEMO_DAYS - 1)


@pytest.mark.parametrize("mode", ["summary", "detail"])
def test_every_day_reconciles_to_the_cent_and_a_rerun_posts_nothing(mode, sandbox, demo_ci_url, make_site):
    site = make_site(sandbox, demo_ci_url, {"eretailer": {"mode": mode}})
    connect_site(site)

    first_run = run(site, FIRST_DAY, DEMO_END_DAY)
    assert first_run.success, first_run.failed_checks
    assert first_run.failed_checks == []
    assert set(first_run.results["outcome"]) == {"posted"}

    ci = ci_final_totals_by_day(demo_ci_url, FIRST_DAY, DEMO_END_DAY)
    assert len(ci) == DEMO_DAYS
    assert xero_totals_by_day(site) == ci

    client = xero_client(site)
    second_run = run(site, FIRST_DAY, DEMO_END_DAY)
    assert second_run.success
    assert outcome_counts(second_run.results) == {"already_posted": len(first_run.results)}
    assert xero_totals_by_day(site) == ci
    writes = [kind for kind in sandbox.store.call_counts(client.tenant_id) if kind[0] in ("PUT", "POST")]
    assert writes, "the first run wrote documents"


def test_summary_mode_is_one_document_per_day_batched_across_days(sandbox, demo_ci_url, make_site):
    site = make_site(sandbox, demo_ci_url, {"eretailer": {"mode": "summary"}})
    connect_site(site)
    result = run(site, FIRST_DAY, DEMO_END_DAY)
    assert result.success
    assert len(result.results) == DEMO_DAYS
    assert sorted(result.results["number"]) == sorted(
        f"ER-{(FIRST_DAY + timedelta(days=n)).strftime('%Y%m%d')}" for n in range(DEMO_DAYS)
    )
    counts = sandbox.store.call_counts(xero_client(site).tenant_id)
    document_writes = sum(n for (method, path), n in counts.items() if method == "PUT" and "Invoices" in path)
    assert document_writes == 1  # six days, one request


def test_detail_mode_mirrors_each_ci_document(sandbox, demo_ci_url, make_site):
    from ci_xero_pipeline.ci.extract import engine_for, extract_sales_documents

    site = make_site(sandbox, demo_ci_url, {"eretailer": {"mode": "detail"}})
    connect_site(site)
    assert run(site, FIRST_DAY, DEMO_END_DAY).success

    ci = extract_sales_documents(engine_for(demo_ci_url), FIRST_DAY, DEMO_END_DAY).invoices
    final = ci[ci["status"] == "FINAL"].set_index("invoice_no")
    invoices, credit_notes = xero_documents(site)
    assert {i["InvoiceNumber"] for i in invoices} == set(final.index[final["doc_type"] == "INVOICE"])
    assert {c["CreditNoteNumber"] for c in credit_notes} == set(final.index[final["doc_type"] == "CREDIT"])
    for invoice in invoices:
        source = final.loc[invoice["InvoiceNumber"]]
        assert invoice["Reference"] == (source["order_ref"] or "")
        assert invoice["Status"] == "AUTHORISED"
        if source["customer_code"]:
            assert source["customer_code"] in invoice["Contact"]["Name"]


@pytest.mark.parametrize("status", ["DRAFT", "AUTHORISED"])
def test_documents_go_in_with_the_sites_status(status, sandbox, demo_ci_url, make_site):
    site = make_site(sandbox, demo_ci_url, {"eretailer": {"mode": "summary", "status": status}})
    connect_site(site)
    assert run(site, DEMO_END_DAY, DEMO_END_DAY).success
    invoices, credit_notes = xero_documents(site)
    assert {d["Status"] for d in invoices + credit_notes} == {status}


def test_existing_tracking_category_with_another_name(sandbox_factory, demo_ci_url, make_site):
    stores = ["Online", "Queen Street", "Lambton Quay", "Riccarton", "Hamilton"]
    sandbox = sandbox_factory(
        SandboxOrganisation(name="Test Retail Ltd", short_code="TEST1", tracking_categories={"Stores": stores})
    )
    branch_options = {"WEB": "Online", "AKL01": "Queen Street", "WLG01": "Lambton Quay", "CHC01": "Riccarton", "HAM01": "Hamilton"}
    site = make_site(
        sandbox,
        demo_ci_url,
        {"eretailer": {"mode": "detail"}, "tracking": {"category_name": "Stores", "strategy": "existing", "branch_options": branch_options}},
    )
    connect_site(site)
    result = run(site, DEMO_END_DAY, DEMO_END_DAY)
    assert result.success and set(result.results["outcome"]) == {"posted"}
    client = xero_client(site)
    categories = {c["Name"]: c for c in client.tracking_categories()}
    assert set(categories) == {"Stores"}  # nothing created
    assert {o["Name"] for o in categories["Stores"]["Options"]} == set(stores)
    invoices, _ = xero_documents(site)
    used = {t["Option"] for i in invoices for line in i["LineItems"] for t in line["Tracking"]}
    assert used and used <= set(stores)
    assert {t["Name"] for i in invoices for line in i["LineItems"] for t in line["Tracking"]} == {"Stores"}


def test_existing_strategy_without_the_category_fails_with_what_to_fix(sandbox, demo_ci_url, make_site):
    site = make_site(sandbox, demo_ci_url, {"tracking": {"category_name": "Shops", "strategy": "existing"}})
    connect_site(site)
    instance = DagsterInstance.ephemeral()
    result = run(site, DEMO_END_DAY, DEMO_END_DAY, instance)
    assert not result.success
    failures = [
        # Dagster wraps the asset's own exception: its message is the cause's
        (error.cause or error).message
        for event in instance.all_logs(result.run_id)
        if event.dagster_event and event.dagster_event.is_step_failure
        for error in [event.dagster_event.event_specific_data.error]
    ]
    assert any("no tracking category 'Shops'" in message and "tracking.strategy" in message for message in failures)
    assert xero_documents(site) == ([], [])


def test_create_strategy_creates_the_category_and_branch_options(sandbox, demo_ci_url, make_site):
    site = make_site(sandbox, demo_ci_url, {"tracking": {"category_name": "CI Branches", "strategy": "create"}})
    connect_site(site)
    assert run(site, FIRST_DAY, DEMO_END_DAY).success
    categories = {c["Name"]: c for c in xero_client(site).tracking_categories()}
    options = {o["Name"] for o in categories["CI Branches"]["Options"]}
    assert "Online Store" in options and len(options) >= 2


def test_quarantined_days_and_metadata_visible_in_dagster(sandbox, demo_ci_url, make_site):
    instance = DagsterInstance.ephemeral()
    site = make_site(sandbox, demo_ci_url)
    connect_site(site)
    assert run(site, FIRST_DAY, DEMO_END_DAY, instance).success
    records = instance.fetch_materializations(AssetKey("posted_eretailer"), limit=100).records
    assert {r.partition_key for r in records} == {
        (FIRST_DAY + timedelta(days=n)).isoformat() for n in range(DEMO_DAYS)
    }
    documents = instance.fetch_materializations(AssetKey("xero_eretailer_documents"), limit=1).records[0]
    assert "documents_table" in documents.asset_materialization.metadata
