"""Inwards goods through real Dagster runs against the sandbox Xero (processes.md §3): a day of goods receipts
posts as bills Awaiting Approval to the suppliers by ContactNumber (two bills under one supplier number each
posted once), a return as a supplier credit, a re-run writes nothing, a lost answer on the bill batch is looked
up and nothing is posted twice, a bill the payables clerk edited is reported and a later CI change leaves the
clerk's version in Xero, and a receipt CI voids takes its untouched bill back."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

import pytest
import sqlalchemy as sa
from dagster import AssetKey, AssetRecordsFilter, DagsterInstance

from ci_xero_pipeline.ci.demo import create_ci_tables
from ci_xero_pipeline.money import decimal_to_cents
from ci_xero_pipeline.runner import run_days
from ci_xero_pipeline.sandbox.faults import FaultPlan

from .pipeline_helpers import connect_site, xero_client

DAY = date(2026, 3, 2)
BRANCHES = [{"branch_code": "AKL01", "branch_name": "Auckland Queen Street", "active": True}]
SUPPLIERS = {"SUP01": "Kiwi Knitwear Ltd", "SUP02": "Southern Soles Ltd"}
CENT = Decimal("0.01")


def goods(number: str, supplier: str, invoice_no: str, lines: list[tuple[str, str, str]], status: str = "FINAL",
          day: date = DAY) -> dict:
    """A CI goods receipt: lines (quantity, unit cost excl, gst code); totals as CI computes them (GST per line, 15 %)."""
    rows = []
    for n, (quantity, cost, gst_code) in enumerate(lines, start=1):
        total = (Decimal(quantity) * Decimal(cost)).quantize(CENT, rounding=ROUND_HALF_UP)
        gst = (total * Decimal("0.15")).quantize(CENT, rounding=ROUND_HALF_UP) if gst_code == "S" else Decimal("0.00")
        rows.append({"receipt_no": number, "line_no": n, "sku": f"SKU{n}", "description": f"Stock item {n}",
                     "quantity": Decimal(quantity), "unit_cost_excl": Decimal(cost), "line_total_excl": total, "line_gst": gst,
                     "gst_code": gst_code, "analysis_code": "APPAREL"})
    header = {"receipt_no": number, "supplier_code": supplier, "supplier_name": SUPPLIERS[supplier], "branch_code": "AKL01",
              "received_date": day, "supplier_invoice_no": invoice_no, "status": status,
              "updated_at": datetime.combine(day, datetime.min.time()) + timedelta(hours=10), "currency_code": "NZD",
              "total_excl": sum((r["line_total_excl"] for r in rows), Decimal(0)), "total_gst": sum((r["line_gst"] for r in rows), Decimal(0))}
    return {"receipt": header, "lines": rows}


RECEIPTS = [
    goods("GR1", "SUP01", "70001", [("12", "18.5000", "S"), ("2.500", "7.1234", "S")]),
    goods("GR2", "SUP02", "70001", [("4", "32.0000", "S")]),  # another supplier, the same invoice number
    goods("GR3", "SUP01", "70001", [("6", "18.5000", "S"), ("1", "12.0000", "Z")]),  # one supplier's number again
    goods("GR4", "SUP02", "CN-88", [("-2", "32.0000", "S")]),  # goods returned: a supplier credit
    goods("GR5", "SUP01", "70002", [("1", "9.0000", "S")], status="HELD"),
    goods("GR6", "SUP01", "70003", [("1", "9.0000", "S")], status="VOID"),
]


def fill(url: str, receipts=RECEIPTS) -> None:
    engine = sa.create_engine(url)
    tables = create_ci_tables(engine, drop=True)
    with engine.begin() as connection:
        connection.execute(tables.branches.insert(), BRANCHES)
        connection.execute(tables.goods_received.insert(), [r["receipt"] for r in receipts])
        connection.execute(tables.goods_received_lines.insert(), [line for r in receipts for line in r["lines"]])
    engine.dispose()


def execute(url: str, sql: str, **values) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        connection.execute(sa.text(sql), values)
    engine.dispose()


@pytest.fixture
def ci_url(tmp_path) -> str:
    url = f"sqlite:///{tmp_path / 'ci.sqlite'}"
    fill(url)
    return url


@pytest.fixture
def site(sandbox, make_site, ci_url):
    # site.yaml's defaults: payables on, status SUBMITTED; cost of goods sold on, so the lines go to stock (631)
    path = make_site(sandbox, ci_url, {"payables": {"enabled": True}})
    connect_site(path)
    return path


def purchases(path) -> tuple[dict[str, dict], list[dict]]:
    """The bills by the receipt their Url carries, and every supplier credit note."""
    client = xero_client(path)
    bills = [b for b in client.get_all("Invoices", "Invoices", {"page": 1, "unitdp": 4}) if b["Type"] == "ACCPAY"]
    by_receipt: dict[str, dict] = {}
    for bill in bills:
        receipt = bill["Url"].rsplit("ci_receipt=", 1)[1]
        assert receipt not in by_receipt, f"{receipt} is in Xero twice"
        by_receipt[receipt] = bill
    credits = [c for c in client.get_all("CreditNotes", "CreditNotes", {"page": 1, "unitdp": 4}) if c["Type"] == "ACCPAYCREDIT"]
    return by_receipt, credits


def latest(instance: DagsterInstance, asset: str, day: date) -> dict:
    records = instance.fetch_materializations(AssetRecordsFilter(asset_key=AssetKey(asset), asset_partitions=[day.isoformat()]), limit=1).records
    return records[0].asset_materialization.metadata


def ci_figures(receipt: dict) -> tuple[Decimal, Decimal]:
    return receipt["receipt"]["total_excl"], receipt["receipt"]["total_gst"]


def test_a_day_posts_as_bills_awaiting_approval_to_the_suppliers_by_contact_number_and_a_rerun_writes_nothing(site):
    instance = DagsterInstance.ephemeral()
    outcome = run_days(site, DAY, DAY, instance, process="payables")
    assert outcome.success, outcome.failed_checks
    assert outcome.failed_checks == []
    bills, credits = purchases(site)
    assert sorted(bills) == ["GR1", "GR2", "GR3"]  # HELD and VOID receipts are not posted
    assert {b["InvoiceNumber"] for b in bills.values()} == {"70001"}
    assert {b["Status"] for b in bills.values()} == {"SUBMITTED"}
    assert [bills[r]["Contact"]["ContactNumber"] for r in ("GR1", "GR2", "GR3")] == ["SUP01", "SUP02", "SUP01"]
    for receipt in RECEIPTS[:3]:
        bill = bills[receipt["receipt"]["receipt_no"]]
        assert (bill["SubTotal"], bill["TotalTax"]) == ci_figures(receipt)
        assert {line["AccountCode"] for line in bill["LineItems"]} == {"631"}  # perpetual stock
        assert bill["LineAmountTypes"] == "Exclusive" and bill["DueDate"].startswith("/Date(")
    [credit] = credits
    assert (credit["CreditNoteNumber"], credit["Reference"], credit["Status"]) == ("CN-88", "GR4", "SUBMITTED")
    assert (credit["SubTotal"], credit["TotalTax"], credit["Total"]) == (Decimal("64.00"), Decimal("9.60"), Decimal("73.60"))
    # one contact per supplier, found by its ContactNumber
    contacts = [c for c in xero_client(site).get_all("Contacts", "Contacts", {"page": 1}) if c.get("ContactNumber") in SUPPLIERS]
    assert sorted((c["ContactNumber"], c["Name"]) for c in contacts) == sorted(SUPPLIERS.items())
    assert len({b["Contact"]["ContactID"] for r, b in bills.items() if r in ("GR1", "GR3")}) == 1

    again = run_days(site, DAY, DAY, instance, process="payables")
    assert again.success, again.failed_checks
    assert set(again.results["outcome"]) == {"already_posted"}
    assert latest(instance, "posted_payables", DAY)["xero_writes"].value == 0
    assert purchases(site) == (bills, credits)


def test_a_lost_answer_on_the_bill_batch_is_looked_up_and_each_bill_is_in_xero_once(site, sandbox):
    instance = DagsterInstance.ephemeral()
    # Xero saves the batch of bills, then the connection drops before the answer
    sandbox.faults.set(FaultPlan(script=("drop",), methods=("PUT",), collections=("Invoices",)))
    outcome = run_days(site, DAY, DAY, instance, process="payables")
    assert outcome.success, outcome.failed_checks
    assert sandbox.faults.injected["drop"] == 1
    bills, credits = purchases(site)  # (raises if a receipt's bill is there twice)
    assert sorted(bills) == ["GR1", "GR2", "GR3"] and len(credits) == 1
    posted = outcome.results.set_index("number")
    assert set(posted.loc[["GR1", "GR2", "GR3"], "outcome"]) == {"posted"}
    assert all("confirmed by lookup" in message for message in posted.loc[["GR1", "GR2", "GR3"], "message"])
    assert set(run_days(site, DAY, DAY, instance, process="payables").results["outcome"]) == {"already_posted"}
    assert purchases(site)[0].keys() == bills.keys()


def test_a_bill_the_clerk_edited_is_reported_and_a_ci_change_after_it_leaves_xeros_version(site, ci_url):
    instance = DagsterInstance.ephemeral()
    assert run_days(site, DAY, DAY, instance, process="payables").success
    client = xero_client(site)
    bill = purchases(site)[0]["GR2"]
    # the payables clerk approves the bill with 3 units instead of 4 (the supplier short-shipped)
    [line] = bill["LineItems"]
    client.request("POST", f"Invoices/{bill['InvoiceID']}", params={"unitdp": 4}, body={"Invoices": [{
        "InvoiceID": bill["InvoiceID"], "Status": "AUTHORISED",
        "LineItems": [{"LineItemID": line["LineItemID"], "Quantity": Decimal("3"), "UnitAmount": line["UnitAmount"],
                       "LineAmount": Decimal("96.00")}]}]})
    edited = purchases(site)[0]["GR2"]
    assert (edited["Status"], edited["SubTotal"]) == ("AUTHORISED", Decimal("96.00"))

    seen = run_days(site, DAY, DAY, instance, process="payables")
    assert seen.success and set(seen.results["outcome"]) == {"already_posted"}
    assert seen.failed_checks == ["posted_payables:bills_as_approved"]  # a warning: reported, not overwritten
    assert purchases(site)[0]["GR2"]["SubTotal"] == Decimal("96.00")

    # CI's receipt is then corrected to 5 units: reported as changed, the clerk's bill stays as it is
    execute(ci_url, "UPDATE ci_goods_received_lines SET quantity = 5, line_total_excl = 160.00, line_gst = 24.00 "
                    "WHERE receipt_no = 'GR2'")
    execute(ci_url, "UPDATE ci_goods_received SET total_excl = 160.00, total_gst = 24.00, updated_at = :t WHERE receipt_no = 'GR2'",
            t=datetime(2026, 3, 3, 9))
    changed = run_days(site, DAY, DAY, instance, process="payables")
    outcomes = changed.results.set_index("number")["outcome"].to_dict()
    assert outcomes["GR2"] == "changed_in_xero" and {v for k, v in outcomes.items() if k != "GR2"} == {"already_posted"}
    assert "not overwritten" in changed.results.set_index("number").loc["GR2", "message"]
    kept = purchases(site)[0]["GR2"]
    assert (kept["SubTotal"], kept["Status"], kept["InvoiceID"]) == (Decimal("96.00"), "AUTHORISED", bill["InvoiceID"])
    # the day is not green until a person settles it: CI says 160.00, the books hold 96.00
    assert not changed.success
    assert {"posted_payables:every_document_in_xero", "posted_payables:every_dollar_accounted_for"} <= set(changed.failed_checks)
    day = latest(instance, "posted_payables", DAY)
    assert day["outcomes"].value.get("changed_in_xero") == 1
    assert "the payables clerk brings the bill in Xero to CI's figures" in str(day["problem_documents"].value.records)


def test_a_receipt_ci_voids_takes_back_its_bill_still_awaiting_approval_as_posted(site, ci_url):
    instance = DagsterInstance.ephemeral()
    assert run_days(site, DAY, DAY, instance, process="payables").success
    execute(ci_url, "UPDATE ci_goods_received SET status = 'VOID', updated_at = :t WHERE receipt_no = 'GR1'", t=datetime(2026, 3, 3, 9))
    voided = run_days(site, DAY, DAY, instance, process="payables")
    assert voided.success, voided.failed_checks
    assert voided.results.set_index("number").loc["GR1", "outcome"] == "withdrawn"
    bills, _ = purchases(site)
    assert "GR1" not in bills or bills["GR1"]["Status"] == "DELETED"
    assert sorted(r for r, b in bills.items() if b["Status"] != "DELETED") == ["GR2", "GR3"]


def test_without_cost_of_goods_sold_the_lines_go_to_the_purchases_accounts_and_a_bad_receipt_waits(sandbox, make_site, tmp_path):
    url = f"sqlite:///{tmp_path / 'ci.sqlite'}"
    bad = goods("GR9", "SUP02", "70009", [("1", "10.0000", "S")])
    bad["receipt"]["total_gst"] = Decimal("2.50")  # CI's header disagrees with its own line
    fill(url, RECEIPTS[:2] + [bad])
    site = make_site(sandbox, url, {"payables": {"enabled": True}, "cogs": {"enabled": False}})
    connect_site(site)
    instance = DagsterInstance.ephemeral()
    outcome = run_days(site, DAY, DAY, instance, process="payables")
    assert sorted(outcome.failed_checks) == ["validated_payables:no_quarantined_rows"]
    bills, _ = purchases(site)
    assert sorted(bills) == ["GR1", "GR2"]
    assert {line["AccountCode"] for bill in bills.values() for line in bill["LineItems"]} == {"300"}
    reasons = str(latest(instance, "validated_payables", DAY)["quarantine"].value.records)
    assert "GR9" in reasons and "SUP02" in reasons and "2.50" in reasons


def test_the_demo_databases_goods_receipts_post_one_document_each_with_cis_figures(sandbox, make_site, ci_copy):
    from ci_xero_pipeline.ci.extract import engine_for, extract_goods_received

    from .conftest import DEMO_DAYS, DEMO_END_DAY

    first = DEMO_END_DAY - timedelta(days=DEMO_DAYS - 1)
    site = make_site(sandbox, ci_copy, {"payables": {"enabled": True}})
    connect_site(site)
    outcome = run_days(site, first, DEMO_END_DAY, DagsterInstance.ephemeral(), process="payables")
    receipts = extract_goods_received(engine_for(ci_copy), first, DEMO_END_DAY).receipts
    final = receipts[receipts["status"] == "FINAL"]
    assert len(final) and outcome.success, outcome.failed_checks
    bills, credits = purchases(site)
    returns = final[final["total_excl_cents"] + final["total_gst_cents"] < 0]
    assert sorted(bills) == sorted(set(final["receipt_no"]) - set(returns["receipt_no"]))
    assert sorted(c["Reference"] for c in credits) == sorted(returns["receipt_no"])
    held = {r: (decimal_to_cents(b["SubTotal"]), decimal_to_cents(b["TotalTax"])) for r, b in bills.items()}
    held |= {c["Reference"]: (-decimal_to_cents(c["SubTotal"]), -decimal_to_cents(c["TotalTax"])) for c in credits}
    assert held == {r.receipt_no: (int(r.total_excl_cents), int(r.total_gst_cents)) for r in final.itertuples()}


def test_an_archived_purchases_account_stops_the_run_before_any_bill_is_sent(sandbox, make_site, ci_url):
    from dagster import DagsterEventType

    site = make_site(sandbox, ci_url, {"payables": {"enabled": True}, "cogs": {"enabled": False}})
    connect_site(site)
    client = xero_client(site)
    account = next(a for a in client.accounts() if a["Code"] == "300")
    client.request("POST", f"Accounts/{account['AccountID']}", body={"Accounts": [{"Status": "ARCHIVED"}]})
    instance = DagsterInstance.ephemeral()
    outcome = run_days(site, DAY, DAY, instance, process="payables")
    assert not outcome.success
    assert purchases(site) == ({}, [])
    failure = " ".join(str(e.dagster_event.step_failure_data.user_failure_data.description or "")
                       for e in instance.all_logs(outcome.run_id, of_type=DagsterEventType.STEP_FAILURE)
                       if e.dagster_event.step_failure_data.user_failure_data)
    assert "payables.purchases_accounts.APPAREL" in failure and "300" in failure and "nothing was posted" in failure
