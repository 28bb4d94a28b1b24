"""GST exact without Xero's tolerance, days that net to zero, and paid documents, through real Dagster
runs against the sandbox (which refuses a TaxAmount more than 0.01 from its own per-line figure)."""

from __future__ import annotations

from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa
from dagster import DagsterInstance

from ci_xero_pipeline.ci.demo import create_ci_tables, insert_documents
from ci_xero_pipeline.money import decimal_to_cents

from .pipeline_helpers import ci_final_totals_by_day, connect_site, outcome_counts, run, xero_client, xero_documents, xero_totals_by_day
from .test_posting_exactly_once import change_a_line, check_evaluation, two_invoices

TRAPS, ZERO_NET, ZERO_TOTAL = date(2026, 10, 20), date(2026, 10, 21), date(2026, 10, 22)
BRANCH = {"branch_code": "AKL01", "branch_name": "Auckland Queen Street", "active": True}


def unit_gst(price: str) -> Decimal:
    return (Decimal(price) * 3 / 23).quantize(Decimal("0.01"), ROUND_HALF_UP)


def line(number: str, line_no: int, quantity: str, price: str, code: str = "APPAREL", gst: str = "S",
         discount: str = "0.00", per_unit_gst: bool = False, **extra) -> dict:
    row = {"invoice_no": number, "line_no": line_no, "description": f"item {line_no}", "quantity": Decimal(quantity),
           "unit_price_incl": Decimal(price), "discount_incl": Decimal(discount), "gst_code": gst,
           "analysis_code": code, "sku": f"SKU{line_no}", **extra}
    if per_unit_gst:  # CI rounds GST per unit, then multiplies: cents away from the line's own figure
        row["line_gst"] = unit_gst(price) * Decimal(quantity)
    return row


def header(number: str, day: date, doc_type: str = "INVOICE", original: str | None = None) -> dict:
    at = datetime(day.year, day.month, day.day, 10, 0)
    return {"invoice_no": number, "doc_type": doc_type, "branch_code": "AKL01", "business_date": day,
            "created_at": at, "customer_code": f"C-{number}", "customer_name": f"Customer {number}",
            "original_invoice_no": original}


@pytest.fixture
def trap_ci_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'traps.sqlite'}"
    engine = sa.create_engine(url)
    create_ci_tables(engine)
    invoices, lines = [], []
    # many small lines: each line's tax is Xero's own; their sum is off from the tax on the sum
    invoices.append(header("T1", TRAPS))
    lines += [line("T1", n, "1", "0.07") for n in range(1, 31)]
    # multi-quantity lines whose CI GST (per unit) differs by cents from round(amount × 3/23)
    invoices.append(header("T2", TRAPS))
    lines += [line("T2", 1, "7", "0.99", per_unit_gst=True), line("T2", 2, "13", "2.55", per_unit_gst=True),
              line("T2", 3, "3", "19.99", code="FOOTWEAR", discount="2.50")]
    # zero-rated and exempt beside standard
    invoices.append(header("T3", TRAPS))
    lines += [line("T3", 1, "1", "45.00", gst="Z", code="FREIGHT"), line("T3", 2, "1", "20.00", gst="E", code="GIFTS"),
              line("T3", 3, "2", "33.33")]
    # a discounted credit of part of T2, and a credit with per-unit GST
    invoices.append(header("T4", TRAPS, "CREDIT", "T2"))
    lines += [line("T4", 1, "-3", "19.99", code="FOOTWEAR", discount="2.50"),
              line("T4", 2, "-5", "2.55", per_unit_gst=True)]
    # a day whose sales and refunds cancel line for line: no document
    invoices += [header("Z1", ZERO_NET), header("Z2", ZERO_NET, "CREDIT", "Z1")]
    lines += [line("Z1", 1, "2", "25.00"), line("Z2", 1, "-2", "25.00")]
    # a day whose total is 0.00 with lines left: a 0.00 invoice
    invoices += [header("Y1", ZERO_TOTAL), header("Y2", ZERO_TOTAL, "CREDIT")]
    lines += [line("Y1", 1, "1", "50.00"), line("Y2", 1, "-1", "50.00", code="FOOTWEAR")]
    insert_documents(engine, invoices, lines, branches=[BRANCH])
    return url


@pytest.mark.parametrize("mode", ["summary", "detail"])
def test_rounding_traps_and_zero_days_post_exactly_with_xeros_own_per_line_tax(mode, sandbox, trap_ci_url, make_site):
    site = make_site(sandbox, trap_ci_url, {
        "first_trading_day": "2026-10-01", "eretailer": {"mode": mode, "status": "AUTHORISED"},
        "mapping": {"gst_tolerance_cents": 3},  # 13 units at per-unit GST: 3 cents from the line's own figure
    })
    connect_site(site)
    instance = DagsterInstance.ephemeral()

    outcome = run(site, TRAPS, ZERO_TOTAL, instance)

    assert outcome.success, outcome.failed_checks
    assert set(outcome.results["outcome"]) == {"posted"}
    assert xero_totals_by_day(site) | {ZERO_NET.isoformat(): (0, 0)} == ci_final_totals_by_day(trap_ci_url, TRAPS, ZERO_TOTAL) | {
        ZERO_NET.isoformat(): (0, 0)}
    invoices, credit_notes = xero_documents(site)
    for document in invoices + credit_notes:
        for item in document["LineItems"]:  # every line's tax is Xero's own figure, to the cent
            rate = {"OUTPUT2": 15, "ZERORATED": 0, "NONE": 0}[item["TaxType"]]
            own = (Decimal(str(item["LineAmount"])) * rate / (100 + rate)).quantize(Decimal("0.01"), ROUND_HALF_UP)
            assert Decimal(str(item["TaxAmount"])) == own, (document.get("InvoiceNumber"), item)
    adjustments = [i for d in invoices + credit_notes for i in d["LineItems"] if i["Description"].startswith("GST adjustment")]
    assert adjustments  # CI's GST differs from Xero's per-line figure somewhere: labelled lines carry it
    dates = {d["DateString"][:10] if d.get("DateString") else None for d in invoices + credit_notes}
    if mode == "summary":
        assert ZERO_NET.isoformat() not in dates  # nothing posted for a day that nets to zero ...
        zero = next(d for d in invoices if d["InvoiceNumber"].endswith(ZERO_TOTAL.strftime("%Y%m%d")))
        assert decimal_to_cents(zero["Total"]) == 0 and zero["Status"] == "PAID" and len(zero["LineItems"]) == 2
    dollars = check_evaluation(instance, outcome.run_id, "every_dollar_accounted_for")
    assert dollars.passed and dollars.metadata["unaccounted"].value == "0.00"
    # ... and the run says so
    if mode == "summary":
        documents_event = [e for e in instance.all_logs(outcome.run_id) if e.dagster_event and e.dagster_event.is_step_materialization
                           and e.dagster_event.event_specific_data.materialization.asset_key.to_user_string() == "xero_eretailer_documents"]
        metadata = documents_event[0].dagster_event.event_specific_data.materialization.metadata
        assert metadata["days_without_document_in_run"].value == [ZERO_NET.isoformat()]
    assert set(run(site, TRAPS, ZERO_TOTAL).results["outcome"]) == {"already_posted"}


def test_a_paid_document_is_never_touched_when_ci_changes_it(sandbox, ci_copy, make_site):
    from .conftest import DEMO_END_DAY
    from .test_safe_books import posted_day, writes

    ci = ci_copy
    site = posted_day(sandbox, ci, make_site, "detail")
    edited, _other = two_invoices(ci)
    client = xero_client(site)
    held = client.find_by_number("Invoices", [edited])[edited]
    paid = client.put_batch("Payments", [("pay", {"Invoice": {"InvoiceID": held["InvoiceID"]}, "Account": {"Code": "090"},
                                                  "Date": DEMO_END_DAY.isoformat(), "Amount": Decimal("10.00"),
                                                  "Reference": "paid by the customer"})])[0]
    assert paid.ok, paid.messages
    change_a_line(ci, edited)
    writes_before = writes(sandbox, site)

    again = run(site, DEMO_END_DAY, DEMO_END_DAY)

    assert outcome_counts(again.results).get("paid") == 1
    row = again.results[again.results["outcome"] == "paid"].iloc[0]
    assert row["number"] == edited and "not touched" in row["message"]
    assert writes(sandbox, site) == writes_before
    after = client.find_by_number("Invoices", [edited])[edited]
    assert after["Status"] == "AUTHORISED" and after["Total"] == held["Total"]
